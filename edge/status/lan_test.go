package status

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/lintel-edge/lintel/edge/config"
)

// TestLockoutAimedAtAttacker: wrong passwords from one address slow that
// address down, and never keep the right password out from another.
func TestLockoutAimedAtAttacker(t *testing.T) {
	cheapHash(t)
	clk := &fakeClock{}
	e := newEnv(t, envOpt{mutate: func(o *Options) { o.Now = clk.Now }})
	withAccounts(t, e)
	evil, user := e.clientFrom("127.0.0.2"), e.clientFrom("127.0.0.3")
	etok := evil.formCSRF("/login")
	var retries []int
	for i := range 40 {
		r := evil.post("/login", url.Values{"csrf": {etok}, "name": {"manager"}, "password": {fmt.Sprintf("guess-%02d-password", i)}})
		if i < 4 && r.code != http.StatusUnauthorized || i >= 4 && r.code != http.StatusTooManyRequests {
			t.Errorf("attacker attempt %d: %d", i+1, r.code)
		}
		if i >= 4 && i < 8 {
			n, _ := strconv.Atoi(r.hdr.Get("Retry-After"))
			retries = append(retries, n)
			clk.advance(time.Duration(n) * time.Second) // wait it out, then guess again
		}
	}
	// Exponential back-off: 2 s, 4 s, 8 s, 16 s (+1 for rounding).
	if fmt.Sprint(retries) != "[3 5 9 17]" {
		t.Errorf("back-off Retry-After %v, want [3 5 9 17]", retries)
	}
	// The manager, on their own phone, gets in at once.
	utok := user.formCSRF("/login")
	if r := user.post("/login", url.Values{"csrf": {utok}, "name": {"manager"}, "password": {mgrPW}}); r.code != http.StatusSeeOther {
		t.Fatalf("right password from another address: %d", r.code)
	}
	// The attacker's own address is locked for any name by now (20
	// failures), the right password included.
	if r := evil.post("/login", url.Values{"csrf": {etok}, "name": {"viewer"}, "password": {viePW}}); r.code != http.StatusTooManyRequests {
		t.Errorf("locked address, other account: %d", r.code)
	}
	if r := e.clientFrom("127.0.0.4"); true {
		tok := r.formCSRF("/login")
		if res := r.post("/login", url.Values{"csrf": {tok}, "name": {"viewer"}, "password": {viePW}}); res.code != http.StatusSeeOther {
			t.Errorf("a third address: %d", res.code)
		}
	}

	// lintel user unlock (through the accounts file): the address may
	// try again at once.
	if err := e.srv.accounts.Unlock("manager", "127.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if r := evil.post("/login", url.Values{"csrf": {etok}, "name": {"manager"}, "password": {mgrPW}}); r.code != http.StatusSeeOther {
		t.Errorf("after unlock: %d", r.code)
	}
	if err := e.srv.accounts.Unlock("nobody", ""); err == nil {
		t.Error("unlock of an unknown account accepted")
	}
}

// TestFailedLoginNamesNotLogged: a name that is no account (a password
// typed into the name field) appears in no log line and no page.
func TestFailedLoginNamesNotLogged(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	c := e.clientFrom("127.0.0.5")
	tok := c.formCSRF("/login")
	const typed = "MySecret-Pw-992"
	for range 7 { // failures, then refusals during the back-off
		c.post("/login", url.Values{"csrf": {tok}, "name": {typed}, "password": {"x"}})
	}
	c.post("/login", url.Values{"csrf": {tok}, "name": {"manager"}, "password": {"wrong-password-1"}})
	logs := e.logs.String()
	if strings.Contains(logs, typed) {
		t.Errorf("the typed name is logged:\n%s", logs)
	}
	if !strings.Contains(logs, `"account":"manager"`) || !strings.Contains(logs, `"account":"(unknown)"`) {
		t.Errorf("failures not logged by account:\n%s", logs)
	}
	d := e.login("installer", insPW).get("/diagnostics").body
	if strings.Contains(d, typed) {
		t.Error("diagnostics show the typed name")
	}
}

// TestLimiterPace: past GlobalPerMinute failures a minute, checks are
// paced, not refused: every attempt is still checked, after a wait.
func TestLimiterPace(t *testing.T) {
	now := time.Unix(1800000000, 0)
	l := newLimiter(Login{MaxFailures: 5, Window: config.Duration(15 * time.Minute), Lockout: config.Duration(15 * time.Minute),
		IPMaxFailures: 20, GlobalPerMinute: 6}, func() time.Time { return now })
	var slept []time.Duration
	sleep := func(d time.Duration) { slept = append(slept, d) }
	for i := range 6 {
		if !l.pace(5*time.Second, sleep) {
			t.Fatal("paced below the threshold")
		}
		l.fail("manager", fmt.Sprintf("10.0.0.%d", i)) // six addresses, one failure each
	}
	if len(slept) != 0 {
		t.Fatalf("slept %v below the threshold", slept)
	}
	// Now one check per 10 s: a second attempt in the same instant waits
	// 10 s; one that would wait more than maxWait is told to retry.
	if !l.pace(15*time.Second, sleep) || !l.pace(15*time.Second, sleep) || l.pace(15*time.Second, sleep) {
		t.Fatal("pacing")
	}
	if fmt.Sprint(slept) != "[10s]" {
		t.Errorf("slept %v, want [10s]", slept)
	}
	// Nothing was locked for the account itself.
	if d, _ := l.blocked("manager", "10.9.9.9"); d != 0 {
		t.Errorf("account blocked from a new address for %s", d)
	}
	now = now.Add(2 * time.Minute)
	if !l.pace(0, sleep) {
		t.Error("still paced after the failures aged out")
	}
}

// TestSetupCodePerAddress: wrong setup codes slow down their sender;
// setup from the box itself (and any other host) stays possible.
func TestSetupCodePerAddress(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	code := e.setupCode()
	evil := e.clientFrom("127.0.0.7")
	tok := evil.formCSRF("/setup")
	last := 0
	for range 12 {
		last = evil.post("/setup", url.Values{"csrf": {tok}, "code": {"AAAA-BBBB-CCCC-DDDD"}, "name": {"x"}, "password": {insPW}, "password2": {insPW}}).code
	}
	if last != http.StatusTooManyRequests {
		t.Errorf("12 wrong codes: %d, want 429", last)
	}
	box := e.client() // 127.0.0.1: the box itself
	btok := box.formCSRF("/setup")
	if r := box.post("/setup", url.Values{"csrf": {btok}, "code": {code}, "name": {"admin"}, "password": {insPW}, "password2": {insPW}}); r.code != http.StatusSeeOther {
		t.Fatalf("setup on the box after another host's wrong codes: %d %.200s", r.code, r.body)
	}
}

// TestLiveSlotsPerAccount: one account cannot take every live slot.
func TestLiveSlotsPerAccount(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{mutate: func(o *Options) { o.Status.Live = Live{Max: 6, PerAccount: 2} }})
	withAccounts(t, e)
	v := e.login("viewer", viePW)
	open := func(c *client) (*http.Response, error) {
		req, _ := http.NewRequest("GET", e.url+"/live", nil)
		return c.hc.Do(req)
	}
	var streams []*http.Response
	defer func() {
		for _, r := range streams {
			r.Body.Close()
		}
	}()
	for i := range 3 {
		r, err := open(v)
		if err != nil {
			t.Fatal(err)
		}
		want := http.StatusOK
		if i == 2 {
			want = http.StatusServiceUnavailable
		}
		if r.StatusCode != want {
			t.Errorf("viewer's stream %d: %d, want %d", i+1, r.StatusCode, want)
		}
		streams = append(streams, r)
	}
	m := e.login("manager", mgrPW)
	r, err := open(m)
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("another account's stream: %v %v", r, err)
	}
	streams = append(streams, r)
	// Closing one frees its slot.
	streams[0].Body.Close()
	waitFor(t, "slot freed", func() bool { return e.srv.hub.count() == 2 })
	if r, err := open(v); err != nil || r.StatusCode != http.StatusOK {
		t.Errorf("after closing one: %v %v", r, err)
	} else {
		streams = append(streams, r)
	}
}

// TestHostAllowList: a Host that is not the page's (DNS rebinding) gets
// 421 before anything else; the probes answer any.
func TestHostAllowList(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	_, port, _ := net.SplitHostPort(e.srv.Addr())
	tok, err := e.srv.accounts.AddToken("viewer")
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	for host, want := range map[string]int{
		"127.0.0.1:" + port: 200, "localhost:" + port: 200, "LOCALHOST.:" + port: 200, "[::1]:" + port: 200,
		"evil.example:" + port: http.StatusMisdirectedRequest, "evil.example": http.StatusMisdirectedRequest,
		"127.0.0.1.evil.example": http.StatusMisdirectedRequest, "10.11.12.13:" + port: http.StatusMisdirectedRequest,
	} {
		if r := c.do("GET", "/api/v1/me", nil, map[string]string{"Host": host, "Authorization": "Bearer " + tok}); r.code != want {
			t.Errorf("Host %q: %d, want %d", host, r.code, want)
		}
	}
	if r := c.do("GET", "/healthz", nil, map[string]string{"Host": "evil.example"}); r.code != 200 {
		t.Errorf("healthz with another Host: %d", r.code)
	}
	if readMetric(t, e, "lintel_status_host_denied_total") < 4 {
		t.Error("refusals not counted")
	}

	// Configured names; the box's own addresses are then not implied.
	h := newHostAllow("0.0.0.0:8443", []string{"gw-01.compound.lan", "192.168.10.2"})
	h.ifaces = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("192.168.10.9"), Mask: net.CIDRMask(24, 32)}}, nil
	}
	for host, want := range map[string]bool{"gw-01.compound.lan:8443": true, "GW-01.compound.lan": true, "192.168.10.2:8443": true,
		"localhost:8443": true, "127.0.0.1": true, "192.168.10.9:8443": false, "0.0.0.0:8443": false, "": false, "gw-01.compound.lan:": false} {
		if got := h.allowed(host); got != want {
			t.Errorf("configured list: %q → %v, want %v", host, got, want)
		}
	}
	// Default list: the box's interface addresses count.
	h = newHostAllow("0.0.0.0:8443", nil)
	h.ifaces = func() ([]net.Addr, error) {
		return []net.Addr{&net.IPNet{IP: net.ParseIP("192.168.10.9"), Mask: net.CIDRMask(24, 32)}}, nil
	}
	if !h.allowed("192.168.10.9:8443") || h.allowed("192.168.10.10:8443") || h.allowed("attacker.example") {
		t.Error("default list")
	}
}

var backCases = []struct {
	in, want string
}{
	{"/alerts", "/alerts"},
	{"/events?device=cam-3&kind=door.opened", "/events?device=cam-3&kind=door.opened"},
	{"/households/h-3-1-301", "/households/h-3-1-301"},
	{"", "/"},
	{"//evil.example", "/"},
	{"/\t/evil.example", "/"}, // back=/%09/evil.example, decoded by the form parser
	{"/\n/evil.example", "/"},
	{"/\r\n/evil.example", "/"},
	{"/\\evil.example", "/"},
	{"\\\\evil.example", "/"},
	{"https://evil.example/", "/"},
	{"javascript:alert(1)", "/"},
	{"/%2F/evil.example", "/"},
	{"/%5Cevil.example", "/"},
	{"/\u00a0/evil.example", "/"},
	{"/\u200b/evil.example", "/"},
	{"/\x7f/x", "/"},
	{"/" + strings.Repeat("a", 600), "/"},
	{"/\xff", "/"},
}

func TestBackPath(t *testing.T) {
	for _, tc := range backCases {
		if got := backPath(tc.in); got != tc.want {
			t.Errorf("backPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Through the page: POST /lang with back=/%09/evil.example stays here.
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	c := e.client()
	tok := c.formCSRF("/login")
	r := c.do("POST", "/lang", strings.NewReader("csrf="+tok+"&lang=en&back=/%09/evil.example"), nil)
	if r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/" {
		t.Errorf("lang redirect: %d %q", r.code, r.hdr.Get("Location"))
	}
}

// FuzzBackPath: whatever comes in, the redirect target stays on this
// host as a browser reads it (tabs and newlines dropped, '\' read as '/').
func FuzzBackPath(f *testing.F) {
	for _, tc := range backCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := backPath(in)
		if out != "/" && out != in {
			t.Fatalf("backPath rewrote %q to %q", in, out)
		}
		browser := strings.NewReplacer("\t", "", "\n", "", "\r", "", "\\", "/").Replace(out)
		if !strings.HasPrefix(browser, "/") || strings.HasPrefix(browser, "//") {
			t.Fatalf("%q leaves the host as a browser reads it (%q)", out, browser)
		}
		u, err := url.Parse(browser)
		if err != nil || u.Host != "" || u.Scheme != "" {
			t.Fatalf("%q parses with a host or scheme: %v %v", out, u, err)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.IsSpace(r) {
				t.Fatalf("%q keeps a control or space character", out)
			}
		}
		if dec, err := url.PathUnescape(u.EscapedPath()); err == nil && strings.HasPrefix(strings.ReplaceAll(dec, "\\", "/"), "//") {
			t.Fatalf("%q decodes to a new authority", out)
		}
	})
}

// FuzzHostAllow: only the configured names and addresses (and loopback)
// are ever accepted, whatever the Host header holds.
func FuzzHostAllow(f *testing.F) {
	for _, s := range []string{"gw-01.lan:8443", "GW-01.LAN.", "[::1]:80", "127.0.0.1", "evil.example", "gw-01.lan.evil.example",
		"192.168.1.2:8443", "[192.168.1.2]", "::ffff:192.168.1.2", "", ":8443", "gw-01.lan:", "gw-01.lan\x00"} {
		f.Add(s)
	}
	h := newHostAllow("192.168.1.2:8443", []string{"gw-01.lan"})
	h.ifaces = func() ([]net.Addr, error) { return nil, nil }
	f.Fuzz(func(t *testing.T, host string) {
		if !h.allowed(host) {
			return
		}
		hh := host
		if x, _, err := net.SplitHostPort(host); err == nil {
			hh = x
		}
		hh = normHost(hh)
		if ip := net.ParseIP(hh); ip != nil {
			if !ip.IsLoopback() && !ip.Equal(net.ParseIP("192.168.1.2")) {
				t.Fatalf("accepted address %q", host)
			}
			return
		}
		if hh != "gw-01.lan" && hh != "localhost" {
			t.Fatalf("accepted name %q (%q)", host, hh)
		}
	})
}

// TestTokensExpireAndReadOnly: an expired token is refused; a read-only
// token reads but cannot act, whatever its account's role.
func TestTokensExpireAndReadOnly(t *testing.T) {
	cheapHash(t)
	clk := &fakeClock{}
	e := newEnv(t, envOpt{mutate: func(o *Options) { o.Now = clk.Now }})
	withAccounts(t, e)
	ro, err := e.srv.accounts.AddTokenWith("manager", time.Hour, ScopeRead)
	if err != nil {
		t.Fatal(err)
	}
	full, err := e.srv.accounts.AddTokenWith("manager", time.Hour, ScopeFull)
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	call := func(tok, method, path string) int {
		return c.do(method, path, strings.NewReader(`{}`), map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}).code
	}
	if code := call(ro, "GET", "/api/v1/alerts"); code != 200 {
		t.Errorf("read-only GET: %d", code)
	}
	if code := call(ro, "POST", "/api/v1/alerts/a-1/ack"); code != http.StatusForbidden {
		t.Errorf("read-only POST: %d, want 403", code)
	}
	if code := call(full, "POST", "/api/v1/alerts/a-1/ack"); code == http.StatusForbidden || code == http.StatusUnauthorized {
		t.Errorf("full token POST: %d", code)
	}
	clk.advance(61 * time.Minute)
	for _, tok := range []string{ro, full} {
		if code := call(tok, "GET", "/api/v1/alerts"); code != http.StatusUnauthorized {
			t.Errorf("expired token: %d, want 401", code)
		}
	}
	if _, err := e.srv.accounts.AddTokenWith("manager", 0, "admin"); err == nil {
		t.Error("unknown scope accepted")
	}
}

func TestNotesPlainHTTPOnLAN(t *testing.T) {
	for _, tc := range []struct {
		status string
		note   bool
	}{
		{"", false},
		{"status: {listen: 127.0.0.1:8080}", false},
		{"status: {listen: \"[::1]:8080\"}", false},
		{"status: {listen: 0.0.0.0:8080}", true},
		{"status: {listen: 192.168.1.2:8080}", true},
		{"status: {listen: 0.0.0.0:8443, tls: {cert_file: /etc/lintel/s.crt, key_file: /etc/lintel/s.key}}", false},
		{"status: {listen: 0.0.0.0:8080, disabled: true}", false},
	} {
		c, err := config.Parse("t.yaml", []byte("gateway: {id: gw, compound: c, data_dir: /var/lib/lintel}\n"+tc.status+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		n := Notes(c)
		if (len(n) > 0) != tc.note || tc.note && !strings.Contains(n[0], "plain HTTP") {
			t.Errorf("%s: notes %v", tc.status, n)
		}
	}
}

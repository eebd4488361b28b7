package status

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

const (
	mgrPW = "manager-pass-123"
	insPW = "installer-pass-123"
	viePW = "viewer-pass-12345"
)

func withAccounts(t *testing.T, e *testEnv) {
	t.Helper()
	e.addAccount("manager", RoleManager, mgrPW)
	e.addAccount("installer", RoleInstaller, insPW)
	e.addAccount("viewer", RoleViewer, viePW)
}

type fakeClock struct{ off atomic.Int64 }

func (c *fakeClock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.off.Add(int64(d)) }

func TestConfigSection(t *testing.T) {
	base := "gateway: {id: gw, compound: c, data_dir: /var/lib/lintel}\n"
	c, err := config.Parse("a.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := FromConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Listen != DefaultListen || sc.AccountsFile != "/var/lib/lintel/accounts.json" || sc.Language != "zh" ||
		sc.Session.Idle.Std() != DefaultIdle || sc.Login.MaxFailures != 5 {
		t.Errorf("defaults: %+v", sc)
	}
	c, err = config.Parse("b.yaml", []byte(base+"status:\n  listen: 0.0.0.0:8443\n  language: en\n  tls: {cert_file: /etc/lintel/c.pem, key_file: /etc/lintel/k.pem}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sc, _ := FromConfig(c); sc.Listen != "0.0.0.0:8443" || sc.Language != "en" || sc.TLS.KeyFile != "/etc/lintel/k.pem" {
		t.Errorf("decoded: %+v", sc)
	}
	_, err = config.Parse("c.yaml", []byte(base+"status:\n  listen: nowhere\n  language: fr\n  tls: {cert_file: c.pem}\n  login: {max_failures: 0}\n  session: {idle: 10s}\n  colour: red\n"))
	if err == nil {
		t.Fatal("bad status section accepted")
	}
	for _, want := range []string{"status.listen", "status.language", "status.tls", "status.login.max_failures", "status.session.idle", "colour"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("problems lack %s:\n%v", want, err)
		}
	}
}

// TestAnonymous: without a session only the probes, login, setup, the
// language switch and static files answer; everything else redirects to
// login (pages) or says 401 (API, metrics, POSTs), with no data.
func TestAnonymous(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	e.raiseSOS("a-anon")
	c := e.client()
	public := map[string]int{"GET /healthz": 200, "GET /readyz": 200, "GET /login": 200, "GET /setup": 303,
		"GET /static/style.css": 200, "GET /static/app.js": 200}
	routes := []string{"GET /", "GET /alerts", "GET /alerts?fragment=1", "GET /households", "GET /devices", "GET /events",
		"GET /diagnostics", "GET /clips/cam-3/a.mp4", "GET /live", "GET /metrics", "GET /nonexistent",
		"POST /logout", "POST /alerts/a-anon/ack", "POST /alerts/a-anon/resolve", "POST /households/h-3-1-301/mode",
		"POST /devices/gate-north/open",
		"GET /api/v1/me", "GET /api/v1/overview", "GET /api/v1/alerts", "GET /api/v1/alerts/a-anon", "GET /api/v1/households",
		"GET /api/v1/devices", "GET /api/v1/buses", "GET /api/v1/sinks", "GET /api/v1/events", "GET /api/v1/events/1",
		"GET /api/v1/live", "GET /api/v1/diagnostics", "GET /api/v1/commands", "POST /api/v1/alerts/a-anon/ack",
		"POST /api/v1/alerts/a-anon/resolve", "POST /api/v1/households/h-3-1-301/mode", "POST /api/v1/devices/gate-north/open",
		"POST /api/v1/commands/alert.ack", "GET /api/v1/nothing"}
	waitFor(t, "ready", func() bool { return c.get("/readyz").code == 200 })
	for r, want := range public {
		m, p, _ := strings.Cut(r, " ")
		if got := c.do(m, p, nil, nil); got.code != want {
			t.Errorf("%s: %d, want %d", r, got.code, want)
		}
	}
	for _, r := range routes {
		m, p, _ := strings.Cut(r, " ")
		var body *strings.Reader
		if m == "POST" {
			body = strings.NewReader("")
		}
		var got resp
		if body != nil {
			got = c.do(m, p, body, nil)
		} else {
			got = c.get(p)
		}
		switch {
		case got.code == http.StatusSeeOther && got.hdr.Get("Location") == "/login" && m == "GET" && !strings.HasPrefix(p, "/api/") && p != "/metrics":
		case got.code == http.StatusUnauthorized:
		default:
			t.Errorf("%s without a session: %d %s", r, got.code, got.hdr.Get("Location"))
		}
		for _, leak := range []string{"a-anon", "h-3-1-301", "3-1-301", "gate-north", "gw-test", "lintel_store", "sos-301"} {
			if strings.Contains(got.body, leak) {
				t.Errorf("%s without a session leaks %q", r, leak)
			}
		}
	}
	// Probes carry no data.
	if b := c.get("/healthz").body; b != "ok\n" {
		t.Errorf("healthz body %q", b)
	}
	if b := c.get("/readyz").body; b != "ready\n" {
		t.Errorf("readyz body %q", b)
	}
	// A forged or random session cookie is no session.
	c.hc.Jar.SetCookies(mustURL(e.url), []*http.Cookie{{Name: cookieSession, Value: randomID(16)}})
	if r := c.get("/alerts"); r.code != http.StatusSeeOther {
		t.Errorf("random session id accepted: %d", r.code)
	}
	// A bad API token is refused.
	if r := c.do("GET", "/api/v1/alerts", nil, map[string]string{"Authorization": "Bearer lintel_00000000_nope"}); r.code != 401 {
		t.Errorf("bad token: %d", r.code)
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

func TestSecurityHeaders(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	c := e.login("viewer", viePW)
	r := c.get("/")
	for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if r.hdr.Get(h) != want {
			t.Errorf("%s = %q", h, r.hdr.Get(h))
		}
	}
	if csp := r.hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q", csp)
	}
	if strings.Contains(r.body, "<script>") || strings.Contains(r.body, " style=") || strings.Contains(r.body, "http://") || strings.Contains(r.body, "https://") {
		t.Errorf("page has inline script/style or an external URL")
	}
	// Session cookie flags.
	c2 := e.client()
	tok := c2.formCSRF("/login")
	lr := c2.post("/login", url.Values{"csrf": {tok}, "name": {"viewer"}, "password": {viePW}})
	sc := lr.hdr.Values("Set-Cookie")
	if len(sc) == 0 {
		t.Fatal("no session cookie")
	}
	ck := strings.Join(sc, "\n")
	for _, want := range []string{"lintel_session=", "HttpOnly", "SameSite=Strict", "Max-Age=43200", "Path=/"} {
		if !strings.Contains(ck, want) {
			t.Errorf("session cookie lacks %s: %s", want, ck)
		}
	}
}

func TestCSRF(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	e.raiseSOS("a-csrf")
	waitFor(t, "alert", func() bool { _, ok := e.srv.tr.alert("a-csrf"); return ok })
	c := e.login("manager", mgrPW)
	for name, form := range map[string]url.Values{"missing": {}, "wrong": {"csrf": {randomID(16)}}, "empty": {"csrf": {""}}} {
		if r := c.post("/alerts/a-csrf/ack", form); r.code != http.StatusForbidden {
			t.Errorf("ack with %s CSRF token: %d", name, r.code)
		}
		if r := c.post("/households/h-3-1-301/mode", url.Values{"csrf": form["csrf"], "mode": {"away"}}); r.code != http.StatusForbidden {
			t.Errorf("mode with %s CSRF token: %d", name, r.code)
		}
		if r := c.post("/logout", form); r.code != http.StatusForbidden {
			t.Errorf("logout with %s CSRF token: %d", name, r.code)
		}
	}
	for name, hdr := range map[string]map[string]string{"missing": {}, "wrong": {headerCSRF: "x" + c.csrf}} {
		hdr["Content-Type"] = "application/json"
		if r := c.do("POST", "/api/v1/alerts/a-csrf/ack", strings.NewReader("{}"), hdr); r.code != http.StatusForbidden {
			t.Errorf("API ack with %s CSRF header: %d", name, r.code)
		}
	}
	// The right token but from another site (browser-sent headers).
	if r := c.do("POST", "/alerts/a-csrf/ack", strings.NewReader(url.Values{"csrf": {c.csrf}}.Encode()),
		map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"}); r.code != http.StatusForbidden {
		t.Errorf("cross-site POST: %d", r.code)
	}
	// Login and setup forms are protected too.
	anon := e.client()
	if r := anon.post("/login", url.Values{"name": {"manager"}, "password": {mgrPW}}); r.code != http.StatusForbidden {
		t.Errorf("login without CSRF: %d", r.code)
	}
	if r := anon.post("/lang", url.Values{"lang": {"en"}}); r.code != http.StatusForbidden {
		t.Errorf("lang without CSRF: %d", r.code)
	}
	if a, _ := e.srv.tr.alert("a-csrf"); a.State != "open" {
		t.Errorf("a refused request changed the alert: %s", a.State)
	}
	// And with the token it works.
	if r := c.post("/alerts/a-csrf/ack", url.Values{"csrf": {c.csrf}, "back": {"/alerts"}}); r.code != http.StatusSeeOther {
		t.Errorf("ack with token: %d %.200s", r.code, r.body)
	}
	// GET never changes state.
	if r := c.get("/alerts/a-csrf/ack"); r.code != http.StatusNotFound && r.code != http.StatusMethodNotAllowed {
		t.Errorf("GET on an action: %d", r.code)
	}
}

func TestLockout(t *testing.T) {
	cheapHash(t)
	clk := &fakeClock{}
	e := newEnv(t, envOpt{mutate: func(o *Options) { o.Now = clk.Now }})
	withAccounts(t, e)
	c := e.client()
	tok := c.formCSRF("/login")
	codes := map[int]int{}
	var retry string
	for i := range 50 {
		r := c.post("/login", url.Values{"csrf": {tok}, "name": {"manager"}, "password": {fmt.Sprintf("wrong-%02d-password", i)}})
		codes[r.code]++
		if i < 4 && r.code != http.StatusUnauthorized {
			t.Errorf("attempt %d: %d, want 401", i+1, r.code)
		}
		if i >= 4 && r.code != http.StatusTooManyRequests {
			t.Errorf("attempt %d: %d, want 429", i+1, r.code)
		}
		if i == 10 {
			retry = r.hdr.Get("Retry-After")
		}
	}
	t.Logf("50 wrong passwords: %v", codes)
	if retry == "" {
		t.Error("no Retry-After while locked")
	}
	// Locked: even the right password is refused, without a hash check.
	if r := c.post("/login", url.Values{"csrf": {tok}, "name": {"manager"}, "password": {mgrPW}}); r.code != http.StatusTooManyRequests {
		t.Errorf("right password while locked: %d", r.code)
	}
	if !strings.Contains(e.logs.String(), `"msg":"login failed"`) {
		t.Error("failures not logged")
	}
	// The address is throttled too: a spray over other names is refused
	// once ip_max_failures (20) is reached.
	if r := c.post("/login", url.Values{"csrf": {tok}, "name": {"installer"}, "password": {insPW}}); r.code != http.StatusTooManyRequests {
		t.Errorf("other account from the throttled address: %d", r.code)
	}
	// After the lockout the right password works again.
	clk.advance(16 * time.Minute)
	if r := c.post("/login", url.Values{"csrf": {tok}, "name": {"manager"}, "password": {mgrPW}}); r.code != http.StatusSeeOther {
		t.Errorf("after lockout: %d", r.code)
	}
	if n := readMetric(t, e, "lintel_status_auth_failures_total"); n < 50 {
		t.Errorf("auth failure metric %v", n)
	}
}

// readMetric sums a metric's samples from /metrics.
func readMetric(t *testing.T, e *testEnv, name string) float64 {
	t.Helper()
	c := e.login("installer", insPW)
	body := c.get("/metrics").body
	var sum float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			sum += v
		}
	}
	return sum
}

func TestSessionExpiry(t *testing.T) {
	cheapHash(t)
	clk := &fakeClock{}
	e := newEnv(t, envOpt{mutate: func(o *Options) { o.Now = clk.Now }})
	withAccounts(t, e)
	c := e.login("viewer", viePW)
	if r := c.get("/"); r.code != 200 {
		t.Fatalf("overview %d", r.code)
	}
	clk.advance(31 * time.Minute) // idle 30m
	if r := c.get("/"); r.code != http.StatusSeeOther {
		t.Errorf("idle session still valid: %d", r.code)
	}
	c = e.login("viewer", viePW)
	for range 25 { // active, but past the 12h lifetime
		clk.advance(29 * time.Minute)
		c.get("/")
	}
	if r := c.get("/"); r.code != http.StatusSeeOther {
		t.Errorf("session past its lifetime still valid: %d", r.code)
	}
	// Logout ends the session server-side.
	c = e.login("viewer", viePW)
	old := c.hc.Jar.Cookies(mustURL(e.url))
	c.post("/logout", url.Values{"csrf": {c.csrf}})
	c2 := e.client()
	c2.hc.Jar.SetCookies(mustURL(e.url), old)
	if r := c2.get("/"); r.code != http.StatusSeeOther {
		t.Errorf("session valid after logout: %d", r.code)
	}
}

func TestSetup(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	code := e.setupCode()
	st, _ := os.Stat(filepath.Join(e.dir, "status-setup-code"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("setup code file mode %v", st.Mode().Perm())
	}
	if !strings.Contains(e.logs.String(), code) {
		t.Error("setup code not logged")
	}
	c := e.client()
	if r := c.get("/"); r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/setup" {
		t.Errorf("first start: / → %d %s", r.code, r.hdr.Get("Location"))
	}
	if r := c.get("/login"); r.hdr.Get("Location") != "/setup" {
		t.Errorf("login before setup: %d", r.code)
	}
	tok := c.formCSRF("/setup")
	if r := c.post("/setup", url.Values{"csrf": {tok}, "code": {"AAAA-BBBB-CCCC-DDDD"}, "name": {"admin"}, "password": {insPW}, "password2": {insPW}}); r.code != http.StatusUnauthorized {
		t.Errorf("wrong code: %d", r.code)
	}
	if r := c.post("/setup", url.Values{"csrf": {tok}, "code": {code}, "name": {"admin"}, "password": {"short"}, "password2": {"short"}}); r.code != http.StatusBadRequest {
		t.Errorf("short password: %d", r.code)
	}
	lower := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	r := c.post("/setup", url.Values{"csrf": {tok}, "code": {lower}, "name": {"admin"}, "password": {insPW}, "password2": {insPW}})
	if r.code != http.StatusSeeOther {
		t.Fatalf("setup: %d %.300s", r.code, r.body)
	}
	if r := c.get("/diagnostics"); r.code != 200 {
		t.Errorf("first account is not an installer: %d", r.code)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "status-setup-code")); !os.IsNotExist(err) {
		t.Errorf("setup code file kept: %v", err)
	}
	st, _ = os.Stat(e.srv.accounts.Path())
	if st.Mode().Perm() != 0o600 {
		t.Errorf("accounts file mode %v", st.Mode().Perm())
	}
	b, _ := os.ReadFile(e.srv.accounts.Path())
	if strings.Contains(string(b), insPW) || !strings.Contains(string(b), "$argon2id$v=19$") {
		t.Errorf("accounts file: %s", b)
	}
	// The code is single-use.
	c2 := e.client()
	if r := c2.get("/setup"); r.code != http.StatusSeeOther || r.hdr.Get("Location") != "/login" {
		t.Errorf("setup after use: %d", r.code)
	}
	if r := c2.post("/setup", url.Values{"csrf": {tok}, "code": {code}, "name": {"evil"}, "password": {insPW}, "password2": {insPW}}); r.code != http.StatusSeeOther {
		t.Errorf("setup POST after use: %d", r.code)
	}
	if _, ok := e.srv.accounts.Lookup("evil"); ok {
		t.Error("second setup created an account")
	}
}

func TestAlertFlowAPI(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	tok, err := e.srv.accounts.AddToken("manager")
	if err != nil {
		t.Fatal(err)
	}
	c := e.client()
	bearer := map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"}
	e.raiseSOS("a-1")
	var al struct{ Alerts []Alert }
	waitFor(t, "alert in API", func() bool {
		r := c.do("GET", "/api/v1/alerts", nil, bearer)
		_ = json.Unmarshal([]byte(r.body), &al)
		return len(al.Alerts) == 1
	})
	a := al.Alerts[0]
	if a.ID != "a-1" || a.State != "open" || a.Severity != event.Critical || a.Household != "h-3-1-301" || a.Place != "3/1/301" || len(a.Why) == 0 {
		t.Errorf("alert %+v", a)
	}
	if r := c.do("POST", "/api/v1/alerts/a-1/ack", strings.NewReader(`{}`), bearer); r.code != 200 {
		t.Fatalf("ack: %d %s", r.code, r.body)
	}
	if r := c.do("POST", "/api/v1/alerts/a-1/resolve", strings.NewReader(`{"outcome":"nope"}`), bearer); r.code != 400 {
		t.Errorf("bad outcome: %d", r.code)
	}
	if r := c.do("POST", "/api/v1/alerts/a-1/resolve", strings.NewReader(`{"outcome":"safe","note":"已上门，老人平安","x":1}`), bearer); r.code != 400 {
		t.Errorf("unknown field: %d", r.code)
	}
	if r := c.do("POST", "/api/v1/alerts/a-1/resolve", strings.NewReader(`{"outcome":"safe","note":"已上门，老人平安"}`), bearer); r.code != 200 {
		t.Fatalf("resolve: %d %s", r.code, r.body)
	}
	waitFor(t, "resolved", func() bool { a, _ := e.srv.tr.alert("a-1"); return a.State == "resolved" })
	// Audit: two command.applied events naming the account, via web.
	evs, _ := e.st.ReadRange(0, 1000)
	var audits []map[string]any
	for _, ev := range evs {
		if ev.Kind == event.CommandApplied {
			m, _ := ev.DataMap()
			audits = append(audits, m)
		}
	}
	if len(audits) != 2 || audits[0]["command"] != "alert.ack" || audits[1]["command"] != "alert.resolve" {
		t.Fatalf("audit events: %v", audits)
	}
	for _, m := range audits {
		if m["actor"] != "manager" || m["via"] != "web" {
			t.Errorf("audit %v", m)
		}
	}
	// Mode change through the generic command endpoint; a viewer token
	// may not.
	until := time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)
	if r := c.do("POST", "/api/v1/households/h-3-1-301/mode", strings.NewReader(`{"mode":"visitor","until":"`+until+`"}`), bearer); r.code != 200 {
		t.Errorf("mode: %d %s", r.code, r.body)
	}
	vt, _ := e.srv.accounts.AddToken("viewer")
	if r := c.do("POST", "/api/v1/commands/alert.ack", strings.NewReader(`{"alert_id":"a-1"}`), map[string]string{"Authorization": "Bearer " + vt}); r.code != 403 {
		t.Errorf("viewer command: %d", r.code)
	}
	if r := c.do("POST", "/api/v1/commands/store.wipe", strings.NewReader(`{}`), bearer); r.code != 403 {
		t.Errorf("manager sending a non-page command: %d", r.code)
	}
	waitFor(t, "mode", func() bool { return e.srv.tr.household("h-3-1-301").mode == "visitor" })
	var hh struct{ Households []Household }
	json.Unmarshal([]byte(c.do("GET", "/api/v1/households", nil, bearer).body), &hh)
	if len(hh.Households) != 2 || hh.Households[0].Mode != "visitor" || hh.Households[0].ModeUntil.IsZero() {
		t.Errorf("households %+v", hh.Households)
	}
	// Other read endpoints answer JSON.
	for _, p := range []string{"/api/v1/me", "/api/v1/overview", "/api/v1/devices", "/api/v1/buses", "/api/v1/sinks", "/api/v1/events?kind=elder.&limit=5", "/api/v1/events/1", "/api/v1/alerts/a-1", "/api/v1/commands"} {
		r := c.do("GET", p, nil, bearer)
		if r.code != 200 || !json.Valid([]byte(r.body)) {
			t.Errorf("%s: %d %.200s", p, r.code, r.body)
		}
	}
	if r := c.do("GET", "/api/v1/diagnostics", nil, bearer); r.code != 403 {
		t.Errorf("manager diagnostics: %d", r.code)
	}
}

func TestUnknownCommand(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{noHandlers: true})
	withAccounts(t, e)
	e.raiseSOS("a-2")
	waitFor(t, "alert", func() bool { _, ok := e.srv.tr.alert("a-2"); return ok })
	c := e.login("manager", mgrPW)
	r := c.post("/alerts/a-2/ack", url.Values{"csrf": {c.csrf}})
	if r.code != http.StatusNotImplemented || !strings.Contains(r.body, "此功能尚未启用") || !strings.Contains(r.body, "alert.ack") {
		t.Errorf("unknown command page: %d %.400s", r.code, r.body)
	}
	r = c.do("POST", "/api/v1/devices/gate-north/open", strings.NewReader("{}"), map[string]string{headerCSRF: c.csrf})
	if r.code != http.StatusNotImplemented || !strings.Contains(r.body, "no_handler") {
		t.Errorf("unknown command API: %d %s", r.code, r.body)
	}
}

func TestRoles(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	e.raiseSOS("a-3")
	waitFor(t, "alert", func() bool { _, ok := e.srv.tr.alert("a-3"); return ok })
	v := e.login("viewer", viePW)
	if r := v.get("/alerts"); r.code != 200 || strings.Contains(r.body, "/alerts/a-3/ack") {
		t.Errorf("viewer sees action buttons: %d", r.code)
	}
	if r := v.post("/alerts/a-3/ack", url.Values{"csrf": {v.csrf}}); r.code != http.StatusForbidden {
		t.Errorf("viewer ack: %d", r.code)
	}
	if r := v.get("/diagnostics"); r.code != http.StatusForbidden {
		t.Errorf("viewer diagnostics: %d", r.code)
	}
	m := e.login("manager", mgrPW)
	if r := m.get("/diagnostics"); r.code != http.StatusForbidden {
		t.Errorf("manager diagnostics: %d", r.code)
	}
	if r := m.get("/alerts"); !strings.Contains(r.body, "/alerts/a-3/ack") {
		t.Error("manager has no ack button")
	}
	// A role or password changed on disk (lintel user) ends the
	// account's open sessions.
	if err := e.srv.accounts.SetRole("manager", RoleViewer); err != nil {
		t.Fatal(err)
	}
	if r := m.post("/alerts/a-3/ack", url.Values{"csrf": {m.csrf}}); r.code != http.StatusUnauthorized {
		t.Errorf("demoted manager ack: %d", r.code)
	}
	if r := m.get("/alerts"); r.code != http.StatusSeeOther {
		t.Errorf("session survived a role change: %d", r.code)
	}
	v2 := e.login("viewer", viePW)
	if err := e.srv.accounts.SetPassword("viewer", "a-new-viewer-pass"); err != nil {
		t.Fatal(err)
	}
	if r := v2.get("/"); r.code != http.StatusSeeOther {
		t.Errorf("session survived a password change: %d", r.code)
	}
}

// TestPagesAndCanary visits every page and API as an installer after
// events of many kinds; the canary check in the env cleanup then covers
// all of it, plus the logs and metrics.
func TestPagesAndCanary(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	clips := filepath.Join(e.dir, "clips", "cam-3")
	os.MkdirAll(clips, 0o700)
	os.WriteFile(filepath.Join(clips, "fall.mp4"), []byte("not really mp4 but bytes"), 0o600)
	off := event.New(event.DeviceOffline)
	off.Device = "gate-north"
	fault := event.New(event.DeviceFault).WithData(map[string]any{"error": "dial rtsp://admin:REDACTED@10.0.0.7: timeout"})
	fault.Device = "cam-3"
	fall := event.New(event.CameraFallingObject)
	fall.Device = "cam-3"
	fall.Evidence = []event.Evidence{{Type: "clip", Ref: "clips/cam-3/fall.mp4", MediaType: "video/mp4", SHA256: strings.Repeat("a", 64), Size: 24}}
	e.emit(off, fault, fall)
	e.raiseSOS("a-4")
	waitFor(t, "alert", func() bool { _, ok := e.srv.tr.alert("a-4"); return ok })
	c := e.login("installer", insPW)
	for _, p := range []string{"/", "/alerts", "/alerts?fragment=1", "/households", "/devices", "/events", "/events?kind=camera.&severity=alert",
		"/diagnostics", "/metrics", "/api/v1/overview", "/api/v1/alerts", "/api/v1/devices", "/api/v1/events?limit=500",
		"/api/v1/diagnostics", "/api/v1/sinks", "/api/v1/households"} {
		r := c.get(p)
		if r.code != 200 {
			t.Errorf("%s: %d %.300s", p, r.code, r.body)
		}
	}
	e.srv.log.Warn("camera unreachable", "url", "rtsp://admin:scrub-me-123@10.0.0.7/s", "device", "cam-3")
	diag := c.get("/diagnostics").body
	if !strings.Contains(diag, "camera unreachable") || !strings.Contains(diag, "rtsp://REDACTED@10.0.0.7/s") || strings.Contains(diag, "scrub-me-123") || !strings.Contains(diag, "setup_code=REDACTED") {
		i := strings.Index(diag, "camera unreachable")
		t.Errorf("recent log lines missing or unscrubbed on diagnostics: %.300s", diag[max(i, 0):])
	}
	for _, want := range []string{"REDACTED", "rtsp://admin:REDACTED@10.0.0.7:554/stream1", "city", "police", "幸福里小区"} {
		if !strings.Contains(diag, want) {
			t.Errorf("diagnostics lacks %q", want)
		}
	}
	// Family contacts on the raised event are for escalation, not the page.
	for _, p := range []string{"/alerts", "/api/v1/alerts", "/api/v1/alerts/a-4"} {
		if strings.Contains(c.get(p).body, "13800000000") {
			t.Errorf("%s shows the family contact", p)
		}
	}
	dev := c.get("/devices").body
	if !strings.Contains(dev, "rtsp://admin:REDACTED@") && strings.Contains(dev, "10.0.0.7") {
		t.Error("device address shown unredacted")
	}
	if !strings.Contains(dev, "离线") {
		t.Error("offline device not shown as 离线")
	}
	ev := c.get("/events?device=cam-3").body
	if !strings.Contains(ev, `<video controls preload="metadata" src="/clips/cam-3/fall.mp4"`) {
		t.Errorf("clip not playable on the events page")
	}
	clip := c.do("GET", "/clips/cam-3/fall.mp4", nil, map[string]string{"Range": "bytes=0-3"})
	if clip.code != http.StatusPartialContent || clip.body != "not " || clip.hdr.Get("Content-Type") != "video/mp4" {
		t.Errorf("clip range: %d %q %s", clip.code, clip.body, clip.hdr.Get("Content-Type"))
	}
	metrics := c.get("/metrics").body
	if strings.Contains(metrics, "gate-north") || strings.Contains(metrics, "lintel_device_up") {
		t.Error("metrics name devices without status.metrics.per_device")
	}
	for _, want := range []string{"lintel_store_last_seq", "lintel_store_appended", `lintel_devices{building="`, "lintel_alerts_open{severity=\"critical\"} 1",
		"lintel_sink_backlog_events{sink=\"city\"}", "lintel_runtime_events_emitted", "lintel_status_http_requests_total", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// English.
	c.post("/lang", url.Values{"csrf": {c.csrf}, "lang": {"en"}, "back": {"/alerts"}})
	if b := c.get("/alerts").body; !strings.Contains(b, "Acknowledge") || strings.Contains(b, "确认收到") {
		t.Error("English switch did not apply")
	}
}

func TestClipTraversal(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	os.MkdirAll(filepath.Join(e.dir, "clips", "cam"), 0o700)
	os.WriteFile(filepath.Join(e.dir, "clips", "cam", "ok.mp4"), []byte("ok"), 0o600)
	os.WriteFile(filepath.Join(e.dir, "outside.mp4"), []byte("SECRET-OUTSIDE"), 0o600)
	os.Symlink(filepath.Join(e.dir, "outside.mp4"), filepath.Join(e.dir, "clips", "cam", "link.mp4"))
	os.Symlink(e.dir, filepath.Join(e.dir, "clips", "up"))
	c := e.login("viewer", viePW)
	if r := c.get("/clips/cam/ok.mp4"); r.code != 200 || r.body != "ok" {
		t.Errorf("plain clip: %d", r.code)
	}
	for _, p := range []string{"/clips/../outside.mp4", "/clips/%2e%2e/outside.mp4", "/clips/cam/..%2f..%2foutside.mp4",
		"/clips/cam/link.mp4", "/clips/up/outside.mp4", "/clips/cam/%2fetc%2fpasswd.mp4", "/clips//etc/passwd",
		"/clips/cam/ok.txt", "/clips/accounts.json", "/clips/..%5coutside.mp4", "/clips/cam/"} {
		r := c.get(p)
		if strings.Contains(r.body, "SECRET-OUTSIDE") || r.code == 200 {
			t.Errorf("%s: %d %.80q", p, r.code, r.body)
		}
	}
}

func TestEventsQuery(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	var evs []*event.Event
	for i := range 700 {
		k := event.DoorOpened
		if i%7 == 0 {
			k = event.MotionDetected
		}
		ev := event.New(k).WithData(map[string]any{"i": i})
		ev.Device = "sos-301"
		evs = append(evs, ev)
	}
	e.emit(evs...)
	e.raiseSOS("a-5")
	c := e.login("viewer", viePW)
	get := func(q string) (out struct {
		Events     []*event.Event
		NextBefore uint64 `json:"next_before"`
	}) {
		r := c.get("/api/v1/events?" + q)
		if r.code != 200 {
			t.Fatalf("%s: %d %s", q, r.code, r.body)
		}
		json.Unmarshal([]byte(r.body), &out)
		return out
	}
	all := get("limit=500")
	if len(all.Events) != 500 || all.NextBefore == 0 || all.Events[0].Kind != event.CommandApplied && all.Events[0].Kind != event.ElderAlertRaised {
		t.Fatalf("first page: %d events, next %d", len(all.Events), all.NextBefore)
	}
	for i := 1; i < len(all.Events); i++ {
		if all.Events[i].Seq >= all.Events[i-1].Seq {
			t.Fatal("not newest first")
		}
	}
	rest := get(fmt.Sprintf("limit=500&before=%d", all.NextBefore))
	if n := len(all.Events) + len(rest.Events); n != int(e.st.LastSeq()) {
		t.Errorf("paging saw %d events of %d", n, e.st.LastSeq())
	}
	if m := get("kind=motion.detected&limit=500"); len(m.Events) != 100 {
		t.Errorf("motion: %d", len(m.Events))
	}
	if m := get("kind=elder.&severity=critical"); len(m.Events) != 1 || m.Events[0].Household != "h-3-1-301" {
		t.Errorf("elder critical: %d", len(m.Events))
	}
	if m := get("place=3/1/301&kind=elder.alert.raised"); len(m.Events) != 1 {
		t.Errorf("place: %d", len(m.Events))
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if m := get("from=" + url.QueryEscape(future)); len(m.Events) != 0 {
		t.Errorf("future: %d", len(m.Events))
	}
	for _, bad := range []string{"limit=0", "limit=9999", "severity=loud", "kind=Bad%20Kind", "from=yesterday", "before=-1", "x=1", "kind=a&kind=b",
		"from=2026-01-02&to=2026-01-01"} {
		if r := c.get("/api/v1/events?" + bad); r.code != 400 {
			t.Errorf("%s: %d", bad, r.code)
		}
		if r := c.get("/events?" + bad); r.code != 400 || !strings.Contains(r.body, "筛选条件有误") {
			t.Errorf("page %s: %d", bad, r.code)
		}
	}
}

func TestAccountsFile(t *testing.T) {
	cheapHash(t)
	dir := t.TempDir()
	p := filepath.Join(dir, "accounts.json")
	a, err := OpenAccounts(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add("张经理", RoleManager, "十个字符的中文密码啊啊", false); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ name, pw string }{{"x y", "long-enough-pw"}, {"ok", "short"}, {"samename12", "samename12"}, {"张经理", "another-password"}} {
		if err := a.Add(bad.name, RoleViewer, bad.pw, false); err == nil {
			t.Errorf("accepted %q/%q", bad.name, bad.pw)
		}
	}
	if err := a.Add("v", "admin", "long-enough-pw", false); err == nil {
		t.Error("unknown role accepted")
	}
	ac, _ := a.Lookup("张经理")
	if !CheckPassword(ac.Hash, "十个字符的中文密码啊啊") || CheckPassword(ac.Hash, "wrong") {
		t.Error("password check")
	}
	// Another process (lintel user passwd) changes the file: seen here.
	b, err := OpenAccounts(p)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if err := b.SetPassword("张经理", "a-new-password-1"); err != nil {
		t.Fatal(err)
	}
	ac, _ = a.Lookup("张经理")
	if !CheckPassword(ac.Hash, "a-new-password-1") {
		t.Error("change by another process not seen")
	}
	os.Chmod(p, 0o644)
	if _, err := OpenAccounts(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable accounts file: %v", err)
	}
	for _, h := range []string{"", "$argon2id$v=19$m=0,t=1,p=1$AAAA$AAAA", "$argon2i$v=19$m=1024,t=1,p=1$AAAA$AAAA", "$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA"} {
		if CheckPassword(h, "") {
			t.Errorf("hash %q accepted", h)
		}
	}
}

func TestCatalogue(t *testing.T) {
	for k, v := range catalogue {
		if v[0] == "" || v[1] == "" {
			t.Errorf("%s: missing a language", k)
		}
		if strings.Count(v[0], "%") != strings.Count(v[1], "%") {
			t.Errorf("%s: verbs differ between languages", k)
		}
	}
	ents, _ := templateFS.ReadDir("templates")
	for _, ent := range ents {
		b, _ := templateFS.ReadFile("templates/" + ent.Name())
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			if !hasKey(m[1]) {
				t.Errorf("%s uses missing key %s", ent.Name(), m[1])
			}
		}
	}
	for _, k := range []string{"login", "setup", "error", "overview", "alerts", "households", "devices", "events", "diagnostics"} {
		if !hasKey("nav." + k) {
			t.Errorf("no title for page %s", k)
		}
	}
	for _, o := range outcomes {
		if !hasKey("outcome." + o) {
			t.Errorf("outcome %s", o)
		}
	}
	for _, m := range modes {
		if !hasKey("mode." + m) {
			t.Errorf("mode %s", m)
		}
	}
	for d := range config.Drivers {
		for _, k := range config.Drivers[d].Kinds {
			if !hasKey("dkind." + k) {
				t.Errorf("device kind %s", k)
			}
		}
	}
}

func TestRunStops(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	c := e.login("viewer", viePW)
	// A live stream must not hold up shutdown.
	req, _ := http.NewRequest("GET", e.url+"/live", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 64)
	n, _ := resp.Body.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "event: hello") {
		t.Errorf("live stream starts %q", buf[:n])
	}
	start := time.Now()
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			t.Error(err)
		}
		e.done <- nil
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("shutdown took %v", d)
	}
	_ = context.Background
}

var keyRE = regexp.MustCompile(`\.Tf? "([a-z0-9_.]+)"`)

// A handler that panics is logged at error level with its route and
// answers 500; the connection is not just dropped.
func TestHandlerPanicLogged(t *testing.T) {
	var buf syncBuffer
	s := &Server{log: slog.New(slog.NewTextHandler(&buf, nil))}
	h := s.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/sinks", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(buf.String(), "level=ERROR") ||
		!strings.Contains(buf.String(), "/api/v1/sinks") || !strings.Contains(buf.String(), "boom") {
		t.Fatalf("code %d, log %q", rec.Code, buf.String())
	}
}

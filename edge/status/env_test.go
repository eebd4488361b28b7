package status

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

// canary is placed in every secret field of the test configuration; no
// page, API response, log line or metric may ever contain it.
const canary = "Canary-Pw-7f3a91"

func init() {
	// Test-only sink validator: the real sinks are not linked here.
	config.RegisterSink("city", func(r *config.Reporter, c *config.Config, n config.Node) {})
	config.RegisterSink("police", func(r *config.Reporter, c *config.Config, n config.Node) {})
}

// cheapHash lowers argon2id cost in unit tests that hash a lot; the
// browser test keeps the real parameters.
func cheapHash(t *testing.T) {
	t.Helper()
	old := hashParams
	hashParams.Memory, hashParams.Time = 1024, 1
	t.Cleanup(func() { hashParams = old })
}

const testYAML = `
gateway:
  id: gw-test
  compound: c-101
  data_dir: %[1]s
log:
  level: debug
compound:
  name: 幸福里小区
  buildings:
    - id: "3"
      units: ["1", "2"]
  households:
    - id: h-3-1-301
      label: 3-1-301
      place: {building: "3", unit: "1", room: "301"}
    - id: h-3-2-502
      label: 3-2-502
      place: {building: "3", unit: "2", room: "502"}
profiles:
  dirs: [%[2]s]
devices:
  - id: sos-301
    kind: sos
    driver: serial
    address: /dev/ttyUSB0
    household: h-3-1-301
  - id: gate-north
    kind: gate
    driver: modbus
    address: tcp://10.0.0.5:502
    profile: test-gate
    place: {position: 北门}
  - id: cam-3
    kind: camera
    driver: rtsp
    address: rtsp://admin:%[3]s@10.0.0.7:554/stream1
    profile: test-cam
    place: {building: "3", position: 楼下}
    options:
      password: %[3]s
      onvif_url: http://admin:%[3]s@10.0.0.7/onvif
sinks:
  city:
    url: mqtts://gw:%[3]s@city.example:8883
    password: %[3]s
    token: %[3]s
    tls:
      key_pem: %[3]s
  police:
    api_key: %[3]s
    endpoint: https://feed:%[3]s@police.example/api
status:
  listen: 127.0.0.1:0
  session: {idle: 30m, lifetime: 12h}
  login: {max_failures: 5, window: 15m, lockout: 15m, ip_max_failures: 20}
`

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type testEnv struct {
	t       testing.TB
	dir     string
	cfg     *config.Config
	st      *store.Store
	rt      *edge.Runtime
	cmds    *edge.Commands
	srv     *Server
	url     string
	logs    *syncBuffer
	seen    *syncBuffer // every response body the tests read
	cancel  context.CancelFunc
	done    chan error
	actions []string
}

type envOpt struct {
	noHandlers bool
	mutate     func(*Options)
}

func newEnv(t *testing.T, o envOpt) *testEnv { return newEnvTB(t, o) }

func newEnvTB(t testing.TB, o envOpt) *testEnv {
	t.Helper()
	dir := t.TempDir()
	prof := filepath.Join(dir, "profiles")
	for _, p := range []string{"cameras/test-cam.yaml", "profiles/test-gate.yaml"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(prof, p)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(prof, p), []byte("name: test\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.Parse("test.yaml", []byte(fmt.Sprintf(testYAML, dir, prof, canary)))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	sc, err := FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	recent := NewRecentLog(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log := slog.New(recent)
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "events.db"), Gateway: cfg.Gateway.ID, Compound: cfg.Gateway.Compound,
		Sinks: []string{"city", "police"}, FlushWindow: 2 * time.Millisecond, Logger: log.With("component", "store")})
	if err != nil {
		t.Fatal(err)
	}
	rt := edge.NewRuntime(cfg, st, log, nil)
	cmds := edge.NewCommands(rt)
	e := &testEnv{t: t, dir: dir, cfg: cfg, st: st, rt: rt, cmds: cmds, logs: logs, seen: &syncBuffer{}}
	if !o.noHandlers {
		e.installHandlers()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Config: cfg, Status: sc, Log: st, Logger: log.With("component", "status"), Commands: cmds, Version: "test",
		StoreStats: func() any { return st.Stats() }, Recent: recent,
		Counters: func() map[string]uint64 {
			em, rej := rt.Counts()
			return map[string]uint64{"events_emitted": em, "events_rejected": rej}
		},
		Listener: ln}
	if o.mutate != nil {
		o.mutate(&opts)
	}
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan error, 1)
	go func() { e.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-e.done:
		t.Fatalf("run: %v", err)
	}
	e.url = "http://" + srv.Addr()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-e.done:
			if err != nil {
				t.Errorf("run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("server did not stop within 5s")
		}
		st.Close()
		e.checkCanary()
	})
	return e
}

// installHandlers registers stand-ins for the rules engine's and gate
// driver's commands: they validate strictly and emit what the real ones
// will.
func (e *testEnv) installHandlers() {
	emit := func(ctx context.Context, ev *event.Event) error { return e.rt.Emit(ctx, ev) }
	e.cmds.Handle("alert.ack", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a ackArgs
		if err := decodeStrict(args, &a); err != nil || a.AlertID == "" {
			return nil, fmt.Errorf("bad args")
		}
		ev := event.New(event.ElderAlertAcknowledged).WithData(map[string]any{"alert_id": a.AlertID, "by": actor})
		ev.Household = "h-3-1-301"
		return map[string]string{"alert_id": a.AlertID}, emit(ctx, ev)
	})
	e.cmds.Handle("alert.resolve", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a resolveArgs
		if err := decodeStrict(args, &a); err != nil || a.AlertID == "" {
			return nil, fmt.Errorf("bad args")
		}
		ev := event.New(event.ElderAlertResolved).WithData(map[string]any{"alert_id": a.AlertID, "by": actor, "outcome": a.Outcome, "note": a.Note})
		ev.Household = "h-3-1-301"
		return nil, emit(ctx, ev)
	})
	e.cmds.Handle("elder.mode", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a modeArgs
		if err := decodeStrict(args, &a); err != nil {
			return nil, err
		}
		ev := event.New(event.ElderModeChanged).WithData(map[string]any{"mode": a.Mode, "until": a.Until, "by": actor})
		ev.Household = a.Household
		return nil, emit(ctx, ev)
	})
}

// raiseSOS appends a critical elder alert as the rules engine would.
func (e *testEnv) raiseSOS(id string) {
	e.t.Helper()
	// The data the rules engine puts on a raised SOS (edge/rules).
	ev := event.New(event.ElderAlertRaised).WithData(map[string]any{
		"alert_id": id, "rule": "sos", "household": "h-3-1-301", "level": 1, "audience": "care",
		"reason_zh": "3-1-301 的紧急按钮被按下", "reason_en": "The SOS button in 3-1-301 was pressed",
		"last_seen":   map[string]any{"sos-301": time.Now().UTC().Format(time.RFC3339)},
		"data_health": map[string]any{"sos-301": "ok"}, "mode": "normal", "contacts": []string{"138" + "00000000"},
	})
	ev.Severity = event.Critical
	ev.Household = "h-3-1-301"
	ev.Device = "sos-301"
	if err := e.rt.Emit(context.Background(), ev); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) emit(evs ...*event.Event) {
	e.t.Helper()
	if err := e.rt.Emit(context.Background(), evs...); err != nil {
		e.t.Fatal(err)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// client is a browser-like HTTP client with cookies that does not follow
// redirects (tests look at them).
type client struct {
	e    *testEnv
	hc   *http.Client
	csrf string
}

func (e *testEnv) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, hc: &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// clientFrom is a client whose connections come from ip (any 127/8
// address is the loopback interface on Linux), to act as another host.
func (e *testEnv) clientFrom(ip string) *client {
	c := e.client()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	c.hc.Transport = &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	return c
}

type resp struct {
	code int
	body string
	hdr  http.Header
}

func (c *client) do(method, path string, body io.Reader, hdr map[string]string) resp {
	c.e.t.Helper()
	req, err := http.NewRequest(method, c.e.url+path, body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	r, err := c.hc.Do(req)
	if err != nil {
		c.e.t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	c.e.seen.Write(b)
	for _, vs := range r.Header {
		for _, v := range vs {
			c.e.seen.Write([]byte(v + "\n"))
		}
	}
	return resp{code: r.StatusCode, body: string(b), hdr: r.Header}
}

func (c *client) get(path string) resp { return c.do("GET", path, nil, nil) }

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (c *client) post(path string, form url.Values) resp {
	return c.do("POST", path, strings.NewReader(form.Encode()), nil)
}

// formCSRF fetches a page and returns the CSRF token in its forms.
func (c *client) formCSRF(path string) string {
	c.e.t.Helper()
	r := c.get(path)
	m := csrfRE.FindStringSubmatch(r.body)
	if m == nil {
		c.e.t.Fatalf("no csrf token on %s (%d): %.300s", path, r.code, r.body)
	}
	return m[1]
}

// setupCode reads the one-time code from its file.
func (e *testEnv) setupCode() string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "status-setup-code"))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// addAccount creates an account directly in the accounts file.
func (e *testEnv) addAccount(name string, role Role, pw string) {
	e.t.Helper()
	if err := e.srv.accounts.Add(name, role, pw, false); err != nil {
		e.t.Fatal(err)
	}
}

// login returns a client logged in as name.
func (e *testEnv) login(name, pw string) *client {
	e.t.Helper()
	c := e.client()
	tok := c.formCSRF("/login")
	r := c.post("/login", url.Values{"csrf": {tok}, "name": {name}, "password": {pw}})
	if r.code != http.StatusSeeOther {
		e.t.Fatalf("login %s: %d %.300s", name, r.code, r.body)
	}
	c.csrf = c.formCSRF("/alerts")
	return c
}

func (e *testEnv) checkCanary() {
	e.t.Helper()
	for what, s := range map[string]string{"logs": e.logs.String(), "responses": e.seen.String()} {
		if strings.Contains(s, canary) {
			i := strings.Index(s, canary)
			lo := max(0, i-200)
			e.t.Errorf("canary secret leaked into %s: …%s…", what, s[lo:min(len(s), i+50)])
		}
	}
}

// Package status is the gateway's local status page: what property
// managers (物业) open on the compound LAN, often on a phone, to see what
// is wrong now and act on elder alerts, and what installers use for
// diagnostics. It also serves the same data as a JSON API, Prometheus
// metrics and health probes.
//
// The package consumes small interfaces (EventLog, Dispatcher,
// AlertSource, DeviceSource, BusSource, SinkSource) so it depends on no
// driver, sink or rules package; what it is not given it derives from the
// event log.
//
// Security: no default password (a one-time setup code creates the first
// account), argon2id hashes, server-side sessions in HttpOnly SameSite
// cookies, a CSRF token on every state-changing request plus Go's
// cross-origin protection, login throttling and lockout, strict security
// headers, and every action goes through the command router, which writes
// the command.applied audit event naming the account.
package status

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options is what the server is given. Config, Status, Log and Logger are
// required; the sources are optional and replace what the page derives
// from the log.
type Options struct {
	Config   *config.Config
	Status   Config
	Log      EventLog
	Logger   *slog.Logger
	Commands Dispatcher
	Version  string
	Started  time.Time

	Alerts     AlertSource
	Households HouseholdSource
	Devices    DeviceSource
	Buses      BusSource
	Sinks      SinkSource

	// StoreStats returns the store's statistics (any JSON-encodable value;
	// numeric fields become metrics).
	StoreStats func() any
	// Storage, if set, reports the log's disk for the overview.
	Storage func() Storage
	// Counters returns runtime counters (events emitted, rejected, …).
	Counters func() map[string]uint64
	// Recent, if set, supplies the warnings and errors logged lately
	// (wrap the daemon's root handler with NewRecentLog).
	Recent *RecentLog
	// Clock reports the gateway clock and whether it is synchronised.
	Clock func() (time.Time, event.TimeQuality)

	// Registry receives the page's metrics and is served on /metrics;
	// other components may register on the same one. Nil: a new one.
	Registry *prometheus.Registry

	// Listener, if set, is served instead of listening on Status.Listen.
	Listener net.Listener
	// Now is the clock for sessions and throttling (tests).
	Now func() time.Time
}

// Server is the status page.
type Server struct {
	opts     Options
	cfg      Config
	log      *slog.Logger
	accounts *Accounts
	sess     *sessions
	lim      *limiter
	hosts    *hostAllow
	setup    *setupCode
	tr       *tracker
	hub      *hub
	pages    map[string]*template.Template
	reg      *prometheus.Registry
	met      *metrics
	cop      *http.CrossOriginProtection
	handler  http.Handler
	now      func() time.Time
	// loc is the compound's zone (rules.utc_offset): every time the pages
	// show or read, whatever the host's zone.
	loc *time.Location

	mu       sync.Mutex
	addr     string
	ready    chan struct{}
	shutdown chan struct{}
}

// New builds the server: it loads the accounts file and, when it holds no
// account, writes the one-time setup code to the data directory and logs
// it. It does not listen yet.
func New(o Options) (*Server, error) {
	if o.Config == nil || o.Log == nil || o.Logger == nil {
		return nil, errors.New("status: Config, Log and Logger are required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Started.IsZero() {
		o.Started = o.Now()
	}
	if o.Status.Listen == "" {
		o.Status = DefaultConfig(o.Config.Gateway.DataDir)
	}
	acc, err := OpenAccounts(o.Status.AccountsFile)
	if err != nil {
		return nil, err
	}
	s := &Server{
		opts: o, cfg: o.Status, log: o.Logger, accounts: acc, now: o.Now, loc: compoundZone(o.Config),
		sess:     newSessions(o.Status.Session.Idle.Std(), o.Status.Session.Lifetime.Std(), o.Now),
		lim:      newLimiter(o.Status.Login, o.Now),
		hosts:    newHostAllow(o.Status.Listen, o.Status.Hosts),
		tr:       newTracker(o.Log, o.Config, o.Logger),
		hub:      newHub(o.Status.Live.Max, o.Status.Live.PerAccount),
		ready:    make(chan struct{}),
		shutdown: make(chan struct{}),
	}
	s.tr.onNew = s.onEvents
	if acc.Len() == 0 {
		if err := s.startSetup(); err != nil {
			return nil, err
		}
	}
	if s.pages, err = parseTemplates(); err != nil {
		return nil, fmt.Errorf("status templates: %w", err)
	}
	s.reg = o.Registry
	if s.reg == nil {
		s.reg = prometheus.NewRegistry()
	}
	if s.met, err = newMetrics(s); err != nil {
		return nil, err
	}
	s.cop = http.NewCrossOriginProtection()
	s.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.met.csrfDenied.Inc()
		s.fail(w, r, http.StatusForbidden, "err.csrf")
	}))
	s.handler = s.routes()
	return s, nil
}

func (s *Server) startSetup() error {
	sc, err := newSetupCode(s.opts.Config.Gateway.DataDir)
	if err != nil {
		return err
	}
	s.setup = sc
	// The issue asks for the code in the log as well as the file: whoever
	// reads the journal on this box is already trusted with it, and the
	// code dies with its first use.
	s.log.Warn("no status page account: open the page and enter the one-time setup code",
		"setup_code", sc.code, "file", sc.path)
	return nil
}

// setupActive reports whether the first-run setup is still open; it
// closes for good once any account exists (created here or by lintel
// user add).
func (s *Server) setupActive() bool {
	if !s.setup.active() {
		return false
	}
	if s.accounts.Len() > 0 {
		s.setup.consume()
		return false
	}
	return true
}

// Registerer is where other components add their metrics.
func (s *Server) Registerer() prometheus.Registerer { return s.reg }

// Handler serves the page, API and probes (tests mount it directly).
func (s *Server) Handler() http.Handler { return s.handler }

// Addr is the address listened on, once Run has started listening.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Run listens and serves until ctx ends, then shuts down within 3 s.
func (s *Server) Run(ctx context.Context) error {
	if s.cfg.Disabled {
		return nil
	}
	ln, tlsConf, err := s.listen(ctx)
	if err != nil || ln == nil {
		return err // nil: cancelled while waiting for the port
	}
	tlsOn := tlsConf != nil
	hs := &http.Server{
		Handler:           s.recoverer(s.handler),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second, // the live stream lifts it for itself
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	if tlsOn {
		hs.TLSConfig = tlsConf
		ln = tls.NewListener(ln, tlsConf)
	}
	s.mu.Lock()
	s.addr = ln.Addr().String()
	s.mu.Unlock()

	var wg sync.WaitGroup
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { _ = s.tr.run(tctx) })
	wg.Go(func() {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-tctx.Done():
				return
			case <-t.C:
				s.sess.sweep()
			}
		}
	})
	serveErr := make(chan error, 1)
	wg.Go(func() { serveErr <- hs.Serve(ln) })
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	s.log.Info("status page listening", "addr", s.addr, "scheme", scheme)
	if host, _, err := net.SplitHostPort(s.addr); err == nil && !tlsOn && !isLoopbackHost(host) {
		s.log.Warn("status page reachable beyond this box over plain HTTP: passwords, session cookies and elder alerts cross the LAN in clear; configure status.tls", "addr", s.addr)
	}
	close(s.ready)

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("status page serve: %w", err)
	}
	close(s.shutdown) // ends live streams so Shutdown can finish
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer scancel()
	if serr := hs.Shutdown(sctx); serr != nil {
		_ = hs.Close()
	}
	cancel()
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listen binds the page's address and loads its certificate. A failure
// (port taken, certificate missing) is logged and retried every 10 s
// rather than returned: the page being down must not stop the gateway's
// alerting. It returns a nil listener when ctx ends first.
func (s *Server) listen(ctx context.Context) (net.Listener, *tls.Config, error) {
	for attempt := 0; ; attempt++ {
		var tlsConf *tls.Config
		var err error
		if s.cfg.TLS.CertFile != "" {
			var cert tls.Certificate
			if cert, err = tls.LoadX509KeyPair(s.cfg.TLS.CertFile, s.cfg.TLS.KeyFile); err == nil {
				tlsConf = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
			} else {
				err = fmt.Errorf("load certificate %s: %w", s.cfg.TLS.CertFile, err)
			}
		}
		if err == nil {
			if s.opts.Listener != nil {
				return s.opts.Listener, tlsConf, nil
			}
			var ln net.Listener
			if ln, err = net.Listen("tcp", s.cfg.Listen); err == nil {
				return ln, tlsConf, nil
			}
		}
		if attempt == 0 || attempt%30 == 0 {
			s.log.Error("status page cannot start, retrying every 10s", "listen", s.cfg.Listen, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, nil
		case <-time.After(10 * time.Second):
		}
	}
}

// onEvents is called by the tracker for every batch it applied.
func (s *Server) onEvents(evs []*event.Event, alertsChanged bool) {
	last := evs[len(evs)-1].Seq
	if alertsChanged {
		open, crit := s.alertCounts()
		s.hub.publish(liveMsg{Type: "alerts", Seq: last, Open: open, Critical: crit})
	}
	s.hub.publish(liveMsg{Type: "log", Seq: last})
}

func parseTemplates() (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "_") {
			continue
		}
		t := template.New("layout").Funcs(templateFuncs)
		parts := []string{"templates/layout.html", n}
		partials, _ := fs.Glob(templateFS, "templates/_*.html")
		parts = append(parts, partials...)
		if _, err := t.ParseFS(templateFS, parts...); err != nil {
			return nil, err
		}
		out[base] = t
	}
	return out, nil
}

// recoverer logs a handler's panic at error level with the route (the
// server's own log of it is at debug level, with TLS noise from LAN
// scanners) and answers 500 instead of dropping the connection.
func (s *Server) recoverer(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("status page handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v),
					"stack", string(debug.Stack()))
				http.Error(w, "内部错误 internal error", http.StatusInternalServerError)
			}
		}()
		h.ServeHTTP(w, r)
	})
}

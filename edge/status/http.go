package status

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"time"
)

// Cookie names. With TLS the session cookie takes the __Host- prefix,
// which browsers only accept Secure, host-only and with Path=/.
const (
	cookieSession    = "lintel_session"
	cookieSessionTLS = "__Host-lintel_session"
	cookiePreCSRF    = "lintel_csrf"
	cookieLang       = "lintel_lang"
	headerCSRF       = "X-CSRF-Token"
	maxBody          = 64 << 10
)

// who is the identity a request acts as.
type who struct {
	account  string
	role     Role
	sess     *session // nil for an API token
	readOnly bool     // a read-only API token
}

type ctxKey struct{}

func whoOf(r *http.Request) *who {
	w, _ := r.Context().Value(ctxKey{}).(*who)
	return w
}

func (s *Server) tlsOn() bool { return s.cfg.TLS.CertFile != "" }

func (s *Server) sessionCookieName() string {
	if s.tlsOn() {
		return cookieSessionTLS
	}
	return cookieSession
}

// routes builds the mux. Public routes: the probes, login, setup, the
// language switch and the static files the login page needs; everything
// else passes auth.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	pub := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, h) }
	page := func(pattern string, min Role, h http.HandlerFunc) { mux.Handle(pattern, s.auth(min, false, h)) }
	api := func(pattern string, min Role, h http.HandlerFunc) { mux.Handle(pattern, s.auth(min, true, h)) }

	pub("GET /healthz", s.healthz)
	pub("GET /readyz", s.readyz)
	pub("GET /login", s.loginPage)
	pub("POST /login", s.loginPost)
	pub("GET /setup", s.setupPage)
	pub("POST /setup", s.setupPost)
	pub("POST /lang", s.langPost)
	static, _ := fs.Sub(staticFS, "static")
	fileServer := http.StripPrefix("/static/", http.FileServerFS(static))
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fileServer.ServeHTTP(w, r)
	}))

	page("GET /{$}", RoleViewer, s.overviewPage)
	page("GET /alerts", RoleViewer, s.alertsPage)
	page("GET /households", RoleViewer, s.householdsPage)
	page("GET /devices", RoleViewer, s.devicesPage)
	page("GET /events", RoleViewer, s.eventsPage)
	page("GET /diagnostics", RoleInstaller, s.diagnosticsPage)
	page("GET /clips/{path...}", RoleViewer, s.clip)
	page("GET /live", RoleViewer, s.live)
	page("POST /logout", RoleViewer, s.logout)
	page("POST /alerts/{id}/ack", RoleManager, s.actionForm("alert.ack"))
	page("POST /alerts/{id}/resolve", RoleManager, s.actionForm("alert.resolve"))
	page("POST /households/{id}/mode", RoleManager, s.actionForm("elder.mode"))
	page("POST /devices/{id}/open", RoleManager, s.actionForm("gate.open"))
	page("GET /metrics", RoleViewer, s.metricsHandler())

	api("GET /api/v1/me", RoleViewer, s.apiMe)
	api("GET /api/v1/overview", RoleViewer, s.apiOverview)
	api("GET /api/v1/alerts", RoleViewer, s.apiAlerts)
	api("GET /api/v1/alerts/{id}", RoleViewer, s.apiAlert)
	api("GET /api/v1/households", RoleViewer, s.apiHouseholds)
	api("GET /api/v1/devices", RoleViewer, s.apiDevices)
	api("GET /api/v1/buses", RoleViewer, s.apiBuses)
	api("GET /api/v1/sinks", RoleViewer, s.apiSinks)
	api("GET /api/v1/events", RoleViewer, s.apiEvents)
	api("GET /api/v1/events/{seq}", RoleViewer, s.apiEvent)
	api("GET /api/v1/live", RoleViewer, s.live)
	api("GET /api/v1/diagnostics", RoleInstaller, s.apiDiagnostics)
	api("GET /api/v1/commands", RoleManager, s.apiCommands)
	api("POST /api/v1/alerts/{id}/ack", RoleManager, s.actionAPI("alert.ack"))
	api("POST /api/v1/alerts/{id}/resolve", RoleManager, s.actionAPI("alert.resolve"))
	api("POST /api/v1/households/{id}/mode", RoleManager, s.actionAPI("elder.mode"))
	api("POST /api/v1/devices/{id}/open", RoleManager, s.actionAPI("gate.open"))
	api("POST /api/v1/commands/{name}", RoleManager, s.apiCommand)

	// Anything else: 404 for a session, the login redirect otherwise, so
	// an anonymous client learns nothing about which paths exist.
	mux.Handle("/", s.auth(RoleViewer, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeJSONError(w, http.StatusNotFound, "not_found", "no such endpoint")
			return
		}
		s.fail(w, r, http.StatusNotFound, "err.notfound")
	})))

	return s.headers(s.checkHost(s.limit(s.cop.Handler(mux))))
}

// maxInFlight caps concurrent requests (live streams have their own cap):
// a gateway with 1–2 GB of RAM must not be talked into thousands of
// goroutines and argon2 queues by one misbehaving client.
const maxInFlight = 64

func (s *Server) limit(next http.Handler) http.Handler {
	sem := make(chan struct{}, maxInFlight)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/live" || r.URL.Path == "/api/v1/live" {
			next.ServeHTTP(w, r)
			return
		}
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
			next.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	})
}

// headers sets the security headers on every response and bounds bodies.
func (s *Server) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; media-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if s.tlsOn() {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		}
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, code: 200}
		next.ServeHTTP(rw, r)
		s.met.observe(r, rw.code, time.Since(start))
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(c int)           { w.code = c; w.ResponseWriter.WriteHeader(c) }
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// clientIP is the peer address. X-Forwarded-For is ignored: the page is
// served directly on the LAN, and a forged header must not reset the
// per-address throttle.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// auth resolves the caller (API token or session cookie), checks the role
// and, for state-changing methods with a cookie session, the CSRF token.
func (s *Server) auth(min Role, isAPI bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var id *who
		if h := r.Header.Get("Authorization"); h != "" {
			tok, ok := strings.CutPrefix(h, "Bearer ")
			if ac, t, found := s.accounts.TokenFor(strings.TrimSpace(tok), s.now()); ok && found {
				id = &who{account: ac.Name, role: ac.Role, readOnly: t.Scope == ScopeRead}
			} else {
				s.met.authFailures.WithLabelValues("token").Inc()
				writeJSONError(w, http.StatusUnauthorized, "unauthorized", "invalid or expired API token")
				return
			}
		} else if c, err := r.Cookie(s.sessionCookieName()); err == nil {
			if ss, ok := s.sess.get(c.Value); ok {
				// An account removed, or whose password or role changed on
				// disk (lintel user), loses its sessions here.
				ac, found := s.accounts.Lookup(ss.account)
				if !found || !ac.Changed.Equal(ss.changed) {
					s.sess.removeAccount(ss.account)
				} else {
					id = &who{account: ss.account, role: ac.Role, sess: ss}
				}
			}
		}
		if id == nil {
			if isAPI || strings.HasPrefix(r.URL.Path, "/api/") || r.URL.Path == "/metrics" || r.Method != http.MethodGet {
				writeJSONError(w, http.StatusUnauthorized, "unauthorized", "log in or send an API token")
				return
			}
			target := "/login"
			if s.setupActive() {
				target = "/setup"
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
		if id.readOnly && !safeMethod(r.Method) {
			writeJSONError(w, http.StatusForbidden, "read_only", "this API token may only read")
			return
		}
		if !id.role.Allows(min) {
			if isAPI {
				writeJSONError(w, http.StatusForbidden, "forbidden", "your role may not do this")
			} else {
				s.fail(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)), http.StatusForbidden, "err.role")
			}
			return
		}
		if id.sess != nil && !safeMethod(r.Method) {
			tok := r.Header.Get(headerCSRF)
			if tok == "" {
				tok = r.PostFormValue("csrf")
			}
			if tok == "" || subtle.ConstantTimeCompare([]byte(tok), []byte(id.sess.csrf)) != 1 {
				s.met.csrfDenied.Inc()
				if isAPI {
					writeJSONError(w, http.StatusForbidden, "csrf", "missing or wrong CSRF token")
				} else {
					s.fail(w, r, http.StatusForbidden, "err.csrf")
				}
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, id)))
	})
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, code int, kind, msg string) {
	writeJSON(w, code, map[string]string{"error": kind, "message": msg})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 once the page serves: the gateway's parts are up by
// then (the page starts after the store and before the drivers). The page
// reads the log's history in the background — on a big log and a slow box
// that takes long, and a restart must not look like an outage for it —
// so until it has, /api/v1/overview says "history_loaded": false.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ready\n"))
}

package status

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// pageData is what every template gets; its methods are the template's
// vocabulary (T for the catalogue, Time, Ago, …).
type pageData struct {
	Lang     string
	Page     string // nav key of the page
	Account  string
	Role     Role
	CSRF     string
	Flash    string // catalogue key
	Error    string // already translated or scrubbed text
	Gateway  string
	Open     int
	Critical int
	Data     any
	// Clock is the gateway clock's quality ("synced", "unsynced", ""):
	// the header says 未校时 once; an event carries its own badge only
	// when its quality differs.
	ClockQ string
	loc    *time.Location
	now    time.Time
	cfg    *config.Config
}

var templateFuncs = template.FuncMap{
	"mulf": func(a, b float64) float64 { return a * b },
	"list": func(v ...string) []string { return v },
}

// T looks a key up in the catalogue.
func (p *pageData) T(key string) string { return tr(p.Lang, key) }

// Tf formats a catalogue entry.
func (p *pageData) Tf(key string, args ...any) string { return fmt.Sprintf(tr(p.Lang, key), args...) }

// Other is the language the switch offers.
func (p *pageData) Other() string {
	if p.Lang == "zh" {
		return "en"
	}
	return "zh"
}

// Time formats an instant in the gateway's zone.
func (p *pageData) Time(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(p.loc).Format("2006-01-02 15:04:05")
}

// Input formats an instant for a datetime-local input.
func (p *pageData) Input(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(p.loc).Format("2006-01-02T15:04")
}

// Ago says how long ago t was, coarsely.
func (p *pageData) Ago(t time.Time) string {
	if t.IsZero() {
		return tr(p.Lang, "time.never")
	}
	return p.Dur(p.now.Sub(t)) + tr(p.Lang, "time.ago")
}

// Dur renders a duration coarsely in the page language.
func (p *pageData) Dur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf(tr(p.Lang, "time.s"), int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf(tr(p.Lang, "time.m"), int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf(tr(p.Lang, "time.h"), int(d.Hours()))
	}
	return fmt.Sprintf(tr(p.Lang, "time.d"), int(d.Hours()/24))
}

// Bytes renders a size in binary units.
func (p *pageData) Bytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Secs renders seconds as a duration.
func (p *pageData) Secs(s int64) string { return p.Dur(time.Duration(s) * time.Second) }

// Kind names an event kind.
func (p *pageData) Kind(k any) string { s := fmt.Sprint(k); return trOr(p.Lang, "kind."+s, s) }

// Sev names a severity.
func (p *pageData) Sev(s event.Severity) string { return trOr(p.Lang, "sev."+string(s), string(s)) }

// Word translates an enumerated value (state, mode, presence, outcome).
func (p *pageData) Word(group, v string) string { return trOr(p.Lang, group+"."+v, v) }

// Can reports whether the account has at least role r.
func (p *pageData) Can(r string) bool { return p.Role.Allows(Role(r)) }

// ClipURL maps an evidence ref to the page's clip route, or "" when the
// file is not kept under the clips folder.
func (p *pageData) ClipURL(ref string) string { return clipURL(ref) }

func clipURL(ref string) string {
	if ref == "" || strings.Contains(ref, "://") || strings.Contains(ref, "\\") {
		return ""
	}
	ref = strings.TrimPrefix(ref, "clips/")
	clean := path.Clean("/" + ref)
	if clean == "/" || strings.Contains(ref, "..") {
		return ""
	}
	parts := strings.Split(strings.TrimPrefix(clean, "/"), "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return "/clips/" + strings.Join(parts, "/")
}

// AlertReason is the alert's one-line reason in the page language.
func (p *pageData) AlertReason(a Alert) string {
	if p.Lang == "en" && a.ReasonEn != "" || a.ReasonZh == "" {
		return a.ReasonEn
	}
	return a.ReasonZh
}

// LimitWhy says why a limit is in force, in the page language.
func (p *pageData) LimitWhy(l Limit) string {
	if p.Lang == "en" && l.WhyEn != "" || l.WhyZh == "" {
		return l.WhyEn
	}
	return l.WhyZh
}

// PresenceReason explains a household's presence in the page language.
func (p *pageData) PresenceReason(h Household) string {
	if p.Lang == "en" && h.PresenceReason != "" || h.PresenceReasonZh == "" {
		return h.PresenceReason
	}
	return h.PresenceReasonZh
}

// IsVideo reports whether an evidence file plays in a <video>.
func (p *pageData) IsVideo(ev event.Evidence) bool {
	return ev.Type == event.EvidenceClip || strings.HasPrefix(ev.MediaType, "video/")
}

func (s *Server) lang(r *http.Request) string {
	if c, err := r.Cookie(cookieLang); err == nil && (c.Value == "zh" || c.Value == "en") {
		return c.Value
	}
	return s.cfg.Language
}

func (s *Server) newPage(r *http.Request, page string, data any) *pageData {
	p := &pageData{Lang: s.lang(r), Page: page, Gateway: s.opts.Config.Gateway.ID, Data: data, loc: s.loc, now: s.now(), cfg: s.opts.Config}
	p.ClockQ = s.clockQuality()
	if id := whoOf(r); id != nil {
		p.Account, p.Role = id.account, id.role
		if id.sess != nil {
			p.CSRF = id.sess.csrf
		}
		p.Open, p.Critical = s.alertCounts()
	}
	if k := r.URL.Query().Get("ok"); k != "" && hasKey("ok."+k) {
		p.Flash = "ok." + k
	}
	return p
}

func (s *Server) render(w http.ResponseWriter, code int, name, block string, p *pageData) {
	t := s.pages[name]
	if t == nil {
		http.Error(w, "no template", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, block, p); err != nil {
		s.log.Error("render page", "page", name, "err", err)
		http.Error(w, "render error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fail shows an error page (or JSON for the API) with a catalogue message.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, code int, key string) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSONError(w, code, strings.TrimPrefix(key, "err."), tr("en", key))
		return
	}
	p := s.newPage(r, "error", nil)
	p.Error = tr(p.Lang, key)
	s.render(w, code, "error", "layout", p)
}

func (s *Server) overviewPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "overview", "layout", s.newPage(r, "overview", s.overview()))
}

type alertsView struct {
	Alerts     []Alert
	Households map[string]string
	Outcomes   []string
}

// Outcomes a manager picks from when resolving.
// They are the rules engine's (edge/rules: safe, needed_help, emergency,
// false_alarm); a false alarm needs a reason, which tuning learns from.
var outcomes = []string{"safe", "needed_help", "emergency", "false_alarm"}

func (s *Server) alertsPage(w http.ResponseWriter, r *http.Request) {
	v := alertsView{Alerts: s.alerts(20), Households: map[string]string{}, Outcomes: outcomes}
	for _, h := range s.opts.Config.Compound.Households {
		v.Households[h.ID] = h.Label
	}
	p := s.newPage(r, "alerts", v)
	if r.URL.Query().Get("fragment") == "1" {
		s.render(w, http.StatusOK, "alerts", "alertlist", p)
		return
	}
	s.render(w, http.StatusOK, "alerts", "layout", p)
}

// Modes an elder's household can be put in.
var modes = []string{"normal", "away", "hospital", "visitor"}

func (s *Server) householdsPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "households", "layout", s.newPage(r, "households", map[string]any{
		"Households": s.households(), "Modes": modes}))
}

type deviceGroup struct {
	Building, Unit string
	Devices        []Device
}

func (s *Server) devicesPage(w http.ResponseWriter, r *http.Request) {
	var groups []deviceGroup
	for _, d := range s.devices() {
		if n := len(groups); n == 0 || groups[n-1].Building != d.Building || groups[n-1].Unit != d.Unit {
			groups = append(groups, deviceGroup{Building: d.Building, Unit: d.Unit})
		}
		groups[len(groups)-1].Devices = append(groups[len(groups)-1].Devices, d)
	}
	s.render(w, http.StatusOK, "devices", "layout", s.newPage(r, "devices", map[string]any{
		"Groups": groups, "Buses": s.buses(), "Gates": gateKinds}))
}

// gateKinds are the device kinds the page offers an open button for.
var gateKinds = map[string]bool{"gate": true, "barrier": true, "access": true}

type eventsView struct {
	Query  url.Values
	Events []*event.Event
	Next   string
	Kinds  []event.Kind
	// Notes say what an alert row was (the rule) and, for one that ended
	// by itself unseen, when: its one row in the default view.
	Notes map[uint64]string
}

func (s *Server) eventsPage(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventQuery(r.URL.Query(), s.loc)
	if err != nil {
		p := s.newPage(r, "events", eventsView{Query: url.Values{}})
		p.Error = tr(p.Lang, "err.query") + " " + strings.TrimPrefix(err.Error(), errBadQuery.Error()+": ")
		s.render(w, http.StatusBadRequest, "events", "layout", p)
		return
	}
	q.Quiet = true
	evs, next, err := s.findEvents(q)
	if err != nil {
		s.log.Error("events page", "err", err)
		s.fail(w, r, http.StatusInternalServerError, "err.internal")
		return
	}
	v := eventsView{Query: r.URL.Query(), Events: evs, Kinds: filterKinds}
	if next > 0 && len(evs) == q.Limit {
		nq := url.Values{}
		for k, vals := range r.URL.Query() {
			if k != "before" && k != "fragment" {
				nq[k] = vals
			}
		}
		nq.Set("before", strconv.FormatUint(next, 10))
		v.Next = "/events?" + nq.Encode()
	}
	p := s.newPage(r, "events", &v)
	v.Notes = s.eventNotes(p, evs)
	s.render(w, http.StatusOK, "events", "layout", p)
}

// eventNotes names the rule of each alert row and says when an alert
// ended by itself before anyone acknowledged it.
func (s *Server) eventNotes(p *pageData, evs []*event.Event) map[uint64]string {
	notes := map[uint64]string{}
	for _, e := range evs {
		if !strings.HasPrefix(string(e.Kind), "elder.alert.") {
			continue
		}
		m, _ := e.DataMap()
		note := ""
		if r := dataString(m, "rule", "type"); r != "" {
			note = p.Word("atype", r)
		}
		if e.Kind == event.ElderAlertRaised {
			if at, ok := s.tr.endedBySelf(e.Seq); ok {
				note += " · " + fmt.Sprintf(p.T("ev.selfended"), p.Time(at), p.Dur(at.Sub(e.Time)))
			}
		}
		if note != "" {
			notes[e.Seq] = strings.TrimPrefix(note, " · ")
		}
	}
	return notes
}

// filterKinds are offered in the events filter (any kind can be typed).
var filterKinds = []event.Kind{event.ElderAlertRaised, event.ElderAlertAcknowledged, event.ElderAlertResolved,
	event.SOSPressed, event.SmokeAlarm, event.WaterLeak, event.DoorOpened, event.GateOpened, event.GateForcedOpen,
	event.CameraFallingObject, event.DeviceOffline, event.DeviceOnline, event.CommandApplied, event.CommandRefused}

func (s *Server) diagnosticsPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "diagnostics", "layout", s.newPage(r, "diagnostics", s.diagnostics()))
}

// clip serves an evidence file from <data_dir>/clips. os.Root confines
// the lookup: "..", absolute paths and symlinks leading out all fail.
func (s *Server) clip(w http.ResponseWriter, r *http.Request) {
	rel := r.PathValue("path")
	ext := strings.ToLower(path.Ext(rel))
	ctype, ok := clipTypes[ext]
	if !ok || rel == "" || strings.Contains(rel, "\\") || !fs.ValidPath(rel) {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	root, err := os.OpenRoot(filepath.Join(s.opts.Config.Gateway.DataDir, "clips"))
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	defer root.Close()
	f, err := root.Open(rel)
	if err != nil {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		s.fail(w, r, http.StatusNotFound, "err.notfound")
		return
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "private, max-age=3600")
	http.ServeContent(w, r, "", st.ModTime(), f)
}

var clipTypes = map[string]string{".mp4": "video/mp4", ".webm": "video/webm", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}

// preCSRF returns the login form's CSRF token, setting its cookie when
// absent (double-submit: a cross-site page can neither read the cookie
// nor set it on our host).
func (s *Server) preCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(cookiePreCSRF); err == nil && len(c.Value) >= 16 && len(c.Value) <= 64 {
		return c.Value
	}
	tok := randomID(16)
	http.SetCookie(w, &http.Cookie{Name: cookiePreCSRF, Value: tok, Path: "/", MaxAge: 3600, HttpOnly: true,
		Secure: s.tlsOn(), SameSite: http.SameSiteStrictMode})
	return tok
}

func (s *Server) checkPreCSRF(r *http.Request) bool {
	c, err := r.Cookie(cookiePreCSRF)
	if err != nil || c.Value == "" {
		return false
	}
	f := r.PostFormValue("csrf")
	return f != "" && subtle.ConstantTimeCompare([]byte(f), []byte(c.Value)) == 1
}

type loginView struct {
	Name    string
	Setup   bool
	Retry   string
	MinPass int
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.setupActive() {
		http.Redirect(w, r, "/setup", http.StatusSeeOther)
		return
	}
	p := s.newPage(r, "login", loginView{})
	p.CSRF = s.preCSRF(w, r)
	s.render(w, http.StatusOK, "login", "layout", p)
}

func (s *Server) loginPost(w http.ResponseWriter, r *http.Request) {
	p := s.newPage(r, "login", loginView{})
	p.CSRF = s.preCSRF(w, r)
	if !s.checkPreCSRF(r) {
		s.met.csrfDenied.Inc()
		p.Error = tr(p.Lang, "err.csrf")
		s.render(w, http.StatusForbidden, "login", "layout", p)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	pw := r.PostFormValue("password")
	ip := clientIP(r)
	lv := loginView{Name: name}
	if len(name) > 64 || len(pw) > MaxPasswordLen {
		name, pw = "", ""
	}
	s.lim.applyUnlocks(s.accounts.Unlocks())
	if d, why := s.lim.blocked(name, ip); d > 0 {
		s.met.authFailures.WithLabelValues("locked").Inc()
		s.log.Warn("login refused while throttled", "account", s.knownName(name), "ip", ip, "lock", why, "retry_in", d.Round(time.Second).String())
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
		lv.Retry = (&pageData{Lang: p.Lang}).Dur(d)
		p.Data = lv
		p.Error = fmt.Sprintf(tr(p.Lang, "err.locked"), lv.Retry)
		s.render(w, http.StatusTooManyRequests, "login", "layout", p)
		return
	}
	// Many failures from everywhere at once: checks are paced. The right
	// password still gets in, after a short wait.
	if !s.lim.pace(loginPaceWait, time.Sleep) {
		s.met.authFailures.WithLabelValues("paced").Inc()
		w.Header().Set("Retry-After", "2")
		p.Data = lv
		p.Error = tr(p.Lang, "err.busy")
		s.render(w, http.StatusTooManyRequests, "login", "layout", p)
		return
	}
	ac, found := s.accounts.Lookup(name)
	hash := ac.Hash
	if !found {
		hash = dummyHash()
	}
	if !CheckPassword(hash, pw) || !found {
		backoff, lockIP := s.lim.fail(name, ip)
		s.met.authFailures.WithLabelValues("password").Inc()
		// A name that is no account is not logged: it may be a password
		// typed into the wrong field.
		s.log.Warn("login failed", "account", s.knownName(name), "ip", ip, "backoff", backoff.String(), "locked_address", lockIP)
		p.Data = lv
		p.Error = tr(p.Lang, "err.login")
		code := http.StatusUnauthorized
		if lockIP {
			backoff = s.cfg.Login.Lockout.Std()
		}
		if backoff > 0 {
			code = http.StatusTooManyRequests
			w.Header().Set("Retry-After", strconv.Itoa(int(backoff.Seconds())+1))
			p.Error = fmt.Sprintf(tr(p.Lang, "err.locked"), (&pageData{Lang: p.Lang}).Dur(backoff))
		}
		s.render(w, code, "login", "layout", p)
		return
	}
	s.lim.succeed(ac.Name, ip)
	s.startSession(w, r, ac.Name, ac.Role)
	s.log.Info("login", "account", ac.Name, "role", string(ac.Role), "ip", ip)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// loginPaceWait is the longest a paced password check waits for its slot.
const loginPaceWait = 5 * time.Second

// knownName is what a log line may say of a typed account name: the name
// when such an account exists, otherwise nothing of it.
func (s *Server) knownName(n string) string {
	if _, ok := s.accounts.Lookup(n); ok && ValidName(n) {
		return n
	}
	return "(unknown)"
}

func (s *Server) startSession(w http.ResponseWriter, r *http.Request, name string, role Role) {
	var changed time.Time
	if ac, ok := s.accounts.Lookup(name); ok {
		changed = ac.Changed
	}
	if c, err := r.Cookie(s.sessionCookieName()); err == nil {
		s.sess.remove(c.Value) // rotate: never keep a pre-login id
	}
	ss := s.sess.create(name, role, changed)
	http.SetCookie(w, &http.Cookie{Name: s.sessionCookieName(), Value: ss.id, Path: "/", HttpOnly: true, Secure: s.tlsOn(),
		SameSite: http.SameSiteStrictMode, MaxAge: int(s.cfg.Session.Lifetime.Std().Seconds()),
		Expires: time.Now().Add(s.cfg.Session.Lifetime.Std())})
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if id := whoOf(r); id != nil && id.sess != nil {
		s.sess.remove(id.sess.id)
		s.log.Info("logout", "account", id.account)
	}
	http.SetCookie(w, &http.Cookie{Name: s.sessionCookieName(), Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: s.tlsOn(), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request) {
	if !s.setupActive() {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	p := s.newPage(r, "setup", loginView{Setup: true, MinPass: MinPasswordLen})
	p.CSRF = s.preCSRF(w, r)
	s.render(w, http.StatusOK, "setup", "layout", p)
}

func (s *Server) setupPost(w http.ResponseWriter, r *http.Request) {
	if !s.setupActive() {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	p := s.newPage(r, "setup", loginView{Setup: true, MinPass: MinPasswordLen})
	p.CSRF = s.preCSRF(w, r)
	if !s.checkPreCSRF(r) {
		s.met.csrfDenied.Inc()
		p.Error = tr(p.Lang, "err.csrf")
		s.render(w, http.StatusForbidden, "setup", "layout", p)
		return
	}
	ip := clientIP(r)
	// Per source address: wrong codes from one host slow that host down,
	// never the installer at another (or at the box itself).
	const setupKey = "\x00setup" // a name no account can have
	s.lim.applyUnlocks(s.accounts.Unlocks())
	if d, _ := s.lim.blocked(setupKey, ip); d > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(d.Seconds())+1))
		p.Error = fmt.Sprintf(tr(p.Lang, "err.locked"), (&pageData{Lang: p.Lang}).Dur(d))
		s.render(w, http.StatusTooManyRequests, "setup", "layout", p)
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	pw, pw2 := r.PostFormValue("password"), r.PostFormValue("password2")
	p.Data = loginView{Setup: true, Name: name, MinPass: MinPasswordLen}
	if !s.setup.check(r.PostFormValue("code")) {
		s.lim.fail(setupKey, ip)
		s.met.authFailures.WithLabelValues("setup_code").Inc()
		s.log.Warn("setup code wrong", "ip", ip)
		p.Error = tr(p.Lang, "err.setupcode")
		s.render(w, http.StatusUnauthorized, "setup", "layout", p)
		return
	}
	if pw != pw2 {
		p.Error = tr(p.Lang, "err.mismatch")
		s.render(w, http.StatusBadRequest, "setup", "layout", p)
		return
	}
	if err := s.accounts.Add(name, RoleInstaller, pw, true); err != nil {
		if errors.Is(err, ErrExists) {
			s.setup.consume()
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		p.Error = tr(p.Lang, "err.account") + " " + err.Error()
		s.render(w, http.StatusBadRequest, "setup", "layout", p)
		return
	}
	s.setup.consume()
	s.log.Info("first account created with the setup code", "account", name, "role", string(RoleInstaller), "ip", ip)
	s.startSession(w, r, name, RoleInstaller)
	http.Redirect(w, r, "/?ok=setup", http.StatusSeeOther)
}

// langPost switches the page language (a cookie; no server state).
func (s *Server) langPost(w http.ResponseWriter, r *http.Request) {
	ok := s.checkPreCSRF(r)
	if !ok {
		if c, err := r.Cookie(s.sessionCookieName()); err == nil {
			if ss, found := s.sess.get(c.Value); found {
				ok = subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(ss.csrf)) == 1
			}
		}
	}
	if !ok {
		s.met.csrfDenied.Inc()
		s.fail(w, r, http.StatusForbidden, "err.csrf")
		return
	}
	l := r.PostFormValue("lang")
	if l != "zh" && l != "en" {
		l = s.cfg.Language
	}
	http.SetCookie(w, &http.Cookie{Name: cookieLang, Value: l, Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true,
		Secure: s.tlsOn(), SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, backPath(r.PostFormValue("back")), http.StatusSeeOther)
}

var urlCreds = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@`)

// scrub hides credentials in URLs inside a message shown to a user.
func scrub(msg string) string { return urlCreds.ReplaceAllString(msg, "${1}REDACTED@") }

// actionForm applies a page action and returns to the page it came from.
func (s *Server) actionForm(command string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := whoOf(r)
		args, err := formArgs(command, r, s.loc, s.now())
		if err != nil {
			p := s.newPage(r, "error", nil)
			p.Error = tr(p.Lang, "err.input") + " " + err.Error()
			s.render(w, http.StatusBadRequest, "error", "layout", p)
			return
		}
		if _, err := s.dispatch(r, command, args, id.account); err != nil {
			p := s.newPage(r, "error", nil)
			p.Error = s.commandError(p.Lang, command, err)
			s.render(w, commandErrorCode(err), "error", "layout", p)
			return
		}
		back := backPath(r.PostFormValue("back"))
		sep := "?"
		if strings.Contains(back, "?") {
			sep = "&"
		}
		http.Redirect(w, r, back+sep+"ok="+okKey(command), http.StatusSeeOther)
	}
}

func okKey(command string) string {
	return strings.NewReplacer(".", "_").Replace(command)
}

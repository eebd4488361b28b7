package status

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// randomID returns n random bytes, URL-safe base64.
func randomID(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand does not fail on Linux ≥ 3.17; a box where it does
		// must not hand out guessable ids.
		panic("status: crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// session is one login. Times come from the monotonic clock (time.Now
// carries a monotonic reading; Sub uses it), so a wall-clock step does
// not extend or end sessions.
type session struct {
	id      string
	csrf    string
	account string
	role    Role
	// changed is the account's Changed stamp at login: a password or
	// role change (lintel user passwd/role) ends every older session.
	changed time.Time
	created time.Time
	seen    time.Time
}

// sessions is the server-side session table. Sessions live in memory:
// a daemon restart logs everyone out, which is acceptable on a gateway
// restarted rarely and keeps no session secret on the SD card.
type sessions struct {
	idle, lifetime time.Duration
	now            func() time.Time

	mu sync.Mutex
	m  map[string]*session
}

func newSessions(idle, lifetime time.Duration, now func() time.Time) *sessions {
	return &sessions{idle: idle, lifetime: lifetime, now: now, m: map[string]*session{}}
}

// create starts a session with fresh 128-bit ids (the id rotates at every
// login, so a planted id is never promoted).
func (s *sessions) create(account string, role Role, changed time.Time) *session {
	now := s.now()
	ss := &session{id: randomID(16), csrf: randomID(16), account: account, role: role, changed: changed, created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[ss.id] = ss
	return ss
}

// get returns the live session with id and touches it.
func (s *sessions) get(id string) (*session, bool) {
	if id == "" {
		return nil, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[id]
	if !ok {
		return nil, false
	}
	if now.Sub(ss.seen) > s.idle || now.Sub(ss.created) > s.lifetime {
		delete(s.m, id)
		return nil, false
	}
	ss.seen = now
	cp := *ss
	return &cp, true
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// removeAccount ends every session of an account (password change,
// "log out everywhere").
func (s *sessions) removeAccount(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.m {
		if ss.account == name {
			delete(s.m, id)
		}
	}
}

// sweep drops expired sessions.
func (s *sessions) sweep() {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, ss := range s.m {
		if now.Sub(ss.seen) > s.idle || now.Sub(ss.created) > s.lifetime {
			delete(s.m, id)
		}
	}
}

func (s *sessions) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// limiter throttles login attempts. An account with MaxFailures failures
// within Window is locked for Lockout, whatever password comes next; a
// source address with IPMaxFailures failures within Window is refused for
// Lockout too, so one host cannot spray passwords over many names.
type limiter struct {
	cfg Login
	now func() time.Time

	mu       sync.Mutex
	accounts map[string]*failures
	ips      map[string]*failures
}

type failures struct {
	times  []time.Time
	locked time.Time // zero: not locked
}

func newLimiter(cfg Login, now func() time.Time) *limiter {
	return &limiter{cfg: cfg, now: now, accounts: map[string]*failures{}, ips: map[string]*failures{}}
}

// maxTracked bounds the limiter's memory under a spray of names or
// addresses; beyond it the oldest entries are forgotten.
const maxTracked = 10000

// blocked reports for how long a login for account from ip is refused
// without checking the password (0 = allowed), and why.
func (l *limiter) blocked(account, ip string) (time.Duration, string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.ips[ip]; f != nil && !f.locked.IsZero() {
		if d := l.cfg.Lockout.Std() - now.Sub(f.locked); d > 0 {
			return d, "ip"
		}
		f.locked, f.times = time.Time{}, nil
	}
	if f := l.accounts[account]; f != nil && !f.locked.IsZero() {
		if d := l.cfg.Lockout.Std() - now.Sub(f.locked); d > 0 {
			// Hammering a locked account still counts against the
			// address, so it soon cannot try other names either.
			l.addLocked(l.ips, ip, l.cfg.IPMaxFailures, now)
			return d, "account"
		}
		f.locked, f.times = time.Time{}, nil
	}
	return 0, ""
}

// fail records a failed attempt and reports whether it locked something.
func (l *limiter) fail(account, ip string) (lockedAccount, lockedIP bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addLocked(l.accounts, account, l.cfg.MaxFailures, now), l.addLocked(l.ips, ip, l.cfg.IPMaxFailures, now)
}

// addLocked records one failure for k; l.mu is held.
func (l *limiter) addLocked(m map[string]*failures, k string, max int, now time.Time) bool {
	f := m[k]
	if f == nil {
		if len(m) >= maxTracked {
			for old := range m { // random eviction keeps this O(1)
				delete(m, old)
				break
			}
		}
		f = &failures{}
		m[k] = f
	}
	keep := f.times[:0]
	for _, t := range f.times {
		if now.Sub(t) < l.cfg.Window.Std() {
			keep = append(keep, t)
		}
	}
	f.times = append(keep, now)
	if len(f.times) >= max && f.locked.IsZero() {
		f.locked = now
		return true
	}
	return false
}

// succeed clears an account's failures (not the address's: a spray that
// guesses one password must not reset its budget).
func (l *limiter) succeed(account string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.accounts, account)
}

// setupCode is the one-time code that creates the first account. It is
// written to a 0600 file in the data directory and logged; whoever can
// read either is already trusted with the box.
type setupCode struct {
	path string

	mu   sync.Mutex
	code string // "" once used or when accounts exist
}

// setupAlphabet avoids look-alikes (0/O, 1/I/L) for codes read off a
// terminal and typed on a phone: 16 symbols of 31 are about 79 bits.
const setupAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

func newSetupCode(dataDir string) (*setupCode, error) {
	var sb strings.Builder
	for range 16 {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(setupAlphabet))))
		if err != nil {
			return nil, fmt.Errorf("setup code: %w", err)
		}
		sb.WriteByte(setupAlphabet[n.Int64()])
	}
	raw := sb.String()
	code := raw[0:4] + "-" + raw[4:8] + "-" + raw[8:12] + "-" + raw[12:16]
	path := filepath.Join(dataDir, "status-setup-code")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("setup code: %w", err)
	}
	_ = os.Remove(path) // a stale file may have other permissions
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("setup code: %w", err)
	}
	_, werr := f.WriteString(code + "\n")
	if err := errors.Join(werr, f.Close()); err != nil {
		return nil, fmt.Errorf("setup code: %w", err)
	}
	return &setupCode{path: path, code: code}, nil
}

// normalizeCode accepts the code typed with spaces, lower case or without
// dashes.
func normalizeCode(s string) string {
	s = strings.ToUpper(s)
	var b strings.Builder
	for _, r := range s {
		if r == '-' || r == ' ' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// active reports whether setup is still possible.
func (c *setupCode) active() bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code != ""
}

// check compares a typed code in constant time.
func (c *setupCode) check(typed string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.code == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(normalizeCode(typed)), []byte(normalizeCode(c.code))) == 1
}

// consume invalidates the code and removes its file.
func (c *setupCode) consume() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.code = ""
	_ = os.Remove(c.path)
}

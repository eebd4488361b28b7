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

// limiter throttles password (and setup code) guessing so that it hurts
// the guesser, never the user:
//
//   - per (account, source address): after MaxFailures failures within
//     Window, each further attempt from that address for that account
//     waits a back-off that doubles with every failure (2 s, 4 s, …, at
//     most Lockout). The same account from any other address is not
//     affected: whoever types the right password on their own phone gets
//     in, however many wrong ones an attacker sent from elsewhere.
//   - per source address: IPMaxFailures failures within Window, over any
//     names, lock that address out for Lockout (a spray over many names).
//   - globally: when more than GlobalPerMinute failures happened in the
//     last minute (many addresses guessing together), password checks are
//     paced, one per 60s/GlobalPerMinute. A check still happens: the right
//     password gets in after a short wait, a guess costs the guessers time.
//
// The limiter lives in memory (a restart forgets it); `lintel user
// unlock` clears entries through the accounts file (see Accounts.Unlock).
type limiter struct {
	cfg Login
	now func() time.Time

	mu      sync.Mutex
	pairs   map[string]*failures // account + "\x00" + address
	ips     map[string]*failures
	recent  []time.Time // failures of the last minute, every address
	nextAt  time.Time   // the next paced check's slot
	applied map[string]bool
}

type failures struct {
	times  []time.Time
	until  time.Time // refused until then; zero: not blocked
	locked bool      // until is an address lock (not a back-off)
}

func newLimiter(cfg Login, now func() time.Time) *limiter {
	return &limiter{cfg: cfg, now: now, pairs: map[string]*failures{}, ips: map[string]*failures{}, applied: map[string]bool{}}
}

// maxTracked bounds the limiter's memory under a spray of names or
// addresses; beyond it an arbitrary entry is forgotten.
const maxTracked = 10000

func pairKey(account, ip string) string { return account + "\x00" + ip }

// blocked reports for how long an attempt for account from ip is refused
// without checking anything (0 = allowed), and why: "backoff" (this
// account from this address) or "address" (this address, any account).
func (l *limiter) blocked(account, ip string) (time.Duration, string) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.ips[ip]; f != nil && f.locked {
		if d := f.until.Sub(now); d > 0 {
			return d, "address"
		}
		delete(l.ips, ip)
	}
	if f := l.pairs[pairKey(account, ip)]; f != nil && !f.until.IsZero() {
		if d := f.until.Sub(now); d > 0 {
			// Hammering through a back-off counts against the address,
			// so it soon cannot try other names either.
			l.addIP(ip, now)
			return d, "backoff"
		}
	}
	return 0, ""
}

// pace waits for the global check slot when many failures happened in
// the last minute. It returns false when the wait would exceed maxWait
// (answer "busy, retry" then: not a lockout, nothing recorded).
func (l *limiter) pace(maxWait time.Duration, sleep func(time.Duration)) bool {
	if l.cfg.GlobalPerMinute <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	l.trimRecent(now)
	if len(l.recent) < l.cfg.GlobalPerMinute {
		l.mu.Unlock()
		return true
	}
	gap := time.Minute / time.Duration(l.cfg.GlobalPerMinute)
	slot := l.nextAt
	if slot.Before(now) {
		slot = now
	}
	if slot.Sub(now) > maxWait {
		l.mu.Unlock()
		return false
	}
	l.nextAt = slot.Add(gap)
	l.mu.Unlock()
	if d := slot.Sub(now); d > 0 {
		sleep(d)
	}
	return true
}

func (l *limiter) trimRecent(now time.Time) {
	keep := l.recent[:0]
	for _, t := range l.recent {
		if now.Sub(t) < time.Minute {
			keep = append(keep, t)
		}
	}
	l.recent = keep
}

// fail records a failed attempt. It reports the back-off now in force
// for the pair and whether the address got locked.
func (l *limiter) fail(account, ip string) (backoff time.Duration, lockedIP bool) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.trimRecent(now)
	if len(l.recent) < 100000 {
		l.recent = append(l.recent, now)
	}
	f := l.entry(l.pairs, pairKey(account, ip), now)
	if n := len(f.times) - l.cfg.MaxFailures; n >= 0 {
		backoff = min(2*time.Second<<min(n, 20), l.cfg.Lockout.Std())
		f.until = now.Add(backoff)
	}
	return backoff, l.addIP(ip, now)
}

// addIP counts one failure against an address; l.mu is held.
func (l *limiter) addIP(ip string, now time.Time) bool {
	f := l.entry(l.ips, ip, now)
	if len(f.times) >= l.cfg.IPMaxFailures && !f.locked {
		f.locked, f.until = true, now.Add(l.cfg.Lockout.Std())
		return true
	}
	return false
}

// entry records a failure time under k, forgetting those older than the
// window; l.mu is held.
func (l *limiter) entry(m map[string]*failures, k string, now time.Time) *failures {
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
	return f
}

// succeed clears the pair's failures (not the address's: a spray that
// guesses one password must not reset its budget).
func (l *limiter) succeed(account, ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.pairs, pairKey(account, ip))
}

// unlock clears an account's back-offs from every address (account != ""),
// and/or an address's lock and back-offs (address != "").
func (l *limiter) unlock(account, address string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.pairs {
		a, ip, _ := strings.Cut(k, "\x00")
		if (account == "" || a == account) && (address == "" || ip == address) {
			delete(l.pairs, k)
		}
	}
	if address != "" {
		delete(l.ips, address)
	}
}

// applyUnlocks applies the unlock requests of the accounts file that were
// not applied yet.
func (l *limiter) applyUnlocks(us []Unlock) {
	for _, u := range us {
		k := u.Account + "\x00" + u.Address + "\x00" + u.At.UTC().Format(time.RFC3339Nano)
		l.mu.Lock()
		done := l.applied[k]
		l.applied[k] = true
		l.mu.Unlock()
		if !done {
			l.unlock(u.Account, u.Address)
		}
	}
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

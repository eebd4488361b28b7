package status

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/argon2"
)

// Role is what an account may do. Roles are ordered: each includes the
// ones below it.
type Role string

// Roles.
const (
	RoleViewer    Role = "viewer"    // sees every page but diagnostics
	RoleManager   Role = "manager"   // also acts: ack, resolve, modes, gates
	RoleInstaller Role = "installer" // also diagnostics and the configuration summary
)

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleManager:
		return 2
	case RoleInstaller:
		return 3
	}
	return 0
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether an account of role r may do what needs role min.
func (r Role) Allows(min Role) bool { return r.rank() >= min.rank() && r.Valid() }

// Account is one person (or script) allowed in.
type Account struct {
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	Hash    string    `json:"hash"` // PHC argon2id string
	Created time.Time `json:"created"`
	Changed time.Time `json:"changed"`
	Tokens  []Token   `json:"tokens,omitempty"`
}

// Token is an API token for scripts. Only its SHA-256 is kept: a token is
// 256 random bits, so a fast hash is enough and lookups stay cheap.
type Token struct {
	ID      string    `json:"id"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
	// Expires ends the token (zero: valid until revoked). Scope limits
	// what it may do below its account's role: "read" allows only GET.
	Expires time.Time `json:"expires,omitzero"`
	Scope   string    `json:"scope,omitempty"`
}

// Token scopes.
const (
	ScopeFull = "full" // whatever the account's role allows (stored as "")
	ScopeRead = "read" // GET only: pages, API reads, /metrics, live updates
)

// Argon2id parameters: the OWASP minimum (m=19 MiB, t=2, p=1). They are
// stored in each hash, so raising them later keeps old hashes valid.
var hashParams = struct {
	Memory uint32 // KiB
	Time   uint32
	Par    uint8
}{19 * 1024, 2, 1}

// hashSem bounds concurrent hashing so a login flood cannot take the
// box's memory (19 MiB each).
var hashSem = make(chan struct{}, 2)

// HashPassword returns the PHC-format argon2id hash of pw.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	hashSem <- struct{}{}
	key := argon2.IDKey([]byte(pw), salt, hashParams.Time, hashParams.Memory, hashParams.Par, 32)
	<-hashSem
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, hashParams.Memory, hashParams.Time,
		hashParams.Par, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches a PHC argon2id hash, in
// constant time.
func CheckPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false
	}
	b64 := base64.RawStdEncoding
	salt, err1 := b64.DecodeString(parts[4])
	want, err2 := b64.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	hashSem <- struct{}{}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	<-hashSem
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is checked against for unknown account names so a login for
// a name that does not exist costs the same time as a wrong password.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("lintel-dummy-password")
	return h
})

var nameRE = regexp.MustCompile(`^[\p{L}\p{N}][\p{L}\p{N}._@-]{0,31}$`)

// ValidName reports whether name can be an account name: 1–32 letters
// (Chinese included), digits, '.', '_', '@' or '-'.
func ValidName(name string) bool { return nameRE.MatchString(name) }

// MinPasswordLen is the shortest password accepted (NIST SP 800-63B
// asks for at least 8; a page guarding elder alerts deserves more).
const MinPasswordLen = 10

// MaxPasswordLen bounds what is hashed.
const MaxPasswordLen = 256

// CheckNewPassword says why a new password is refused, or nil.
func CheckNewPassword(name, pw string) error {
	n := len([]rune(pw))
	switch {
	case n < MinPasswordLen:
		return fmt.Errorf("password too short: at least %d characters", MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return fmt.Errorf("password too long: at most %d bytes", MaxPasswordLen)
	case strings.EqualFold(pw, name):
		return errors.New("password must differ from the account name")
	}
	return nil
}

// Accounts is the accounts file. Methods are safe for concurrent use; the
// file is re-read when another process (lintel user) changed it.
type Accounts struct {
	path string

	mu      sync.Mutex
	list    []Account
	unlocks []Unlock
	mtime   time.Time
	size    int64
}

type accountsFile struct {
	Version  int       `json:"version"`
	Accounts []Account `json:"accounts"`
	Unlocks  []Unlock  `json:"unlocks,omitempty"`
}

// Unlock asks the running daemon to clear login back-offs and address
// locks: of an account from every address, of an address for every
// account, or both. `lintel user unlock` writes it into the accounts file,
// which the daemon re-reads when it changes.
type Unlock struct {
	Account string    `json:"account,omitempty"`
	Address string    `json:"address,omitempty"`
	At      time.Time `json:"at"`
}

// maxUnlocks bounds the unlock requests kept in the file.
const maxUnlocks = 32

// OpenAccounts loads the accounts file at path; a missing file is an
// empty list. A file readable by group or others is refused: it holds
// password hashes.
func OpenAccounts(path string) (*Accounts, error) {
	a := &Accounts{path: path}
	if err := a.reload(true); err != nil {
		return nil, err
	}
	return a, nil
}

// Path is the accounts file.
func (a *Accounts) Path() string { return a.path }

func (a *Accounts) reload(force bool) error {
	st, err := os.Stat(a.path)
	if errors.Is(err, os.ErrNotExist) {
		a.list, a.unlocks, a.mtime, a.size = nil, nil, time.Time{}, 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("accounts file: %w", err)
	}
	if !force && st.ModTime().Equal(a.mtime) && st.Size() == a.size {
		return nil
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("accounts file %s has mode %v: it holds password hashes, run chmod 600", a.path, st.Mode().Perm())
	}
	b, err := os.ReadFile(a.path)
	if err != nil {
		return fmt.Errorf("accounts file: %w", err)
	}
	var f accountsFile
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("accounts file %s: %w", a.path, err)
	}
	if f.Version != 1 {
		return fmt.Errorf("accounts file %s: version %d, want 1", a.path, f.Version)
	}
	a.list, a.unlocks, a.mtime, a.size = f.Accounts, f.Unlocks, st.ModTime(), st.Size()
	return nil
}

// save writes the file atomically with mode 0600. a.mu is held.
func (a *Accounts) save() error {
	b, err := json.MarshalIndent(accountsFile{Version: 1, Accounts: a.list, Unlocks: a.unlocks}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(a.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save accounts: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".accounts-*.tmp")
	if err != nil {
		return fmt.Errorf("save accounts: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("save accounts: %w", err)
	}
	// `lintel user` runs as root; the daemon may run as the owner of the
	// data directory, which must still be able to read the file.
	if os.Geteuid() == 0 {
		if st, err := os.Stat(dir); err == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				_ = tmp.Chown(int(sys.Uid), int(sys.Gid))
			}
		}
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save accounts: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save accounts: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save accounts: %w", err)
	}
	if err := os.Rename(tmp.Name(), a.path); err != nil {
		return fmt.Errorf("save accounts: %w", err)
	}
	if st, err := os.Stat(a.path); err == nil {
		a.mtime, a.size = st.ModTime(), st.Size()
	}
	return nil
}

// Refresh re-reads the file if it changed on disk.
func (a *Accounts) Refresh() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reload(false)
}

// Len is the number of accounts.
//
// Readers keep the last good list when a re-read fails (a file being
// replaced, a chmod mistake): refusing every login would lock the manager
// out in the middle of an alert. Writers do report the error.
func (a *Accounts) Len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.reload(false)
	return len(a.list)
}

// List returns the accounts sorted by name, hashes blanked.
func (a *Accounts) List() []Account {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.reload(false)
	out := make([]Account, len(a.list))
	for i, ac := range a.list {
		ac.Hash = ""
		ac.Tokens = append([]Token(nil), ac.Tokens...)
		for j := range ac.Tokens {
			ac.Tokens[j].SHA256 = ""
		}
		out[i] = ac
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns an account by name (hash included, for checking).
func (a *Accounts) Lookup(name string) (Account, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.reload(false)
	for _, ac := range a.list {
		if ac.Name == name {
			return ac, true
		}
	}
	return Account{}, false
}

// Unlocks returns the unlock requests in the file.
func (a *Accounts) Unlocks() []Unlock {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.reload(false)
	return append([]Unlock(nil), a.unlocks...)
}

// Unlock records a request to clear the login back-offs of account (from
// every address) and/or the lock of address; the daemon applies it at its
// next login attempt. An unknown account is an error.
func (a *Accounts) Unlock(account, address string) error {
	if account == "" && address == "" {
		return errors.New("unlock: name an account or an address")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reload(false); err != nil {
		return err
	}
	if account != "" {
		found := false
		for _, ac := range a.list {
			found = found || ac.Name == account
		}
		if !found {
			return fmt.Errorf("%w: %s", ErrNoAccount, account)
		}
	}
	a.unlocks = append(a.unlocks, Unlock{Account: account, Address: address, At: time.Now().UTC()})
	if n := len(a.unlocks) - maxUnlocks; n > 0 {
		a.unlocks = a.unlocks[n:]
	}
	return a.save()
}

// ErrExists is returned when adding an account whose name is taken.
var ErrExists = errors.New("account exists")

// ErrNoAccount is returned for an unknown account name.
var ErrNoAccount = errors.New("no such account")

// Add creates an account. onlyIfEmpty makes it fail when any account
// exists (first-run setup races).
func (a *Accounts) Add(name string, role Role, pw string, onlyIfEmpty bool) error {
	if !ValidName(name) {
		return fmt.Errorf("account name %q: use 1–32 letters, digits, '.', '_', '@' or '-'", name)
	}
	if !role.Valid() {
		return fmt.Errorf("role %q: want viewer, manager or installer", role)
	}
	if err := CheckNewPassword(name, pw); err != nil {
		return err
	}
	h, err := HashPassword(pw)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reload(false); err != nil {
		return err
	}
	if onlyIfEmpty && len(a.list) > 0 {
		return ErrExists
	}
	for _, ac := range a.list {
		if ac.Name == name {
			return fmt.Errorf("%w: %s", ErrExists, name)
		}
	}
	now := time.Now().UTC()
	a.list = append(a.list, Account{Name: name, Role: role, Hash: h, Created: now, Changed: now})
	return a.save()
}

// SetPassword replaces an account's password.
func (a *Accounts) SetPassword(name, pw string) error {
	if err := CheckNewPassword(name, pw); err != nil {
		return err
	}
	h, err := HashPassword(pw)
	if err != nil {
		return err
	}
	return a.update(name, func(ac *Account) { ac.Hash, ac.Changed = h, time.Now().UTC() })
}

// SetRole changes an account's role.
func (a *Accounts) SetRole(name string, role Role) error {
	if !role.Valid() {
		return fmt.Errorf("role %q: want viewer, manager or installer", role)
	}
	return a.update(name, func(ac *Account) { ac.Role, ac.Changed = role, time.Now().UTC() })
}

// Remove deletes an account and its tokens.
func (a *Accounts) Remove(name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reload(false); err != nil {
		return err
	}
	for i, ac := range a.list {
		if ac.Name == name {
			a.list = append(a.list[:i], a.list[i+1:]...)
			return a.save()
		}
	}
	return fmt.Errorf("%w: %s", ErrNoAccount, name)
}

func (a *Accounts) update(name string, f func(*Account)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.reload(false); err != nil {
		return err
	}
	for i := range a.list {
		if a.list[i].Name == name {
			f(&a.list[i])
			return a.save()
		}
	}
	return fmt.Errorf("%w: %s", ErrNoAccount, name)
}

// TokenPrefix starts every API token, so a leaked one is easy to grep for.
const TokenPrefix = "lintel_"

// AddToken creates an API token for an account that never expires, with
// the account's full role, and returns it; it is shown once and only its
// hash is kept.
func (a *Accounts) AddToken(name string) (string, error) { return a.AddTokenWith(name, 0, ScopeFull) }

// AddTokenWith creates an API token valid for ttl (0: until revoked) with
// a scope (ScopeFull or ScopeRead).
func (a *Accounts) AddTokenWith(name string, ttl time.Duration, scope string) (string, error) {
	if scope != ScopeFull && scope != ScopeRead {
		return "", fmt.Errorf("token scope %q: want %s or %s", scope, ScopeFull, ScopeRead)
	}
	if scope == ScopeFull {
		scope = ""
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	idb := make([]byte, 4)
	if _, err := rand.Read(idb); err != nil {
		return "", fmt.Errorf("new token: %w", err)
	}
	id := hex.EncodeToString(idb)
	tok := TokenPrefix + id + "_" + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(tok))
	now := time.Now().UTC()
	t := Token{ID: id, SHA256: hex.EncodeToString(sum[:]), Created: now, Scope: scope}
	if ttl > 0 {
		t.Expires = now.Add(ttl)
	}
	err := a.update(name, func(ac *Account) { ac.Tokens = append(ac.Tokens, t) })
	if err != nil {
		return "", err
	}
	return tok, nil
}

// RevokeToken removes a token by id.
func (a *Accounts) RevokeToken(name, id string) error {
	found := false
	err := a.update(name, func(ac *Account) {
		for i, t := range ac.Tokens {
			if t.ID == id {
				ac.Tokens = append(ac.Tokens[:i], ac.Tokens[i+1:]...)
				found = true
				return
			}
		}
	})
	if err == nil && !found {
		return fmt.Errorf("no token %q for %s", id, name)
	}
	return err
}

// ByToken finds the account a valid (unexpired) API token belongs to.
func (a *Accounts) ByToken(tok string) (Account, bool) {
	ac, _, ok := a.TokenFor(tok, time.Now())
	return ac, ok
}

// TokenFor finds a token valid at now and its account.
func (a *Accounts) TokenFor(tok string, now time.Time) (Account, Token, bool) {
	if !strings.HasPrefix(tok, TokenPrefix) || len(tok) > 128 {
		return Account{}, Token{}, false
	}
	sum := sha256.Sum256([]byte(tok))
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.reload(false)
	for _, ac := range a.list {
		for _, t := range ac.Tokens {
			want, err := hex.DecodeString(t.SHA256)
			if err == nil && subtle.ConstantTimeCompare(want, sum[:]) == 1 {
				if !t.Expires.IsZero() && !now.Before(t.Expires) {
					return Account{}, Token{}, false
				}
				return ac, t, true
			}
		}
	}
	return Account{}, Token{}, false
}

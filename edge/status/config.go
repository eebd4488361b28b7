package status

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
)

// Config is the status section of the gateway configuration.
type Config struct {
	// Disabled turns the page off entirely (no listener).
	Disabled bool `yaml:"disabled"`
	// Listen is host:port. The default binds loopback only: an installer
	// opens it to the LAN deliberately (0.0.0.0:8080 or the LAN address).
	Listen string `yaml:"listen"`
	TLS    TLS    `yaml:"tls"`
	// Session bounds how long a login lasts.
	Session Session `yaml:"session"`
	// AccountsFile holds accounts and API token hashes (default
	// <data_dir>/accounts.json, mode 0600).
	AccountsFile string `yaml:"accounts_file"`
	Login        Login  `yaml:"login"`
	// Live bounds the pages following live updates.
	Live Live `yaml:"live"`
	// Hosts are the names and addresses the page answers to (the Host
	// header), against DNS rebinding. Empty: the listen address,
	// localhost and the box's own host names and interface addresses.
	// Listed: those, plus localhost and the listen address.
	Hosts   []string `yaml:"hosts"`
	Metrics Metrics  `yaml:"metrics"`
	// Language is the page language for a browser that has not chosen
	// one: zh (default) or en.
	Language string `yaml:"language"`
}

// TLS names a certificate and key in PEM files; both or neither.
type TLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// Session is measured on the monotonic clock: a box without an RTC may
// step its wall clock by years when NTP answers.
type Session struct {
	Idle     config.Duration `yaml:"idle"`     // default 30m
	Lifetime config.Duration `yaml:"lifetime"` // default 12h
}

// Login throttles password and setup-code guessing where it comes from,
// never locking out the right password typed elsewhere (see limiter).
type Login struct {
	// MaxFailures per (account, source address) within Window; then each
	// further failure doubles that pair's wait, from 2s up to Lockout.
	MaxFailures int             `yaml:"max_failures"` // default 5
	Window      config.Duration `yaml:"window"`       // default 15m
	Lockout     config.Duration `yaml:"lockout"`      // longest back-off and address lock; default 15m
	// IPMaxFailures per source address within Window, over any names,
	// lock that address for Lockout.
	IPMaxFailures int `yaml:"ip_max_failures"` // default 20
	// GlobalPerMinute failures in a minute, from all addresses together,
	// pace password checks to one per 60s/GlobalPerMinute (0: off).
	GlobalPerMinute int `yaml:"global_per_minute"` // default 60
}

// Metrics shapes /metrics. PerDevice labels series by device id; off
// (the default), devices are counted by kind and building, so a
// Prometheus that scrapes the page does not learn when each home's door
// opened or when its sensors were last heard.
type Metrics struct {
	PerDevice bool `yaml:"per_device"`
}

// Live bounds the server-sent event streams (the pages' live updates).
type Live struct {
	Max        int `yaml:"max"`         // in all; default 32
	PerAccount int `yaml:"per_account"` // per account (a person with a few tabs and a phone); default 4
}

// Defaults.
const (
	DefaultListen        = "127.0.0.1:8080"
	DefaultIdle          = 30 * time.Minute
	DefaultLifetime      = 12 * time.Hour
	DefaultMaxFailures   = 5
	DefaultWindow        = 15 * time.Minute
	DefaultLockout       = 15 * time.Minute
	DefaultIPMaxFailures = 20
	DefaultGlobalPerMin  = 60
	DefaultLiveMax       = 32
	DefaultLivePerAcct   = 4
	DefaultLanguage      = "zh"
)

// DefaultConfig returns the status section with every default; dataDir
// places the accounts file.
func DefaultConfig(dataDir string) Config {
	return Config{
		Listen:       DefaultListen,
		Session:      Session{Idle: config.Duration(DefaultIdle), Lifetime: config.Duration(DefaultLifetime)},
		AccountsFile: filepath.Join(dataDir, "accounts.json"),
		Login: Login{MaxFailures: DefaultMaxFailures, Window: config.Duration(DefaultWindow),
			Lockout: config.Duration(DefaultLockout), IPMaxFailures: DefaultIPMaxFailures, GlobalPerMinute: DefaultGlobalPerMin},
		Live:     Live{Max: DefaultLiveMax, PerAccount: DefaultLivePerAcct},
		Language: DefaultLanguage,
	}
}

func init() { config.RegisterSection("status", validateSection) }

func validateSection(r *config.Reporter, c *config.Config, n config.Node) {
	Decode(r, c, n)
}

// FromConfig decodes and checks the status section of a loaded
// configuration again, with the same problems as `lintel check`. A
// configuration built in code (no status section) gets the defaults.
func FromConfig(c *config.Config) (Config, error) {
	if c.Status.IsZero() {
		return DefaultConfig(c.Gateway.DataDir), nil
	}
	r := config.NewReporter(c.File)
	sc := Decode(r, c, c.Status)
	if err := r.Err(); err != nil {
		return Config{}, err
	}
	return sc, nil
}

// Decode decodes and checks the status section (defaults applied) and
// reports problems to r. It does no I/O: files named here are opened when
// the server starts.
func Decode(r *config.Reporter, c *config.Config, n config.Node) Config {
	sc := DefaultConfig(c.Gateway.DataDir)
	n.Decode(r, &sc)
	p := n.Path()
	if p == "" {
		p = "status"
	}
	if host, port, err := net.SplitHostPort(sc.Listen); err != nil {
		r.At(p+".listen", "%q: want host:port, e.g. 127.0.0.1:8080 or 0.0.0.0:8443", sc.Listen)
	} else {
		if pn, err := strconv.Atoi(port); err != nil || pn < 0 || pn > 65535 {
			r.At(p+".listen", "%q: port must be 0–65535", sc.Listen)
		}
		if host != "" && net.ParseIP(host) == nil && host != "localhost" {
			r.At(p+".listen", "%q: want an IP address (a name would need DNS at boot)", sc.Listen)
		}
	}
	for i, h := range sc.Hosts {
		if !validHostEntry(h) {
			r.At(fmt.Sprintf("%s.hosts[%d]", p, i), "%q: want a host name or an IP address, without port or scheme", h)
		}
	}
	if (sc.TLS.CertFile == "") != (sc.TLS.KeyFile == "") {
		r.At(p+".tls", "give both cert_file and key_file, or neither")
	}
	for k, f := range map[string]string{"cert_file": sc.TLS.CertFile, "key_file": sc.TLS.KeyFile} {
		if f != "" && !filepath.IsAbs(f) {
			r.At(p+".tls."+k, "%q: want an absolute path", f)
		}
	}
	if d := sc.Session.Idle.Std(); d < time.Minute || d > 24*time.Hour {
		r.At(p+".session.idle", "%s: want between 1m and 24h", sc.Session.Idle)
	}
	if d := sc.Session.Lifetime.Std(); d < sc.Session.Idle.Std() || d > 30*24*time.Hour {
		r.At(p+".session.lifetime", "%s: want at least session.idle and at most 720h", sc.Session.Lifetime)
	}
	// Only an accounts_file written in the file is reported: the default
	// derives from gateway.data_dir, which reports its own problem.
	if r.Has(p+".accounts_file") && !filepath.IsAbs(sc.AccountsFile) {
		r.At(p+".accounts_file", "%q: want an absolute path", sc.AccountsFile)
	}
	if sc.Login.MaxFailures < 1 || sc.Login.MaxFailures > 100 {
		r.At(p+".login.max_failures", "%d: want 1–100", sc.Login.MaxFailures)
	}
	if sc.Login.IPMaxFailures < 1 || sc.Login.IPMaxFailures > 10000 {
		r.At(p+".login.ip_max_failures", "%d: want 1–10000", sc.Login.IPMaxFailures)
	}
	if sc.Login.GlobalPerMinute < 0 || sc.Login.GlobalPerMinute > 100000 {
		r.At(p+".login.global_per_minute", "%d: want 0 (off) to 100000", sc.Login.GlobalPerMinute)
	}
	if sc.Live.Max < 1 || sc.Live.Max > 1024 {
		r.At(p+".live.max", "%d: want 1–1024", sc.Live.Max)
	}
	if sc.Live.PerAccount < 1 || sc.Live.PerAccount > sc.Live.Max {
		r.At(p+".live.per_account", "%d: want 1–live.max", sc.Live.PerAccount)
	}
	if d := sc.Login.Window.Std(); d < time.Second || d > 24*time.Hour {
		r.At(p+".login.window", "%s: want between 1s and 24h", sc.Login.Window)
	}
	if d := sc.Login.Lockout.Std(); d < time.Second || d > 24*time.Hour {
		r.At(p+".login.lockout", "%s: want between 1s and 24h", sc.Login.Lockout)
	}
	switch sc.Language {
	case "zh", "en":
	default:
		r.At(p+".language", "%q: want zh or en", sc.Language)
	}
	return sc
}

// Notes are what `lintel check` and the daemon's start say about a status
// section that is valid but exposed: the page on the LAN over plain HTTP.
func Notes(c *config.Config) []string {
	sc, err := FromConfig(c)
	if err != nil || sc.Disabled {
		return nil
	}
	host, _, err := net.SplitHostPort(sc.Listen)
	if err != nil || sc.TLS.CertFile != "" || isLoopbackHost(host) {
		return nil
	}
	return []string{fmt.Sprintf("status.listen %s is reachable beyond this box over plain HTTP: passwords, session cookies and "+
		"elder alerts cross the LAN in clear. Give status.tls a certificate (cert_file, key_file), or listen on 127.0.0.1", sc.Listen)}
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

package city

import (
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/lintel-edge/lintel/edge/config"
)

// Defaults, sized for a 4G uplink: a 256 KiB batch takes about 0.3 s at
// 1 MB/s up, and a window of 8 keeps the link busy across a 100 ms RTT
// while bounding what an alert can queue behind (window × max_bytes).
const (
	DefaultTopicPrefix    = "lintel/v1/{compound}/{gateway}"
	DefaultMaxEvents      = 500
	DefaultMaxBytes       = 256 << 10
	DefaultLinger         = 200 * time.Millisecond
	DefaultWindow         = 8
	DefaultAckTimeout     = 30 * time.Second
	DefaultStatusInterval = 60 * time.Second
	DefaultReconnectMin   = time.Second
	DefaultReconnectMax   = 2 * time.Minute
	DefaultReconnectProbe = 2 * time.Second
	DefaultKeepAlive      = 30 * time.Second

	DefaultMaxValidity       = time.Hour
	DefaultClockSkew         = 30 * time.Second
	DefaultUnsyncedClockSkew = 24 * time.Hour
	DefaultCommandQueue      = 64
	DefaultMaxSeen           = 100000
	DefaultRefusalBurst      = 20
	DefaultRefusalEvery      = 6 * time.Second
	DefaultRefusalSummary    = time.Minute
)

// Ack modes.
const (
	AckPuback      = "puback"      // the cursor advances on the broker's PUBACK
	AckApplication = "application" // ... on the platform's {epoch, seq} ack
)

// Options is the sinks.city section.
type Options struct {
	// Broker is mqtts://host:8883 (TLS, the expected form) or
	// tcp://host:1883 (plain, for a broker on a private link only).
	Broker string `yaml:"broker"`
	// Brokers, instead of Broker, lists several URLs of one platform (the
	// nodes of a broker cluster): each connection attempt goes to the
	// next one in turn, with the same back-off between attempts. They
	// share the credentials and TLS settings, so all are TLS or none.
	Brokers []string `yaml:"brokers"`
	// ClientID defaults to the gateway id.
	ClientID string `yaml:"client_id"`
	// TopicPrefix may hold {compound} and {gateway}.
	TopicPrefix string        `yaml:"topic_prefix"`
	Username    string        `yaml:"username"`
	Password    config.Secret `yaml:"password"`
	TLS         TLSOptions    `yaml:"tls"`
	Batch       BatchOptions  `yaml:"batch"`
	// Window is how many batches may be in flight (sent, not confirmed).
	Window int  `yaml:"window"`
	Gzip   bool `yaml:"gzip"`
	// AckMode is "puback" or "application".
	AckMode        string          `yaml:"ack_mode"`
	AckTimeout     config.Duration `yaml:"ack_timeout"`
	StatusInterval config.Duration `yaml:"status_interval"`
	KeepAlive      config.Duration `yaml:"keepalive"`
	Reconnect      BackoffOptions  `yaml:"reconnect"`
	// Commands authenticates the downlink (see CommandOptions).
	Commands CommandOptions `yaml:"commands"`
}

// CommandOptions is sinks.city.commands: who may send downlink commands
// and how they are checked. With no keys every command is refused.
type CommandOptions struct {
	// Keys are the platform's Ed25519 public keys. Several may be listed
	// at once to rotate: add the new key, switch the platform, then
	// remove the old one.
	Keys []KeyOptions `yaml:"keys"`
	// MaxValidity bounds expires_at − issued_at of a command.
	MaxValidity config.Duration `yaml:"max_validity"`
	// ClockSkew is the allowance on issued_at/expires_at while the
	// gateway clock is synced; UnsyncedClockSkew while it is not (a box
	// without an RTC that has not reached NTP since boot runs on the
	// last saved time). Replay is refused by id whatever the clock says.
	ClockSkew         config.Duration `yaml:"clock_skew"`
	UnsyncedClockSkew config.Duration `yaml:"unsynced_clock_skew"`
	// Queue is how many commands may wait; beyond it each is answered
	// "busy" at once.
	Queue int `yaml:"queue"`
	// MaxSeen bounds the ids remembered against replay; when it is full,
	// new commands are answered "busy" until older ids expire.
	MaxSeen int `yaml:"max_seen"`
	// Refusals rate-limits the command.refused audit events.
	Refusals RefusalOptions `yaml:"refusals"`
}

// KeyOptions is one platform public key.
type KeyOptions struct {
	ID string `yaml:"id"`
	// PublicKey is the key in base64 (32 bytes, as lintel receive keygen
	// prints it), base64 PKIX, or PEM.
	PublicKey string `yaml:"public_key"`
}

// RefusalOptions is a token bucket for command.refused events: Burst at
// once, then one per Every; what it suppresses is counted and reported by
// one summary event per Summary interval.
type RefusalOptions struct {
	Burst   int             `yaml:"burst"`
	Every   config.Duration `yaml:"every"`
	Summary config.Duration `yaml:"summary"`
}

// TLSOptions configures server verification and the client certificate.
type TLSOptions struct {
	CAFile             string `yaml:"ca_file"`   // PEM bundle; empty = system roots
	CertFile           string `yaml:"cert_file"` // client certificate (mTLS)
	KeyFile            string `yaml:"key_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// BatchOptions bounds one batch message.
type BatchOptions struct {
	MaxEvents int             `yaml:"max_events"`
	MaxBytes  config.Size     `yaml:"max_bytes"`
	Linger    config.Duration `yaml:"linger"`
}

// BackoffOptions bounds the reconnect delay.
type BackoffOptions struct {
	Min config.Duration `yaml:"min"`
	Max config.Duration `yaml:"max"`
	// Probe is the mean interval of the bare TCP connects that watch for
	// an unreachable broker's return during a back-off; a successful one
	// ends the wait (about 2.5 probe intervals after the return at worst).
	// 0 turns probing off: the back-off alone decides.
	Probe config.Duration `yaml:"probe"`
}

// DefaultOptions returns the section's defaults for a gateway.
func DefaultOptions() Options {
	return Options{
		TopicPrefix:    DefaultTopicPrefix,
		Batch:          BatchOptions{MaxEvents: DefaultMaxEvents, MaxBytes: DefaultMaxBytes, Linger: config.Duration(DefaultLinger)},
		Window:         DefaultWindow,
		Gzip:           true,
		AckMode:        AckPuback,
		AckTimeout:     config.Duration(DefaultAckTimeout),
		StatusInterval: config.Duration(DefaultStatusInterval),
		KeepAlive:      config.Duration(DefaultKeepAlive),
		Reconnect: BackoffOptions{
			Min: config.Duration(DefaultReconnectMin), Max: config.Duration(DefaultReconnectMax),
			Probe: config.Duration(DefaultReconnectProbe),
		},
		Commands: CommandOptions{
			MaxValidity: config.Duration(DefaultMaxValidity), ClockSkew: config.Duration(DefaultClockSkew),
			UnsyncedClockSkew: config.Duration(DefaultUnsyncedClockSkew), Queue: DefaultCommandQueue, MaxSeen: DefaultMaxSeen,
			Refusals: RefusalOptions{Burst: DefaultRefusalBurst, Every: config.Duration(DefaultRefusalEvery),
				Summary: config.Duration(DefaultRefusalSummary)},
		},
	}
}

// verifier builds the command verifier; keys were checked by validate.
func (o *Options) verifier(gateway string) *Verifier {
	v := &Verifier{Gateway: gateway, Keys: map[string]ed25519.PublicKey{},
		MaxValidity: o.Commands.MaxValidity.Std(), Skew: o.Commands.ClockSkew.Std(), UnsyncedSkew: o.Commands.UnsyncedClockSkew.Std()}
	for _, k := range o.Commands.Keys {
		if pk, err := ParsePublicKey(k.PublicKey); err == nil {
			v.Keys[k.ID] = pk
		}
	}
	return v
}

// URLs are the broker URLs in the order they are tried: brokers, or
// the one broker.
func (o *Options) URLs() []string {
	if len(o.Brokers) > 0 {
		return o.Brokers
	}
	if o.Broker == "" {
		return nil
	}
	return []string{o.Broker}
}

// UsesTLS reports whether the broker URLs ask for TLS (validate makes
// them agree).
func (o *Options) UsesTLS() bool {
	us := o.URLs()
	if len(us) == 0 {
		return false
	}
	u, err := url.Parse(us[0])
	return err == nil && tlsScheme(u.Scheme)
}

func tlsScheme(s string) bool {
	switch s {
	case "mqtts", "ssl", "tls", "tcps":
		return true
	}
	return false
}

// Topics are the MQTT topics of one gateway.
type Topics struct {
	Prefix string
}

// Events is where ordered batches go; the last level names the encoding.
func (t Topics) Events(enc string) string { return t.Prefix + "/events/" + enc }

// Alerts is the alert lane.
func (t Topics) Alerts(enc string) string { return t.Prefix + "/alerts/" + enc }

// Status is the retained status topic.
func (t Topics) Status() string { return t.Prefix + "/status" }

// Ack is where the platform acknowledges batches (application mode).
func (t Topics) Ack() string { return t.Prefix + "/ack" }

// Cmd is the downlink command topic.
func (t Topics) Cmd() string { return t.Prefix + "/cmd" }

// CmdResult is where command results go.
func (t Topics) CmdResult() string { return t.Prefix + "/cmd/result" }

// ExpandPrefix substitutes {compound} and {gateway}.
func ExpandPrefix(prefix, compound, gateway string) string {
	return strings.NewReplacer("{compound}", compound, "{gateway}", gateway).Replace(prefix)
}

// validate checks o and reports problems under path. It does no I/O.
func (o *Options) validate(r *config.Reporter, path string, c *config.Config) {
	at := func(k string) string { return path + "." + k }
	tlsOn, urlsOK := o.validateBrokers(r, at)
	if o.ClientID != "" {
		if len(o.ClientID) > 128 || strings.IndexFunc(o.ClientID, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' }) >= 0 {
			r.At(at("client_id"), "want up to 128 printable ASCII characters without spaces")
		}
	}
	p := ExpandPrefix(o.TopicPrefix, "c", "g")
	switch {
	case o.TopicPrefix == "":
		r.At(at("topic_prefix"), "empty")
	case strings.ContainsAny(p, "+#\x00"), strings.HasPrefix(p, "$"), strings.HasPrefix(p, "/"), strings.HasSuffix(p, "/"), strings.Contains(p, "//"):
		r.At(at("topic_prefix"), "%q: no wildcards (+ #), no leading $ or /, no trailing or empty level", o.TopicPrefix)
	case strings.Count(p, "{")+strings.Count(p, "}") > 0:
		r.At(at("topic_prefix"), "%q: only {compound} and {gateway} may be substituted", o.TopicPrefix)
	case len(p) > 512:
		r.At(at("topic_prefix"), "longer than 512 bytes")
	}
	if !o.Password.IsZero() && o.Username == "" {
		r.At(at("password"), "a password needs a username")
	}
	if !o.Password.IsZero() && !tlsOn && urlsOK {
		r.At(at("password"), "refusing to send a password over plain tcp://; use mqtts://")
	}
	t := o.TLS
	if !tlsOn && (t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify) {
		r.At(at("tls"), "TLS settings given but the broker URL is not mqtts://")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		r.At(at("tls"), "cert_file and key_file go together (mTLS)")
	}
	for k, f := range map[string]string{"ca_file": t.CAFile, "cert_file": t.CertFile, "key_file": t.KeyFile} {
		if f != "" && !strings.HasPrefix(f, "/") {
			r.At(at("tls."+k), "%q: want an absolute path", f)
		}
	}
	b := o.Batch
	if b.MaxEvents < 1 || b.MaxEvents > 10000 {
		r.At(at("batch.max_events"), "%d: want 1..10000", b.MaxEvents)
	}
	if b.MaxBytes < 1<<10 || b.MaxBytes > 8<<20 {
		r.At(at("batch.max_bytes"), "%s: want 1KiB..8MiB (brokers commonly cap messages at 1 MB)", b.MaxBytes)
	}
	if b.Linger.Std() > 10*time.Second {
		r.At(at("batch.linger"), "%s: want at most 10s", b.Linger)
	}
	if o.Window < 1 || o.Window > 1024 {
		r.At(at("window"), "%d: want 1..1024", o.Window)
	}
	switch o.AckMode {
	case AckPuback, AckApplication:
	default:
		r.At(at("ack_mode"), "%q: want puback or application", o.AckMode)
	}
	if o.AckTimeout.Std() < time.Second || o.AckTimeout.Std() > time.Hour {
		r.At(at("ack_timeout"), "%s: want 1s..1h", o.AckTimeout)
	}
	if o.StatusInterval.Std() < time.Second || o.StatusInterval.Std() > time.Hour {
		r.At(at("status_interval"), "%s: want 1s..1h", o.StatusInterval)
	}
	if o.KeepAlive.Std() < 5*time.Second || o.KeepAlive.Std() > 20*time.Minute {
		r.At(at("keepalive"), "%s: want 5s..20m", o.KeepAlive)
	}
	if o.Reconnect.Min.Std() < 10*time.Millisecond {
		r.At(at("reconnect.min"), "%s: want at least 10ms", o.Reconnect.Min)
	}
	if o.Reconnect.Max.Std() < o.Reconnect.Min.Std() || o.Reconnect.Max.Std() > time.Hour {
		r.At(at("reconnect.max"), "%s: want between reconnect.min and 1h", o.Reconnect.Max)
	}
	if p := o.Reconnect.Probe.Std(); p != 0 && (p < 500*time.Millisecond || p > time.Minute) {
		r.At(at("reconnect.probe"), "%s: want 500ms..1m, or 0 for no probing", o.Reconnect.Probe)
	}
	o.Commands.validate(r, at("commands"))
	if c != nil && c.Gateway.ID == "" && o.ClientID == "" {
		r.At(at("client_id"), "missing and gateway.id is empty")
	}
}

// validateBrokers checks broker or brokers. It reports whether the URLs
// use TLS and whether they parsed (the password and TLS checks need it).
func (o *Options) validateBrokers(r *config.Reporter, at func(string) string) (tlsOn, ok bool) {
	switch {
	case o.Broker != "" && len(o.Brokers) > 0:
		r.At(at("brokers"), "give broker (one URL) or brokers (a list), not both")
		return false, false
	case o.Broker == "" && len(o.Brokers) == 0:
		r.At(at("broker"), "missing: want the platform broker, e.g. mqtts://mqtt.example.city:8883 (or brokers: [..] for several)")
		return false, false
	}
	key := func(int) string { return at("broker") }
	if len(o.Brokers) > 0 {
		key = func(i int) string { return fmt.Sprintf("%s[%d]", at("brokers"), i) }
	}
	ok = true
	seen := map[string]int{}
	first := true
	for i, b := range o.URLs() {
		u, err := url.Parse(b)
		if err == nil && first {
			// The scheme of the first URL decides for the checks of the
			// tls and password settings.
			tlsOn, first = tlsScheme(u.Scheme), false
		}
		switch {
		case b == "":
			r.At(key(i), "empty: want a URL like mqtts://host:8883")
		case err != nil || u.Host == "" || u.Hostname() == "":
			r.At(key(i), "%q is not a URL like mqtts://host:8883", config.RedactURL(b))
		case u.User != nil:
			r.At(key(i), "put credentials in username/password, not in the URL")
		case !tlsScheme(u.Scheme) && u.Scheme != "tcp" && u.Scheme != "mqtt":
			r.At(key(i), "scheme %q: want mqtts:// (TLS) or tcp://", u.Scheme)
		case u.Path != "" && u.Path != "/", u.RawQuery != "":
			r.At(key(i), "a broker URL has no path or query")
		default:
			if j, dup := seen[b]; dup {
				r.At(key(i), "%q is listed twice (first as brokers[%d])", b, j)
				continue
			}
			seen[b] = i
			if tlsScheme(u.Scheme) != tlsOn {
				r.At(key(i), "%q: the brokers share the credentials and tls settings, so either all are mqtts:// or none", b)
			}
			continue
		}
		ok = false
	}
	return tlsOn, ok
}

func validateSection(r *config.Reporter, c *config.Config, n config.Node) {
	o := DefaultOptions()
	n.Decode(r, &o)
	o.validate(r, sectionPath(n), c)
}

func sectionPath(n config.Node) string {
	if p := n.Path(); p != "" {
		return p
	}
	return "sinks.city"
}

// optionsFor decodes and checks cfg's section n again when the sink is
// built: the strict decoder of Node.DecodeStrict, with a reporter of our
// own so that the checks after decoding keep their positions.
func optionsFor(c *config.Config, n config.Node) (Options, error) {
	if c == nil {
		c = config.New()
	}
	r := config.NewReporter(c.File)
	o := DefaultOptions()
	n.Decode(r, &o)
	o.validate(r, sectionPath(n), c)
	if err := r.Err(); err != nil {
		return Options{}, err
	}
	return o, nil
}

func (o *CommandOptions) validate(r *config.Reporter, path string) {
	at := func(k string) string { return path + "." + k }
	ids := map[string]bool{}
	for i, k := range o.Keys {
		p := fmt.Sprintf("%s.keys[%d]", path, i)
		if !validToken(k.ID, 64, true) || strings.ContainsAny(k.ID, " /:") {
			r.At(p+".id", "%q: want 1..64 printable ASCII characters without spaces, '/' or ':'", k.ID)
		} else if ids[k.ID] {
			r.At(p+".id", "%q: listed twice", k.ID)
		}
		ids[k.ID] = true
		if k.PublicKey == "" {
			r.At(p+".public_key", "missing: the platform's Ed25519 public key (lintel receive keygen prints one)")
		} else if pk, err := ParsePublicKey(k.PublicKey); err != nil {
			r.At(p+".public_key", "%v", err)
		} else if base64.StdEncoding.EncodeToString(pk) == TestVectorPublicKey {
			r.At(p+".public_key", "this is the test vector key of docs/city-platform.md, whose private key is published: make a key pair with lintel receive keygen")
		}
	}
	if d := o.MaxValidity.Std(); d < time.Second || d > 7*24*time.Hour {
		r.At(at("max_validity"), "%s: want 1s..168h", o.MaxValidity)
	}
	if d := o.ClockSkew.Std(); d > time.Hour {
		r.At(at("clock_skew"), "%s: want at most 1h", o.ClockSkew)
	}
	if d := o.UnsyncedClockSkew.Std(); d < o.ClockSkew.Std() || d > 7*24*time.Hour {
		r.At(at("unsynced_clock_skew"), "%s: want between clock_skew and 168h", o.UnsyncedClockSkew)
	}
	if o.Queue < 1 || o.Queue > 10000 {
		r.At(at("queue"), "%d: want 1..10000", o.Queue)
	}
	if o.MaxSeen < 100 || o.MaxSeen > 10000000 {
		r.At(at("max_seen"), "%d: want 100..10000000", o.MaxSeen)
	}
	if o.Refusals.Burst < 1 || o.Refusals.Burst > 10000 {
		r.At(at("refusals.burst"), "%d: want 1..10000", o.Refusals.Burst)
	}
	if d := o.Refusals.Every.Std(); d < 10*time.Millisecond || d > time.Hour {
		r.At(at("refusals.every"), "%s: want 10ms..1h", o.Refusals.Every)
	}
	if d := o.Refusals.Summary.Std(); d < time.Second || d > 24*time.Hour {
		r.At(at("refusals.summary"), "%s: want 1s..24h", o.Refusals.Summary)
	}
}

// TestVectorPublicKey is the public key of the signing test vector in
// docs/city-platform.md (seed 00 01 … 1f). Its private key is public, so
// a configuration that lists it is refused.
const TestVectorPublicKey = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="

// Notes are the warnings `lintel check` prints and the sink logs at start
// for sinks.city: what works but is probably not what was meant.
func Notes(c *config.Config, n config.Node) []string {
	o, err := optionsFor(c, n)
	if err != nil {
		return nil
	}
	var out []string
	if len(o.Commands.Keys) == 0 {
		out = append(out, "sinks.city.commands.keys is empty: every downlink command from the platform is refused "+
			"(no default keys; add the platform's Ed25519 public key to accept signed commands)")
	}
	return out
}

package city

import (
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
	}
}

// UsesTLS reports whether the broker URL asks for TLS.
func (o *Options) UsesTLS() bool {
	u, err := url.Parse(o.Broker)
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
	u, err := url.Parse(o.Broker)
	switch {
	case o.Broker == "":
		r.At(at("broker"), "missing: want the platform broker, e.g. mqtts://mqtt.example.city:8883")
	case err != nil || u.Host == "" || u.Hostname() == "":
		r.At(at("broker"), "%q is not a URL like mqtts://host:8883", config.RedactURL(o.Broker))
	case u.User != nil:
		r.At(at("broker"), "put credentials in username/password, not in the URL")
	case !tlsScheme(u.Scheme) && u.Scheme != "tcp" && u.Scheme != "mqtt":
		r.At(at("broker"), "scheme %q: want mqtts:// (TLS) or tcp://", u.Scheme)
	case u.Path != "" && u.Path != "/", u.RawQuery != "":
		r.At(at("broker"), "a broker URL has no path or query")
	}
	tlsOn := err == nil && tlsScheme(u.Scheme)
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
	if !o.Password.IsZero() && !tlsOn && err == nil && o.Broker != "" {
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
	if c != nil && c.Gateway.ID == "" && o.ClientID == "" {
		r.At(at("client_id"), "missing and gateway.id is empty")
	}
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

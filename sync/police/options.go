package police

import (
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// Defaults. The timings follow what GA/T 1400 platforms do in the field:
// a node expires about 180 s after its last contact, so a keepalive every
// 60 s leaves two chances; a failed registration is retried after a
// random delay (the reference client draws it within 300 s).
const (
	DefaultKeepalive   = 60 * time.Second
	DefaultTimeout     = 30 * time.Second
	DefaultBatch       = 50
	DefaultRetryMin    = 2 * time.Second
	DefaultRetryMax    = 5 * time.Minute
	DefaultChunk       = 64 << 10
	DefaultTimeZone    = "Asia/Shanghai"
	DefaultTimeRefresh = 10 * time.Minute
)

// Options is the sinks.police section.
type Options struct {
	// URL is the platform's base, e.g. https://viid.example.gov.cn:8443
	// (the /VIID/... paths are appended).
	URL      string        `yaml:"url"`
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	// DeviceID is this gateway's 20-digit id on the platform.
	DeviceID string `yaml:"device_id"`
	// IDPrefix is the first 13 digits of generated camera/gate ids.
	IDPrefix string `yaml:"id_prefix"`
	// Devices maps Lintel device ids to 20-digit ids given by the
	// platform's integrator; others get IDPrefix + a hashed serial.
	Devices   map[string]string `yaml:"devices"`
	TimeZone  string            `yaml:"time_zone"`
	Keepalive config.Duration   `yaml:"keepalive"`
	Timeout   config.Duration   `yaml:"timeout"`
	Batch     int               `yaml:"batch"`
	Retry     RetryOptions      `yaml:"retry"`
	// Chunk is the buffer evidence is streamed through.
	Chunk config.Size `yaml:"chunk"`
	// EvidenceDir resolves evidence refs ("clips/…"); default data_dir.
	EvidenceDir string `yaml:"evidence_dir"`
	// Allow maps event kinds to the fields of each that may be sent.
	Allow map[string][]string `yaml:"allow"`
	Faces FaceOptions         `yaml:"faces"`
	TLS   TLSOptions          `yaml:"tls"`
}

// RetryOptions bounds the randomized back-off.
type RetryOptions struct {
	Min config.Duration `yaml:"min"`
	Max config.Duration `yaml:"max"`
}

// FaceOptions gates face images: off unless enabled with a legal basis.
type FaceOptions struct {
	Enabled    bool   `yaml:"enabled"`
	LegalBasis string `yaml:"legal_basis"`
}

// TLSOptions verifies the platform and optionally presents a client cert.
type TLSOptions struct {
	CAFile   string `yaml:"ca_file"`
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// DefaultOptions returns the section's defaults.
func DefaultOptions() Options {
	return Options{
		TimeZone: DefaultTimeZone, Keepalive: config.Duration(DefaultKeepalive),
		Timeout: config.Duration(DefaultTimeout), Batch: DefaultBatch,
		Retry: RetryOptions{Min: config.Duration(DefaultRetryMin), Max: config.Duration(DefaultRetryMax)},
		Chunk: DefaultChunk,
	}
}

// AllowList is the effective allow-list.
func (o *Options) AllowList() map[string][]string {
	if o.Allow == nil {
		return DefaultAllow()
	}
	return o.Allow
}

// validate checks o without I/O and reports every problem under path.
func (o *Options) validate(r *config.Reporter, path string, c *config.Config) {
	at := func(k string) string { return path + "." + k }
	u, err := url.Parse(o.URL)
	switch {
	case o.URL == "":
		r.At(at("url"), "missing: want the platform's base URL, e.g. https://viid.example.gov.cn:8443")
	case err != nil || u.Host == "":
		r.At(at("url"), "%q is not a URL like https://host:port", config.RedactURL(o.URL))
	case u.User != nil:
		r.At(at("url"), "put credentials in username/password, not in the URL")
	case u.Scheme != "https" && u.Scheme != "http":
		r.At(at("url"), "scheme %q: want https:// (or http:// on a private police network)", u.Scheme)
	case u.RawQuery != "":
		r.At(at("url"), "a base URL has no query")
	}
	if o.Username == "" {
		r.At(at("username"), "missing: the platform's digest user")
	}
	if o.Password.IsZero() {
		r.At(at("password"), "missing: want file:/path or env:NAME")
	}
	if !IsDigits(o.DeviceID, 20) {
		r.At(at("device_id"), "%q: want the 20-digit id the platform assigned this gateway", truncate(o.DeviceID, 32))
	}
	if o.IDPrefix != "" && !IsDigits(o.IDPrefix, 13) {
		r.At(at("id_prefix"), "%q: want 13 digits (8 centre code, 2 industry, 3 device type)", truncate(o.IDPrefix, 32))
	}
	known := map[string]bool{}
	if c != nil {
		for _, d := range c.Devices {
			known[d.ID] = true
		}
	}
	seen := map[string]string{}
	for _, dev := range sortedKeys(o.Devices) {
		id := o.Devices[dev]
		if !IsDigits(id, 20) {
			r.At(at("devices."+dev), "%q: want 20 digits", truncate(id, 32))
		}
		if c != nil && len(c.Devices) > 0 && !known[dev] {
			r.At(at("devices."+dev), "no device %q in devices", dev)
		}
		if prev, dup := seen[id]; dup {
			r.At(at("devices."+dev), "id %s is already %s's", id, prev)
		}
		seen[id] = dev
	}
	if o.IDPrefix == "" && c != nil {
		for _, d := range c.Devices {
			if _, ok := o.Devices[d.ID]; !ok && (d.Kind == "camera" || strings.HasPrefix(d.Driver, "rtsp")) {
				r.At(at("id_prefix"), "missing: device %q has no id in devices and none can be generated", d.ID)
				break
			}
		}
	}
	if o.IDPrefix != "" && c != nil {
		x := IDs{Prefix: o.IDPrefix, Devices: o.Devices}
		for _, d := range c.Devices {
			if _, ok := o.Devices[d.ID]; ok {
				continue
			}
			id := x.Device(d.ID)
			if prev, dup := seen[id]; dup {
				r.At(at("devices"), "generated id %s of %q collides with %q: give one of them an id", id, d.ID, prev)
			}
			seen[id] = d.ID
		}
	}
	if _, err := time.LoadLocation(o.TimeZone); err != nil || o.TimeZone == "" {
		r.At(at("time_zone"), "%q: want an IANA zone like Asia/Shanghai", o.TimeZone)
	}
	if k := o.Keepalive.Std(); k < time.Second || k > 10*time.Minute {
		r.At(at("keepalive"), "%s: want 1s..10m (platforms expire a node after about 180s)", o.Keepalive)
	}
	if t := o.Timeout.Std(); t < time.Second || t > 10*time.Minute {
		r.At(at("timeout"), "%s: want 1s..10m", o.Timeout)
	}
	if o.Batch < 1 || o.Batch > 1000 {
		r.At(at("batch"), "%d: want 1..1000", o.Batch)
	}
	if o.Retry.Min.Std() < 10*time.Millisecond {
		r.At(at("retry.min"), "%s: want at least 10ms", o.Retry.Min)
	}
	if o.Retry.Max.Std() < o.Retry.Min.Std() || o.Retry.Max.Std() > time.Hour {
		r.At(at("retry.max"), "%s: want between retry.min and 1h", o.Retry.Max)
	}
	if o.Chunk < 4<<10 || o.Chunk > 4<<20 {
		r.At(at("chunk"), "%s: want 4KiB..4MiB", o.Chunk)
	}
	if o.EvidenceDir != "" && !strings.HasPrefix(o.EvidenceDir, "/") {
		r.At(at("evidence_dir"), "%q: want an absolute path", o.EvidenceDir)
	}
	if o.Faces.Enabled && strings.TrimSpace(o.Faces.LegalBasis) == "" {
		r.At(at("faces.legal_basis"), "face images need the legal basis written here (e.g. the order or agreement that requires them)")
	}
	if !o.Faces.Enabled && o.Faces.LegalBasis != "" {
		r.At(at("faces.enabled"), "a legal basis is given but faces are not enabled")
	}
	for _, k := range sortedKeys(o.Allow) {
		p := at("allow." + k)
		if !event.Kind(k).Valid() {
			r.At(p, "%q is not an event kind", truncate(k, 64))
			continue
		}
		if why := Forbidden(event.Kind(k)); why != "" {
			r.At(p, "%s", why)
		}
		for _, f := range o.Allow[k] {
			switch {
			case neverFields[f] != "":
				r.At(p, "field %q can never be sent: %s", f, neverFields[f])
			case faceField(f) && !o.Faces.Enabled:
				r.At(p, "field %q is face data: set faces.enabled with faces.legal_basis first", f)
			case topFields[f]:
			case strings.HasPrefix(f, "data.") && len(f) > 5 && !strings.ContainsAny(f[5:], ". "):
			default:
				r.At(p, "field %q: want one of %s or data.<key>", f, strings.Join(sortedKeys(topFields), ", "))
			}
		}
	}
	t := o.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		r.At(at("tls"), "cert_file and key_file go together (mTLS)")
	}
	if err == nil && u.Scheme == "http" && (t.CAFile != "" || t.CertFile != "") {
		r.At(at("tls"), "TLS settings given but the URL is http://")
	}
	for k, f := range map[string]string{"ca_file": t.CAFile, "cert_file": t.CertFile, "key_file": t.KeyFile} {
		if f != "" && !strings.HasPrefix(f, "/") {
			r.At(at("tls."+k), "%q: want an absolute path", f)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
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
	return "sinks.police"
}

// optionsFor decodes and checks the section again when the sink is built.
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

// Package config loads and validates the gateway's one YAML file.
//
// Loading never touches devices or the network: it parses, applies
// defaults, and reports every problem at once as
// "file:line:col: path: problem". Sections whose schema belongs to another
// package (a driver's options, a sink, the rules, the status page) stay as
// [Node] values and are checked by validators those packages register, so
// `lintel check` sees the whole file while edge/config imports none of them.
package config

import (
	"bytes"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Config is the whole gateway configuration.
type Config struct {
	Gateway  Gateway         `yaml:"gateway"`
	Log      Log             `yaml:"log"`
	Compound Compound        `yaml:"compound"`
	Profiles Profiles        `yaml:"profiles"`
	Devices  []Device        `yaml:"devices"`
	Storage  Storage         `yaml:"storage"`
	Sinks    map[string]Node `yaml:"sinks"`
	Status   Node            `yaml:"status"`
	Rules    Node            `yaml:"rules"`

	// File is the path the configuration was loaded from.
	File string `yaml:"-"`
}

// Gateway identifies this box to the platform.
type Gateway struct {
	// ID is unique among the city's gateways; it is part of every event id
	// and MQTT topic, so it is limited to [a-z0-9_-]: what every MQTT
	// broker accepts in a topic level ('.' is refused by NATS's MQTT
	// listener; '+', '#', '/' and spaces are topic syntax).
	ID string `yaml:"id"`
	// Compound is the compound's id on the city platform.
	Compound string `yaml:"compound"`
	// DataDir holds the event log, clips and account data.
	DataDir string `yaml:"data_dir"`
}

// Log configures the daemon's logger.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // auto (text on a terminal, else JSON), json, text
}

// Compound describes the buildings and households devices are placed in.
type Compound struct {
	Name       string      `yaml:"name"`
	Buildings  []Building  `yaml:"buildings"`
	Households []Household `yaml:"households"`
}

// Building is one building of the compound and its units (单元).
type Building struct {
	ID    string   `yaml:"id"`
	Name  string   `yaml:"name"`
	Units []string `yaml:"units"`
}

// Household is a dwelling. Its id is pseudonymous (never a name); Label is
// what the property manager sees on the status page and may be a room
// number or a code.
type Household struct {
	ID    string `yaml:"id"`
	Label string `yaml:"label"`
	Place Place  `yaml:"place"`
}

// Place locates a device or household in the compound.
type Place struct {
	Building string `yaml:"building"`
	Unit     string `yaml:"unit"`
	Room     string `yaml:"room"`
	Position string `yaml:"position"`
}

// Profiles lists extra directories searched for device profiles, radio code
// tables and camera profiles, after the ones built into the binary.
type Profiles struct {
	Dirs []string `yaml:"dirs"`
}

// Device is one device the gateway talks to.
type Device struct {
	ID        string `yaml:"id"`
	Kind      string `yaml:"kind"`
	Driver    string `yaml:"driver"`
	Address   string `yaml:"address"`
	Profile   string `yaml:"profile"`
	Place     Place  `yaml:"place"`
	Household string `yaml:"household"`
	Disabled  bool   `yaml:"disabled"`
	// Options are the driver's own settings, validated by the driver.
	Options Node `yaml:"options"`
}

// Storage bounds the durable event log.
type Storage struct {
	Path        string   `yaml:"path"`
	MaxBytes    Size     `yaml:"max_bytes"`
	MaxAge      Duration `yaml:"max_age"`
	FlushWindow Duration `yaml:"flush_window"`
	// History keeps events on the gateway for the status page this long
	// after every sink has them; 0 deletes them as soon as all sinks acked.
	History Duration `yaml:"history"`
}

// Defaults used when a key is absent. docs and the example config repeat
// them; a test keeps them in step.
const (
	DefaultDataDir     = "/var/lib/lintel"
	DefaultMaxBytes    = Size(256 << 20)
	DefaultMaxAge      = Duration(30 * 24 * 3600 * 1e9)
	DefaultFlushWindow = Duration(10 * 1e6)
	DefaultHistory     = Duration(7 * 24 * 3600 * 1e9)
)

// New returns a Config holding every default.
func New() *Config {
	return &Config{
		Gateway: Gateway{DataDir: DefaultDataDir},
		Log:     Log{Level: "info", Format: "auto"},
		Storage: Storage{MaxBytes: DefaultMaxBytes, MaxAge: DefaultMaxAge, FlushWindow: DefaultFlushWindow, History: DefaultHistory},
	}
}

// StorePath is the event log's file: storage.path, or events.db in the
// data directory.
func (c *Config) StorePath() string {
	if c.Storage.Path != "" {
		return c.Storage.Path
	}
	return filepath.Join(c.Gateway.DataDir, "events.db")
}

// DevicesFor returns the enabled devices of one driver, in file order.
func (c *Config) DevicesFor(driver string) []Device {
	var out []Device
	for _, d := range c.Devices {
		if d.Driver == driver && !d.Disabled {
			out = append(out, d)
		}
	}
	return out
}

// Household returns the household with id, if configured.
func (c *Config) Household(id string) (Household, bool) {
	for _, h := range c.Compound.Households {
		if h.ID == id {
			return h, true
		}
	}
	return Household{}, false
}

// Validators registered by the packages that own a section.
type (
	// DeviceValidator checks the devices of one driver; path is the device's
	// path ("devices[3]"). It must not do I/O.
	DeviceValidator func(r *Reporter, c *Config, path string, d Device)
	// SectionValidator checks one section (a sink, rules, status).
	SectionValidator func(r *Reporter, c *Config, n Node)
)

var (
	regMu    sync.RWMutex
	devVal   = map[string]DeviceValidator{}
	sinkVal  = map[string]SectionValidator{}
	sectVal  = map[string]SectionValidator{}
	profileF []fs.FS
)

// RegisterDriverOptions installs the validator for devices of driver.
func RegisterDriverOptions(driver string, v DeviceValidator) {
	regMu.Lock()
	defer regMu.Unlock()
	devVal[driver] = v
}

// RegisterSink installs the validator of sinks.<name>; a sink not
// registered is reported as unknown.
func RegisterSink(name string, v SectionValidator) {
	regMu.Lock()
	defer regMu.Unlock()
	sinkVal[name] = v
}

// RegisterSection installs the validator of a top-level section
// ("rules", "status").
func RegisterSection(name string, v SectionValidator) {
	regMu.Lock()
	defer regMu.Unlock()
	sectVal[name] = v
}

// RegisterProfiles adds a built-in profile tree (an embed.FS holding
// profiles/, radio/ and cameras/ folders).
func RegisterProfiles(f fs.FS) {
	regMu.Lock()
	defer regMu.Unlock()
	profileF = append(profileF, f)
}

// DriverSchema is what the config knows of each driver without importing
// it: the device kinds it serves, the address forms it takes, and where
// its profiles live.
type DriverSchema struct {
	Kinds      []string
	Schemes    []string // URL schemes; "path" means a device path like /dev/ttyUSB0
	ProfileDir string   // folder under a profile tree; "" = no profiles
	NeedsProf  bool
	// NoAddress lists kinds reached through another device (a radio
	// sensor is heard by its receiver), whose address is optional.
	NoAddress []string
}

// Drivers is the schema of every driver Lintel has.
var Drivers = map[string]DriverSchema{
	"modbus": {Kinds: []string{"gate", "barrier", "access", "relay", "sensor"}, Schemes: []string{"rtu", "tcp", "rtuovertcp"}, ProfileDir: "profiles", NeedsProf: true},
	"serial": {Kinds: []string{"receiver", "door", "motion", "sos", "smoke", "water"}, Schemes: []string{"path", "serial", "tcp"}, ProfileDir: "radio",
		NoAddress: []string{"door", "motion", "sos", "smoke", "water"}},
	"rtsp": {Kinds: []string{"camera", "peephole"}, Schemes: []string{"rtsp", "rtsps"}, ProfileDir: "cameras", NeedsProf: true},
}

// ProfilePath finds profile name for dir ("profiles", "radio", "cameras"):
// first in the configured directories, then built in. It returns the file
// system and path to open, or ok=false.
func (c *Config) ProfilePath(dir, name string) (fsys fs.FS, path string, ok bool) {
	for _, d := range c.Profiles.Dirs {
		for _, cand := range []string{filepath.Join(d, dir, name+".yaml"), filepath.Join(d, name+".yaml")} {
			if st, err := os.Stat(cand); err == nil && !st.IsDir() {
				return os.DirFS(filepath.Dir(cand)), filepath.Base(cand), true
			}
		}
	}
	regMu.RLock()
	defer regMu.RUnlock()
	for _, f := range profileF {
		p := dir + "/" + name + ".yaml"
		if _, err := fs.Stat(f, p); err == nil {
			return f, p, true
		}
	}
	return nil, "", false
}

// ProfileNames lists the profiles available for dir.
func (c *Config) ProfileNames(dir string) []string {
	set := map[string]bool{}
	regMu.RLock()
	for _, f := range profileF {
		ents, _ := fs.ReadDir(f, dir)
		for _, e := range ents {
			if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
				set[n] = true
			}
		}
	}
	regMu.RUnlock()
	for _, d := range c.Profiles.Dirs {
		for _, sub := range []string{filepath.Join(d, dir), d} {
			ents, _ := os.ReadDir(sub)
			for _, e := range ents {
				if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
					set[n] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Load reads, decodes and validates the file at path. On any problem it
// returns a [Problems] error listing all of them.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, b)
}

// MaxFileSize bounds a configuration file; a larger one is a mistake.
const MaxFileSize = 4 << 20

// Parse decodes and validates a configuration held in memory; name is
// used in problem positions.
func Parse(name string, data []byte) (*Config, error) {
	r := newReporter(name)
	if len(data) > MaxFileSize {
		r.At("", "file is larger than %d bytes", MaxFileSize)
		return nil, r.probs
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, Problems{yamlProblem(name, data, err)}
	}
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		r.mark("--", extra.Line, extra.Column)
		r.At("--", "more than one YAML document; put everything in one")
	}
	c := New()
	c.File = name
	r.mark("", 1, 1)
	if len(doc.Content) == 0 {
		r.At("", "empty configuration: at least gateway.id and gateway.compound are needed")
		return nil, r.probs
	}
	d := decoder{r: r}
	d.decode(&doc, reflect0(c), "")
	validate(r, c)
	if len(r.probs) > 0 {
		return nil, r.probs.sorted()
	}
	return c, nil
}

// idRE is what gateway.id and gateway.compound may hold. Both are
// levels of every MQTT topic of the uplink, so they keep to what every
// broker accepts there: no '.' (NATS maps MQTT topics to subjects and
// drops a connection that uses one: "'.' not supported for MQTT topics"),
// no '+', '#' or '/' (MQTT topic syntax), no spaces or upper case.
var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// idProblem says why id is not a valid gateway or compound id.
func idProblem(id string) string {
	const want = "use 1–63 lower-case letters, digits, '_' or '-', starting with a letter or digit"
	switch {
	case strings.Contains(id, "."):
		return fmt.Sprintf("%q: '.' is not allowed: the id is a level of every MQTT topic and NATS's MQTT listener rejects '.' in topics; %s", id, want)
	case strings.ContainsAny(id, "+#/"):
		return fmt.Sprintf("%q: '+', '#' and '/' are MQTT topic wildcards and separators, not allowed in an id that is a topic level; %s", id, want)
	case strings.IndexFunc(id, unicode.IsSpace) >= 0:
		return fmt.Sprintf("%q: no spaces: the id is a level of every MQTT topic; %s", id, want)
	}
	return fmt.Sprintf("%q: %s", id, want)
}

var devIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

func validate(r *Reporter, c *Config) {
	// gateway
	switch {
	case c.Gateway.ID == "":
		r.At("gateway.id", "missing: every gateway needs an id (lower-case letters, digits, _ -)")
	case !idRE.MatchString(c.Gateway.ID):
		r.At("gateway.id", "%s", idProblem(c.Gateway.ID))
	}
	switch {
	case c.Gateway.Compound == "":
		r.At("gateway.compound", "missing: the compound's id on the city platform")
	case !idRE.MatchString(c.Gateway.Compound):
		r.At("gateway.compound", "%s", idProblem(c.Gateway.Compound))
	}
	if c.Gateway.DataDir == "" || !filepath.IsAbs(c.Gateway.DataDir) {
		r.At("gateway.data_dir", "%q: want an absolute path", c.Gateway.DataDir)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		r.At("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "auto", "json", "text":
	default:
		r.At("log.format", "%q: want auto, json or text", c.Log.Format)
	}

	// compound
	units := map[string]map[string]bool{}
	for i, b := range c.Compound.Buildings {
		p := fmt.Sprintf("compound.buildings[%d]", i)
		if b.ID == "" {
			r.At(p+".id", "missing")
			continue
		}
		if units[b.ID] != nil {
			r.At(p+".id", "duplicate building id %q", b.ID)
			continue
		}
		units[b.ID] = map[string]bool{}
		for _, u := range b.Units {
			units[b.ID][u] = true
		}
	}
	households := map[string]bool{}
	for i, h := range c.Compound.Households {
		p := fmt.Sprintf("compound.households[%d]", i)
		switch {
		case h.ID == "":
			r.At(p+".id", "missing: a pseudonymous id such as h-3-1-301")
		case !devIDRE.MatchString(h.ID):
			r.At(p+".id", "%q: use letters, digits, '.', '_' or '-'", h.ID)
		case households[h.ID]:
			r.At(p+".id", "duplicate household id %q", h.ID)
		}
		households[h.ID] = true
		checkPlace(r, p+".place", h.Place, units)
	}

	// profiles
	for i, d := range c.Profiles.Dirs {
		if d == "" {
			r.At(fmt.Sprintf("profiles.dirs[%d]", i), "empty path")
		} else if !filepath.IsAbs(d) {
			// Relative to the configuration file, so a config and its
			// profiles can travel together.
			c.Profiles.Dirs[i] = filepath.Join(filepath.Dir(c.File), d)
		}
	}

	// devices
	ids := map[string]string{}
	skipKind := map[int]bool{} // devices whose kind is missing or unknown
	for i, d := range c.Devices {
		p := fmt.Sprintf("devices[%d]", i)
		switch {
		case d.ID == "":
			r.At(p+".id", "missing")
		case !devIDRE.MatchString(d.ID):
			r.At(p+".id", "%q: use 1–64 letters, digits, '.', '_' or '-'", d.ID)
		case ids[d.ID] != "":
			r.At(p+".id", "duplicate device id %q (first used at %s)", d.ID, ids[d.ID])
		default:
			ids[d.ID] = p
		}
		schema, known := Drivers[d.Driver]
		if d.Driver == "" {
			r.At(p+".driver", "missing: want one of %s", strings.Join(driverNames(), ", "))
		} else if !known {
			r.At(p+".driver", "%s", unknownName("driver", d.Driver, driverNames()))
		}
		if known {
			// What else a device needs (an address, the driver's options)
			// depends on its kind: with the kind wrong, those checks would
			// only add problems that are not the installer's mistake.
			kindOK := false
			switch {
			case d.Kind == "":
				r.At(p+".kind", "missing: want one of %s", strings.Join(schema.Kinds, ", "))
			case !contains(schema.Kinds, d.Kind):
				r.At(p+".kind", "%s", unknownKind(d.Kind, d.Driver, schema))
			default:
				kindOK = true
			}
			if !kindOK {
				skipKind[i] = true
			}
			if kindOK && (d.Address != "" || !contains(schema.NoAddress, d.Kind)) {
				checkAddress(r, p+".address", d.Address, schema)
			}
			if d.Profile == "" && schema.NeedsProf {
				r.At(p+".profile", "missing: the %s driver needs a profile; available: %s", d.Driver, strings.Join(c.ProfileNames(schema.ProfileDir), ", "))
			} else if d.Profile != "" {
				if schema.ProfileDir == "" {
					r.At(p+".profile", "the %s driver takes no profile", d.Driver)
				} else if _, _, ok := c.ProfilePath(schema.ProfileDir, d.Profile); !ok {
					msg := fmt.Sprintf("unknown profile %q", d.Profile)
					names := c.ProfileNames(schema.ProfileDir)
					if s := suggest(d.Profile, names); s != "" {
						msg += fmt.Sprintf(" (did you mean %q?)", s)
					} else if len(names) > 0 {
						msg += "; available: " + strings.Join(names, ", ")
					}
					r.At(p+".profile", "%s", msg)
				}
			}
		}
		checkPlace(r, p+".place", d.Place, units)
		if d.Household != "" && !households[d.Household] {
			r.At(p+".household", "unknown household %q: declare it under compound.households", d.Household)
		}
	}

	// storage
	if c.Storage.Path != "" && !filepath.IsAbs(c.Storage.Path) {
		r.At("storage.path", "%q: want an absolute path", c.Storage.Path)
	}
	if c.Storage.MaxBytes < 1<<20 {
		r.At("storage.max_bytes", "%s is too small: at least 1MiB", c.Storage.MaxBytes)
	}
	if c.Storage.MaxAge.Std() < 3600e9 {
		r.At("storage.max_age", "%s is too short: at least 1h", c.Storage.MaxAge)
	}
	if c.Storage.History > c.Storage.MaxAge {
		r.At("storage.history", "%s is longer than storage.max_age (%s): retention would end it first", c.Storage.History, c.Storage.MaxAge)
	}
	if fw := c.Storage.FlushWindow.Std(); fw <= 0 || fw > 2e9 {
		r.At("storage.flush_window", "%s: want between 1ms and 2s", c.Storage.FlushWindow)
	}

	// Sections owned by other packages.
	regMu.RLock()
	defer regMu.RUnlock()
	for i, d := range c.Devices {
		if v := devVal[d.Driver]; v != nil && !skipKind[i] {
			v(r, c, fmt.Sprintf("devices[%d]", i), d)
		}
	}
	for _, name := range sortedKeys(c.Sinks) {
		v, ok := sinkVal[name]
		if !ok {
			known := make([]string, 0, len(sinkVal))
			for k := range sinkVal {
				known = append(known, k)
			}
			sort.Strings(known)
			r.At("sinks."+name, "unknown sink %q: want one of %s", name, strings.Join(known, ", "))
			continue
		}
		v(r, c, c.Sinks[name])
	}
	for name, n := range map[string]Node{"status": c.Status, "rules": c.Rules} {
		if v := sectVal[name]; v != nil {
			if n.path == "" {
				n.path = name
			}
			v(r, c, n)
		} else if !n.IsZero() {
			r.At(name, "this build of lintel has no %s section", name)
		}
	}
}

func checkPlace(r *Reporter, path string, p Place, units map[string]map[string]bool) {
	if p.Building == "" || len(units) == 0 {
		if p.Unit != "" && p.Building == "" {
			r.At(path+".unit", "a unit needs its building")
		}
		return
	}
	us, ok := units[p.Building]
	if !ok {
		r.At(path+".building", "unknown building %q: declare it under compound.buildings", p.Building)
		return
	}
	if p.Unit != "" && len(us) > 0 && !us[p.Unit] {
		r.At(path+".unit", "building %q has no unit %q", p.Building, p.Unit)
	}
}

func checkAddress(r *Reporter, path, addr string, s DriverSchema) {
	if addr == "" {
		r.At(path, "missing")
		return
	}
	if strings.HasPrefix(addr, "/") {
		if !contains(s.Schemes, "path") {
			r.At(path, "%q: want a URL with scheme %s", RedactURL(addr), strings.Join(s.Schemes, ", "))
		}
		return
	}
	u, err := url.Parse(addr)
	if err != nil || u.Scheme == "" {
		r.At(path, "%q is not a URL like %s://…", RedactURL(addr), s.Schemes[0])
		return
	}
	if !contains(s.Schemes, u.Scheme) {
		r.At(path, "scheme %q: want %s", u.Scheme, strings.Join(s.Schemes, ", "))
		return
	}
	switch u.Scheme {
	case "tcp", "rtuovertcp":
		host, port, err := net.SplitHostPort(u.Host)
		if err != nil || port == "" {
			r.At(path, "%q has no port", RedactURL(addr))
			return
		}
		if host == "" {
			r.At(path, "%q has no host", RedactURL(addr))
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			r.At(path, "%q: port must be 1–65535", RedactURL(addr))
		}
	case "rtu", "serial":
		if u.Path == "" || u.Host != "" {
			r.At(path, "%q: want %s:///dev/ttyUSB0 (three slashes, then the device path)", addr, u.Scheme)
		}
	case "rtsp", "rtsps":
		if u.Hostname() == "" {
			r.At(path, "%q has no host", RedactURL(addr))
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				r.At(path, "%q: port must be 1–65535", RedactURL(addr))
			}
		}
	}
}

func driverNames() []string { return sortedKeys(Drivers) }

// unknownName says that name is not one of known, suggesting the one it
// is likely a misspelling of.
func unknownName(what, name string, known []string) string {
	if s := suggest(name, known); s != "" {
		return fmt.Sprintf("unknown %s %q (did you mean %q?)", what, name, s)
	}
	return fmt.Sprintf("unknown %s %q: want one of %s", what, name, strings.Join(known, ", "))
}

// unknownKind explains a kind the device's driver does not serve: a
// misspelling of one it does, a kind of another driver, or neither.
func unknownKind(kind, driver string, schema DriverSchema) string {
	if s := suggest(kind, schema.Kinds); s != "" {
		return fmt.Sprintf("unknown kind %q (did you mean %q?)", kind, s)
	}
	for _, name := range driverNames() {
		if name != driver && contains(Drivers[name].Kinds, kind) {
			return fmt.Sprintf("kind %q is served by the %s driver, not %s: set driver: %s, or use one of %s",
				kind, name, driver, name, strings.Join(schema.Kinds, ", "))
		}
	}
	return fmt.Sprintf("unknown kind %q: the %s driver serves %s", kind, driver, strings.Join(schema.Kinds, ", "))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

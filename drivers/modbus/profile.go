package modbus

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"go.yaml.in/yaml/v3"
)

// Profile is one device model's register map and how its values become
// events. Installers add a model by writing a YAML file; see README.md.
type Profile struct {
	Model       string             `yaml:"model"`
	Vendor      string             `yaml:"vendor"`
	Description string             `yaml:"description"`
	ByteOrder   string             `yaml:"byte_order"` // ABCD (default), CDAB, BADC, DCBA
	Limits      Limits             `yaml:"limits"`
	NeverRead   []Range            `yaml:"never_read"`
	Points      []*Point           `yaml:"points"`
	Commands    map[string]Command `yaml:"commands"`

	// Name is the file name without .yaml; set by the loader.
	Name   string `yaml:"-"`
	byName map[string]*Point
}

// Limits are what the device accepts per request. Zero means the Modbus
// maximum (125 registers, 2000 bits); MaxGap < 0 means "no bridging".
type Limits struct {
	MaxRegisters int  `yaml:"max_registers"`
	MaxBits      int  `yaml:"max_bits"`
	MaxGap       *int `yaml:"max_gap"`
}

// Range is an inclusive address range of one table that must never be
// read (some devices fault or reset on reads of reserved registers).
type Range struct {
	Table string `yaml:"table"`
	From  int    `yaml:"from"`
	To    int    `yaml:"to"`

	table Table
}

// Point is one value in the device's register map.
type Point struct {
	Name    string         `yaml:"name"`
	Table   string         `yaml:"table"`
	Address int            `yaml:"address"`
	Type    string         `yaml:"type"` // bool, bitfield, u16, i16, u32, i32, f32
	Order   string         `yaml:"order"`
	Bit     *int           `yaml:"bit"` // bool read from one bit of a register
	Scale   float64        `yaml:"scale"`
	Offset  float64        `yaml:"offset"`
	Unit    string         `yaml:"unit"`
	Class   string         `yaml:"class"` // event (fast poll) or telemetry
	Data    map[string]any `yaml:"data"`  // copied into every event of this point (door: 2)

	On     *EventSpec           `yaml:"on"`  // becomes true / non-zero
	Off    *EventSpec           `yaml:"off"` // becomes false / zero
	States map[int64]*EventSpec `yaml:"-"`   // from StateKeys, by check
	// StateKeys is states as written; config's decoder keys maps by
	// string, so check parses the numbers (and reports bad ones).
	StateKeys map[string]*EventSpec `yaml:"states"`
	Above     *Threshold            `yaml:"above"`
	Below     *Threshold            `yaml:"below"`
	Increase  *EventSpec            `yaml:"increase"` // a counter went up
	Bits      []*BitSpec            `yaml:"bits"`     // for type bitfield
	Deadband  float64               `yaml:"deadband"` // telemetry: report changes larger than this
	Sim       *SimSpec              `yaml:"sim"`

	table Table
	typ   valueType
	order byteOrder
	event bool // polled on the fast (event) schedule
}

// EventSpec is the event a point's transition produces.
type EventSpec struct {
	Kind     string         `yaml:"kind"`
	Severity string         `yaml:"severity"`
	Data     map[string]any `yaml:"data"`
	Held     *HeldSpec      `yaml:"held"`
}

// HeldSpec raises a second event when the state lasts longer than After
// (a gate held open).
type HeldSpec struct {
	After    config.Duration `yaml:"after"`
	Kind     string          `yaml:"kind"`
	Severity string          `yaml:"severity"`
}

// Threshold fires when a numeric value crosses into the range beyond Value.
type Threshold struct {
	Value     float64 `yaml:"value"`
	EventSpec `yaml:",inline"`
}

// BitSpec names one bit of a bitfield and its events.
type BitSpec struct {
	Bit  int            `yaml:"bit"`
	Name string         `yaml:"name"`
	On   *EventSpec     `yaml:"on"`
	Off  *EventSpec     `yaml:"off"`
	Data map[string]any `yaml:"data"`
}

// SimSpec tells the simulator how to animate a point.
type SimSpec struct {
	Initial float64   `yaml:"initial"`
	Values  []float64 `yaml:"values"` // random changes pick among these
	Min     float64   `yaml:"min"`    // random walk bounds
	Max     float64   `yaml:"max"`
}

// Command is a write the gateway may perform (a gate "open"), and how the
// result is confirmed by reading back a point.
type Command struct {
	Write   Write           `yaml:"write"`
	Pulse   config.Duration `yaml:"pulse"` // write Release after this long
	Confirm *Confirm        `yaml:"confirm"`
}

// Write is one coil or holding-register write.
type Write struct {
	Table   string `yaml:"table"` // coil or holding
	Address int    `yaml:"address"`
	Value   int    `yaml:"value"`
	Release *int   `yaml:"release"` // value written when a pulse ends
	table   Table
}

// Confirm says when a command took effect.
type Confirm struct {
	Point  string          `yaml:"point"`
	Values []float64       `yaml:"values"`
	Within config.Duration `yaml:"within"`
}

// Table is one of the four Modbus data tables.
type Table uint8

// The Modbus tables.
const (
	Coil Table = iota
	Discrete
	Holding
	Input
)

var tableNames = map[string]Table{"coil": Coil, "discrete": Discrete, "holding": Holding, "input": Input}

func (t Table) String() string {
	return [...]string{"coil", "discrete", "holding", "input"}[t&3]
}

// bits reports whether the table holds single bits.
func (t Table) bits() bool { return t == Coil || t == Discrete }

type valueType uint8

const (
	tBool valueType = iota
	tBitfield
	tU16
	tI16
	tU32
	tI32
	tF32
)

var typeNames = map[string]valueType{"bool": tBool, "bitfield": tBitfield, "u16": tU16, "i16": tI16, "u32": tU32, "i32": tI32, "f32": tF32}

// words is the number of registers (or bits, for bit tables) a point spans.
func (p *Point) words() int {
	if p.typ == tU32 || p.typ == tI32 || p.typ == tF32 {
		return 2
	}
	return 1
}

type byteOrder uint8

const (
	orderABCD byteOrder = iota
	orderCDAB
	orderBADC
	orderDCBA
)

var orderNames = map[string]byteOrder{"ABCD": orderABCD, "CDAB": orderCDAB, "BADC": orderBADC, "DCBA": orderDCBA}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// MaxProfileSize bounds a profile file.
const MaxProfileSize = 1 << 20

// ParseProfile decodes and validates a profile held in memory; file names
// the source in problem positions. On failure the error is a
// config.Problems listing every problem with file:line:col.
func ParseProfile(file string, data []byte) (*Profile, error) {
	r := config.NewReporter(file)
	if len(data) > MaxProfileSize {
		r.At("", "profile is larger than %d bytes", MaxProfileSize)
		return nil, r.Err()
	}
	screened, parsed, ok := screenProfile(file, data)
	if !ok {
		return nil, screened
	}
	pr := &Profile{}
	r.DecodeYAML(data, pr)
	if !parsed {
		// Not YAML, or empty: DecodeYAML said so; the checks would only
		// add noise.
		return nil, r.Err()
	}
	pr.Name = strings.TrimSuffix(baseName(file), ".yaml")
	pr.check(r)
	if err := merge(r.Err(), screened); err != nil {
		return nil, err
	}
	return pr, nil
}

// screenProfile finds what config's decoder accepts but a profile must not
// hold: aliases (which expand exponentially, "billion laughs", and which a
// profile has no use for) and a second document. parsed is false when the
// data is not a YAML document (DecodeYAML reports why); ok is false when
// the document must not be decoded at all.
func screenProfile(file string, data []byte) (ps config.Problems, parsed, ok bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if dec.Decode(&doc) != nil || len(doc.Content) == 0 {
		return nil, false, true
	}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch n.Kind {
		case yaml.AliasNode:
			ps = append(ps, config.Problem{File: file, Line: n.Line, Col: n.Column, Path: path, Msg: "YAML aliases are not supported in profiles"})
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				kp := n.Content[i].Value
				if path != "" {
					kp = path + "." + kp
				}
				walk(n.Content[i], kp)
				walk(n.Content[i+1], kp)
			}
		}
	}
	walk(&doc, "")
	if len(ps) > 0 {
		return ps, true, false
	}
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		ps = append(ps, config.Problem{File: file, Line: extra.Line, Col: extra.Column, Path: "--", Msg: "more than one YAML document"})
	}
	return ps, true, true
}

// merge adds the screening problems to the reporter's, in file order.
func merge(err error, extra config.Problems) error {
	var all config.Problems
	if ps, ok := err.(config.Problems); ok {
		all = append(all, ps...)
	}
	all = append(all, extra...)
	if len(all) == 0 {
		return nil
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].Line != all[j].Line {
			return all[i].Line < all[j].Line
		}
		return all[i].Col < all[j].Col
	})
	return all
}

func baseName(s string) string {
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// LoadProfile finds profile name for cfg (profiles.dirs first, then the
// built-in ones) and parses it.
func LoadProfile(cfg *config.Config, name string) (*Profile, error) {
	fsys, path, ok := cfg.ProfilePath("profiles", name)
	if !ok {
		return nil, fmt.Errorf("profile %q not found", name)
	}
	b, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("read profile %q: %w", name, err)
	}
	pr, err := ParseProfile(profileDisplayName(cfg, name, path), b)
	if err != nil {
		return nil, err
	}
	pr.Name = name
	return pr, nil
}

// profileDisplayName names a profile file in problems the way an
// installer finds it: its path on disk, or "built-in:profiles/x.yaml".
// It mirrors config.ProfilePath's search order.
func profileDisplayName(cfg *config.Config, name, path string) string {
	for _, d := range cfg.Profiles.Dirs {
		for _, cand := range []string{filepath.Join(d, "profiles", name+".yaml"), filepath.Join(d, name+".yaml")} {
			if st, err := os.Stat(cand); err == nil && !st.IsDir() {
				return cand
			}
		}
	}
	return "built-in:" + path
}

func (pr *Profile) check(p *config.Reporter) {
	if strings.TrimSpace(pr.Model) == "" {
		p.At("model", "missing: name the device model (vendor and type)")
	}
	def := orderABCD
	if pr.ByteOrder != "" {
		o, ok := orderNames[pr.ByteOrder]
		if !ok {
			p.At("byte_order", "%q: want ABCD, CDAB, BADC or DCBA", pr.ByteOrder)
		}
		def = o
	}
	if l := pr.Limits.MaxRegisters; l < 0 || l > 125 {
		p.At("limits.max_registers", "%d: want 1–125 (0 or absent means 125)", l)
	}
	if l := pr.Limits.MaxBits; l < 0 || l > 2000 {
		p.At("limits.max_bits", "%d: want 1–2000 (0 or absent means 2000)", l)
	}
	if g := pr.Limits.MaxGap; g != nil && (*g < -1 || *g > 124) {
		p.At("limits.max_gap", "%d: want 0–124 registers, or -1 for one request per point", *g)
	}
	for i := range pr.NeverRead {
		r := &pr.NeverRead[i]
		path := fmt.Sprintf("never_read[%d]", i)
		t, ok := tableNames[r.Table]
		if !ok {
			p.At(path+".table", "%q: want coil, discrete, holding or input", r.Table)
		}
		r.table = t
		if r.From < 0 || r.To > 0xFFFF || r.From > r.To {
			p.At(path, "from %d to %d: want 0 ≤ from ≤ to ≤ 65535", r.From, r.To)
		}
	}
	if len(pr.Points) == 0 {
		p.At("points", "missing: a profile needs at least one point")
	}
	pr.byName = map[string]*Point{}
	for i, pt := range pr.Points {
		path := fmt.Sprintf("points[%d]", i)
		if pt == nil {
			p.At(path, "empty point")
			continue
		}
		pt.check(p, path, def)
		if pt.Name != "" {
			if _, dup := pr.byName[pt.Name]; dup {
				p.At(path+".name", "duplicate point name %q", pt.Name)
			}
			pr.byName[pt.Name] = pt
		}
		for j, r := range pr.NeverRead {
			if r.table == pt.table && pt.Address <= r.To && pt.Address+pt.words()-1 >= r.From {
				p.At(path+".address", "point %q lies in never_read[%d] (%s %d–%d)", pt.Name, j, r.Table, r.From, r.To)
			}
		}
	}
	for _, name := range sortedKeys(pr.Commands) {
		c := pr.Commands[name]
		path := "commands." + name
		if !nameRE.MatchString(name) {
			p.At(path, "command name %q: use lower-case letters, digits and _", name)
		}
		w := &c.Write
		switch w.Table {
		case "coil":
			w.table = Coil
			if w.Value != 0 && w.Value != 1 {
				p.At(path+".write.value", "%d: a coil takes 0 or 1", w.Value)
			}
		case "holding":
			w.table = Holding
			if w.Value < 0 || w.Value > 0xFFFF {
				p.At(path+".write.value", "%d: want 0–65535", w.Value)
			}
		case "":
			p.At(path+".write.table", "missing: coil or holding")
		default:
			p.At(path+".write.table", "%q: only coil and holding are writable", w.Table)
		}
		if w.Address < 0 || w.Address > 0xFFFF {
			p.At(path+".write.address", "%d: want 0–65535", w.Address)
		}
		if c.Pulse > 0 && w.Release == nil {
			p.At(path+".pulse", "a pulse needs write.release (the value written when it ends)")
		}
		if c.Pulse.Std() > time.Minute {
			p.At(path+".pulse", "%s: at most 1m", c.Pulse)
		}
		if c.Confirm != nil {
			if pr.byName[c.Confirm.Point] == nil {
				p.At(path+".confirm.point", "unknown point %q", c.Confirm.Point)
			}
			if len(c.Confirm.Values) == 0 {
				p.At(path+".confirm.values", "missing: the values that mean the command took effect")
			}
			if c.Confirm.Within == 0 {
				c.Confirm.Within = config.Duration(5 * time.Second)
			}
			if c.Confirm.Within.Std() > 2*time.Minute {
				p.At(path+".confirm.within", "%s: at most 2m", c.Confirm.Within)
			}
		}
		pr.Commands[name] = c
	}
}

func (pt *Point) check(p *config.Reporter, path string, def byteOrder) {
	pt.parseStates(p, path)
	if !nameRE.MatchString(pt.Name) {
		p.At(path+".name", "%q: want a lower-case name like gate_state", pt.Name)
	}
	t, ok := tableNames[pt.Table]
	if !ok {
		p.At(path+".table", "%q: want coil, discrete, holding or input", pt.Table)
	}
	pt.table = t
	if pt.Type == "" {
		if t.bits() {
			pt.Type = "bool"
		} else {
			pt.Type = "u16"
		}
	}
	typ, ok := typeNames[pt.Type]
	if !ok {
		p.At(path+".type", "%q: want bool, bitfield, u16, i16, u32, i32 or f32", pt.Type)
	}
	pt.typ = typ
	if t.bits() && typ != tBool {
		p.At(path+".type", "%s table holds single bits: want bool", pt.Table)
	}
	if pt.Bit != nil && (t.bits() || typ != tBool || *pt.Bit < 0 || *pt.Bit > 15) {
		p.At(path+".bit", "bit takes 0–15 and needs type bool on a register table")
	}
	if !t.bits() && typ == tBool && pt.Bit == nil {
		p.At(path+".bit", "missing: which bit (0–15) of the register holds the value")
	}
	pt.order = def
	if pt.Order != "" {
		o, ok := orderNames[pt.Order]
		if !ok {
			p.At(path+".order", "%q: want ABCD, CDAB, BADC or DCBA", pt.Order)
		}
		pt.order = o
	}
	if pt.Address < 0 || pt.Address+pt.words()-1 > 0xFFFF {
		p.At(path+".address", "%d: want 0–65535 (PDU addressing: register 40001 is holding 0)", pt.Address)
	}
	if pt.Scale == 0 {
		pt.Scale = 1
	}
	numeric := typ != tBool && typ != tBitfield
	if (pt.States != nil || pt.Above != nil || pt.Below != nil || pt.Increase != nil) && !numeric {
		p.At(path, "states, above, below and increase need a numeric type")
	}
	if typ == tBitfield {
		if len(pt.Bits) == 0 {
			p.At(path+".bits", "missing: a bitfield names its bits")
		}
		if pt.On != nil || pt.Off != nil {
			p.At(path, "a bitfield has on/off per bit, under bits")
		}
	} else if len(pt.Bits) > 0 {
		p.At(path+".bits", "bits need type bitfield")
	}
	checkSpec(p, path+".on", pt.On)
	checkSpec(p, path+".off", pt.Off)
	checkSpec(p, path+".increase", pt.Increase)
	for _, k := range sortedKeys(pt.States) {
		checkSpec(p, fmt.Sprintf("%s.states.%d", path, k), pt.States[k])
	}
	checkData(p, path+".data", pt.Data)
	if pt.Above != nil {
		checkSpec(p, path+".above", &pt.Above.EventSpec)
	}
	if pt.Below != nil {
		checkSpec(p, path+".below", &pt.Below.EventSpec)
	}
	seen := map[int]bool{}
	for i, b := range pt.Bits {
		bp := fmt.Sprintf("%s.bits[%d]", path, i)
		if b == nil {
			p.At(bp, "empty bit")
			continue
		}
		if b.Bit < 0 || b.Bit > 15 {
			p.At(bp+".bit", "%d: want 0–15", b.Bit)
		}
		if seen[b.Bit] {
			p.At(bp+".bit", "bit %d named twice", b.Bit)
		}
		seen[b.Bit] = true
		if !nameRE.MatchString(b.Name) {
			p.At(bp+".name", "%q: want a lower-case name like door1_open", b.Name)
		}
		checkSpec(p, bp+".on", b.On)
		checkSpec(p, bp+".off", b.Off)
		checkData(p, bp+".data", b.Data)
	}
	hasEvents := pt.On != nil || pt.Off != nil || pt.States != nil || pt.Above != nil || pt.Below != nil || pt.Increase != nil || len(pt.Bits) > 0
	switch pt.Class {
	case "":
		pt.event = hasEvents
	case "event":
		pt.event = true
	case "telemetry":
	default:
		p.At(path+".class", "%q: want event or telemetry", pt.Class)
	}
	if pt.Deadband < 0 {
		p.At(path+".deadband", "negative")
	}
}

func checkSpec(p *config.Reporter, path string, s *EventSpec) {
	if s == nil {
		return
	}
	checkKind(p, path+".kind", s.Kind)
	checkSeverity(p, path+".severity", s.Severity)
	checkData(p, path+".data", s.Data)
	if s.Held != nil {
		if s.Held.After <= 0 {
			p.At(path+".held.after", "missing: how long the state may last, like 2m")
		}
		checkKind(p, path+".held.kind", s.Held.Kind)
		checkSeverity(p, path+".held.severity", s.Held.Severity)
	}
}

// checkData keeps event data flat: config's decoder accepts any YAML
// under an interface, a profile's data holds plain values only.
func checkData(p *config.Reporter, path string, m map[string]any) {
	for _, k := range sortedKeys(m) {
		switch m[k].(type) {
		case map[string]any, map[any]any:
			p.At(path+"."+k, "want a plain value, got a mapping")
		case []any:
			p.At(path+"."+k, "want a plain value, got a list")
		}
	}
}

// parseStates turns the states keys into numbers, as the register values
// they match.
func (pt *Point) parseStates(p *config.Reporter, path string) {
	if pt.StateKeys == nil {
		return
	}
	pt.States = make(map[int64]*EventSpec, len(pt.StateKeys))
	for _, k := range sortedKeys(pt.StateKeys) {
		kp := path + ".states." + k
		v, err := strconv.ParseInt(strings.ReplaceAll(k, "_", ""), 0, 64)
		if err != nil {
			p.At(kp, "want a whole number, got %q", k)
			continue
		}
		if _, dup := pt.States[v]; dup {
			p.At(kp, "duplicate key %q", k)
			continue
		}
		pt.States[v] = pt.StateKeys[k]
	}
}

func checkKind(p *config.Reporter, path, k string) {
	switch {
	case k == "":
		p.At(path, "missing: an event kind like gate.opened")
	case !event.Kind(k).Valid():
		p.At(path, "%q: want lower-case dotted words like gate.opened", k)
	case !strings.HasPrefix(k, "device.") && !strings.HasPrefix(k, "gate.") && !strings.HasPrefix(k, "door.") && !strings.HasPrefix(k, "access."):
		p.At(path, "%q is not an Event v1 kind; known: %s", k, knownDeviceKinds())
	}
}

func knownDeviceKinds() string {
	var out []string
	for _, k := range event.Kinds() {
		s := string(k)
		if strings.HasPrefix(s, "device.") || strings.HasPrefix(s, "gate.") || strings.HasPrefix(s, "door.") || strings.HasPrefix(s, "access.") || s == "telemetry" {
			out = append(out, s)
		}
	}
	return strings.Join(out, ", ")
}

func checkSeverity(p *config.Reporter, path, s string) {
	if s != "" && !event.Severity(s).Valid() {
		p.At(path, "%q: want info, warning, alert or critical", s)
	}
}

// Point returns the point called name.
func (pr *Profile) Point(name string) *Point { return pr.byName[name] }

func sortedKeys[K interface{ ~string | ~int64 }, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

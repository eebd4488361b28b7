package modbus

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/configs"
	"github.com/lintel-edge/lintel/edge/config"
)

func TestShippedProfiles(t *testing.T) {
	names, err := fs.Glob(configs.FS, "profiles/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"barrier-gate", "access-4door", "relay-16ch", "rs485-sensor"} {
		found := false
		for _, n := range names {
			found = found || n == "profiles/"+want+".yaml"
		}
		if !found {
			t.Errorf("profile %s.yaml not shipped (the example config refers to it)", want)
		}
	}
	for _, n := range names {
		b, _ := fs.ReadFile(configs.FS, n)
		p, err := ParseProfile(n, b)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		// Every shipped profile must plan within its limits.
		dv := &device{prof: p, opts: defaultOptions()}
		ds := &devState{device: dv, pts: p.Points, breaks: map[Table]map[int]bool{}, dead: map[int]bool{}}
		ds.replan()
		if len(ds.evPlan)+len(ds.tlPlan) == 0 {
			t.Errorf("%s: no reads planned", n)
		}
	}
}

var profileErrorTests = []struct {
	name, yaml, want string
}{
	{"unknown key", "model: x\npoints:\n  - name: a\n    table: holding\n    adress: 3\n", `p.yaml:5:5: points[0].adress: unknown key "adress"`},
	{"bad table", "model: x\npoints:\n  - name: a\n    table: holdings\n", `p.yaml:4:5: points[0].table: "holdings": want coil, discrete, holding or input`},
	{"bad kind", "model: x\npoints:\n  - name: a\n    table: coil\n    on: {kind: Gate.Open}\n", `p.yaml:5:10: points[0].on.kind: "Gate.Open": want lower-case dotted words`},
	{"unknown kind", "model: x\npoints:\n  - name: a\n    table: coil\n    on: {kind: elder.alert.raised}\n", `points[0].on.kind: "elder.alert.raised" is not an Event v1 kind`},
	{"missing model", "points:\n  - name: a\n    table: coil\n", `p.yaml:1:1: model: missing`},
	{"no points", "model: x\n", `points: missing`},
	{"bool on register needs bit", "model: x\npoints:\n  - name: a\n    table: holding\n    type: bool\n", `points[0].bit: missing`},
	{"never read overlap", "model: x\nnever_read: [{table: holding, from: 0, to: 5}]\npoints:\n  - name: a\n    table: holding\n    address: 4\n", `points[0].address: point "a" lies in never_read[0]`},
	{"u32 at top", "model: x\npoints:\n  - name: a\n    table: holding\n    address: 65535\n    type: u32\n", `points[0].address: 65535: want 0–65535`},
	{"duplicate name", "model: x\npoints:\n  - {name: a, table: coil}\n  - {name: a, table: coil, address: 1}\n", `points[1].name: duplicate point name "a"`},
	{"confirm unknown point", "model: x\npoints:\n  - {name: a, table: coil}\ncommands:\n  open:\n    write: {table: coil, address: 0, value: 1}\n    confirm: {point: b, values: [1]}\n", `commands.open.confirm.point: unknown point "b"`},
	{"write to input", "model: x\npoints:\n  - {name: a, table: coil}\ncommands:\n  open:\n    write: {table: input, address: 0, value: 1}\n", `commands.open.write.table: "input": only coil and holding are writable`},
	{"wrong type", "model: x\nlimits: {max_registers: lots}\npoints:\n  - {name: a, table: coil}\n", `limits.max_registers: want a whole number, got "lots"`},
	{"over limit", "model: x\nlimits: {max_registers: 200}\npoints:\n  - {name: a, table: coil}\n", `limits.max_registers: 200: want 1–125`},
	{"bad yaml", "model: [x\n", `invalid YAML`},
	{"alias", "model: &m x\ndescription: *m\npoints:\n  - {name: a, table: coil}\n", `aliases are not supported`},
	{"held without after", "model: x\npoints:\n  - name: a\n    table: coil\n    on: {kind: gate.opened, held: {kind: gate.held_open}}\n", `points[0].on.held.after: missing`},
	{"states key not a number", "model: x\npoints:\n  - name: a\n    table: holding\n    states: {z: {kind: gate.opened}}\n", `p.yaml:5:14: points[0].states.z: want a whole number, got "z"`},
	{"states same number twice", "model: x\npoints:\n  - name: a\n    table: holding\n    states: {1: {kind: gate.opened}, 0x1: {kind: gate.closed}}\n", `points[0].states.1: duplicate key "1"`},
	{"nested data", "model: x\npoints:\n  - name: a\n    table: coil\n    data: {door: {n: 2}}\n", `p.yaml:5:12: points[0].data.door: want a plain value, got a mapping`},
	{"second document", "model: x\npoints:\n  - {name: a, table: coil}\n---\nmodel: y\n", `p.yaml:4:1: --: more than one YAML document`},
	{"states on bool", "model: x\npoints:\n  - name: a\n    table: coil\n    states: {1: {kind: gate.opened}}\n", `need a numeric type`},
}

func TestProfileErrors(t *testing.T) {
	for _, tt := range profileErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProfile("p.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("accepted, want %q", tt.want)
			}
			if _, ok := err.(config.Problems); !ok {
				t.Fatalf("error %T, want config.Problems", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got\n%v\nwant it to contain\n%s", err, tt.want)
			}
		})
	}
}

func FuzzParseProfile(f *testing.F) {
	for _, tt := range profileErrorTests {
		f.Add([]byte(tt.yaml))
	}
	names, _ := fs.Glob(configs.FS, "profiles/*.yaml")
	for _, n := range names {
		b, _ := fs.ReadFile(configs.FS, n)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile("f.yaml", b)
		if err != nil {
			if _, ok := err.(config.Problems); !ok {
				t.Fatalf("error %T is not config.Problems", err)
			}
			return
		}
		// An accepted profile must plan and its points must fit the map.
		for _, pt := range p.Points {
			if pt.Address < 0 || pt.Address+pt.words()-1 > 0xFFFF || pt.Scale == 0 {
				t.Fatalf("accepted point %+v", pt)
			}
		}
		dv := &device{prof: p, opts: defaultOptions()}
		ds := &devState{device: dv, pts: p.Points, breaks: map[Table]map[int]bool{}, dead: map[int]bool{}}
		ds.replan()
		for _, r := range append(ds.evPlan, ds.tlPlan...) {
			if r.count < 1 || r.count > 2000 || (!r.table.bits() && r.count > 125) {
				t.Fatalf("planned %+v", r)
			}
		}
	})
}

package config_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/lintel-edge/lintel/configs" // built-in profiles
	"github.com/lintel-edge/lintel/edge/config"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestProblemsGolden loads each broken file and compares every reported
// problem, with file:line:col, to its golden file.
func TestProblemsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		t.Run(name, func(t *testing.T) {
			_, err := config.Load(f)
			got := "ok\n"
			if err != nil {
				var ps config.Problems
				if !errors.As(err, &ps) {
					t.Fatalf("error is not Problems: %v", err)
				}
				got = err.Error() + "\n"
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ\n--- got\n%s--- want\n%s", got, want)
			}
		})
	}
}

func TestBrokenReportsEverythingAtOnce(t *testing.T) {
	_, err := config.Load("testdata/broken.yaml")
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("want Problems, got %v", err)
	}
	for _, want := range []string{
		`testdata/broken.yaml:3:3: gateway.compund: unknown key "compund" (did you mean "compound"?)`,
		`devices[0].address: "tcp://10.0.0.5" has no port`,
		`devices[1].id: duplicate device id "gate-north"`,
		`devices[1].profile: unknown profile "test-gat" (did you mean "test-gate"?)`,
		`devices[2].household: unknown household "h-9-9-999"`,
		`storage.max_bytes: "lots" is not a size`,
		`storage.max_age: "30" has no unit`,
		`log.level: "verbose"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing problem %q in:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a password leaked into the problems:\n%v", err)
	}
	for _, p := range ps {
		if p.Line == 0 || p.Col == 0 {
			t.Errorf("problem without position: %v", p)
		}
	}
}

func TestDefaults(t *testing.T) {
	c, err := config.Load("testdata/ok.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Gateway.DataDir != config.DefaultDataDir || c.Storage.MaxBytes != config.DefaultMaxBytes ||
		c.Storage.MaxAge != config.DefaultMaxAge || c.Storage.FlushWindow != config.DefaultFlushWindow ||
		c.Log.Level != "info" || c.Log.Format != "auto" {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.StorePath() != "/var/lib/lintel/events.db" {
		t.Errorf("StorePath = %s", c.StorePath())
	}
}

func TestDumpRedacts(t *testing.T) {
	src := `
gateway: {id: gw-1, compound: c-1}
devices:
  - id: cam
    kind: camera
    driver: rtsp
    address: rtsp://admin:CANARY-1@10.0.0.9:554/s
    profile: whatever
`
	// The profile is unknown, so Parse fails; build the dump from a valid
	// file instead and check the URL redaction on its own.
	if _, err := config.Parse("x.yaml", []byte(src)); err == nil || strings.Contains(err.Error(), "CANARY-1") {
		t.Fatalf("want a problem without the password, got %v", err)
	}
	if got := config.RedactURL("rtsp://admin:CANARY-1@10.0.0.9:554/s"); got != "rtsp://admin:REDACTED@10.0.0.9:554/s" {
		t.Errorf("RedactURL = %s", got)
	}
	if got := config.RedactURL("rtsp://admin:CA%NARY@h/s"); strings.Contains(got, "NARY") {
		t.Errorf("RedactURL of a malformed URL leaked: %s", got)
	}
	s := config.NewSecret("CANARY-2")
	if s.String() != "REDACTED" {
		t.Error("Secret.String leaks")
	}
	if v, _ := s.Reveal(); v != "CANARY-2" {
		t.Error("Reveal")
	}
}

func TestSecretSources(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	os.WriteFile(p, []byte("from-file\n"), 0o600)
	t.Setenv("LINTEL_TEST_PW", "from-env")
	for src, want := range map[string]string{"file:" + p: "from-file", "env:LINTEL_TEST_PW": "from-env", "literal": "literal"} {
		var s config.Secret
		if err := s.UnmarshalConfigScalar(src); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Reveal(); err != nil || got != want {
			t.Errorf("%s: %q %v", src, got, err)
		}
	}
	var s config.Secret
	if s.UnmarshalConfigScalar("file:relative") == nil {
		t.Error("relative secret file accepted")
	}
}

func TestSizeAndDuration(t *testing.T) {
	for in, want := range map[string]config.Size{"0": 0, "512": 512, "64KiB": 64 << 10, "256MiB": 256 << 20, "1GiB": 1 << 30, "2 MB": 2e6} {
		var s config.Size
		if err := s.UnmarshalConfigScalar(in); err != nil || s != want {
			t.Errorf("Size(%q) = %d, %v", in, s, err)
		}
	}
	for _, bad := range []string{"", "-1", "1.5GiB", "lots", "99999999999999GiB"} {
		var s config.Size
		if s.UnmarshalConfigScalar(bad) == nil {
			t.Errorf("Size(%q) accepted", bad)
		}
	}
	var d config.Duration
	if d.UnmarshalConfigScalar("90") == nil || d.UnmarshalConfigScalar("-5s") == nil {
		t.Error("bad durations accepted")
	}
}

// Sections owned by other packages are decoded with the same strictness.
func TestNodeDecode(t *testing.T) {
	config.RegisterSink("testsink", func(r *config.Reporter, c *config.Config, n config.Node) {
		v := struct {
			URL   string          `yaml:"url"`
			Batch int             `yaml:"batch"`
			Pass  config.Secret   `yaml:"password"`
			Wait  config.Duration `yaml:"wait"`
		}{Batch: 100}
		n.Decode(r, &v)
		if v.URL == "" {
			r.At(n.Path()+".url", "missing")
		}
	})
	_, err := config.Parse("s.yaml", []byte("gateway: {id: g, compound: c}\nsinks:\n  testsink:\n    batch: many\n    pasword: x\n"))
	want := "s.yaml:3:3: sinks.testsink.url: missing\n" +
		"s.yaml:4:12: sinks.testsink.batch: want a whole number, got \"many\"\n" +
		"s.yaml:5:5: sinks.testsink.pasword: unknown key \"pasword\" (did you mean \"password\"?)"
	if err == nil || err.Error() != want {
		t.Errorf("got:\n%v\nwant:\n%s", err, want)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte("gateway: &a {id: *a}"))
	f.Add([]byte("devices: [{options: {a: [1, {b: 2}]}}]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := config.Parse("f.yaml", b)
		if err != nil {
			var ps config.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("error is not a non-empty Problems: %v", err)
			}
			for _, p := range ps {
				if p.Msg == "" {
					t.Fatalf("empty problem: %+v", p)
				}
			}
			return
		}
		if c.Gateway.ID == "" {
			t.Fatal("accepted a config without gateway id")
		}
		_ = c.Dump()
	})
}

func TestAliasBombRefused(t *testing.T) {
	src := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h"} {
		src += n + ": &" + n + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = n
	}
	src += "gateway: {id: g, compound: c}\nrules: {x: *h}\n"
	r := config.NewReporter("bomb.yaml")
	var v map[string]any
	done := make(chan struct{})
	go func() { r.DecodeYAML([]byte(src), &v); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("an alias bomb took more than 10s")
	}
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "alias") {
		t.Errorf("alias bomb accepted: %v", err)
	}
}

func TestIntKeyedMapsAndSecondDocument(t *testing.T) {
	r := config.NewReporter("p.yaml")
	var v struct {
		States map[int]string `yaml:"states"`
	}
	r.DecodeYAML([]byte("states: {0: closed, 1: open, x: bad}\n---\nmore: 1\n"), &v)
	err := r.Err()
	if v.States[1] != "open" || v.States[0] != "closed" {
		t.Errorf("states = %v", v.States)
	}
	if err == nil || !strings.Contains(err.Error(), `key "x": want a whole number`) || !strings.Contains(err.Error(), "more than one YAML document") {
		t.Errorf("problems: %v", err)
	}
}

// The budget also holds where edge/config's own decoder expands aliases
// (lists of lists in a typed struct).
func TestAliasBombTyped(t *testing.T) {
	src := "a: &a [[x, x, x, x, x, x, x, x, x, x]]\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g"} {
		src += n + ": &" + n + " [" + strings.Repeat("*"+prev+", ", 9) + "*" + prev + "]\n"
		prev = n
	}
	src += "z: *g\n"
	type deep = [][][][][][][][]string
	var v struct {
		A, B, C, D, E, F, G, Z deep
	}
	r := config.NewReporter("bomb.yaml")
	wall, cpu := time.Now(), cpuTime()
	r.DecodeYAML([]byte(src), &v)
	// The work the budget allows, not the share of the machine this
	// process got: under -race with both cores busy the wall time alone
	// passed 10 s (1.5 s of CPU).
	if took := min(time.Since(wall), cpuTime()-cpu); took > 10*time.Second {
		t.Fatalf("decoding took %s (wall %s, CPU %s)", took, time.Since(wall), cpuTime()-cpu)
	}
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "too deeply aliased (over 200000 values)") {
		t.Errorf("alias bomb accepted: %.500v", err)
	}
}

// cpuTime is the CPU time the test process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 1 << 62
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSyntaxErrorPositions: a syntax error is reported where it is, not
// at the line go-yaml was parsing when it noticed (issue 16: a tab on
// line 3 came out as 2:1).
func TestSyntaxErrorPositions(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{"gateway:\n  id: gw-1\n\tcompound: c-1\n", "x.yaml:3:1: invalid YAML: a tab in the indentation"},
		{"gateway:\n  id: gw-1\n  \tcompound: c-1\n", "x.yaml:3:3: invalid YAML: a tab in the indentation"},
		{"gateway:\n  id: 'gw-1\n  compound: c-1\n", "x.yaml:2:7: invalid YAML: the ' that starts this value is never closed"},
		{"gateway:\n  id: gw-1\n    compound: c-1\n", "x.yaml:3:5: invalid YAML: this line is indented more than line 2"},
		{"gateway:\n  id: gw-1\n  compound: c-1\nlog:\n    level: info\n  format: text\n", "x.yaml:6:3: invalid YAML: the indentation (column 3) matches no block above"},
		{"gateway:\n  id: gw-1\n  compound: a: b\n", `x.yaml:3:14: invalid YAML: a value containing ": " must be quoted`},
	} {
		_, err := config.Parse("x.yaml", []byte(tt.src))
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q:\n got %v\nwant %s…", tt.src, err, tt.want)
		}
	}
}

// TestGatewayIDsFitEveryBroker: gateway.id and gateway.compound are levels
// of every MQTT topic of the uplink, so they are limited to what every
// broker accepts there (issue 19): a '.' drops the connection on NATS,
// '+', '#' and '/' are topic syntax. Each refusal names the position and
// the reason.
func TestGatewayIDsFitEveryBroker(t *testing.T) {
	for _, tt := range []struct {
		id, compound string
		want         string // "" = valid
	}{
		{"gw-01", "c-01", ""},
		{"hf_0001", "xiaoqu-3", ""},
		{"gw.01", "c-01", `x.yaml:2:3: gateway.id: "gw.01": '.' is not allowed: the id is a level of every MQTT topic and NATS's MQTT listener rejects '.' in topics`},
		{"gw-01", "hefei.c1", `x.yaml:3:3: gateway.compound: "hefei.c1": '.' is not allowed`},
		{"gw+1", "c-01", `x.yaml:2:3: gateway.id: "gw+1": '+', '#' and '/' are MQTT topic wildcards`},
		{"'gw#1'", "c-01", `gateway.id: "gw#1": '+', '#' and '/'`},
		{"gw/1", "c-01", `gateway.id: "gw/1": '+', '#' and '/'`},
		{"gw-01", "'c 01'", `gateway.compound: "c 01": no spaces`},
		{"GW-01", "c-01", `gateway.id: "GW-01": use 1–63 lower-case letters, digits, '_' or '-'`},
	} {
		t.Run(tt.id+"/"+tt.compound, func(t *testing.T) {
			src := fmt.Sprintf("gateway:\n  id: %s\n  compound: %s\n  data_dir: /var/lib/lintel\n", tt.id, tt.compound)
			_, err := config.Parse("x.yaml", []byte(src))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v\nwant %s", err, tt.want)
			}
		})
	}
}

package modbus

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// needTools skips (or, in CI, fails) when a peer tool is missing.
func needTools(t *testing.T, hint string, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not installed (%s)", tool, hint)
			}
			t.Skipf("%s not installed; %s", tool, hint)
		}
	}
}

// socatPair starts a linked pty pair and returns its two paths.
func socatPair(t *testing.T, dir string) (a, b string) {
	t.Helper()
	a, b = filepath.Join(dir, "ttyV0"), filepath.Join(dir, "ttyV1")
	cmd := exec.Command("socat", "pty,raw,echo=0,link="+a, "pty,raw,echo=0,link="+b)
	must(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(a); err == nil {
			if _, err := os.Stat(b); err == nil {
				return a, b
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("socat did not create the pty pair")
	return
}

// buildUnitTestServer compiles libmodbus's unit-test-server with its RTU
// port replaced by tty.
func buildUnitTestServer(t *testing.T, dir, tty string) string {
	t.Helper()
	const ex = "/usr/share/doc/libmodbus-dev/examples"
	src, err := os.ReadFile(ex + "/unit-test-server.c")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("libmodbus examples missing: %v", err)
		}
		t.Skipf("libmodbus examples missing (apt-get install libmodbus-dev): %v", err)
	}
	src = bytes.ReplaceAll(src, []byte("/dev/ttyUSB0"), []byte(tty))
	must(t, os.WriteFile(filepath.Join(dir, "uts.c"), src, 0o644))
	h, err := os.ReadFile(ex + "/unit-test.h")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "unit-test.h"), h, 0o644))
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "libmodbus").Output()
	if err != nil {
		t.Fatalf("pkg-config libmodbus: %v", err)
	}
	bin := filepath.Join(dir, "unit-test-server")
	args := append([]string{"-o", bin, filepath.Join(dir, "uts.c")}, strings.Fields(string(flags))...)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// utsProfile maps libmodbus's unit-test-server (unit-test.h): registers
// at 0x160 (the test writes 0x022B at 0x160 and 0x0064 at 0x162 first,
// as libmodbus's own client does); 0x172 answers after 500 ms; a read of
// exactly 2 registers gets a deliberately wrong count; one input
// register at 0x108 holds 10; coils at 0x130 start 0xCD; input bits at
// 0x1C4 start 0xAC.
const utsProfile = `model: libmodbus unit-test-server
limits: {max_gap: 0}
points:
  - {name: r160, table: holding, address: 0x160, class: telemetry}
  - {name: r162, table: holding, address: 0x162, class: telemetry}
  - {name: ir108, table: input, address: 0x108, class: telemetry}
  - {name: coil130, table: coil, address: 0x130, class: telemetry}
  - {name: coil131, table: coil, address: 0x131, class: telemetry}
  - {name: di1c4, table: discrete, address: 0x1C4, class: telemetry}
  - {name: di1c6, table: discrete, address: 0x1C6, class: telemetry}
  - {name: slow, table: holding, address: 0x172, class: event}
`

// TestLibmodbusUnitTestServer runs the driver against libmodbus as an
// independent RTU slave over a socat pty pair, including its late-reply
// address: every poll of 0x172 times out and its reply arrives 200 ms
// later, during the silence that drains it, and no late reply may ever be
// read as another register's value.
func TestLibmodbusUnitTestServer(t *testing.T) {
	needTools(t, "apt-get install socat gcc pkg-config libmodbus-dev", "socat", "gcc", "pkg-config")
	dir := t.TempDir()
	client, server := socatPair(t, dir)
	bin := buildUnitTestServer(t, dir, server)
	srv := exec.Command(bin, "rtu")
	logf, err := os.Create(filepath.Join(dir, "uts.log"))
	must(t, err)
	defer logf.Close()
	srv.Stdout, srv.Stderr = logf, logf
	must(t, srv.Start())
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	time.Sleep(100 * time.Millisecond)

	// Seed the holding registers and a coil, as libmodbus's client test
	// does, so a stale reply (value 0) cannot pass for a fresh one.
	l, err := newMBLink(linkConfig{scheme: "rtu", key: client, baud: 115200, parity: "none", stopBits: 1, timeout: 300 * time.Millisecond}, testLogger(t))
	must(t, err)
	must(t, l.open())
	must(t, l.write(17, Holding, 0x160, 0x022B))
	must(t, l.write(17, Holding, 0x162, 0x0064))
	must(t, l.write(17, Coil, 0x130, 1))
	must(t, l.close())

	pdir := filepath.Join(dir, "profiles")
	must(t, os.MkdirAll(pdir, 0o755))
	must(t, os.WriteFile(filepath.Join(pdir, "uts.yaml"), []byte(utsProfile), 0o644))
	cfg := parseConfig(t, fmt.Sprintf(`
  - {id: uts, kind: sensor, driver: modbus, address: "rtu://%s", profile: uts,
     options: {unit: 17, baud: 115200, poll_interval: 50ms, telemetry_interval: 100ms, timeout: 300ms,
               telemetry_report: 1ms, offline_after: 2, online_after: 1, max_backoff: 1s}}
`, client), dir)
	rec := newRecorder()
	buses := startBuses(t, cfg, rec, nil)
	deadline := time.Now().Add(8 * time.Second)
	for time.Now().Before(deadline) {
		st := buses[0].Stats()
		if st.Timeouts >= 2 && st.Resyncs >= 2 && countTelemetry(rec, "r160") >= 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	st := buses[0].Stats()
	want := map[string]float64{"r160": 0x022B, "r162": 0x64, "ir108": 10, "coil130": 1, "coil131": 0, "di1c4": 0, "di1c6": 1}
	seen := map[string]int{}
	for _, e := range rec.all() {
		if e.Kind != event.Telemetry {
			continue
		}
		d := dataOf(t, e)
		p := d["point"].(string)
		seen[p]++
		if d["value"] != want[p] {
			t.Errorf("%s = %v, want %v (stats %+v)", p, d["value"], want[p], st)
		}
	}
	for p := range want {
		if seen[p] == 0 {
			t.Errorf("point %s never read", p)
		}
	}
	// Each late reply (7 bytes) arrives during the silence after its
	// timeout and is drained there.
	if st.Timeouts < 2 || st.Resyncs < 2 || st.StrayBytes < 2*7 {
		t.Errorf("want ≥2 late replies drained; stats %+v", st)
	}
	if seen["r160"] < 3 {
		t.Errorf("r160 read %d times after the late replies", seen["r160"])
	}
	if t.Failed() {
		out, _ := os.ReadFile(logf.Name())
		t.Logf("unit-test-server output (tail):\n%s", out[max(0, len(out)-3000):])
	}
}

func countTelemetry(r *recorder, point string) int {
	n := 0
	for _, e := range r.all() {
		if e.Kind == event.Telemetry && bytes.Contains(e.Data, []byte(`"point":"`+point+`"`)) {
			n++
		}
	}
	return n
}

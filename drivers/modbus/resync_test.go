package modbus

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// counterSlave is testdata/counterslave.c, a libmodbus RTU slave whose
// registers follow the clock, running on one end of a socat pty pair.
type counterSlave struct {
	t        *testing.T
	bin, tty string
	unit     int
	base     time.Time
	tick     time.Duration
	cmd      *exec.Cmd
	out      bytes.Buffer
}

// buildCounterSlave compiles testdata/counterslave.c into dir.
func buildCounterSlave(t *testing.T, dir string) string {
	t.Helper()
	needTools(t, "apt-get install socat gcc pkg-config libmodbus-dev", "socat", "gcc", "pkg-config")
	flags, err := exec.Command("pkg-config", "--cflags", "--libs", "libmodbus").Output()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("pkg-config libmodbus: %v", err)
		}
		t.Skipf("libmodbus missing (apt-get install libmodbus-dev): %v", err)
	}
	src, err := filepath.Abs("testdata/counterslave.c")
	must(t, err)
	bin := filepath.Join(dir, "counterslave")
	args := append([]string{"-Wall", "-o", bin, src}, strings.Fields(string(flags))...)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

func newCounterSlave(t *testing.T, bin, tty string, unit int, tick time.Duration) *counterSlave {
	s := &counterSlave{t: t, bin: bin, tty: tty, unit: unit, tick: tick, base: time.Now().Add(-time.Second)}
	t.Cleanup(func() {
		if s.cmd != nil {
			s.kill()
		}
		if t.Failed() {
			t.Logf("counterslave output:\n%s", s.out.String())
		}
	})
	return s
}

func (s *counterSlave) start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, s.tty, fmt.Sprint(s.unit), fmt.Sprint(s.base.UnixMilli()), fmt.Sprint(s.tick.Milliseconds()))
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	must(s.t, s.cmd.Start())
}

// kill stops the slave the hard way, as a power cut would.
func (s *counterSlave) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// at is the counter the slave serves at time x.
func (s *counterSlave) at(x time.Time) int64 {
	return (x.UnixMilli() - s.base.UnixMilli()) / s.tick.Milliseconds()
}

// counterProfile maps testdata/counterslave.c: the gate state is read on
// its own (function 03 at 10); the telemetry cycle reads the counter with
// function 03, again with function 04, and its low bits as coils
// (function 01, another reply length), so a reply taken for the wrong
// request shows as every kind of mismatch the library reports, and as a
// silent one when the shapes agree.
const counterProfile = `model: libmodbus counter slave
limits: {max_gap: 0}
points:
  - name: gate
    table: holding
    address: 10
    states: {0: {kind: gate.closed}, 1: {kind: gate.opened}}
  - {name: count, table: holding, address: 0, class: telemetry}
  - {name: count_in, table: input, address: 0, class: telemetry}
  - {name: bit0, table: coil, address: 0, class: telemetry}
  - {name: bit1, table: coil, address: 1, class: telemetry}
  - {name: bit2, table: coil, address: 2, class: telemetry}
`

// TestRTUResyncAfterSlaveRestart is issue 17 as a test: the bus polls a
// libmodbus RTU slave over a socat pty pair, the slave is killed, the
// device goes offline, and the slave is started again. While it was down
// the gateway's requests piled up in the pty; the restarted slave answers
// all of them at once, so replies arrive that belong to no request in
// flight. The slave is restarted twice: at once (its burst meets the
// bus's next request on the line: a mismatch, then a resync and a retry)
// and just after an attempt timed out (the burst arrives during the
// silence that follows, and is drained there: no mismatch at all). Each
// time the device must be back online within 10 s and stay
// online; over the whole run every counter value must be as fresh as the
// exchange it came from and never go back, and the gate's state events
// must alternate (never gate.closed twice in a row).
func TestRTUResyncAfterSlaveRestart(t *testing.T) {
	dir := t.TempDir()
	bin := buildCounterSlave(t, dir)
	client, server := socatPair(t, dir)
	slave := newCounterSlave(t, bin, server, 17, 10*time.Millisecond)
	slave.start()

	pdir := filepath.Join(dir, "profiles")
	must(t, os.MkdirAll(pdir, 0o755))
	must(t, os.WriteFile(filepath.Join(pdir, "counter.yaml"), []byte(counterProfile), 0o644))
	cfg := parseConfig(t, fmt.Sprintf(`
  - {id: gate, kind: barrier, driver: modbus, address: "rtu://%s", profile: counter,
     options: {unit: 17, baud: 115200, poll_interval: 200ms, telemetry_interval: 200ms, max_backoff: 2s}}
`, client), pdir)
	rec := newRecorder()
	buses := startBuses(t, cfg, rec, nil)
	bus := buses[0]
	dev := bus.devs[0]

	rec.wait(t, 0, 10*time.Second, "device.online", kindFrom(event.DeviceOnline, "gate"))
	waitTelemetry(t, rec, 0, "count", 3, 10*time.Second)

	for _, phase := range []string{"at once", "during a silence"} {
		from := len(rec.all())
		slave.kill()
		off := rec.wait(t, from, 10*time.Second, "device.offline after the kill", kindFrom(event.DeviceOffline, "gate"))
		nOff := indexOf(rec, off)
		st0 := bus.Stats()
		if phase == "during a silence" {
			// A timeout is counted as the silence after it begins, and
			// that lasts late_reply (over 500 ms).
			deadline := time.Now().Add(10 * time.Second)
			for bus.Stats().Timeouts == st0.Timeouts && time.Now().Before(deadline) {
				time.Sleep(2 * time.Millisecond)
			}
			st0 = bus.Stats()
		}
		restart := time.Now()
		slave.start()
		on := rec.wait(t, nOff, 10*time.Second, "device.online after the restart "+phase, kindFrom(event.DeviceOnline, "gate"))
		nOn := indexOf(rec, on)
		// Stay a while: a flapping line shows within a few polls.
		waitTelemetry(t, rec, nOn, "count", 6, 10*time.Second)
		st := bus.Stats()
		t.Logf("restart %s: back online after %s; %d mismatched replies, %d stray bytes drained, %d reopens",
			phase, on.Time.Sub(restart).Round(time.Millisecond), st.CRCErrors-st0.CRCErrors, st.StrayBytes-st0.StrayBytes,
			st.Reopens-st0.Reopens)
		if back := on.Time.Sub(restart); back > 10*time.Second {
			t.Errorf("back online only %s after the restart", back)
		}
		if st.StrayBytes == st0.StrayBytes {
			t.Errorf("restart %s: the restarted slave's burst was not drained; stats %+v", phase, st)
		}
		if phase == "during a silence" && st.CRCErrors != st0.CRCErrors {
			t.Errorf("restart during a silence: %d mismatched replies; the drain should have taken the burst",
				st.CRCErrors-st0.CRCErrors)
		}
		for _, e := range rec.all()[nOn+1:] {
			if e.Kind == event.DeviceOffline || e.Kind == event.DeviceOnline {
				t.Errorf("%s at %s after coming back: the device flaps", e.Kind, e.Time.Format("15:04:05.000"))
			}
		}
	}

	evs := rec.all()
	// A value is fresh if the slave held it during the exchange that
	// returned it: at most the device's timeout (plus scheduling slack on
	// a loaded machine) before the event was stamped.
	maxAge := dev.timeout + 200*time.Millisecond
	lag := checkCounter(t, evs, slave, maxAge, "count", "count_in")
	t.Logf("counter readings at most %s behind the slave (bound %s)", lag, maxAge)
	checkAlternates(t, evs)
	checkOnlineOffline(t, evs)
}

func indexOf(r *recorder, e *event.Event) int {
	for i, x := range r.all() {
		if x == e {
			return i
		}
	}
	return -1
}

// waitTelemetry waits for n telemetry events of point after index from.
func waitTelemetry(t *testing.T, r *recorder, from int, point string, n int, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		evs := r.all()
		if countPoint(evs[min(from, len(evs)):], point) >= n {
			return
		}
		select {
		case <-r.ch:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("fewer than %d readings of %s within %s", n, point, d)
		}
	}
}

func countPoint(evs []*event.Event, point string) int {
	n := 0
	for _, e := range evs {
		if e.Kind == event.Telemetry && bytes.Contains(e.Data, []byte(`"point":"`+point+`"`)) {
			n++
		}
	}
	return n
}

// checkCounter fails on any counter reading older than maxAge at the time
// it was reported, newer than the slave could have served, or lower than
// the previous reading of the same point. It returns the largest lag
// seen: how far behind the slave's counter a reading was when reported.
func checkCounter(t *testing.T, evs []*event.Event, s *counterSlave, maxAge time.Duration, points ...string) time.Duration {
	t.Helper()
	last := map[string]float64{}
	var worst time.Duration
	for _, e := range evs {
		if e.Kind != event.Telemetry {
			continue
		}
		d := dataOf(t, e)
		p := d["point"].(string)
		if !containsStr(points, p) {
			continue
		}
		v := d["value"].(float64)
		lo, hi := float64(s.at(e.Time.Add(-maxAge))), float64(s.at(e.Time)+1)
		if v < lo || v > hi {
			t.Errorf("%s = %v at %s: the slave served %v–%v in the %s before: a stale reply was taken as current",
				p, v, e.Time.Format("15:04:05.000"), lo, hi, maxAge)
		}
		if prev, ok := last[p]; ok && v < prev {
			t.Errorf("%s went back from %v to %v at %s", p, prev, v, e.Time.Format("15:04:05.000"))
		}
		last[p] = v
		worst = max(worst, time.Duration(float64(s.at(e.Time))-v)*s.tick)
	}
	return worst
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// checkAlternates fails when a device reports the same gate state twice
// in a row: a value that is not a gate state was read in between.
func checkAlternates(t *testing.T, evs []*event.Event) {
	t.Helper()
	last := map[string]event.Kind{}
	for _, e := range evs {
		if e.Kind != event.GateClosed && e.Kind != event.GateOpened {
			continue
		}
		if last[e.Device] == e.Kind {
			t.Errorf("%s: %s twice in a row (at %s)", e.Device, e.Kind, e.Time.Format("15:04:05.000"))
		}
		last[e.Device] = e.Kind
	}
}

// checkOnlineOffline fails when device.online or device.offline repeats
// without the other in between.
func checkOnlineOffline(t *testing.T, evs []*event.Event) {
	t.Helper()
	last := map[string]event.Kind{}
	for _, e := range evs {
		if e.Kind != event.DeviceOnline && e.Kind != event.DeviceOffline {
			continue
		}
		if last[e.Device] == e.Kind {
			t.Errorf("%s: %s twice in a row (at %s)", e.Device, e.Kind, e.Time.Format("15:04:05.000"))
		}
		last[e.Device] = e.Kind
	}
}

// TestScanFindsLibmodbusUnit scans for a libmodbus RTU slave (unit 17)
// with different units asked before it. libmodbus takes the frame that
// follows a request for another unit as that unit's reply, for up to
// 500 ms: asked too soon after an absent unit, it swallows the request
// (and may fall out of step and quit: "modbus_receive: Connection timed
// out" in its output). Scanned with the CLI's default timeout (300 ms:
// the old recovery, a wait as long as the timeout, happened to leave
// libmodbus enough time) and with 200 ms, as an installer speeding up a
// full scan would set (the old recovery asked the next unit 400 ms after
// an absent one, and libmodbus swallowed it).
func TestScanFindsLibmodbusUnit(t *testing.T) {
	dir := t.TempDir()
	bin := buildCounterSlave(t, dir)
	client, server := socatPair(t, dir)
	slave := newCounterSlave(t, bin, server, 17, 10*time.Millisecond)
	slave.start()
	for _, timeout := range []time.Duration{200 * time.Millisecond, 300 * time.Millisecond} {
		for _, units := range [][]int{{17}, {16, 17}, {1, 2, 17}, {17, 18, 17}} {
			t.Run(fmt.Sprint(timeout, units), func(t *testing.T) {
				target := ProbeTarget{Address: "rtu://" + client, Baud: 115200, Timeout: timeout}
				found, cnt, err := ScanUnits(context.Background(), target, units, testLogger(t), nil)
				must(t, err)
				n := 0
				for _, u := range units {
					if u == 17 {
						n++
					}
				}
				if len(found) != n {
					t.Fatalf("found %+v, want unit 17 %d times; counts %+v", found, n, cnt)
				}
				for _, f := range found {
					// Late is still found: on a heavily loaded machine the
					// pty round trip can exceed the timeout.
					if f.Unit != 17 || f.Exception != "" {
						t.Errorf("found %+v", f)
					}
				}
			})
		}
	}
}

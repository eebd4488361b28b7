package modbus

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
)

func startTCPSim(t *testing.T, sim *Sim) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := freePort(t)
	done := make(chan error, 1)
	go func() { done <- sim.ServeTCP(ctx, addr) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(50 * time.Millisecond)
	return addr
}

// TestSplitOnIllegalAddress: a device that refuses reads of unmapped
// addresses gets its merged read split where the hole is, and a point it
// refuses alone is reported and dropped.
func TestSplitOnIllegalAddress(t *testing.T) {
	const prof = `model: strict device
limits: {max_gap: 20}
points:
  - {name: a, table: holding, address: 0, class: telemetry, sim: {initial: 1}}
  - {name: b, table: holding, address: 1, class: telemetry, sim: {initial: 2}}
  - {name: c, table: holding, address: 10, class: telemetry, sim: {initial: 3}}
  - {name: ghost, table: holding, address: 15, class: telemetry}
`
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "strict.yaml"), []byte(prof), 0o644))
	p, err := ParseProfile("strict.yaml", []byte(prof))
	must(t, err)
	sim := NewSim(SimWire{}, testLogger(t))
	d := sim.Add(1, p)
	d.Strict = true
	delete(d.maps[Holding], 15) // this firmware lacks "ghost"
	addr := startTCPSim(t, sim)
	cfg := parseConfig(t, fmt.Sprintf(`
  - {id: s, kind: sensor, driver: modbus, address: "tcp://%s", profile: strict, options: {unit: 1, telemetry_interval: 100ms}}
`, addr), dir)
	rec := newRecorder()
	buses := startBuses(t, cfg, rec, nil)
	e := rec.wait(t, 0, 5*time.Second, "device.fault for ghost", kindFrom(event.DeviceFault, "s"))
	if d := dataOf(t, e); d["point"] != "ghost" {
		t.Fatalf("fault for %v", d)
	}
	for _, pt := range []string{"a", "b", "c"} {
		rec.wait(t, 0, 3*time.Second, "telemetry "+pt, func(e *event.Event) bool {
			return e.Kind == event.Telemetry && dataOf(t, e)["point"] == pt
		})
	}
	time.Sleep(300 * time.Millisecond)
	st := buses[0].Stats()
	if st.Devices[0].PlanRequests != 2 {
		t.Errorf("plan has %d requests after splitting, want 2 (a+b, c)", st.Devices[0].PlanRequests)
	}
	if st.Devices[0].State != "online" {
		t.Errorf("state %q: exceptions mean the device answers", st.Devices[0].State)
	}
	ex := st.Exceptions
	time.Sleep(300 * time.Millisecond)
	if buses[0].Stats().Exceptions != ex {
		t.Error("exceptions keep coming: the split was not remembered")
	}
}

// TestOnlineOfflineHysteresis: a device that stops answering goes
// offline after offline_after failed polls, is retried with backoff, and
// comes back after online_after good ones.
func TestOnlineOfflineHysteresis(t *testing.T) {
	sim := NewSim(SimWire{}, testLogger(t))
	sim.Add(1, loadProfile(t, "barrier-gate"))
	addr := startTCPSim(t, sim)
	cfg := parseConfig(t, fmt.Sprintf(`
  - {id: g, kind: barrier, driver: modbus, address: "tcp://%s", profile: barrier-gate,
     options: {unit: 1, poll_interval: 50ms, offline_after: 3, online_after: 2, max_backoff: 1s}}
`, addr))
	rec := newRecorder()
	buses := startBuses(t, cfg, rec, nil)
	rec.wait(t, 0, 3*time.Second, "online", kindFrom(event.DeviceOnline, "g"))
	must(t, sim.Configure(1, func(d *SimDevice) { d.Silent = true }))
	n := len(rec.all())
	e := rec.wait(t, n, 5*time.Second, "offline", kindFrom(event.DeviceOffline, "g"))
	if fp := dataOf(t, e)["failed_polls"]; fp != 3.0 {
		t.Errorf("offline after %v failed polls, want 3", fp)
	}
	// Backoff: over 1.5 s a dead device gets a handful of attempts, not 30.
	r0 := buses[0].Stats().Devices[0].Requests
	time.Sleep(1500 * time.Millisecond)
	if got := buses[0].Stats().Devices[0].Requests - r0; got > 6 {
		t.Errorf("%d attempts in 1.5 s on a dead device: backoff not applied", got)
	}
	must(t, sim.Configure(1, func(d *SimDevice) { d.Silent = false }))
	n = len(rec.all())
	rec.wait(t, n, 5*time.Second, "online again", kindFrom(event.DeviceOnline, "g"))
	for _, e := range rec.all()[n:] {
		if e.Kind == event.DeviceOffline {
			t.Error("flapped offline while recovering")
		}
	}
}

// TestCommandJumpsAhead: on a busy 9600-baud bus (every poll a
// 125-register read of 281 ms), a gate command waits at most for the
// transaction in flight, not for the poll queue.
func TestCommandJumpsAhead(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time wire timing")
	}
	dir := t.TempDir()
	big := "model: big\npoints:\n"
	for a := 0; a < 125; a++ {
		big += fmt.Sprintf("  - {name: r%d, table: holding, address: %d, class: telemetry}\n", a, a)
	}
	must(t, os.WriteFile(filepath.Join(dir, "big.yaml"), []byte(big), 0o644))
	pb, err := ParseProfile("big.yaml", []byte(big))
	must(t, err)
	sim := NewSim(SimWire{Baud: 9600, Turnaround: time.Millisecond}, testLogger(t))
	var devs string
	path := ""
	for u := 2; u <= 7; u++ {
		sim.Add(uint8(u), pb)
	}
	g := sim.Add(1, loadProfile(t, "barrier-gate"))
	g.CommandDelay = 50 * time.Millisecond
	path = startRTUSim(t, sim)
	for u := 2; u <= 7; u++ {
		devs += fmt.Sprintf("  - {id: big%d, kind: sensor, driver: modbus, address: \"rtu://%s\", profile: big, options: {unit: %d, baud: 9600, telemetry_interval: 100ms}}\n", u, path, u)
	}
	devs += fmt.Sprintf("  - {id: gate, kind: barrier, driver: modbus, address: \"rtu://%s\", profile: barrier-gate, options: {unit: 1, baud: 9600, poll_interval: 300ms, telemetry_interval: 1h}}\n", path)
	cfg := parseConfig(t, devs, dir)
	rec := newRecorder()
	cmds := edge.NewCommands(rec)
	startBuses(t, cfg, rec, cmds)
	rec.wait(t, 0, 10*time.Second, "gate online", kindFrom(event.DeviceOnline, "gate"))
	time.Sleep(500 * time.Millisecond) // the big devices keep the bus saturated
	// Event points pre-empt telemetry: a forced opening is seen within
	// the gate's poll interval plus the transaction in flight.
	n := len(rec.all())
	t0 := time.Now()
	must(t, sim.Set(1, "gate_state", 2))
	rec.wait(t, n, 3*time.Second, "forced open", kindFrom(event.GateForcedOpen, "gate"))
	if took := time.Since(t0); took > time.Second {
		t.Errorf("forced opening seen after %s on a saturated bus: telemetry was not pre-empted", took)
	} else {
		t.Logf("forced opening seen after %s on a saturated 9600 baud bus", took)
	}
	must(t, sim.Set(1, "gate_state", 0))
	rec.wait(t, n, 3*time.Second, "closed", kindFrom(event.GateClosed, "gate"))
	t0 = time.Now()
	res, err := cmds.Dispatch(context.Background(), "gate.open", json.RawMessage(`{"device":"gate"}`), "t", "test")
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("gate.open: %v %+v", err, res)
	}
	// One transaction in flight (≤ 300 ms) + write + 50 ms travel + a
	// read-back or two; six queued 281 ms polls would take > 1.6 s.
	if took > 1200*time.Millisecond {
		t.Errorf("gate.open confirmed after %s: it waited for the polls", took)
	}
	t.Logf("gate.open confirmed in %s on a saturated 9600 baud bus", took)
}

// TestTCPReconnect: the Modbus TCP gateway goes away and comes back; its
// devices go offline, the bus reconnects with backoff, and they come back
// online.
func TestTCPReconnect(t *testing.T) {
	sim := NewSim(SimWire{}, testLogger(t))
	sim.Add(1, loadProfile(t, "rs485-sensor"))
	addr := freePort(t)
	serve := func() (stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- sim.ServeTCP(ctx, addr) }()
		time.Sleep(50 * time.Millisecond)
		return func() { cancel(); <-done }
	}
	stop := serve()
	cfg := parseConfig(t, fmt.Sprintf(`
  - {id: s, kind: sensor, driver: modbus, address: "tcp://%s", profile: rs485-sensor,
     options: {unit: 1, poll_interval: 50ms, telemetry_interval: 100ms, timeout: 200ms, offline_after: 2, online_after: 1}}
`, addr))
	rec := newRecorder()
	buses := startBuses(t, cfg, rec, nil)
	rec.wait(t, 0, 3*time.Second, "online", kindFrom(event.DeviceOnline, "s"))
	// Count before stopping: the offline event may arrive while stop waits.
	n := len(rec.all())
	stop()
	rec.wait(t, n, 5*time.Second, "offline", kindFrom(event.DeviceOffline, "s"))
	n = len(rec.all())
	stop = serve()
	defer stop()
	rec.wait(t, n, 8*time.Second, "online again", kindFrom(event.DeviceOnline, "s"))
	if st := buses[0].Stats(); st.IOErrors == 0 && st.Timeouts == 0 {
		t.Errorf("the outage left no trace in the stats: %+v", st)
	}
}

// TestPerDeviceTimeouts: two devices on one connection, both answering
// after 300 ms; the one whose timeout is 100 ms goes offline, the one
// allowing 800 ms stays online, and each timeout costs its own budget.
func TestPerDeviceTimeouts(t *testing.T) {
	for _, transport := range []string{"tcp", "rtu"} {
		t.Run(transport, func(t *testing.T) {
			sim := NewSim(SimWire{}, testLogger(t))
			for u := uint8(1); u <= 2; u++ {
				sim.Add(u, loadProfile(t, "rs485-sensor")).Late = 300 * time.Millisecond
			}
			var addr string
			if transport == "tcp" {
				addr = "tcp://" + startTCPSim(t, sim)
			} else {
				addr = "rtu://" + startRTUSim(t, sim)
			}
			cfg := parseConfig(t, fmt.Sprintf(`
  - {id: quick, kind: sensor, driver: modbus, address: "%[1]s", profile: rs485-sensor,
     options: {unit: 1, baud: 115200, poll_interval: 100ms, telemetry_interval: 1h, timeout: 100ms, late_reply: 400ms, offline_after: 2, max_backoff: 1s}}
  - {id: patient, kind: sensor, driver: modbus, address: "%[1]s", profile: rs485-sensor,
     options: {unit: 2, baud: 115200, poll_interval: 100ms, telemetry_interval: 1h, timeout: 800ms, offline_after: 2}}
`, addr))
			rec := newRecorder()
			buses := startBuses(t, cfg, rec, nil)
			if len(buses) != 1 {
				t.Fatalf("%d buses", len(buses))
			}
			rec.wait(t, 0, 5*time.Second, "quick offline", kindFrom(event.DeviceOffline, "quick"))
			rec.wait(t, 0, 5*time.Second, "patient online", kindFrom(event.DeviceOnline, "patient"))
			time.Sleep(500 * time.Millisecond)
			for _, e := range rec.all() {
				if e.Kind == event.DeviceOffline && e.Device == "patient" {
					t.Error("patient went offline: it was held to the other device's timeout")
				}
			}
			st := buses[0].Stats()
			for _, d := range st.Devices {
				if d.ID == "patient" && (d.RTTAvg < 250*time.Millisecond || d.RTTAvg > 800*time.Millisecond) {
					t.Errorf("patient rtt %s, want about 300ms", d.RTTAvg)
				}
			}
		})
	}
}

package modbus

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
)

// TestTCPEndToEnd runs simulated devices behind one Modbus TCP gateway
// and checks the driver's events, the shared connection, offline
// detection, and a gate command confirmed by read-back.
func TestTCPEndToEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sim := NewSim(SimWire{}, testLogger(t))
	sim.Add(1, loadProfile(t, "barrier-gate"))
	sim.Add(2, loadProfile(t, "access-4door"))
	sim.Add(3, loadProfile(t, "rs485-sensor"))
	addr := freePort(t)
	simDone := make(chan error, 1)
	go func() { simDone <- sim.ServeTCP(ctx, addr) }()
	t.Cleanup(func() { cancel(); <-simDone })
	time.Sleep(50 * time.Millisecond)

	opts := func(unit int) string {
		return fmt.Sprintf("{poll_interval: 50ms, telemetry_interval: 200ms, timeout: 500ms, offline_after: 2, max_backoff: 1s, unit: %d}", unit)
	}
	cfg := parseConfig(t, fmt.Sprintf(`
  - {id: gate-1, kind: barrier, driver: modbus, address: "tcp://%[1]s", profile: barrier-gate, options: %[2]s}
  - {id: door-1, kind: access, driver: modbus, address: "tcp://%[1]s", profile: access-4door, options: %[3]s}
  - {id: env-1, kind: sensor, driver: modbus, address: "tcp://%[1]s", profile: rs485-sensor, options: %[4]s}
  - {id: ghost, kind: sensor, driver: modbus, address: "tcp://%[1]s", profile: rs485-sensor, options: %[5]s}
`, addr, opts(1), opts(2), opts(3), opts(9)))
	rec := newRecorder()
	cmds := edge.NewCommands(rec)
	buses := startBuses(t, cfg, rec, cmds)
	if len(buses) != 1 {
		t.Fatalf("%d buses, want 1: devices on one host:port share a connection", len(buses))
	}
	for _, d := range []string{"gate-1", "door-1", "env-1"} {
		rec.wait(t, 0, 5*time.Second, d+" online", kindFrom(event.DeviceOnline, d))
	}
	rec.wait(t, 0, 10*time.Second, "ghost offline", kindFrom(event.DeviceOffline, "ghost"))
	// Telemetry at start.
	e := rec.wait(t, 0, 5*time.Second, "humidity telemetry", func(e *event.Event) bool {
		return e.Kind == event.Telemetry && e.Device == "env-1" && dataOf(t, e)["point"] == "humidity"
	})
	if v := dataOf(t, e)["value"]; v != 55.0 {
		t.Errorf("humidity = %v, want 55", v)
	}

	n := len(rec.all())
	must(t, sim.Set(1, "gate_state", 1))
	rec.wait(t, n, 3*time.Second, "gate.opened", kindFrom(event.GateOpened, "gate-1"))
	must(t, sim.Set(2, "door2", 1))
	e = rec.wait(t, n, 3*time.Second, "door.opened", kindFrom(event.DoorOpened, "door-1"))
	if d := dataOf(t, e); d["door"] != 2.0 {
		t.Errorf("door.opened data %v, want door 2", d)
	}
	must(t, sim.Set(2, "door3", 3)) // open + forced
	e = rec.wait(t, n, 3*time.Second, "gate.forced_open", kindFrom(event.GateForcedOpen, "door-1"))
	if e.Severity != event.Alert || dataOf(t, e)["door"] != 3.0 {
		t.Errorf("forced open: %s %s", e.Severity, e.Data)
	}
	must(t, sim.Set(1, "tamper", 1))
	rec.wait(t, n, 3*time.Second, "device.tamper", kindFrom(event.DeviceTamper, "gate-1"))
	must(t, sim.Set(2, "granted_door1", 5003))
	e = rec.wait(t, n, 3*time.Second, "access.granted", kindFrom(event.AccessGranted, "door-1"))
	if d := dataOf(t, e); d["delta"] != 3.0 || d["door"] != 1.0 {
		t.Errorf("access.granted data %v", d)
	}
	must(t, sim.Set(3, "temperature", 50))
	e = rec.wait(t, n, 3*time.Second, "overheat alarm", kindFrom(event.DeviceAlarm, "env-1"))
	if dataOf(t, e)["alarm"] != "overheat" || e.Severity != event.Alert {
		t.Errorf("alarm %s %s", e.Severity, e.Data)
	}

	// The gate command: close the gate first, then open it by command.
	must(t, sim.Set(1, "gate_state", 0))
	rec.wait(t, n, 3*time.Second, "gate.closed", kindFrom(event.GateClosed, "gate-1"))
	n = len(rec.all())
	res, err := cmds.Dispatch(ctx, "gate.open", json.RawMessage(`{"device":"gate-1"}`), "tester", "test")
	if err != nil {
		t.Fatalf("gate.open: %v", err)
	}
	if r := res.(CommandResult); r.Result != "confirmed" {
		t.Fatalf("gate.open result %+v", r)
	}
	e = rec.wait(t, n, time.Second, "gate.command", kindFrom(event.GateCommand, "gate-1"))
	if d := dataOf(t, e); d["result"] != "confirmed" || d["actor"] != "tester" {
		t.Errorf("gate.command data %v", d)
	}
	rec.wait(t, n, time.Second, "gate.opened after command", kindFrom(event.GateOpened, "gate-1"))
	rec.wait(t, n, time.Second, "command.applied audit", func(e *event.Event) bool { return e.Kind == event.CommandApplied })
	if v, _ := sim.Get(1, "gate_state"); v != 1 {
		t.Errorf("sim gate_state = %v after command", v)
	}
	// The pulse was released.
	time.Sleep(700 * time.Millisecond)
	if d := sim.Device(1); d.regs[Coil][0] != 0 {
		t.Error("open coil not released after the pulse")
	}

	// Bad arguments are refused before anything is written.
	if _, err := cmds.Dispatch(ctx, "gate.open", json.RawMessage(`{"device":"gate-1","x":1}`), "t", "test"); err == nil {
		t.Error("unknown argument accepted")
	}
	if _, err := cmds.Dispatch(ctx, "gate.open", json.RawMessage(`{"device":"env-1"}`), "t", "test"); err == nil {
		t.Error("gate.open accepted for a sensor")
	}

	st := buses[0].Stats()
	if st.Transactions == 0 || st.Timeouts == 0 || len(st.Devices) != 4 {
		t.Errorf("stats %+v", st)
	}
	for _, d := range st.Devices {
		want := "online"
		if d.ID == "ghost" {
			want = "offline"
		}
		if d.State != want {
			t.Errorf("device %s state %q, want %q", d.ID, d.State, want)
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

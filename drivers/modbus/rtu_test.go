package modbus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
)

// startRTUSim serves sim on a fresh pty and returns the path the gateway
// opens.
func startRTUSim(t testing.TB, sim *Sim) string {
	t.Helper()
	master, slave, err := OpenPTY()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sim.ServeRTU(ctx, master)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		slave.Close()
	})
	return slave.Name()
}

func startRTUOverTCPSim(t testing.TB, sim *Sim) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sim.ServeRTUOverTCP(ctx, ln)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// TestRTUEndToEnd polls a gate and an access controller on one RTU bus
// (a pty) and opens the gate by command.
func TestRTUEndToEnd(t *testing.T) {
	for _, transport := range []string{"rtu", "rtuovertcp"} {
		t.Run(transport, func(t *testing.T) {
			sim := NewSim(SimWire{}, testLogger(t))
			sim.Add(1, loadProfile(t, "barrier-gate"))
			sim.Add(2, loadProfile(t, "relay-16ch"))
			var addr string
			if transport == "rtu" {
				addr = "rtu://" + startRTUSim(t, sim)
			} else {
				addr = "rtuovertcp://" + startRTUOverTCPSim(t, sim)
			}
			opts := "baud: 115200, poll_interval: 50ms, telemetry_interval: 300ms, timeout: 300ms"
			cfg := parseConfig(t, fmt.Sprintf(`
  - {id: gate-1, kind: barrier, driver: modbus, address: "%[1]s", profile: barrier-gate, options: {unit: 1, %[2]s}}
  - {id: relay-1, kind: relay, driver: modbus, address: "%[1]s", profile: relay-16ch, options: {unit: 2, %[2]s}}
`, addr, opts))
			rec := newRecorder()
			cmds := edge.NewCommands(rec)
			buses := startBuses(t, cfg, rec, cmds)
			if len(buses) != 1 {
				t.Fatalf("%d buses, want one per port", len(buses))
			}
			rec.wait(t, 0, 5*time.Second, "gate online", kindFrom(event.DeviceOnline, "gate-1"))
			rec.wait(t, 0, 5*time.Second, "relay online", kindFrom(event.DeviceOnline, "relay-1"))
			n := len(rec.all())
			must(t, sim.Set(1, "gate_state", 2))
			rec.wait(t, n, 3*time.Second, "forced open", kindFrom(event.GateForcedOpen, "gate-1"))
			ctx := context.Background()
			res, err := cmds.Dispatch(ctx, "gate.open", json.RawMessage(`{"device":"relay-1"}`), "tester", "test")
			if err != nil || res.(CommandResult).Result != "confirmed" {
				t.Fatalf("gate.open on the relay module: %+v %v", res, err)
			}
			rec.wait(t, n, 2*time.Second, "gate.opened via relay", kindFrom(event.GateOpened, "relay-1"))
			st := buses[0].Stats()
			if st.Timeouts != 0 || st.CRCErrors != 0 || st.Transactions < 10 {
				t.Errorf("stats %+v", st)
			}
			if st.Utilisation <= 0 || st.Utilisation > 1 {
				t.Errorf("utilisation %v", st.Utilisation)
			}
		})
	}
}

// twoRegs is a profile whose two points are read by two requests of the
// same shape, so a stale reply to one is a valid-looking answer to the
// other: exactly the silent corruption of tech.md §2.4.
const twoRegs = `model: two registers far apart
limits: {max_gap: 0}
points:
  - {name: a, table: holding, address: 0, class: telemetry, sim: {initial: 111}}
  - {name: b, table: holding, address: 200, class: telemetry, sim: {initial: 222}}
`

// TestRTUStaleReply shows the trap with the bare library, then checks the
// bus never attributes a late reply to the next request, over a pty and
// over RTU-over-TCP.
func TestRTUStaleReply(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "two-regs.yaml"), []byte(twoRegs), 0o644))
	prof, err := ParseProfile("two-regs.yaml", []byte(twoRegs))
	must(t, err)

	t.Run("bare library desynchronises", func(t *testing.T) {
		sim := NewSim(SimWire{}, testLogger(t))
		d := sim.Add(1, prof)
		d.Late = 450 * time.Millisecond // arrives mid-way through the next read
		d.LateEvery = 1
		path := startRTUSim(t, sim)
		l, err := newMBLink(linkConfig{scheme: "rtu", key: path, baud: 115200, parity: "none", stopBits: 1, timeout: 300 * time.Millisecond}, testLogger(t))
		must(t, err)
		must(t, l.open())
		defer l.close()
		if _, err := l.readRegs(1, Holding, 0, 1); classify(err) != timeoutClass {
			t.Fatalf("late read: %v, want a timeout", err)
		}
		sim.mu.Lock()
		d.Late = 0
		sim.mu.Unlock()
		regs, err := l.readRegs(1, Holding, 200, 1)
		if err != nil || regs[0] != 111 {
			t.Fatalf("read of b = %v %v; the trap should hand back a's stale 111", regs, err)
		}
	})

	for _, transport := range []string{"rtu", "rtuovertcp"} {
		t.Run("bus "+transport, func(t *testing.T) {
			sim := NewSim(SimWire{}, testLogger(t))
			d := sim.Add(1, prof)
			d.Late = 250 * time.Millisecond
			d.LateEvery = 3 // every third request answers after the timeout
			var addr string
			if transport == "rtu" {
				addr = "rtu://" + startRTUSim(t, sim)
			} else {
				addr = "rtuovertcp://" + startRTUOverTCPSim(t, sim)
			}
			cfg := parseConfig(t, fmt.Sprintf(`
  - {id: s1, kind: sensor, driver: modbus, address: "%s", profile: two-regs,
     options: {unit: 1, baud: 115200, telemetry_interval: 100ms, timeout: 150ms, offline_after: 5, telemetry_report: 1ms}}
`, addr), dir)
			rec := newRecorder()
			buses := startBuses(t, cfg, rec, nil)
			// Each late reply costs a timeout and a resync (the silence
			// that drains it), counted once the line is quiet again.
			deadline := time.Now().Add(6 * time.Second)
			for time.Now().Before(deadline) && (buses[0].Stats().Resyncs < 3 || countPoint(rec.all(), "a")+countPoint(rec.all(), "b") < 4) {
				time.Sleep(20 * time.Millisecond)
			}
			st := buses[0].Stats()
			defer func() {
				// On a pty the tap drains the late replies (7 bytes each);
				// RTU over TCP cannot be drained beside the library, so it
				// reconnects after every resync.
				if st.Timeouts < 3 || st.Resyncs < 3 || (transport == "rtu" && st.StrayBytes < 3*7) ||
					(transport == "rtuovertcp" && st.Reopens < 3) {
					t.Fatalf("want ≥3 late replies drained or dropped with the connection, stats %+v", st)
				}
			}()
			var good int
			for _, e := range rec.all() {
				if e.Kind != event.Telemetry {
					continue
				}
				d := dataOf(t, e)
				want := map[string]float64{"a": 111, "b": 222}[d["point"].(string)]
				if d["value"] != want {
					t.Fatalf("point %s read %v, want %v: a stale reply was taken for a fresh one", d["point"], d["value"], want)
				}
				good++
			}
			if good < 4 {
				t.Fatalf("only %d telemetry events", good)
			}
		})
	}
}

package modbus

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	sim := NewSim(SimWire{}, testLogger(t))
	sim.Add(3, loadProfile(t, "rs485-sensor"))
	sim.Add(5, loadProfile(t, "relay-16ch")).Strict = true // no holding registers
	path := startRTUSim(t, sim)
	target := ProbeTarget{Address: "rtu://" + path, Baud: 115200, Timeout: 100 * time.Millisecond}
	found, cnt, err := ScanUnits(context.Background(), target, []int{1, 2, 3, 4, 5}, testLogger(t), nil)
	must(t, err)
	if len(found) != 2 || found[0].Unit != 3 || found[1].Unit != 5 || found[1].Exception == "" {
		t.Fatalf("found %+v (the strict unit 5 answers with an exception, which still proves it is there)", found)
	}
	if cnt.Timeouts != 3 || cnt.Answers != 2 {
		t.Errorf("counts %+v", cnt)
	}
	must(t, sim.Set(3, "temperature", -5.5))
	vals, _, err := ReadOnce(context.Background(), ProbeTarget{Address: "rtu://" + path, Baud: 115200}, 3, loadProfile(t, "rs485-sensor"), testLogger(t))
	must(t, err)
	got := map[string]float64{}
	for _, v := range vals {
		if v.Err != nil {
			t.Errorf("%s: %v", v.Point.Name, v.Err)
		}
		got[v.Point.Name] = v.Value
	}
	if got["temperature"] != -5.5 || got["humidity"] != 55 {
		t.Errorf("values %v", got)
	}
}

func TestScript(t *testing.T) {
	steps, err := ParseScript(strings.NewReader(GateCycleScript))
	must(t, err)
	if len(steps) != 10 || steps[2].Value != 2 {
		t.Fatalf("steps %+v", steps)
	}
	for _, bad := range []string{"", "2s 1 gate", "x 1 gate 1", "1s 300 gate 1", "1s 1 gate on"} {
		if _, err := ParseScript(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	sim := NewSim(SimWire{}, testLogger(t))
	sim.Add(1, loadProfile(t, "barrier-gate"))
	var seen []ScriptStep
	must(t, sim.Play(context.Background(), []ScriptStep{{Unit: 1, Point: "gate_state", Value: 1}, {After: time.Millisecond, Unit: 1, Point: "fault_code", Value: 7}}, false,
		func(s ScriptStep) { seen = append(seen, s) }))
	if v, _ := sim.Get(1, "fault_code"); v != 7 || len(seen) != 2 {
		t.Errorf("fault_code %v, %d steps played", v, len(seen))
	}
	if err := sim.Play(context.Background(), []ScriptStep{{Unit: 2, Point: "x"}}, false, nil); err == nil {
		t.Error("script for a missing unit accepted")
	}
}

// TestScanFlushesBetweenUnits: unit 4 answers only after the scan's
// timeout. Its late reply must not be taken for unit 5's answer (which
// would hide unit 5 behind a "bad unit id"), and it still proves unit 4
// is there.
func TestScanFlushesBetweenUnits(t *testing.T) {
	sim := NewSim(SimWire{}, testLogger(t))
	sim.Add(4, loadProfile(t, "rs485-sensor")).Late = 400 * time.Millisecond
	sim.Add(5, loadProfile(t, "rs485-sensor"))
	path := startRTUSim(t, sim)
	target := ProbeTarget{Address: "rtu://" + path, Baud: 115200, Timeout: 200 * time.Millisecond}
	found, cnt, err := ScanUnits(context.Background(), target, []int{3, 4, 5, 6}, testLogger(t), nil)
	must(t, err)
	if len(found) != 2 || found[0].Unit != 4 || !found[0].Late || found[1].Unit != 5 || found[1].Late {
		t.Fatalf("found %+v; counts %+v", found, cnt)
	}
	if rtt := found[0].RTT; rtt < 350*time.Millisecond || rtt > 900*time.Millisecond {
		t.Errorf("late unit's round trip %s, want about 400ms", rtt)
	}
	if cnt.CRCErrors != 0 || cnt.Timeouts != 3 || cnt.StrayBytes == 0 {
		t.Errorf("counts %+v: want 3 timeouts, the late reply drained, no mismatch", cnt)
	}
}

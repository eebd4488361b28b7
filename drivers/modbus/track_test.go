package modbus

import (
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

func kinds(evs []*event.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, string(e.Kind))
	}
	return out
}

func TestTrackTransitions(t *testing.T) {
	p, err := ParseProfile("p.yaml", []byte(`model: x
points:
  - name: gate
    table: holding
    type: u16
    states:
      0: {kind: gate.closed}
      1: {kind: gate.opened, held: {after: 1m, kind: gate.held_open}}
      2: {kind: gate.forced_open}
  - {name: tamper, table: discrete, on: {kind: device.tamper}}
  - {name: count, table: holding, address: 5, type: u32, increase: {kind: access.granted}}
  - {name: temp, table: input, type: i16, scale: 0.1, deadband: 0.5}
`))
	must(t, err)
	b := eventBuilder{device: "d"}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var gate, tamper, count, temp pointState
	steps := []struct {
		ps   *pointState
		pt   string
		v    float64
		at   time.Duration
		want []string
	}{
		{&gate, "gate", 0, 0, nil},                           // closed at start: not news
		{&tamper, "tamper", 1, 0, []string{"device.tamper"}}, // an alarm already on at start is
		{&gate, "gate", 1, time.Second, []string{"gate.opened"}},
		{&gate, "gate", 1, 30 * time.Second, nil},
		{&gate, "gate", 1, 62 * time.Second, []string{"gate.held_open"}},
		{&gate, "gate", 1, 90 * time.Second, nil}, // held is raised once
		{&gate, "gate", 2, 91 * time.Second, []string{"gate.forced_open"}},
		{&gate, "gate", 0, 92 * time.Second, []string{"gate.closed"}},
		{&count, "count", 100, 0, nil},
		{&count, "count", 103, time.Second, []string{"access.granted"}},
		{&count, "count", 2, 2 * time.Second, nil}, // counter reset: no event
		{&temp, "temp", 20, 0, []string{"telemetry"}},
		{&temp, "temp", 20.3, time.Second, nil},
		{&temp, "temp", 20.6, time.Second, []string{"telemetry"}},
	}
	for i, s := range steps {
		got := kinds(s.ps.update(b, p.Point(s.pt), s.v, t0.Add(s.at), 0))
		if len(got) != len(s.want) || (len(got) > 0 && got[0] != s.want[0]) {
			t.Errorf("step %d (%s=%v): got %v, want %v", i, s.pt, s.v, got, s.want)
		}
	}
}

package modbus

import (
	"math"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// pointState follows one point's value over time and turns its changes
// into events, as its profile entry says.
type pointState struct {
	have  bool
	v     float64
	since time.Time // when v began
	held  bool      // the held event for the current state was raised

	bitSince [16]time.Time
	bitHeld  [16]bool

	telHave bool
	telV    float64
	telAt   time.Time
}

// eventBuilder carries what every event of a device shares.
type eventBuilder struct {
	device string
}

func (b eventBuilder) make(p *Point, s *EventSpec, v float64, extra map[string]any, now time.Time) *event.Event {
	ev := event.New(event.Kind(s.Kind))
	if s.Severity != "" {
		ev.Severity = event.Severity(s.Severity)
	}
	ev.Device = b.device
	ev.Time = now
	data := map[string]any{"point": p.Name, "value": jsonNumber(v)}
	if p.Unit != "" {
		data["unit"] = p.Unit
	}
	for k, x := range p.Data {
		data[k] = x
	}
	for k, x := range extra {
		data[k] = x
	}
	for k, x := range s.Data {
		data[k] = x
	}
	return ev.WithData(data)
}

// jsonNumber keeps whole values whole in JSON (1, not 1.0000000001 after
// scaling noise) and rounds the rest to 6 significant decimals.
func jsonNumber(v float64) any {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return int64(v)
	}
	return math.Round(v*1e6) / 1e6
}

func severityOf(s *EventSpec) event.Severity {
	if s.Severity != "" {
		return event.Severity(s.Severity)
	}
	return event.Kind(s.Kind).DefaultSeverity()
}

// activeSpec is the spec describing the state value v is in, for held
// timing and for the first observation.
func activeSpec(p *Point, v float64) *EventSpec {
	if p.States != nil {
		return p.States[int64(math.Round(v))]
	}
	if v != 0 {
		return p.On
	}
	return p.Off
}

// update takes a freshly read value and returns the events it causes.
// On the first observation only conditions worth a warning or more are
// reported (a tamper switch already open at start-up); ordinary states
// such as "gate closed" are not news.
func (ps *pointState) update(b eventBuilder, p *Point, v float64, now time.Time, report time.Duration) []*event.Event {
	var out []*event.Event
	first := !ps.have
	old := ps.v
	changed := first || v != old
	emit := func(s *EventSpec, extra map[string]any) {
		if s == nil || (first && severityOf(s).Rank() < event.Warning.Rank()) {
			return
		}
		out = append(out, b.make(p, s, v, extra, now))
	}
	switch {
	case p.typ == tBitfield:
		for _, bs := range p.Bits {
			on := uint64(v)>>uint(bs.Bit)&1 == 1
			was := uint64(old)>>uint(bs.Bit)&1 == 1
			spec := bs.Off
			if on {
				spec = bs.On
			}
			extra := map[string]any{"bit": bs.Name}
			for k, x := range bs.Data {
				extra[k] = x
			}
			if first || on != was {
				emit(spec, extra)
				ps.bitSince[bs.Bit] = now
				ps.bitHeld[bs.Bit] = false
			}
			if spec != nil && spec.Held != nil && !ps.bitHeld[bs.Bit] && now.Sub(ps.bitSince[bs.Bit]) >= spec.Held.After.Std() {
				ps.bitHeld[bs.Bit] = true
				extra["held_for_s"] = int64(now.Sub(ps.bitSince[bs.Bit]).Seconds())
				out = append(out, b.make(p, &EventSpec{Kind: spec.Held.Kind, Severity: spec.Held.Severity}, v, extra, now))
			}
		}
	default:
		if changed {
			switch {
			case p.States != nil:
				emit(p.States[int64(math.Round(v))], nil)
			case p.On != nil || p.Off != nil:
				if first || (v != 0) != (old != 0) {
					emit(activeSpec(p, v), nil)
				}
			}
			if t := p.Above; t != nil && v > t.Value && (first || old <= t.Value) {
				emit(&t.EventSpec, map[string]any{"threshold": jsonNumber(t.Value)})
			}
			if t := p.Below; t != nil && v < t.Value && (first || old >= t.Value) {
				emit(&t.EventSpec, map[string]any{"threshold": jsonNumber(t.Value)})
			}
			if p.Increase != nil && !first && v > old {
				out = append(out, b.make(p, p.Increase, v, map[string]any{"delta": jsonNumber(v - old)}, now))
			}
		}
		if first || activeSpec(p, v) != activeSpec(p, old) {
			ps.since, ps.held = now, false
		}
		if s := activeSpec(p, v); s != nil && s.Held != nil && !ps.held && now.Sub(ps.since) >= s.Held.After.Std() {
			ps.held = true
			out = append(out, b.make(p, &EventSpec{Kind: s.Held.Kind, Severity: s.Held.Severity}, v,
				map[string]any{"held_for_s": int64(now.Sub(ps.since).Seconds())}, now))
		}
	}
	if !p.hasTriggers() {
		due := !ps.telHave || (p.Deadband == 0 && v != ps.telV) || (p.Deadband > 0 && math.Abs(v-ps.telV) > p.Deadband) ||
			(report > 0 && now.Sub(ps.telAt) >= report)
		if due {
			ps.telHave, ps.telV, ps.telAt = true, v, now
			out = append(out, b.make(p, &EventSpec{Kind: string(event.Telemetry)}, v, nil, now))
		}
	}
	ps.have, ps.v = true, v
	return out
}

func (p *Point) hasTriggers() bool {
	return p.On != nil || p.Off != nil || p.States != nil || p.Above != nil || p.Below != nil || p.Increase != nil || len(p.Bits) > 0
}

package rules

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

func TestEngineMetrics(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.send(event.SOSPressed, "s1", at(0, 9, 1))
	m := h.e.Metrics()
	if m.Raised[RuleSOS] != 1 || m.Open[RuleLevel{RuleSOS, 1}] != 1 || m.Elders != 1 {
		t.Fatalf("after SOS: %+v", m)
	}
	h.advance(at(0, 9, 7))
	m = h.e.Metrics()
	if m.Escalated[RuleLevel{RuleSOS, 2}] != 1 || m.Open[RuleLevel{RuleSOS, 2}] != 1 || m.Open[RuleLevel{RuleSOS, 1}] != 0 {
		t.Fatalf("after escalation: %+v", m)
	}
	id := h.e.Snapshot().Households[0].Alerts[0].ID
	ev, err := h.e.PrepareResolve(id, "zhang", OutcomeSafe, "", "")
	if err != nil {
		t.Fatal(err)
	}
	h.feed(ev)
	// A door left open clears itself: the engine's own resolution.
	h.send(event.DoorOpened, "d1", at(0, 10, 0))
	h.advance(at(0, 10, 20))
	h.send(event.DoorClosed, "d1", at(0, 10, 21))
	m = h.e.Metrics()
	if m.Resolved[RuleOutcome{RuleSOS, OutcomeSafe}] != 1 || m.Resolved[RuleOutcome{RuleDoorLeftOpen, OutcomeCleared}] != 1 ||
		len(m.Open) != 0 || m.Events != h.seq {
		t.Fatalf("after resolutions: %+v (seq %d)", m, h.seq)
	}
	// A free-form outcome from elsewhere in the log is not a label.
	var c counters
	c.count(event.ElderAlertResolved, map[string]any{"rule": RuleSOS, "outcome": "张三 13800000000"})
	if c.resolved[RuleOutcome{RuleSOS, "other"}] != 1 {
		t.Fatalf("%+v", c.resolved)
	}

	// No data: every motion sensor silent when inactivity is due.
	h2 := newHarness(t)
	h2.home(at(0, 9, 0))
	h2.send(event.SensorSilent, "m1", at(0, 9, 30))
	h2.advance(at(0, 16, 0))
	if m := h2.e.Metrics(); m.NoData[RuleInactivity] != 1 {
		t.Fatalf("no data: %+v%s", m, h2.dump())
	}
}

func TestServiceMetricsLag(t *testing.T) {
	log := newMemLog()
	clk := NewManualClock(at(0, 9, 0))
	svc, err := NewService(ServiceOptions{Settings: NewSettings(hh), Log: log, State: log, Emit: log,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	for _, min := range []int{0, 1, 2} {
		ev := sensor(event.MotionDetected)
		ev.Time = at(0, 9, min).UTC()
		if err := log.Emit(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	clk.Set(at(0, 9, 5))
	m := svc.Metrics()
	if m.LagEvents != 3 || !m.LagKnown || m.LagSeconds != 300 || m.CheckpointAge != 0 {
		t.Fatalf("before catching up: %+v", m)
	}
	if err := svc.catchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := svc.flush(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	// The derived presence event went into the log: the live loop reads
	// it back; here the test does.
	if err := svc.catchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	m = svc.Metrics()
	if m.LagEvents != 0 || m.LagSeconds != 0 || !m.LagKnown || m.Events != 4 || m.CheckpointAge <= 0 || m.CheckpointAge > time.Minute {
		t.Fatalf("caught up: %+v", m)
	}
}

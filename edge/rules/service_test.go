package rules

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// memLog is an in-memory event log and state store with the store's
// contracts (seq order, lossy live subscription, versioned state).
type memLog struct {
	mu    sync.Mutex
	evs   []*event.Event
	subs  []chan *event.Event
	state map[string][]byte
}

func newMemLog() *memLog { return &memLog{state: map[string][]byte{}} }

func (m *memLog) Emit(_ context.Context, evs ...*event.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, ev := range evs {
		if ev.Time.IsZero() {
			// The tests that leave the time to the log run in a synctest
			// bubble, where this is the bubble's clock (2000-01-01 00:00
			// UTC at the start), never the host's; the others stamp their
			// events themselves.
			ev.Time = time.Now().UTC()
		}
		ev.Seq = uint64(len(m.evs)) + 1
		c := *ev
		m.evs = append(m.evs, &c)
		for _, s := range m.subs {
			select {
			case s <- &c:
			default:
			}
		}
	}
	return nil
}

func (m *memLog) ReadRange(after uint64, max int) ([]*event.Event, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*event.Event
	for _, ev := range m.evs {
		if ev.Seq > after && len(out) < max {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (m *memLog) LastSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.evs))
}

func (m *memLog) Subscribe(buf int) (<-chan *event.Event, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan *event.Event, buf)
	m.subs = append(m.subs, ch)
	return ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		for i, s := range m.subs {
			if s == ch {
				m.subs = append(m.subs[:i], m.subs[i+1:]...)
				close(ch)
				return
			}
		}
	}
}

func (m *memLog) PutState(_ context.Context, ns, key string, _ uint32, val []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state[ns+"\x00"+key] = append([]byte(nil), val...)
	return nil
}

func (m *memLog) GetState(ns, key string) (uint32, []byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.state[ns+"\x00"+key]
	return stateVersion, v, ok, nil
}

func (m *memLog) ListState(ns string) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range m.state {
		if len(k) > len(ns) && k[:len(ns)] == ns && k[len(ns)] == 0 {
			out[k[len(ns)+1:]] = v
		}
	}
	return out, nil
}

func (m *memLog) count(kind event.Kind) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, ev := range m.evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

func (m *memLog) last(kind event.Kind) *event.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.evs) - 1; i >= 0; i-- {
		if m.evs[i].Kind == kind {
			return m.evs[i]
		}
	}
	return nil
}

// runService starts a service on log and returns a stop func that waits
// for it.
func runService(t *testing.T, log *memLog) (*Service, func()) {
	t.Helper()
	s := NewSettings(hh)
	svc, err := NewService(ServiceOptions{Settings: s, Log: log, State: log, Emit: log,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	synctest.Wait()
	return svc, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

func sensor(kind event.Kind) *event.Event {
	ev := event.New(kind)
	ev.Household = hh
	ev.Device = "m1"
	return ev
}

func TestServiceLifecycleAndRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newMemLog()
		ctx := context.Background()
		svc, stop := runService(t, log)
		_ = log.Emit(ctx, sensor(event.MotionDetected))
		// The bubble starts at 2000-01-01 00:00 UTC = 08:00 local: the
		// day limit (6 h) applies.
		time.Sleep(6*time.Hour + time.Second)
		synctest.Wait()
		if log.count(event.ElderAlertRaised) != 1 {
			t.Fatalf("want one alert raised after 6 h")
		}
		snap := svc.Snapshot()
		if len(snap.Households[0].Alerts) != 1 {
			t.Fatal("snapshot lacks the open alert")
		}
		// Restart in the middle of the L2 timer: it fires once, on time.
		stop()
		time.Sleep(10 * time.Minute)
		_ = log.Emit(ctx, event.New(event.GatewayStarted))
		svc, stop = runService(t, log)
		time.Sleep(19 * time.Minute)
		synctest.Wait()
		if log.count(event.ElderAlertEscalated) != 0 || log.count(event.ElderAlertRaised) != 1 {
			t.Fatal("restart fired early or raised again")
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		esc := log.last(event.ElderAlertEscalated)
		if esc == nil || log.count(event.ElderAlertEscalated) != 1 {
			t.Fatal("want L2 after the restart")
		}
		if want := time.Date(2000, 1, 1, 6, 30, 1, 0, time.UTC); esc.Time.Sub(want).Abs() > time.Second {
			t.Fatalf("L2 at %s, want %s", esc.Time, want)
		}
		// Acknowledge through the command path: no L3.
		var d struct {
			AlertID string `json:"alert_id"`
		}
		_ = json.Unmarshal(esc.Data, &d)
		if _, err := svc.Ack(ctx, d.AlertID, "grid-07", "on site", "on my way"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * time.Hour)
		synctest.Wait()
		if log.count(event.ElderAlertEscalated) != 1 || log.count(event.ElderAlertAcknowledged) != 1 {
			t.Fatal("acknowledged alert escalated")
		}
		if _, err := svc.Resolve(ctx, d.AlertID, "grid-07", OutcomeSafe, "", "napping"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.SetMode(ctx, hh, ModeVisitor, time.Now().Add(4*time.Hour), "family", ""); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		if n := len(svc.Snapshot().Households[0].Alerts); n != 0 || svc.Snapshot().Households[0].Mode.Name != ModeVisitor {
			t.Fatalf("after resolve and mode: %d alerts, mode %s", n, svc.Snapshot().Households[0].Mode.Name)
		}
		stop()
	})
}

func TestServiceCatchUpDoesNotRepeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log := newMemLog()
		ctx := context.Background()
		_, stop := runService(t, log)
		_ = log.Emit(ctx, sensor(event.MotionDetected))
		time.Sleep(time.Hour)
		synctest.Wait()
		stop()
		// Keep the state as it was an hour in, then let a second run
		// raise the alert; a crash loses that run's last checkpoint.
		saved := maps.Clone(log.state)
		_ = log.Emit(ctx, event.New(event.GatewayStarted))
		_, stop = runService(t, log)
		time.Sleep(5*time.Hour + time.Minute)
		synctest.Wait()
		stop()
		if log.count(event.ElderAlertRaised) != 1 {
			t.Fatal("want one alert")
		}
		log.mu.Lock()
		log.state = saved
		log.mu.Unlock()
		_ = log.Emit(ctx, event.New(event.GatewayStarted))
		_, stop = runService(t, log)
		synctest.Wait()
		stop()
		if n := log.count(event.ElderAlertRaised); n != 1 {
			t.Fatalf("catch-up after a lost checkpoint raised the alert again: %d", n)
		}
	})
}

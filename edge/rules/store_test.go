package rules

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

type storeEmitter struct{ st *store.Store }

func (s storeEmitter) Emit(ctx context.Context, evs ...*event.Event) error {
	return s.st.Append(ctx, evs...)
}

// TestServiceOnStore runs the service on the real event log: state
// survives a close and reopen, and the engine resumes where it stopped.
func TestServiceOnStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *store.Store {
		st, err := store.Open(store.Options{Path: path, Gateway: "gw-t", Compound: "c-t", Logger: logger, Sinks: []string{"rules"}})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	run := func(st *store.Store, clk Clock, body func(svc *Service)) {
		svc, err := NewService(ServiceOptions{Settings: NewSettings(hh), Log: st, State: st, Emit: storeEmitter{st},
			Logger: logger, Clock: clk, Cursor: "rules", CheckpointEvery: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		body(svc)
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	st := open()
	clk := NewManualClock(time.Now())
	run(st, clk, func(svc *Service) {
		ev := event.New(event.MotionDetected)
		ev.Household, ev.Device = hh, "m1"
		if err := st.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		waitFor("presence home", func() bool { return svc.Snapshot().Households[0].Presence.State == PresenceHome })
	})
	if st.Cursor("rules") == 0 {
		t.Fatal("rules cursor not acknowledged")
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = open()
	defer st.Close()
	run(st, clk, func(svc *Service) {
		waitFor("restored presence", func() bool { return svc.Snapshot().Households[0].Presence.State == PresenceHome })
		clk.Add(7 * time.Hour)
		ev := event.New(event.DeviceOnline) // any event wakes the loop; the clock says 7 h later
		ev.Device = "router"
		_ = st.Append(context.Background(), ev)
		waitFor("inactivity alert after the restart", func() bool { return len(svc.Snapshot().Households[0].Alerts) == 1 })
	})
}

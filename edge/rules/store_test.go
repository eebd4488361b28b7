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
// survives a close and reopen, and the engine resumes where it stopped
// and raises the inactivity alert on the limit that applies. The clock is
// pinned to the local time of day each case needs (issue 17: taken from
// the host clock, a 7 h silence starting after 16:00 in the compound ran
// into the 12 h night limit and the test failed every afternoon, UTC).
func TestServiceOnStore(t *testing.T) {
	tests := []struct {
		name        string
		hour, min   int           // local time of the last motion
		quiet       time.Duration // silence after which the first check runs
		limit       time.Duration // the limit that must apply
		wantAtQuiet bool          // alert already open after quiet
	}{
		// 08:00 + 6 h ends before 22:00: the day limit.
		{"day", 8, 0, 7 * time.Hour, 6 * time.Hour, true},
		// 16:00 + 6 h ends at 22:00 exactly: still the day limit.
		{"day, ending at the night", 16, 0, 7 * time.Hour, 6 * time.Hour, true},
		// 16:01 + 6 h runs past 22:00: the night limit, so 7 h is not enough.
		{"reaching into the night", 16, 1, 7 * time.Hour, 12 * time.Hour, false},
		// Silence starting inside the night window: the night limit.
		{"night", 23, 0, 7 * time.Hour, 12 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := dayAt(testNow(t), tt.hour, tt.min)
			testServiceOnStore(t, start, tt.quiet, tt.limit, tt.wantAtQuiet)
		})
	}
}

func testServiceOnStore(t *testing.T, start time.Time, quiet, limit time.Duration, wantAtQuiet bool) {
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
		for deadline := time.Now().Add(10 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Every event carries the test clock's time: the store would stamp
	// an unstamped one with the host clock.
	clk := NewManualClock(start)
	appendAt := func(st *store.Store, kind event.Kind, dev string) time.Time {
		t.Helper()
		ev := event.New(kind)
		ev.Device, ev.Time = dev, clk.Now().UTC()
		if kind == event.MotionDetected {
			ev.Household = hh
		}
		if err := st.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		return ev.Time
	}
	st := open()
	run(st, clk, func(svc *Service) {
		appendAt(st, event.MotionDetected, "m1")
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
		// check moves the clock to start+d and wakes the loop with an
		// event stamped then, and waits until the engine has been there:
		// every timer due by then has fired.
		check := func(d time.Duration) []Alert {
			t.Helper()
			clk.Set(start.Add(d))
			at := appendAt(st, event.DeviceOnline, "router")
			waitFor("the engine at "+at.In(cst).Format("01-02 15:04"), func() bool { return !svc.Snapshot().Time.Before(at) })
			return svc.Snapshot().Households[0].Alerts
		}
		alerts := check(quiet)
		if got := len(alerts) == 1; got != wantAtQuiet {
			t.Fatalf("last motion %s local, %s quiet: %d alerts open, want alert %v (%v)",
				start.In(cst).Format("15:04"), quiet, len(alerts), wantAtQuiet, alerts)
		}
		if !wantAtQuiet {
			alerts = check(limit + time.Minute)
		}
		if len(alerts) != 1 {
			t.Fatalf("last motion %s local, %s quiet: want one inactivity alert, got %v", start.In(cst).Format("15:04"), limit+time.Minute, alerts)
		}
		a := alerts[0]
		th, _ := a.Explanation["thresholds"].(map[string]any)
		applied, _ := th["applied"].(string)
		if a.Rule != RuleInactivity || applied != limit.String() || !a.Raised.Equal(start.Add(limit)) {
			t.Fatalf("alert %s raised %s with limit %q, want inactivity at %s with %s",
				a.Rule, a.Raised.In(cst), applied, start.Add(limit).In(cst), limit)
		}
	})
}

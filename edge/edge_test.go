package edge_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

type fixedClock struct {
	t time.Time
	q event.TimeQuality
}

func (c fixedClock) Now() (time.Time, event.TimeQuality) { return c.t, c.q }

func setup(t *testing.T) (*edge.Runtime, *store.Store) {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(`
gateway: {id: gw-1, compound: c-1}
compound:
  buildings: [{id: "3", units: ["1"]}]
  households: [{id: h-1, place: {building: "3", unit: "1", room: "301"}}]
devices:
  - {id: door-1, kind: door, driver: serial, address: /dev/ttyUSB0, household: h-1}
  - {id: gate-1, kind: gate, driver: modbus, address: "tcp://127.0.0.1:502", profile: barrier-gate, place: {position: north gate}}
`))
	if err != nil {
		// The modbus profile ships with the modbus driver; without it, use
		// the serial device alone.
		cfg, err = config.Parse("t.yaml", []byte(`
gateway: {id: gw-1, compound: c-1}
compound:
  buildings: [{id: "3", units: ["1"]}]
  households: [{id: h-1, place: {building: "3", unit: "1", room: "301"}}]
devices:
  - {id: door-1, kind: door, driver: serial, address: /dev/ttyUSB0, household: h-1}
`))
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "e.db"), Gateway: "gw-1", Compound: "c-1",
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	clk := fixedClock{time.Date(2026, 11, 27, 1, 2, 3, 456789000, time.UTC), event.Synced}
	return edge.NewRuntime(cfg, st, slog.New(slog.DiscardHandler), clk), st
}

func TestEmitStamps(t *testing.T) {
	rt, st := setup(t)
	ctx := context.Background()
	e := event.New(event.DoorOpened)
	e.Device = "door-1"
	if err := rt.Emit(ctx, e); err != nil {
		t.Fatal(err)
	}
	got, ok, err := st.Get(e.Seq)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got.Gateway != "gw-1" || got.Compound != "c-1" || got.TimeQuality != event.Synced ||
		got.Time.Format(event.TimeLayout) != "2026-11-27T01:02:03.456Z" || got.Severity != event.Info {
		t.Errorf("stamps: %+v", got)
	}
	// The place comes from the device's household when the device has none.
	if got.Place == nil || got.Place.Room != "301" {
		t.Errorf("place = %+v", got.Place)
	}
	if !strings.HasPrefix(got.ID, "gw-1:"+st.Epoch()+":") {
		t.Errorf("id = %s", got.ID)
	}
}

func TestEmitKeepsSourceTime(t *testing.T) {
	rt, st := setup(t)
	e := event.New(event.CameraFallingObject)
	e.Time = time.Date(2026, 11, 27, 0, 0, 1, 0, time.UTC)
	if err := rt.Emit(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	got, _, _ := st.Get(e.Seq)
	if !got.Time.Equal(e.Time) || got.TimeQuality != event.Synced {
		t.Errorf("time %v quality %s", got.Time, got.TimeQuality)
	}
}

func TestEmitRefusesInvalidBatchWhole(t *testing.T) {
	rt, st := setup(t)
	good := event.New(event.MotionDetected)
	bad := &event.Event{Kind: "Not A Kind", Severity: "loud"}
	err := rt.Emit(context.Background(), good, bad)
	if !errors.Is(err, edge.ErrInvalidEvent) {
		t.Fatalf("err = %v", err)
	}
	if st.LastSeq() != 0 {
		t.Errorf("a refused batch wrote %d events", st.LastSeq())
	}
	if _, rej := rt.Counts(); rej != 1 {
		t.Errorf("rejected = %d", rej)
	}
}

func TestCommandsAudit(t *testing.T) {
	rt, st := setup(t)
	cmds := edge.NewCommands(rt)
	cmds.Handle("gate.open", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a struct{ Device string }
		if err := json.Unmarshal(args, &a); err != nil || a.Device == "" {
			return nil, errors.New("want {\"device\": id}")
		}
		return map[string]string{"state": "open"}, nil
	})
	ctx := context.Background()
	if _, err := cmds.Dispatch(ctx, "nope", nil, "alice", "web"); !errors.Is(err, edge.ErrUnknownCommand) {
		t.Errorf("unknown command: %v", err)
	}
	if _, err := cmds.Dispatch(ctx, "gate.open", json.RawMessage(`{}`), "alice", "web"); err == nil {
		t.Error("bad args accepted")
	}
	if st.LastSeq() != 0 {
		t.Fatal("a refused command was audited")
	}
	if _, err := cmds.Dispatch(ctx, "gate.open", json.RawMessage(`{"device":"gate-1"}`), "alice", "web"); err != nil {
		t.Fatal(err)
	}
	evs, _ := st.ReadRange(0, 10)
	if len(evs) != 1 || evs[0].Kind != event.CommandApplied {
		t.Fatalf("audit events: %+v", evs)
	}
	var d map[string]any
	json.Unmarshal(evs[0].Data, &d)
	if d["actor"] != "alice" || d["via"] != "web" || d["command"] != "gate.open" {
		t.Errorf("audit data %v", d)
	}
}

func TestSystemClockFloor(t *testing.T) {
	now, q := edge.SystemClock{}.Now()
	if now.Before(edge.EarliestSane) && q != event.Unsynced {
		t.Error("a clock before the floor was called synced")
	}
}

// A driver stopping at SIGTERM still records what it already read: its
// context is cancelled first, and the append outlives it (before, the
// batch was lost with "append: context canceled").
func TestEmitOutlivesCancelledContext(t *testing.T) {
	rt, st := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ev := event.New(event.DoorOpened)
	ev.Device = "door-1"
	if err := rt.Emit(ctx, ev); err != nil {
		t.Fatalf("emit after the driver's context ended: %v", err)
	}
	if got, ok, err := st.Get(ev.Seq); err != nil || !ok || got.Kind != event.DoorOpened {
		t.Fatalf("not stored: %v %v", ok, err)
	}
	// The grace is bounded: a closed store still refuses at once.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rt.Emit(ctx, event.New(event.DoorClosed)); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("emit into a closed store: %v", err)
	}
}

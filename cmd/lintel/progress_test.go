package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

// TestBacklogProgress drains a sink's backlog under a fake clock and
// checks the daemon logs the start, the progress with an ETA and the end.
func TestBacklogProgress(t *testing.T) {
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "events.db"), Gateway: "gw-p", Compound: "c-p",
		Sinks: []string{"city"}, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	evs := make([]*event.Event, 3000)
	for i := range evs {
		evs[i] = event.New(event.Telemetry).WithData(map[string]any{"point": "t", "value": i})
	}
	if err := st.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	p := &backlogProgress{st: st, sinks: []string{"city"}, log: slog.New(slog.NewTextHandler(&logs, nil)),
		logEvery: 10 * time.Second, min: 1000, now: func() time.Time { return now }}
	state := map[string]*sinkDrain{"city": {}}

	p.step(state) // 3000 left: the drain starts
	for _, upTo := range []uint64{1000, 1500} {
		now = now.Add(10 * time.Second)
		if err := st.Ack(ctx, "city", upTo); err != nil {
			t.Fatal(err)
		}
		p.step(state)
	}
	now = now.Add(10 * time.Second)
	st.Ack(ctx, "city", 2990)
	p.step(state) // 10 left: drained

	out := logs.String()
	for _, want := range []string{
		`msg="sink backlog to drain" sink=city events_left=3000`,
		`msg="sink backlog draining" sink=city events_left=2000 acked_per_s=100 eta=20s`,
		`msg="sink backlog draining" sink=city events_left=1500`,
		`msg="sink backlog drained" sink=city events_left=10 took=30s`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}

	// Run samples until cancelled and returns nil.
	rctx, cancel := context.WithCancel(ctx)
	p.sample, p.now = time.Millisecond, time.Now
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = p.Run(rctx) })
	time.Sleep(20 * time.Millisecond)
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Errorf("Run: %v", runErr)
	}
}

func TestProgressLineAndETA(t *testing.T) {
	var b bytes.Buffer
	p := newProgressLine(&b, 0)
	p.update("a")
	p.update("b")
	p.clear()
	if b.String() != "a\nb\n" {
		t.Errorf("periodic output %q", b.String())
	}
	b.Reset()
	p = newProgressLine(&b, time.Hour)
	p.update("hidden")
	if b.Len() != 0 {
		t.Errorf("printed before its period: %q", b.String())
	}
	if got := eta(10*time.Second, 10, 30); got != "20s" {
		t.Errorf("eta = %s", got)
	}
	if got := eta(0, 0, 30); got != "—" {
		t.Errorf("eta with nothing done = %s", got)
	}
}

func TestGatewaySeqs(t *testing.T) {
	g := &gatewaySeqs{last: map[string]uint64{}}
	if g.String() != "—" {
		t.Errorf("empty: %q", g.String())
	}
	for i, gw := range []string{"gw-b", "gw-a", "gw-b", "gw-c", "gw-d", "gw-e", "gw-f", "gw-g", "gw-h", "gw-i"} {
		g.onEvent("events", &event.Event{Gateway: gw, Seq: uint64(10 + i)}, time.Time{})
	}
	g.onEvent("alerts", &event.Event{Gateway: "gw-a", Seq: 999}, time.Time{})
	got := g.String()
	if !strings.HasPrefix(got, "gw-a seq 11, gw-b seq 12, gw-c seq 13") || !strings.HasSuffix(got, ", +1 more") {
		t.Errorf("String() = %q", got)
	}
}

// TestProbeModbusScanProgress scans the simulator and checks the periodic
// progress lines (stderr is not a terminal here) and the report.
func TestProbeModbusScanProgress(t *testing.T) {
	old := scanProgressEvery
	scanProgressEvery = 0 // a line per unit
	t.Cleanup(func() { scanProgressEvery = old })
	addr := closedPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		runMain(ctx, []string{"sim", "modbus", "-tcp", addr, "-random", "0"}, stdio{strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{}})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })

	var out, errb bytes.Buffer
	deadline := time.Now().Add(10 * time.Second)
	for {
		out.Reset()
		errb.Reset()
		code := runMain(context.Background(), []string{"probe", "modbus", "-a", "tcp://" + addr, "-units", "1-6"}, stdio{strings.NewReader(""), &out, &errb})
		if code == exitOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe exit %d\n%s%s", code, out.String(), errb.String())
		}
		time.Sleep(50 * time.Millisecond) // the simulator is still starting
	}
	for _, want := range []string{"进度 progress 0/6 单元 unit 1", "进度 progress 5/6 单元 unit 6", "ETA"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	if !strings.Contains(out.String(), "单元 unit   4  应答 answers") {
		t.Errorf("stdout:\n%s", out.String())
	}
}

// TestReceiveProgress checks the progress line of a receiver that gets
// nothing: counters, rate, and what to check.
func TestReceiveProgress(t *testing.T) {
	old := receiveProgressEvery
	receiveProgressEvery = 40 * time.Millisecond
	t.Cleanup(func() { receiveProgressEvery = old })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var out, errb bytes.Buffer
	code := runMain(ctx, []string{"receive", "-broker", "tcp://" + closedPort(t)}, stdio{strings.NewReader(""), &out, &errb})
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	for _, want := range []string{"新事件 new events 0 (0/s)", "网关 gateways: —", "no batch yet: check -broker"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// A backlog that grew through an outage (1,000 → 5,000) and then drains
// gets an ETA from its peak, not "not shrinking" because it is still above
// where it started.
func TestBacklogProgressAfterGrowth(t *testing.T) {
	st, err := store.Open(store.Options{Path: filepath.Join(t.TempDir(), "events.db"), Gateway: "gw-p", Compound: "c-p",
		Sinks: []string{"city"}, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	add := func(n int) {
		evs := make([]*event.Event, n)
		for i := range evs {
			evs[i] = event.New(event.Telemetry).WithData(map[string]any{"point": "t", "value": i})
		}
		if err := st.Append(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	now := time.Unix(1_700_000_000, 0)
	p := &backlogProgress{st: st, sinks: []string{"city"}, log: slog.New(slog.NewTextHandler(&logs, nil)),
		logEvery: 10 * time.Second, min: 1000, now: func() time.Time { return now }}
	state := map[string]*sinkDrain{"city": {}}
	add(1000)
	p.step(state) // the drain starts at 1000
	for range 4 { // the outage: the backlog grows to 5000
		now = now.Add(10 * time.Second)
		add(1000)
		p.step(state)
	}
	now = now.Add(10 * time.Second)
	if err := st.Ack(ctx, "city", 2000); err != nil { // back: 2000 acked in 10 s, 3000 left
		t.Fatal(err)
	}
	p.step(state)
	if want := `events_left=3000 acked_per_s=200 eta=15s`; !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %s:\n%s", want, logs.String())
	}
}

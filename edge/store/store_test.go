package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lintel-edge/lintel/edge/event"
)

var ctx = context.Background()

func testOptions(t testing.TB, sinks ...string) Options {
	t.Helper()
	return Options{
		Path:        filepath.Join(t.TempDir(), "data", "lintel.db"),
		Gateway:     "gw-01",
		Compound:    "c-hf-001",
		Sinks:       sinks,
		FlushWindow: 2 * time.Millisecond,
		Logger:      slog.New(slog.DiscardHandler),
		walSize:     256 << 10, // creating the default 2 MiB file per test adds up on a busy disk
	}
}

func mustOpen(t testing.TB, o Options) *Store {
	t.Helper()
	s, err := Open(o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var evTime = time.Date(2026, 3, 1, 8, 30, 0, 123e6, time.UTC)

// telemetryEvent and alertEvent make events whose content can be checked.
func telemetryEvent(i int) *event.Event {
	return &event.Event{
		Time: evTime, TimeQuality: event.Synced, Kind: event.Telemetry, Severity: event.Info,
		Device: fmt.Sprintf("meter-%d", i), Place: &event.Place{Building: "3栋", Unit: "1单元", Room: "301"},
		Data: json.RawMessage(fmt.Sprintf(`{"point":"temp","value":%d,"unit":"C"}`, i)),
	}
}

func alertEvent(i int) *event.Event {
	return &event.Event{
		Time: evTime, TimeQuality: event.Synced, Kind: event.SOSPressed, Severity: event.Critical,
		Device: fmt.Sprintf("sos-%d", i), Household: "h-42",
	}
}

func evidenceEvent(i int) *event.Event {
	return &event.Event{
		Time: evTime, Kind: event.CameraFallingObject, Severity: event.Info, Device: fmt.Sprintf("cam-%d", i),
		Evidence: []event.Evidence{{Type: event.EvidenceClip, Ref: "clips/1.mp4", SHA256: strings.Repeat("ab", 32), Size: 10}},
	}
}

// tb is what helpers need from *testing.T and *rapid.T alike.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func mustJSON(t tb, ev *event.Event) string {
	t.Helper()
	b, err := ev.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendAssignsSeqAndID(t *testing.T) {
	s := mustOpen(t, testOptions(t))
	if len(s.Epoch()) != 16 || !isLowerHex([]byte(s.Epoch())) {
		t.Fatalf("epoch %q: want 16 lower-case hex", s.Epoch())
	}
	a, b := telemetryEvent(1), alertEvent(2)
	b.Gateway, b.Compound = "other-gw", "other-c"
	if err := s.Append(ctx, a, b); err != nil {
		t.Fatal(err)
	}
	if a.Seq != 1 || b.Seq != 2 || s.LastSeq() != 2 {
		t.Fatalf("seqs %d %d last %d, want 1 2 2", a.Seq, b.Seq, s.LastSeq())
	}
	if want := event.FormatID("gw-01", s.Epoch(), 1); a.ID != want {
		t.Fatalf("id %q, want %q", a.ID, want)
	}
	if a.Gateway != "gw-01" || a.Compound != "c-hf-001" {
		t.Fatalf("stamp: %q %q", a.Gateway, a.Compound)
	}
	if b.Gateway != "other-gw" || b.Compound != "other-c" {
		t.Fatal("a set gateway/compound was overwritten")
	}
	for _, want := range []*event.Event{a, b} {
		got, ok, err := s.Get(want.Seq)
		if err != nil || !ok {
			t.Fatalf("get %d: %v %v", want.Seq, ok, err)
		}
		if diff := cmp.Diff(mustJSON(t, want), mustJSON(t, got)); diff != "" {
			t.Fatalf("get %d (-want +got):\n%s", want.Seq, diff)
		}
	}
	if _, ok, err := s.Get(99); ok || err != nil {
		t.Fatalf("get missing: %v %v", ok, err)
	}
}

func TestAppendRejectsInvalid(t *testing.T) {
	s := mustOpen(t, testOptions(t))
	bad := telemetryEvent(1)
	bad.Kind = "Not A Kind"
	if err := s.Append(ctx, telemetryEvent(0), bad); err == nil {
		t.Fatal("append of an invalid event succeeded")
	}
	if err := s.Append(ctx, nil); err == nil {
		t.Fatal("append of nil succeeded")
	}
	if s.LastSeq() != 0 {
		t.Fatalf("last seq %d after rejected appends, want 0 (all or nothing)", s.LastSeq())
	}
}

func TestStampMatchesMarshal(t *testing.T) {
	for _, gw := range []string{"gw-01", `g"w<&>`, "网关-1"} {
		ev := telemetryEvent(7)
		ev.Gateway = gw
		js, err := ev.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		ev.ID, ev.Seq = event.FormatID(gw, "0123456789abcdef", 1234), 1234
		got, err := stampJSON(js, ev.ID, ev.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(mustJSON(t, ev), string(got)); diff != "" {
			t.Fatalf("gateway %q (-marshal +stamped):\n%s", gw, diff)
		}
	}
}

func TestReadRangeAndSinks(t *testing.T) {
	s := mustOpen(t, testOptions(t, "city", "police"))
	for i := range 10 {
		if err := s.Append(ctx, telemetryEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		after    uint64
		max      int
		wantSeqs []uint64
	}{
		{0, 3, []uint64{1, 2, 3}},
		{3, 100, []uint64{4, 5, 6, 7, 8, 9, 10}},
		{9, 5, []uint64{10}},
		{10, 5, nil},
		{500, 5, nil},
	}
	for _, tt := range tests {
		got, err := s.Read("city", tt.after, tt.max)
		if err != nil {
			t.Fatal(err)
		}
		var seqs []uint64
		for _, ev := range got {
			seqs = append(seqs, ev.Seq)
		}
		if diff := cmp.Diff(tt.wantSeqs, seqs); diff != "" {
			t.Errorf("read after %d max %d (-want +got):\n%s", tt.after, tt.max, diff)
		}
	}
	if _, err := s.Read("nobody", 0, 1); err == nil {
		t.Error("read of an unknown sink succeeded")
	}
	if _, err := s.ReadRange(0, 0); err == nil {
		t.Error("read with max 0 succeeded")
	}
}

func TestAckOrderingAndDeletion(t *testing.T) {
	s := mustOpen(t, testOptions(t, "city", "police"))
	for i := range 10 {
		if err := s.Append(ctx, telemetryEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Ack(ctx, "nobody", 1); err == nil {
		t.Fatal("ack of an unknown sink succeeded")
	}
	if err := s.Ack(ctx, "city", 11); err == nil {
		t.Fatal("ack beyond the last seq succeeded")
	}
	if err := s.Ack(ctx, "city", 6); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "city", 4); err != nil { // backwards: ignored
		t.Fatal(err)
	}
	if got := s.Cursor("city"); got != 6 {
		t.Fatalf("city cursor %d, want 6 (acks never move backwards)", got)
	}
	if st := s.Stats(); st.Records != 10 {
		t.Fatalf("records %d after one sink acked, want 10 (police has not)", st.Records)
	}
	if err := s.Ack(ctx, "police", 3); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Records != 7 || st.FirstSeq != 4 {
		t.Fatalf("records %d first %d, want 7 from seq 4 (min cursor 3)", st.Records, st.FirstSeq)
	}
	if _, ok, _ := s.Get(3); ok {
		t.Fatal("seq 3 still stored after every sink acked it")
	}
	if got := st.Sinks["police"]; got.Cursor != 3 || got.Backlog != 7 {
		t.Fatalf("police stats %+v", got)
	}
	if err := s.Ack(ctx, "police", 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, "city", 10); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 0 || st.StoredBytes != 0 {
		t.Fatalf("records %d bytes %d after all acked, want 0", st.Records, st.StoredBytes)
	}
	// Sequence numbers keep counting after the log empties, across reopen.
	o := s.opts
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, o)
	ev := telemetryEvent(11)
	if err := s2.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 11 {
		t.Fatalf("seq after emptying and reopen %d, want 11", ev.Seq)
	}
}

func TestReopenPersists(t *testing.T) {
	o := testOptions(t, "city")
	s := mustOpen(t, o)
	epoch := s.Epoch()
	var want []string
	for i := range 5 {
		ev := telemetryEvent(i)
		if i == 2 {
			ev = alertEvent(i)
		}
		if err := s.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, mustJSON(t, ev))
	}
	if err := s.Ack(ctx, "city", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState(ctx, "elder", "h-42", 3, []byte(`{"mode":"away"}`)); err != nil {
		t.Fatal(err)
	}
	if s.BootCount() != 1 {
		t.Fatalf("boot count %d, want 1", s.BootCount())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, o)
	if s2.Epoch() != epoch || s2.BootCount() != 2 || s2.LastSeq() != 5 || s2.Cursor("city") != 2 {
		t.Fatalf("after reopen: epoch %s/%s boots %d last %d cursor %d", s2.Epoch(), epoch, s2.BootCount(), s2.LastSeq(), s2.Cursor("city"))
	}
	got, err := s2.Read("city", 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	var gotJS []string
	for _, ev := range got {
		gotJS = append(gotJS, mustJSON(t, ev))
	}
	if diff := cmp.Diff(want[2:], gotJS); diff != "" {
		t.Fatalf("events after reopen (-want +got):\n%s", diff)
	}
	v, val, ok, err := s2.GetState("elder", "h-42")
	if err != nil || !ok || v != 3 || string(val) != `{"mode":"away"}` {
		t.Fatalf("state after reopen: %d %q %v %v", v, val, ok, err)
	}
	st := s2.Stats()
	if st.ClassRecords[ClassImportant] != 1 || st.ClassRecords[ClassTelemetry] != 2 {
		t.Fatalf("class records %v", st.ClassRecords)
	}
}

func TestRecreatedStoreGetsNewEpoch(t *testing.T) {
	o := testOptions(t)
	s := mustOpen(t, o)
	e1 := s.Epoch()
	_ = s.Close()
	if err := os.Remove(o.Path); err != nil {
		t.Fatal(err)
	}
	s2 := mustOpen(t, o)
	if s2.Epoch() == e1 {
		t.Fatal("a recreated store reused the epoch")
	}
}

func TestState(t *testing.T) {
	s := mustOpen(t, testOptions(t))
	if _, _, ok, err := s.GetState("rules", "x"); ok || err != nil {
		t.Fatalf("missing state: %v %v", ok, err)
	}
	for i, k := range []string{"a", "b", "c"} {
		if err := s.PutState(ctx, "rules", k, uint32(i), []byte(k+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutState(ctx, "rules", "b", 9, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteState(ctx, "rules", "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteState(ctx, "rules", "never"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteState(ctx, "nons", "never"); err != nil {
		t.Fatal(err)
	}
	if err := s.PutState(ctx, "", "k", 1, nil); err == nil {
		t.Fatal("empty namespace accepted")
	}
	got, err := s.ListState("rules")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"a": []byte("aa"), "b": []byte("new")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("list (-want +got):\n%s", diff)
	}
	if v, _, _, _ := s.GetState("rules", "b"); v != 9 {
		t.Fatalf("version %d, want 9", v)
	}
	if m, err := s.ListState("empty"); err != nil || len(m) != 0 {
		t.Fatalf("empty ns: %v %v", m, err)
	}
}

func TestCloseSemantics(t *testing.T) {
	o := testOptions(t, "city")
	o.FlushWindow = time.Second // Close must flush, not wait out the window
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := s.Subscribe(4)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Go(func() { errs <- s.Append(ctx, telemetryEvent(i)) })
	}
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrClosed):
			t.Fatalf("append during close: %v", err)
		}
	}
	if time.Since(start) > 900*time.Millisecond {
		t.Fatalf("close took %s: it waited for the window", time.Since(start))
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := s.Append(ctx, telemetryEvent(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v, want ErrClosed", err)
	}
	if err := s.Ack(ctx, "city", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("ack after close: %v, want ErrClosed", err)
	}
	if err := s.PutState(ctx, "a", "b", 1, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("put state after close: %v, want ErrClosed", err)
	}
	if _, err := s.ReadRange(0, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v, want ErrClosed", err)
	}
	for range ch { // closed by Close
	}
	s2 := mustOpen(t, o)
	if int(s2.LastSeq()) != ok {
		t.Fatalf("last seq %d after reopen, want %d (every successful append durable)", s2.LastSeq(), ok)
	}
}

func TestAppendContextCanceled(t *testing.T) {
	s := mustOpen(t, testOptions(t))
	c, cancel := context.WithCancel(ctx)
	cancel()
	ev := telemetryEvent(1)
	if err := s.Append(c, ev); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with canceled ctx: %v", err)
	}
	if ev.Seq != 0 {
		t.Fatal("a canceled append modified the event")
	}
}

func TestConcurrentAppends(t *testing.T) {
	s := mustOpen(t, testOptions(t))
	const goroutines, per = 32, 50
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[uint64]string{}
	for g := range goroutines {
		wg.Go(func() {
			for i := range per {
				ev := telemetryEvent(g*1000 + i)
				evs := []*event.Event{ev}
				if i%5 == 0 {
					evs = append(evs, alertEvent(g*1000+i))
				}
				if err := s.Append(ctx, evs...); err != nil {
					t.Error(err)
					return
				}
				for j, e := range evs {
					if j > 0 && e.Seq != evs[j-1].Seq+1 {
						t.Errorf("one append got seqs %d then %d: not contiguous", evs[j-1].Seq, e.Seq)
					}
					mu.Lock()
					if _, dup := seen[e.Seq]; dup {
						t.Errorf("seq %d assigned twice", e.Seq)
					}
					seen[e.Seq] = mustJSON(t, e)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	total := uint64(len(seen))
	if s.LastSeq() != total {
		t.Fatalf("last seq %d, want %d", s.LastSeq(), total)
	}
	got, err := s.ReadRange(0, int(total)+10)
	if err != nil {
		t.Fatal(err)
	}
	for i, ev := range got {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("read position %d has seq %d", i, ev.Seq)
		}
		if seen[ev.Seq] != mustJSON(t, ev) {
			t.Fatalf("seq %d content differs from what Append returned", ev.Seq)
		}
	}
	st := s.Stats()
	if st.Commits >= total {
		t.Errorf("%d commits for %d appends: no group commit", st.Commits, total)
	}
	t.Logf("%d events in %d commits", total, st.Commits)
}

func TestSubscribe(t *testing.T) {
	s := mustOpen(t, testOptions(t))
	ch, cancel := s.Subscribe(100)
	slow, cancelSlow := s.Subscribe(1)
	defer cancelSlow()
	for i := range 5 {
		if err := s.Append(ctx, telemetryEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		select {
		case ev := <-ch:
			if ev.Seq != uint64(i+1) || ev.ID == "" {
				t.Fatalf("subscriber got seq %d id %q, want %d", ev.Seq, ev.ID, i+1)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event on subscription")
		}
	}
	cancel()
	cancel() // idempotent
	if _, open := <-ch; open {
		t.Fatal("channel open after cancel")
	}
	if got := s.Stats().SubscriberMisses; got != 4 {
		t.Fatalf("misses %d, want 4 (buffer 1, never read, 5 events)", got)
	}
	if ev := <-slow; ev.Seq != 1 {
		t.Fatalf("slow subscriber got %d, want the first event", ev.Seq)
	}
}

func TestLockedFileIsNotCorruption(t *testing.T) {
	o := testOptions(t)
	s := mustOpen(t, o)
	if err := s.Append(ctx, telemetryEvent(1)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := Open(o) // flock is per open file: a second Open blocks like another process
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v, want a locked error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("second open took %s, want about 1s", d)
	}
	if s.Quarantined() != "" {
		t.Fatal("quarantined")
	}
	matches, _ := filepath.Glob(o.Path + ".corrupt-*")
	if len(matches) != 0 {
		t.Fatalf("a locked file was quarantined: %v", matches)
	}
	if _, ok, _ := s.Get(1); !ok {
		t.Fatal("first store lost its data")
	}
}

func TestOpenOptionErrors(t *testing.T) {
	base := testOptions(t)
	for name, mod := range map[string]func(*Options){
		"no path":     func(o *Options) { o.Path = "" },
		"no gateway":  func(o *Options) { o.Gateway = "" },
		"no logger":   func(o *Options) { o.Logger = nil },
		"dup sink":    func(o *Options) { o.Sinks = []string{"a", "a"} },
		"empty sink":  func(o *Options) { o.Sinks = []string{""} },
		"dir as file": func(o *Options) { o.Path = filepath.Dir(o.Path) },
	} {
		o := base
		mod(&o)
		if name == "dir as file" {
			_ = os.MkdirAll(o.Path, 0o750)
		}
		if s, err := Open(o); err == nil {
			_ = s.Close()
			t.Errorf("%s: open succeeded", name)
		}
	}
}

// fakeClock drives store-monotonic time in tests.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Elapsed() time.Duration  { return time.Duration(c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestRetentionUsesMonotonicTime(t *testing.T) {
	o := testOptions(t)
	clk := &fakeClock{}
	o.Elapsed = clk.Elapsed
	o.MaxAge = time.Hour
	// A wall clock that is badly wrong and jumps around must not matter.
	var wall atomic.Int64
	wall.Store(time.Date(1970, 1, 1, 0, 0, 5, 0, time.UTC).UnixNano())
	o.Now = func() time.Time { return time.Unix(0, wall.Load()) }
	s := mustOpen(t, o)
	for i := range 3 {
		if err := s.Append(ctx, telemetryEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	wall.Store(time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()) // +70 years
	clk.Advance(30 * time.Minute)
	if err := s.Append(ctx, alertEvent(3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 4 {
		t.Fatalf("records %d after a wall-clock jump, want 4", st.Records)
	}
	// Downtime does not age records: reopen with the fake clock reset.
	_ = s.Close()
	clk2 := &fakeClock{}
	o.Elapsed = clk2.Elapsed
	s = mustOpen(t, o)
	clk2.Advance(29 * time.Minute) // 59 min since the first three
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 4 {
		t.Fatalf("records %d at 59 min, want 4", st.Records)
	}
	if age := s.Stats(); age.LastSeq != 4 {
		t.Fatalf("last seq %d", age.LastSeq)
	}
	clk2.Advance(2 * time.Minute) // 61 min: the first three expire, the alert (31 min) stays
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Records != 2 || st.Dropped[ReasonRetention] != 3 {
		t.Fatalf("records %d dropped %v, want 2 (alert + store.dropped) and 3 by retention", st.Records, st.Dropped)
	}
	evs, err := s.ReadRange(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Seq != 4 || evs[1].Kind != event.StoreDropped {
		t.Fatalf("remaining %v", evs)
	}
	d := dropData(t, evs[1])
	if d.Reason != ReasonRetention || d.Count != 3 || d.FirstSeq != 1 || d.LastSeq != 3 || d.Telemetry != 3 {
		t.Fatalf("drop data %+v", d)
	}
}

func TestRetentionRunsWhileIdle(t *testing.T) {
	o := testOptions(t)
	clk := &fakeClock{}
	o.Elapsed = clk.Elapsed
	o.MaxAge = 200 * time.Millisecond // maintenance tick 10ms
	s := mustOpen(t, o)
	if err := s.Append(ctx, telemetryEvent(1)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Dropped[ReasonRetention] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("idle store never applied retention")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dropData(t tb, ev *event.Event) dropInfo {
	t.Helper()
	if ev.Kind != event.StoreDropped {
		t.Fatalf("event %d is %s, want store.dropped", ev.Seq, ev.Kind)
	}
	var d dropInfo
	if err := json.Unmarshal(ev.Data, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestQuotaDropsTelemetryFirst(t *testing.T) {
	o := testOptions(t, "city")
	o.MaxBytes = 8 << 10
	s := mustOpen(t, o)
	// Interleave: every fourth event important.
	for i := range 40 {
		ev := telemetryEvent(i)
		if i%4 == 0 {
			ev = alertEvent(i)
		}
		if err := s.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	if st.StoredBytes > o.MaxBytes {
		t.Fatalf("stored %d > quota %d", st.StoredBytes, o.MaxBytes)
	}
	if st.Dropped[ReasonQuota] == 0 {
		t.Fatal("nothing dropped")
	}
	if st.DroppedImportant != 0 {
		t.Fatalf("%d important dropped while telemetry was there", st.DroppedImportant)
	}
	evs, err := s.Read("city", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var dropped uint64
	for _, ev := range evs {
		if ev.Kind == event.StoreDropped {
			dropped += dropData(t, ev).Count
		}
	}
	if dropped != st.Dropped[ReasonQuota] {
		t.Fatalf("store.dropped events account for %d, stats say %d", dropped, st.Dropped[ReasonQuota])
	}
	// Every alert is still there.
	alerts := 0
	for _, ev := range evs {
		if ev.Kind == event.SOSPressed {
			alerts++
		}
	}
	if alerts != 10 {
		t.Fatalf("%d alerts kept, want 10", alerts)
	}
	// An ack across a dropped range works and a read skips the hole.
	if err := s.Ack(ctx, "city", s.LastSeq()-1); err != nil {
		t.Fatal(err)
	}
	// Keep appending alerts only: now important records must go, oldest first.
	for i := range 60 {
		if err := s.Append(ctx, alertEvent(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	st = s.Stats()
	if st.StoredBytes > o.MaxBytes || st.DroppedImportant == 0 {
		t.Fatalf("stored %d, dropped important %d", st.StoredBytes, st.DroppedImportant)
	}
	evs, _ = s.ReadRange(0, 1000)
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Fatal("read not ascending")
		}
	}
	if last := evs[len(evs)-1]; last.Seq != s.LastSeq() {
		t.Fatalf("newest record %d, last seq %d", last.Seq, s.LastSeq())
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		ev   *event.Event
		want byte
	}{
		{telemetryEvent(1), classTelemetry},
		{alertEvent(1), classImportant},
		{evidenceEvent(1), classImportant},
		{&event.Event{Kind: "gate.forced_open", Severity: event.Alert}, classImportant},
		{&event.Event{Kind: "device.offline", Severity: event.Warning}, classTelemetry},
	}
	for _, tt := range tests {
		if got := classOf(tt.ev); got != tt.want {
			t.Errorf("%s/%s: class %d, want %d", tt.ev.Kind, tt.ev.Severity, got, tt.want)
		}
	}
}

func TestRecordRoundTripAndDamage(t *testing.T) {
	for _, ev := range recordSeedEvents() {
		js, err := ev.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		v := encodeRecord(ev.Seq, header{class: classOf(ev), monoMS: 77, wallMS: -5}, js)
		h, got, err := decodeRecord(ev.Seq, v)
		if err != nil {
			t.Fatal(err)
		}
		if h.monoMS != 77 || h.wallMS != -5 || h.class != classOf(ev) {
			t.Fatalf("header %+v", h)
		}
		if diff := cmp.Diff(string(js), mustJSON(t, got)); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		if _, _, err := decodeRecord(ev.Seq+1, v); err == nil {
			t.Fatal("record accepted under another key")
		}
		for i := range v {
			bad := append([]byte(nil), v...)
			bad[i] ^= 0x10
			if _, _, err := decodeRecord(ev.Seq, bad); err == nil {
				t.Fatalf("flip at byte %d not detected", i)
			}
		}
		if _, _, err := decodeRecord(ev.Seq, v[:len(v)-1]); err == nil {
			t.Fatal("truncated record accepted")
		}
	}
}

func recordSeedEvents() []*event.Event {
	evs := []*event.Event{telemetryEvent(1), alertEvent(2), evidenceEvent(3)}
	for i, ev := range evs {
		ev.Seq = uint64(i + 1)
		ev.ID = event.FormatID("gw-01", "0123456789abcdef", ev.Seq)
		ev.Gateway = "gw-01"
	}
	return evs
}

package city

import (
	"bufio"
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

// syncBuffer is a bytes.Buffer safe for the receiver's writer and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDeclaredGapEndToEnd makes a real gap: a store with a tiny quota
// drops the oldest undelivered telemetry while the uplink is stopped, and
// says so with a store.dropped event. After the drain through mosquitto
// the reference receiver must report the dropped seqs as declared, and no
// undeclared hole; the same output without the store.dropped line must
// show exactly those seqs as holes (the declaration is what closes them).
func TestDeclaredGapEndToEnd(t *testing.T) {
	b := startBroker(t, nil)
	st, err := store.Open(store.Options{
		Path: filepath.Join(t.TempDir(), "events.db"), Gateway: "gw-01", Compound: "c-01",
		Sinks: []string{"city"}, Logger: testLogger(t), MaxBytes: 32 << 10,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	r, err := NewReceiver(ReceiverOptions{
		Broker: b.url(), Filter: "lintel/v1/+/+", ShareGroup: "platform", Ack: true, GapCheck: true,
		Out: out, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		if err := r.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(rwg.Wait)
	waitFor(t, 10*time.Second, "receiver subscribed", r.Subscribed)

	o := testOptions(b.url())
	o.AckMode = AckApplication
	sink := func() (*Sink, func()) {
		sctx, stop := context.WithCancel(ctx)
		s := runSink(t, sctx, st, o, nil)
		return s, stop
	}
	// Delivered and acked first: the receiver's stream starts at seq 1.
	_, stop := sink()
	appendEvents(t, st, 50, 0)
	waitFor(t, 20*time.Second, "the first events acked", func() bool { return st.Cursor("city") == st.LastSeq() })
	stop()
	waitFor(t, 10*time.Second, "uplink stopped", func() bool {
		for _, ss := range Snapshots() {
			if ss.Name == "city" {
				return false
			}
		}
		return true
	})
	// Uplink down: one append far over the quota, so one quota drop (the
	// oldest undelivered telemetry) and one store.dropped at the head.
	evs := make([]*event.Event, 400)
	for i := range evs {
		evs[i] = event.New(event.DoorOpened)
		evs[i].Device = "door-3-1-301"
		evs[i].WithData(map[string]any{"contact": "open", "pad": strings.Repeat("x", 64)})
	}
	if err := st.Append(ctx, evs...); err != nil {
		t.Fatal(err)
	}
	dropped := st.Stats().Dropped[store.ReasonQuota]
	if dropped == 0 {
		t.Fatal("no quota drop: the test needs a gap")
	}
	s, _ := sink()
	last := st.LastSeq()
	waitFor(t, 30*time.Second, "the drain", func() bool { return s.Confirmed() == last && r.Received.Load()+r.Declared.Load() >= last })

	streams := r.Streams()
	if len(streams) != 1 {
		t.Fatalf("streams %+v", streams)
	}
	rep := streams[0]
	// Every seq from 1 to the last is either received or declared, the
	// declared ones lie between received ones, and the store dropped at
	// least as many as were declared missing (a dropped seq may have been
	// delivered before the drop).
	if rep.FirstSeq != 1 || rep.LastSeq != last || rep.Holes != 0 || rep.Received+rep.Declared != last ||
		rep.Declared == 0 || rep.Declared > dropped || rep.ByReason["dropped/quota"] != rep.Declared || len(rep.ByReason) != 1 {
		t.Fatalf("stream report %+v; store last seq %d, dropped %d", rep, last, dropped)
	}
	if r.Holes.Load() != 0 || r.Declared.Load() != rep.Declared || r.Received.Load() != rep.Received {
		t.Errorf("counters: received %d declared %d holes %d", r.Received.Load(), r.Declared.Load(), r.Holes.Load())
	}
	// Without the declaration the same stream has exactly those holes.
	var without strings.Builder
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"kind":"`+string(event.StoreDropped)+`"`) {
			without.WriteString(sc.Text() + "\n")
		}
	}
	r2, _ := NewReceiver(ReceiverOptions{Broker: "tcp://x:1", Filter: "x", Logger: testLogger(t)})
	if err := r2.LoadSeen(strings.NewReader(without.String())); err != nil {
		t.Fatal(err)
	}
	if r2.Holes.Load() != rep.Declared || r2.Declared.Load() != 0 {
		t.Errorf("without the store.dropped event: holes %d declared %d, want holes %d", r2.Holes.Load(), r2.Declared.Load(), rep.Declared)
	}
	t.Logf("last seq %d: received %d, declared missing %d (store dropped %d), undeclared holes %d", last, rep.Received, rep.Declared, dropped, rep.Holes)
}

package city

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/sdnotify"
)

// statusWatcher records the retained status messages of gw-01.
type statusWatcher struct {
	mu   sync.Mutex
	msgs []Status
}

func watchStatus(t *testing.T, b *broker, topic string) *statusWatcher {
	t.Helper()
	w := &statusWatcher{}
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.url()).SetClientID("status-watch").SetAutoReconnect(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("status watcher connect: %v", tok.Error())
	}
	tok := c.Subscribe(topic, 1, func(_ mqtt.Client, m mqtt.Message) {
		var s Status
		if err := json.Unmarshal(m.Payload(), &s); err != nil {
			t.Errorf("bad status json: %v", err)
			return
		}
		w.mu.Lock()
		w.msgs = append(w.msgs, s)
		w.mu.Unlock()
	})
	tok.Wait()
	t.Cleanup(func() { c.Disconnect(100) })
	return w
}

func (w *statusWatcher) has(f func(Status) bool) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.msgs {
		if f(s) {
			return true
		}
	}
	return false
}

func TestNormalFlow(t *testing.T) {
	b := startBroker(t, nil)
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	r := startReceiver(t, ctx, b, false, col)
	ids := appendEvents(t, st, 20000, 97)
	o := testOptions(b.url())
	o.Batch.Linger = 50e6
	s := runSink(t, ctx, st, o, nil)
	sw := watchStatus(t, b, s.Topics().Status())
	waitProgress(t, "all events", col.progress, func() bool { return col.count() >= len(ids) })
	// Live events after the backlog, in small appends: linger batches them.
	ids = append(ids, appendEvents(t, st, 50, 10)...)
	waitFor(t, 10*time.Second, "live events", func() bool { return col.count() >= len(ids) })
	waitFor(t, 10*time.Second, "cursor saved", func() bool { return st.Cursor("city") == st.LastSeq() })
	checkDelivery(t, ids, col, r)
	// The status published after the drain carries the saved cursor and
	// an empty backlog. The drain can end before the first refresh (only
	// the connect-time status, cursor 0, seen yet): wait for the next one,
	// due within status_interval.
	last := st.LastSeq()
	waitFor(t, 10*time.Second, "an online status with the drained cursor", func() bool {
		return sw.has(func(s Status) bool {
			return s.State == "online" && s.Boot == st.BootCount() && s.Gateway == "gw-01" && s.Version == "test" &&
				s.LastSeq == last && s.Backlog["city"].Cursor == last && s.Backlog["city"].Events == 0
		})
	})
	if s.BytesSent.Load() == 0 || s.Reconnects.Load() != 0 {
		t.Errorf("bytes %d reconnects %d", s.BytesSent.Load(), s.Reconnects.Load())
	}
	// The watchdog sees the uplink loop alive while it runs, and forgets it
	// when it stops.
	if !slices.Contains(sdnotify.Default.Names(), s.loopName()) || len(sdnotify.Default.Stale()) != 0 {
		t.Errorf("watchdog liveness: loops %v, stale %v", sdnotify.Default.Names(), sdnotify.Default.Stale())
	}
	cancel()
	waitFor(t, 5*time.Second, "offline status on clean stop", func() bool {
		return sw.has(func(s Status) bool { return s.State == "offline" })
	})
	waitFor(t, 5*time.Second, "uplink loop unregistered", func() bool {
		return !slices.Contains(sdnotify.Default.Names(), s.loopName())
	})
}

func TestBrokerRestartMidDrain(t *testing.T) {
	b := startBroker(t, nil)
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	r := startReceiver(t, ctx, b, true, col)
	ids := appendEvents(t, st, 20000, 0)
	o := testOptions(b.url())
	o.AckMode = AckApplication
	o.AckTimeout = 1e9
	o.Window = 4
	s := runSink(t, ctx, st, o, nil)
	for round := 0; round < 2; round++ {
		want := len(ids) * (round + 1) / 3
		waitProgress(t, "part of the drain", col.progress, func() bool { return col.count() >= want })
		b.kill()
		time.Sleep(300 * time.Millisecond)
		b.start()
	}
	waitProgress(t, "all events after broker restarts", col.progress, func() bool { return col.count() >= len(ids) })
	waitFor(t, 10*time.Second, "cursor saved", func() bool { return st.Cursor("city") == st.LastSeq() })
	checkDelivery(t, ids, col, r)
	if s.Reconnects.Load() == 0 {
		t.Error("the sink never reconnected")
	}
	t.Logf("reconnects %d rewinds %d duplicates %d", s.Reconnects.Load(), s.Rewinds.Load(), r.Duplicates.Load())
}

func TestConnectionCutMidBatch(t *testing.T) {
	b := startBroker(t, nil)
	p := startProxy(t, strings.TrimPrefix(b.url(), "tcp://"))
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	r := startReceiver(t, ctx, b, false, col)
	ids := appendEvents(t, st, 20000, 0)
	o := testOptions(p.url())
	o.Gzip = false // large batches: a byte budget lands inside one
	s := runSink(t, ctx, st, o, nil)
	sw := watchStatus(t, b, s.Topics().Status())
	for i := 0; i < 4; i++ {
		want := 20000 * (i + 1) / 6
		waitProgress(t, "part of the drain", col.progress, func() bool { return col.count() >= want })
		// A batch is ~60 KiB here: 20 000 bytes ends mid-message.
		p.cutAfter(20000 + int64(i)*7919)
		// The drain may be done already (it is fast since the batcher
		// sends the stored bytes): more events, appended once the cut is
		// armed, make sure there is a batch for it to land in.
		ids = append(ids, appendEvents(t, st, 3000, 0)...)
		// A cut can leave the next connection stuck in a write or a connect
		// through the relay; the sink's write (30 s) and connect (20 s)
		// timeouts end it: allow for them.
		waitFor(t, 75*time.Second, "reconnect", func() bool { return s.Reconnects.Load() > uint64(i) })
	}
	waitProgress(t, "all events after cuts", col.progress, func() bool { return col.count() >= len(ids) })
	checkDelivery(t, ids, col, r)
	// The broker saw the connection drop without DISCONNECT: the will
	// says offline, with the boot counter.
	waitFor(t, 10*time.Second, "offline will", func() bool {
		return sw.has(func(s Status) bool { return s.State == "offline" && s.Boot == st.BootCount() })
	})
	t.Logf("reconnects %d duplicates %d", s.Reconnects.Load(), r.Duplicates.Load())
}

func TestAlertLaneDuringDrain(t *testing.T) {
	b := startBroker(t, nil)
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	r := startReceiver(t, ctx, b, false, col)
	ids := appendEvents(t, st, 30000, 0)
	o := testOptions(b.url())
	o.Batch.MaxEvents = 500
	o.Batch.MaxBytes = 256 << 10
	o.Window = 8
	runSink(t, ctx, st, o, nil)
	waitProgress(t, "drain started", col.progress, func() bool { return col.count() > 1000 })
	var lat []time.Duration
	for i := 0; i < 10 && col.count() < len(ids)-3000; i++ {
		ev := event.New(event.ElderAlertRaised)
		ev.Device = "sos-3-1-301"
		if err := st.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		at := time.Now()
		ids = append(ids, ev.ID)
		waitFor(t, 5*time.Second, "alert on the lane", func() bool {
			col.mu.Lock()
			defer col.mu.Unlock()
			_, ok := col.alerts[ev.ID]
			return ok
		})
		col.mu.Lock()
		lat = append(lat, col.alerts[ev.ID].Sub(at))
		col.mu.Unlock()
		time.Sleep(50 * time.Millisecond)
	}
	if len(lat) < 3 {
		t.Fatalf("drain too fast to measure: %d alerts during it", len(lat))
	}
	worst := time.Duration(0)
	for _, l := range lat {
		worst = max(worst, l)
	}
	t.Logf("%d alerts during drain, worst latency %s", len(lat), worst)
	if worst > time.Second {
		t.Errorf("alert took %s, want ≤ 1s", worst)
	}
	waitProgress(t, "all events", col.progress, func() bool { return col.count() >= len(ids) })
	checkDelivery(t, ids, col, r)
	if r.Duplicates.Load() == 0 {
		t.Error("alerts should also arrive in the ordered stream (as duplicates)")
	}
}

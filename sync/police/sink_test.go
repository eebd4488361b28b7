package police_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
	"github.com/lintel-edge/lintel/sync/police"
	"github.com/lintel-edge/lintel/sync/police/viidsim"
)

const testDeviceID = "34010000001190000001"

type fixture struct {
	t   *testing.T
	dir string
	st  *store.Store
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "events.db"), Gateway: "gw-t", Compound: "c1",
		Sinks: []string{"city", "police"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &fixture{t: t, dir: dir, st: st}
}

// evidence writes a random file under clips/ and returns its reference.
func (f *fixture) evidence(typ, name string, size int) event.Evidence {
	f.t.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	rel := "clips/cam-1/2026-03-01/" + name
	p := filepath.Join(f.dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o640); err != nil {
		f.t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	mt := "image/jpeg"
	if typ == event.EvidenceClip {
		mt = "video/mp4"
	}
	return event.Evidence{Type: typ, Ref: rel, MediaType: mt, SHA256: hex.EncodeToString(sum[:]), Size: int64(size)}
}

func (f *fixture) falling(n int) []*event.Event {
	var evs []*event.Event
	for i := 0; i < n; i++ {
		e := event.New(event.CameraFallingObject).WithData(map[string]any{"rule": "tns1:RuleEngine/FallingObject", "start_floor": 12})
		e.Device = "cam-1"
		e.Time = time.Date(2026, 3, 1, 2, 3, 4, 0, time.UTC).Add(time.Duration(i) * time.Second)
		e.TimeQuality = event.Synced
		e.Place = &event.Place{Building: "3栋", Position: "east-facade"}
		e.Evidence = []event.Evidence{
			f.evidence(event.EvidenceClip, "c"+itoa(i)+".mp4", 300<<10+i),
			f.evidence(event.EvidenceSnapshot, "s"+itoa(i)+".jpg", 20<<10+i),
		}
		evs = append(evs, e)
	}
	return evs
}

func itoa(i int) string { return string(rune('a'+i%26)) + string(rune('a'+i/26%26)) }

func (f *fixture) append(evs ...*event.Event) {
	f.t.Helper()
	if err := f.st.Append(context.Background(), evs...); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) sink(url string, mod func(*police.Options)) *police.Sink {
	f.t.Helper()
	o := police.DefaultOptions()
	o.URL, o.Username, o.Password, o.DeviceID = url, "lintel", config.NewSecret("s3cret"), testDeviceID
	o.IDPrefix = "3401000000119"
	o.Keepalive = config.Duration(100 * time.Millisecond)
	o.Retry = police.RetryOptions{Min: config.Duration(10 * time.Millisecond), Max: config.Duration(50 * time.Millisecond)}
	o.Timeout = config.Duration(5 * time.Second)
	if mod != nil {
		mod(&o)
	}
	s, err := police.New(police.Deps{Gateway: "gw-t", DataDir: f.dir, Log: f.st, Logger: slog.New(slog.DiscardHandler)}, o)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func run(t *testing.T, s *police.Sink) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("sink did not stop")
		}
	}
}

func waitFor(t *testing.T, what string, d time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newSim(o viidsim.Options) (*viidsim.Server, *httptest.Server) {
	if o.Username == "" {
		o.Username, o.Password = "lintel", "s3cret"
	}
	sim := viidsim.New(o)
	return sim, httptest.NewServer(sim)
}

// TestIncidentDelivered: digest registration, keepalives, time read, and a
// falling-object incident arriving as an image and a video slice, linked,
// whose uploaded bytes match the evidence sha256.
func TestIncidentDelivered(t *testing.T) {
	f := newFixture(t)
	sim, srv := newSim(viidsim.Options{})
	defer srv.Close()
	evs := f.falling(1)
	f.append(evs...)
	// an elder event and a household door event that must not go
	el := event.New(event.ElderAlertRaised).WithData(map[string]any{"rule": "inactivity"})
	el.Household = "hh-1"
	f.append(el)
	s := f.sink(srv.URL, nil)
	stop := run(t, s)
	last := f.st.LastSeq()
	waitFor(t, "cursor", 10*time.Second, func() bool { return f.st.Cursor("police") == last })
	waitFor(t, "keepalives", 5*time.Second, func() bool { return sim.Received().Keepalives >= 2 })
	stop()

	got := sim.Received()
	if got.Challenges < 1 || got.Registers != 1 || got.UnRegisters != 1 {
		t.Fatalf("challenges %d registers %d unregisters %d", got.Challenges, got.Registers, got.UnRegisters)
	}
	if len(got.Images) != 1 || len(got.VideoSlices) != 1 || len(got.Scenes) != 0 {
		t.Fatalf("images %d slices %d scenes %d", len(got.Images), len(got.VideoSlices), len(got.Scenes))
	}
	var vid, img string
	for id := range got.VideoSlices {
		vid = id
	}
	for id, info := range got.Images {
		img = id
		if info["SourceVideoID"] != vid {
			t.Fatalf("image not linked to the clip: %v", info["SourceVideoID"])
		}
	}
	if !police.IsDigits(vid, 41) || !police.IsDigits(img, 41) || vid[:20] == testDeviceID {
		t.Fatalf("ids %s %s", vid, img)
	}
	for _, e := range evs[0].Evidence {
		id := vid
		if e.Type == event.EvidenceSnapshot {
			id = img
		}
		if got.DataSHA256[id] != e.SHA256 {
			t.Fatalf("%s: uploaded sha256 %s, evidence %s", e.Type, got.DataSHA256[id], e.SHA256)
		}
	}
	if ts := s.Client().Time(); ts.Quality != event.Synced || ts.Offset > 2*time.Second || ts.Offset < -2*time.Second {
		t.Fatalf("time sample %+v", ts)
	}
	if s.EventsSkipped.Load() != 1 {
		t.Fatalf("skipped %d, want the elder event", s.EventsSkipped.Load())
	}
}

// TestExpiryReRegisters: the platform forgets the node; the keepalive's
// 401 makes the sink register again and delivery resumes.
func TestExpiryReRegisters(t *testing.T) {
	f := newFixture(t)
	sim, srv := newSim(viidsim.Options{Expiry: time.Hour})
	defer srv.Close()
	s := f.sink(srv.URL, nil)
	stop := run(t, s)
	defer stop()
	waitFor(t, "register", 5*time.Second, func() bool { return sim.Received().Registers == 1 })
	sim.Expire()
	waitFor(t, "re-register", 5*time.Second, func() bool { return sim.Received().Registers >= 2 })
	f.append(f.falling(1)...)
	waitFor(t, "delivery after re-register", 10*time.Second, func() bool { return f.st.Cursor("police") == f.st.LastSeq() })
	if s.State().LastError == "" {
		t.Fatal("the 401 left no last error")
	}
}

// TestKeepaliveExpiry: with a short platform expiry and a keepalive that
// is too slow, the node expires and is registered again on the next write.
func TestKeepaliveExpiry(t *testing.T) {
	f := newFixture(t)
	sim, srv := newSim(viidsim.Options{Expiry: 50 * time.Millisecond})
	defer srv.Close()
	s := f.sink(srv.URL, func(o *police.Options) { o.Keepalive = config.Duration(time.Second) })
	stop := run(t, s)
	defer stop()
	waitFor(t, "register", 5*time.Second, func() bool { return sim.Received().Registers == 1 })
	time.Sleep(100 * time.Millisecond)
	f.append(f.falling(1)...)
	waitFor(t, "delivery", 10*time.Second, func() bool { return f.st.Cursor("police") == f.st.LastSeq() })
	if r := sim.Received(); r.Expired < 1 || r.Registers < 2 {
		t.Fatalf("expired %d registers %d", r.Expired, r.Registers)
	}
}

// TestPartialRejection: the platform refuses some records of a list; only
// those are sent again, the accepted ones exactly once.
func TestPartialRejection(t *testing.T) {
	f := newFixture(t)
	sim, srv := newSim(viidsim.Options{RejectRecords: 3, Fail503: 2})
	defer srv.Close()
	f.append(f.falling(5)...)
	s := f.sink(srv.URL, nil)
	stop := run(t, s)
	waitFor(t, "cursor", 15*time.Second, func() bool { return f.st.Cursor("police") == f.st.LastSeq() })
	stop()
	got := sim.Received()
	if len(got.Rejected) != 3 || got.Served503 != 2 {
		t.Fatalf("rejected %v, 503s %d", got.Rejected, got.Served503)
	}
	rej := map[string]bool{}
	for _, id := range got.Rejected {
		rej[id] = true
	}
	for id, n := range got.Attempts {
		want := 1
		if rej[id] {
			want = 2
		}
		if n != want {
			t.Fatalf("record %s written %d times, want %d (rejected %v)", id, n, want, rej[id])
		}
	}
	if len(got.Images) != 5 || len(got.VideoSlices) != 5 || len(got.DataSHA256) != 10 {
		t.Fatalf("images %d slices %d data %d", len(got.Images), len(got.VideoSlices), len(got.DataSHA256))
	}
}

// TestPoliceOutageDoesNotBlockCity: with the police platform down (and
// then back), a second consumer of the same log (the city cursor) keeps
// acking at full speed, and police catches up afterwards.
func TestPoliceOutageDoesNotBlockCity(t *testing.T) {
	f := newFixture(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the police platform is down: connections are refused
	s := f.sink("http://"+addr, nil)
	stop := run(t, s)
	defer stop()

	ctx := context.Background()
	start := time.Now()
	const n = 2000
	for i := 0; i < n; i += 100 {
		batch := make([]*event.Event, 0, 100)
		for j := 0; j < 100; j++ {
			e := event.New(event.GateForcedOpen)
			e.Device = "gate-1"
			batch = append(batch, e)
		}
		f.append(batch...)
		evs, err := f.st.Read("city", f.st.Cursor("city"), 1000)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.st.Ack(ctx, "city", evs[len(evs)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
	cityTook := time.Since(start)
	if f.st.Cursor("city") != f.st.LastSeq() {
		t.Fatal("city cursor behind")
	}
	if f.st.Cursor("police") != 0 {
		t.Fatal("police advanced while down")
	}
	if cityTook > 5*time.Second {
		t.Fatalf("city consumer took %s with police down", cityTook)
	}
	if st := s.State(); st.Registered || st.Backlog != n || st.LastError == "" {
		t.Fatalf("state while down: %+v", st)
	}
	// The platform returns on the same address; police catches up alone.
	l2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port reuse: %v", err)
	}
	sim := viidsim.New(viidsim.Options{Username: "lintel", Password: "s3cret"})
	srv := &httptest.Server{Listener: l2, Config: &http.Server{Handler: sim}}
	srv.Start()
	defer srv.Close()
	waitFor(t, "police catch-up", 30*time.Second, func() bool { return f.st.Cursor("police") == f.st.LastSeq() })
	if got := len(sim.Received().Scenes); got != n {
		t.Fatalf("%d scenes, want %d", got, n)
	}
	t.Logf("city drained %d events in %s with police down; police caught up after its return", n, cityTook)
}

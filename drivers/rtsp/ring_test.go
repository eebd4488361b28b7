package rtsp

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
)

// feed pushes n frames at fps with a keyframe every gop frames, each of
// size bytes, starting at t0.
func feed(r *ring, t0 time.Time, n, fps, gop, size int) time.Time {
	var at time.Time
	for i := 0; i < n; i++ {
		at = t0.Add(time.Duration(i) * time.Second / time.Duration(fps))
		r.push(&accessUnit{pts: int64(i) * 90000 / int64(fps), dts: int64(i) * 90000 / int64(fps), at: at, key: i%gop == 0, data: make([]byte, size)})
	}
	return at
}

func TestRingKeepsPreRollFromKeyframe(t *testing.T) {
	b := &Budget{Limit: 1 << 30}
	r := newRing(3*time.Second, 1<<30, b)
	t0 := time.Unix(1000, 0)
	last := feed(r, t0, 100, 10, 10, 1000) // 10 s of video
	frames, bytes, span := r.stats()
	if !r.aus[0].key {
		t.Fatal("ring does not start on a keyframe")
	}
	// Holds at least the pre-roll, at most pre-roll + one GOP.
	if age := last.Sub(r.aus[0].at); age < 3*time.Second || age > 4*time.Second {
		t.Fatalf("oldest frame is %s old, want 3–4 s", age)
	}
	if bytes != b.Used() || bytes != int64(frames)*(1000+auOverhead) {
		t.Fatalf("accounting: ring %d, budget %d, frames %d", bytes, b.Used(), frames)
	}
	t.Logf("%d frames, %d bytes, span %s", frames, bytes, span)
	r.reset()
	if b.Used() != 0 {
		t.Fatalf("budget %d after reset", b.Used())
	}
}

func TestRingMemoryCaps(t *testing.T) {
	t.Run("per camera", func(t *testing.T) {
		b := &Budget{Limit: 1 << 30}
		r := newRing(10*time.Second, 200_000, b)
		feed(r, time.Unix(0, 0), 300, 10, 10, 5000) // 50 KB/s, 10 s would be 500 KB
		_, bytes, _ := r.stats()
		if bytes > 200_000 || !r.aus[0].key {
			t.Fatalf("ring holds %d bytes (cap 200000), starts on key %v", bytes, r.aus[0].key)
		}
	})
	t.Run("shared budget", func(t *testing.T) {
		b := &Budget{Limit: 300_000}
		rings := []*ring{newRing(10*time.Second, 1<<30, b), newRing(10*time.Second, 1<<30, b), newRing(10*time.Second, 1<<30, b)}
		for i := 0; i < 300; i++ {
			for _, r := range rings {
				at := time.Unix(0, 0).Add(time.Duration(i) * 100 * time.Millisecond)
				r.push(&accessUnit{at: at, key: i%10 == 0, data: make([]byte, 5000)})
			}
		}
		// Every push may overshoot by one frame before trimming.
		if b.Used() > 300_000+5000+auOverhead {
			t.Fatalf("budget used %d > limit", b.Used())
		}
		for i, r := range rings {
			if _, bytes, _ := r.stats(); bytes == 0 {
				t.Fatalf("ring %d starved", i)
			}
		}
	})
	t.Run("GOP larger than the cap", func(t *testing.T) {
		b := &Budget{Limit: 1 << 30}
		r := newRing(10*time.Second, 20_000, b)
		feed(r, time.Unix(0, 0), 25, 10, 100, 1000)
		if frames, bytes, _ := r.stats(); bytes > 20_000 || (frames > 0 && !r.aus[0].key) {
			t.Fatalf("%d frames %d bytes", frames, bytes)
		}
		if r.overflow == 0 {
			t.Fatal("overflow not counted")
		}
	})
}

func TestClipFromRingAndSweep(t *testing.T) {
	dir := t.TempDir()
	b := &Budget{Limit: 1 << 30}
	r := newRing(2*time.Second, 1<<30, b)
	first := fakecam.DefaultVideo.AccessUnits()[0]
	params := newParamSets("h264", nil, first[0], first[1])
	t0 := time.Unix(2000, 0)
	push := func(i int) {
		r.push(&accessUnit{pts: int64(i) * 9000, dts: int64(i) * 9000, at: t0.Add(time.Duration(i) * 100 * time.Millisecond),
			key: i%10 == 0, data: []byte{0, 0, 0, 2, 0x65, byte(i)}, params: params})
	}
	for i := 0; i < 50; i++ {
		push(i)
	}
	incident := t0.Add(4900 * time.Millisecond)
	cp := r.capture(incident.Add(time.Second), 64)
	for i := 50; i < 70; i++ {
		push(i)
	}
	st := &clipStore{root: dir, device: "cam-9", quota: 1 << 30, retention: time.Hour}
	clip, err := st.writeClip(cp, "camera.falling_object", incident, nil)
	if err != nil {
		t.Fatal(err)
	}
	if clip.Frames < 30 || clip.Frames > 40 || clip.Keyframes < 3 || clip.PreRoll < 2 || clip.PostRoll < 0.8 {
		t.Fatalf("clip %+v", clip)
	}
	path := filepath.Join(dir, filepath.FromSlash(clip.Ref[len("clips/"):]))
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	// Retention: an old clip goes, with its sidecar.
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(path, old, old)
	if n, err := st.sweep(time.Now()); err != nil || n != 1 {
		t.Fatalf("sweep deleted %d (%v), want 1", n, err)
	}
	if _, err := os.Stat(path[:len(path)-4] + ".json"); !os.IsNotExist(err) {
		t.Fatal("sidecar left behind")
	}
	// Quota: the oldest go first.
	st.quota = 1
	for i := 0; i < 3; i++ {
		p := filepath.Join(dir, "cam-9", "2026-01-01", string(rune('a'+i))+".mp4")
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
		ts := time.Now().Add(time.Duration(i-3) * time.Minute)
		os.Chtimes(p, ts, ts)
	}
	if n, _ := st.sweep(time.Now()); n != 2 {
		t.Fatalf("quota sweep deleted %d, want 2", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "cam-9", "2026-01-01", "c.mp4")); err != nil {
		t.Fatal("newest clip deleted")
	}
}

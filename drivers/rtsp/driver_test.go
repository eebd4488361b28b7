package rtsp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/pkg/formats/fmp4"

	_ "github.com/lintel-edge/lintel/configs"
	"github.com/lintel-edge/lintel/drivers/rtsp"
	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// recorder is an edge.Emitter that keeps what it is given.
type recorder struct {
	mu  sync.Mutex
	evs []*event.Event
	ch  chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) Emit(_ context.Context, evs ...*event.Event) error {
	r.mu.Lock()
	for _, e := range evs {
		if err := e.Validate(); err != nil {
			r.mu.Unlock()
			return err
		}
		r.evs = append(r.evs, e)
	}
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) kinds() []event.Kind {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event.Kind
	for _, e := range r.evs {
		out = append(out, e.Kind)
	}
	return out
}

// wait returns the n-th (1-based) event of kind, waiting up to d.
func (r *recorder) wait(t *testing.T, kind event.Kind, n int, d time.Duration) *event.Event {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		seen := 0
		for _, e := range r.evs {
			if e.Kind == kind {
				seen++
				if seen == n {
					r.mu.Unlock()
					return e
				}
			}
		}
		r.mu.Unlock()
		select {
		case <-r.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s #%d within %s; got %v", kind, n, d, r.kinds())
			return nil
		}
	}
}

// syncBuffer is a log sink safe for concurrent writers.
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

type rig struct {
	cam     *rtsp.Camera
	rec     *recorder
	logs    *syncBuffer
	dataDir string
	cfg     *config.Config
}

const testOptions = `
      read_timeout: 2s
      video_lost_after: 1s
      reconnect_max: 1s
      pre_roll: 2s
      post_roll: 1s
      floor_bands:
        - {floor: 18, y_min: 0.0, y_max: 0.15}
        - {floor: 17, y_min: 0.15, y_max: 0.3}
        - {floor: 16, y_min: 0.3, y_max: 1.0}`

// startDriver runs the driver for one camera at url until the test ends.
func startDriver(t *testing.T, url, profile, kind string, extraOptions ...string) *rig {
	t.Helper()
	dir := t.TempDir()
	extra := strings.Join(extraOptions, "")
	if !strings.Contains(extra, "onvif") {
		// Hermetic: no ONVIF lookup at http://127.0.0.1/ (port 80) of the
		// test machine unless the test asks for one.
		extra += "\n      onvif: \"off\""
	}
	household := ""
	if kind == "peephole" {
		household = "household: h-1"
	}
	y := fmt.Sprintf(`gateway: {id: gw-test, compound: c-test, data_dir: %s}
compound:
  households: [{id: h-1, label: "1-1-101"}]
devices:
  - id: cam-1
    kind: %s
    driver: rtsp
    address: %q
    profile: %s
    %s
    options:%s
`, dir, kind, url, profile, household, testOptions+extra)
	cfg, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	rec := newRecorder()
	env := edge.Env{Config: cfg, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Emit: rec}
	comps, err := rtsp.New(env, cfg.DevicesFor("rtsp"))
	if err != nil {
		t.Fatal(err)
	}
	cam := comps[0].(*rtsp.Camera)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cam.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return &rig{cam: cam, rec: rec, logs: logs, dataDir: dir, cfg: cfg}
}

// waitPreRoll waits until the camera's ring holds the 2 s pre-roll, so a
// clip cut now has its full length however slowly the session started.
func waitPreRoll(t *testing.T, c *rtsp.Camera) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for c.Health().BufferSeconds < 2.0 {
		if time.Now().After(deadline) {
			t.Fatalf("pre-roll not filled: %+v", c.Health())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func startCam(t *testing.T, o fakecam.Options) *fakecam.Camera {
	t.Helper()
	c, err := fakecam.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestFallingObjectClip(t *testing.T) {
	t.Parallel()
	cam := startCam(t, fakecam.Options{User: "admin", Password: "Clip-Pass-8", Snapshots: true})
	r := startDriver(t, cam.URL(), "generic-falling-object", "camera", "\n      snapshot_url: "+cam.SnapshotURL())
	on := r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	var info map[string]any
	json.Unmarshal(on.Data, &info)
	if info["codec"] != "h264" || info["transport"] != "tcp" || info["metadata"] != true {
		t.Errorf("camera.online data = %v", info)
	}
	waitPreRoll(t, r.cam)
	if err := cam.Trigger("falling"); err != nil {
		t.Fatal(err)
	}
	ev := r.rec.wait(t, event.CameraFallingObject, 1, 10*time.Second)
	if ev.Severity != event.Alert || ev.Device != "cam-1" || ev.Time.IsZero() {
		t.Errorf("event %s severity %s device %q time %v", ev.Kind, ev.Severity, ev.Device, ev.Time)
	}
	var data map[string]any
	json.Unmarshal(ev.Data, &data)
	if data["start_floor"] != float64(18) {
		t.Errorf("start_floor = %v, want 18 (data %s)", data["start_floor"], ev.Data)
	}
	if objs, _ := data["objects"].([]any); len(objs) != 1 {
		t.Errorf("objects = %v, want one tracked object", data["objects"])
	}
	if len(ev.Evidence) != 2 {
		t.Fatalf("evidence = %+v (data %s)", ev.Evidence, ev.Data)
	}
	if sn := ev.Evidence[1]; sn.Type != "snapshot" || sn.MediaType != "image/jpeg" {
		t.Errorf("snapshot evidence %+v", sn)
	} else {
		jb, err := os.ReadFile(filepath.Join(r.dataDir, filepath.FromSlash(sn.Ref)))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(jb)
		img, err := jpeg.Decode(bytes.NewReader(jb))
		if err != nil || hex.EncodeToString(sum[:]) != sn.SHA256 || img.Bounds().Dx() != 320 {
			t.Errorf("snapshot: %v, sha256 match %v", err, hex.EncodeToString(sum[:]) == sn.SHA256)
		}
	}
	evd := ev.Evidence[0]
	if evd.Type != "clip" || evd.MediaType != "video/mp4" || !strings.HasPrefix(evd.Ref, "clips/cam-1/") {
		t.Errorf("evidence %+v", evd)
	}
	b, err := os.ReadFile(filepath.Join(r.dataDir, filepath.FromSlash(evd.Ref)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != evd.SHA256 || int64(len(b)) != evd.Size {
		t.Errorf("file sha256/size %x/%d, evidence %s/%d", sum, len(b), evd.SHA256, evd.Size)
	}
	dur, frames, firstKey := checkMP4(t, b)
	if !firstKey {
		t.Error("clip does not start on a keyframe")
	}
	// pre_roll 2s + post_roll 1s, within one GOP (1 s) either way.
	if dur < 2.0 || dur > 4.0 {
		t.Errorf("clip lasts %.2fs over %d frames; want 3s ± 1 GOP", dur, frames)
	}
	var side rtsp.Clip
	sb, err := os.ReadFile(strings.TrimSuffix(filepath.Join(r.dataDir, filepath.FromSlash(evd.Ref)), ".mp4") + ".json")
	if err != nil {
		t.Fatalf("sidecar: %v", err)
	}
	if err := json.Unmarshal(sb, &side); err != nil || side.SHA256 != evd.SHA256 || side.Codec != "h264" || side.Width != 320 {
		t.Errorf("sidecar %+v (%v)", side, err)
	}
	t.Logf("clip %s: %d bytes, %.2fs, %d frames, pre-roll %.2fs", evd.Ref, len(b), dur, frames, side.PreRoll)
	writeArtifact(t, b)
	h := r.cam.Health()
	if strings.Contains(r.logs.String(), "Clip-Pass-8") {
		t.Error("password in logs")
	}
	if h.State != rtsp.StateOnline || h.FPS < 5 || h.BitrateBps <= 0 || h.Clips != 1 || h.LastKeyframe.IsZero() {
		t.Errorf("health %+v", h)
	}
}

// checkMP4 parses a clip with mediacommon's fMP4 reader and go-mp4, and
// returns its duration in seconds, its frame count and whether the first
// sample is a sync sample.
func checkMP4(t *testing.T, b []byte) (float64, int, bool) {
	t.Helper()
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
		t.Fatalf("init segment: %v", err)
	}
	if len(init.Tracks) != 1 || init.Tracks[0].TimeScale != 90000 {
		t.Fatalf("tracks %+v", init.Tracks)
	}
	if _, ok := init.Tracks[0].Codec.(*fmp4.CodecH264); !ok {
		t.Fatalf("codec %T", init.Tracks[0].Codec)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil {
		t.Fatalf("fragments: %v", err)
	}
	var total uint64
	frames := 0
	firstKey := false
	for i, p := range parts {
		for j, s := range p.Tracks[0].Samples {
			if i == 0 && j == 0 {
				firstKey = !s.IsNonSyncSample
			}
			total += uint64(s.Duration)
			frames++
		}
	}
	// go-mp4 walks every box: a structural check independent of mediacommon.
	var boxes []string
	if _, err := mp4.ReadBoxStructure(bytes.NewReader(b), func(h *mp4.ReadHandle) (any, error) {
		if len(h.Path) == 1 {
			boxes = append(boxes, h.BoxInfo.Type.String())
		}
		return nil, nil
	}); err != nil {
		t.Fatalf("go-mp4: %v", err)
	}
	if len(boxes) < 4 || boxes[0] != "ftyp" || boxes[1] != "moov" || boxes[2] != "moof" || boxes[3] != "mdat" {
		t.Fatalf("top-level boxes %v", boxes)
	}
	return float64(total) / 90000, frames, firstKey
}

// writeArtifact keeps a clip for inspection when LINTEL_CLIP_OUT is set.
func writeArtifact(t *testing.T, b []byte) {
	if p := os.Getenv("LINTEL_CLIP_OUT"); p != "" {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Log(err)
		}
	}
}

func TestVideoLostWhileSessionUp(t *testing.T) {
	t.Parallel()
	cam := startCam(t, fakecam.Options{})
	r := startDriver(t, cam.URL(), "generic-falling-object", "camera")
	r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	cam.StallVideo(true)
	lost := r.rec.wait(t, event.CameraVideoLost, 1, 5*time.Second)
	if !r.cam.Health().VideoLost {
		t.Error("health does not say video lost")
	}
	// An incident while the video is lost leaves at once, saying why it
	// has no clip.
	start := time.Now()
	if err := cam.Trigger("tamper"); err != nil {
		t.Fatal(err)
	}
	tamper := r.rec.wait(t, event.CameraTamper, 1, 3*time.Second)
	if len(tamper.Evidence) != 0 || !strings.Contains(string(tamper.Data), "clip_error") || time.Since(start) > 2*time.Second {
		t.Errorf("tamper without video: %s evidence %v after %s", tamper.Data, tamper.Evidence, time.Since(start))
	}
	cam.StallVideo(false)
	r.rec.wait(t, event.CameraVideoRestored, 1, 5*time.Second)
	for _, k := range r.rec.kinds() {
		if k == event.CameraOffline {
			t.Errorf("session dropped while only the video stalled: %v", r.rec.kinds())
		}
	}
	if cam.Sessions() != 1 {
		t.Errorf("%d sessions, want 1", cam.Sessions())
	}
	t.Logf("video_lost data %s", lost.Data)
}

func TestReconnectAfterServerRestart(t *testing.T) {
	t.Parallel()
	cam := startCam(t, fakecam.Options{})
	r := startDriver(t, cam.URL(), "generic-falling-object", "camera")
	r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	if err := cam.Restart(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r.rec.wait(t, event.CameraOffline, 1, 5*time.Second)
	r.rec.wait(t, event.CameraOnline, 2, 10*time.Second)
	if cam.Sessions() != 2 {
		t.Errorf("%d sessions, want 2", cam.Sessions())
	}
	// After the reconnect, metadata flows again.
	if err := cam.Trigger("motion"); err != nil {
		t.Fatal(err)
	}
	r.rec.wait(t, event.MotionDetected, 1, 5*time.Second)
}

func TestStallReadTimeout(t *testing.T) {
	t.Parallel()
	cam := startCam(t, fakecam.Options{})
	r := startDriver(t, cam.URL(), "generic-falling-object", "camera")
	r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	cam.StallAll(true)
	off := r.rec.wait(t, event.CameraOffline, 1, 6*time.Second)
	if !strings.Contains(string(off.Data), "read_timeout") {
		t.Errorf("offline reason %s", off.Data)
	}
	cam.StallAll(false)
	r.rec.wait(t, event.CameraOnline, 2, 10*time.Second)
}

func TestWrongPasswordRefused(t *testing.T) {
	t.Parallel()
	const good, bad = "Gate-Pass-7781", "Wrong-Pass-9931"
	cam := startCam(t, fakecam.Options{User: "admin", Password: good})
	url := strings.Replace(cam.URL(), good, bad, 1)
	r := startDriver(t, url, "generic-falling-object", "camera")
	off := r.rec.wait(t, event.CameraOffline, 1, 10*time.Second)
	if !strings.Contains(string(off.Data), "401") {
		t.Errorf("offline reason %s does not say 401", off.Data)
	}
	// Two retries after the first failure (1 s backoff, jittered): each
	// could have reported offline again or logged the password.
	h := waitHealth(t, r.cam, "two retries", 15*time.Second, func(h rtsp.Health) bool { return h.Reconnects >= 2 })
	for where, s := range map[string]string{"logs": r.logs.String(), "event": string(off.Data), "health": fmt.Sprintf("%+v", h)} {
		if strings.Contains(s, bad) || strings.Contains(s, good) {
			t.Errorf("password appears in %s: %s", where, s)
		}
	}
	if !strings.Contains(h.URL, "admin:REDACTED@") {
		t.Errorf("health URL %q", h.URL)
	}
	if cam.Sessions() != 0 {
		t.Error("a session was accepted with a wrong password")
	}
	if offs := strings.Count(fmt.Sprint(r.rec.kinds()), string(event.CameraOffline)); offs != 1 {
		t.Errorf("%d camera.offline events for repeated failures, want 1", offs)
	}
}

func TestDigestAuthAndPeephole(t *testing.T) {
	t.Parallel()
	cam := startCam(t, fakecam.Options{User: "admin", Password: "Peep-Hole-55", Gzip: true, PacketSize: 120})
	r := startDriver(t, cam.URL(), "generic-peephole", "peephole")
	r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	for _, k := range []string{"visitor", "doorbell"} {
		if err := cam.Trigger(k); err != nil {
			t.Fatal(err)
		}
	}
	if v := r.rec.wait(t, event.PeepholeVisitor, 1, 5*time.Second); v.Household != "h-1" {
		t.Errorf("peephole event household %q, want h-1", v.Household)
	}
	r.rec.wait(t, event.PeepholeDoorbell, 1, 5*time.Second)
	// A document that loses a packet is dropped, the next one is not.
	cam.DropNextMetadataPacket()
	if err := cam.Trigger("loitering"); err != nil {
		t.Fatal(err)
	}
	waitHealth(t, r.cam, "the dropped document counted", 5*time.Second, func(h rtsp.Health) bool { return h.MetadataDropped > 0 })
	if err := cam.Trigger("motion"); err != nil {
		t.Fatal(err)
	}
	r.rec.wait(t, event.MotionDetected, 1, 5*time.Second)
	for _, k := range r.rec.kinds() {
		if k == event.PeepholeLoitering {
			t.Error("an event came out of a document with a lost packet")
		}
	}
}

// waitHealth polls the camera's health until cond holds. The event loop
// refreshes the figures every workTick (500 ms), so they lag the events:
// under load the tick after an event can come well after the event.
func waitHealth(t *testing.T, c *rtsp.Camera, what string, d time.Duration, cond func(rtsp.Health) bool) rtsp.Health {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		h := c.Health()
		if cond(h) {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s: health %+v", what, d, h)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTransportAuto: with transport auto the client tries UDP first; the
// simulator only serves TCP (461), so the session must fall back to it.
func TestTransportAuto(t *testing.T) {
	t.Parallel()
	cam := startCam(t, fakecam.Options{})
	r := startDriver(t, cam.URL(), "generic-falling-object", "camera", "\n      transport: auto")
	r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	cam.Trigger("motion")
	r.rec.wait(t, event.MotionDetected, 1, 5*time.Second)
}

func TestTransportUDP(t *testing.T) {
	t.Parallel()
	cam := startCam(t, fakecam.Options{UDP: true})
	r := startDriver(t, cam.URL(), "generic-falling-object", "camera", "\n      transport: udp")
	on := r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	if !strings.Contains(string(on.Data), `"transport":"udp"`) {
		t.Errorf("online data %s", on.Data)
	}
	cam.Trigger("motion")
	r.rec.wait(t, event.MotionDetected, 1, 5*time.Second)
	// Rates are computed over about a second, on the loop's tick.
	waitHealth(t, r.cam, "video over UDP", 10*time.Second, func(h rtsp.Health) bool { return h.FPS >= 5 && h.BufferFrames >= 10 })
}

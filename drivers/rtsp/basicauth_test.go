package rtsp_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/drivers/rtsp"
	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/edge/event"
)

// leaked reports whether any Authorization header the camera received
// carries the password: in clear (Basic is base64 of user:password) or
// literally.
func leaked(cam *fakecam.Camera, user, pass string) string {
	basic := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	for _, h := range cam.Authorizations() {
		if strings.Contains(h, basic) || strings.Contains(h, pass) {
			return h
		}
	}
	return ""
}

// TestBasicAuthNotSentInClear: something at the camera's address that
// asks for Basic over plain RTSP gets no password, from the probe or the
// driver, unless the camera's config allows it; then it is logged loudly,
// once.
func TestBasicAuthNotSentInClear(t *testing.T) {
	t.Parallel()
	const pass = "Basic-Canary-4417"
	cam := startCam(t, fakecam.Options{User: "admin", Password: pass, BasicAuth: true})

	_, err := rtsp.Probe(context.Background(), rtsp.ProbeOptions{URL: cam.URL(), Duration: time.Second})
	if !errors.Is(err, rtsp.ErrBasicRefused) || strings.Contains(err.Error(), pass) {
		t.Fatalf("probe against a Basic-only camera: %v", err)
	}
	if h := leaked(cam, "admin", pass); h != "" {
		t.Fatalf("the probe sent the password: %s", h)
	}

	r := startDriver(t, cam.URL(), "generic-falling-object", "camera")
	off := r.rec.wait(t, event.CameraOffline, 1, 10*time.Second)
	if !strings.Contains(string(off.Data), "allow_basic_auth") {
		t.Errorf("offline reason %s does not say what to do", off.Data)
	}
	waitHealth(t, r.cam, "a retry", 15*time.Second, func(h rtsp.Health) bool { return h.Reconnects >= 1 })
	if h := leaked(cam, "admin", pass); h != "" {
		t.Fatalf("the driver sent the password: %s", h)
	}
	if cam.Sessions() != 0 {
		t.Fatal("a session was set up without credentials")
	}

	// Allowed: it works, and the log says so loudly once.
	var warned int
	rep, err := rtsp.Probe(context.Background(), rtsp.ProbeOptions{URL: cam.URL(), Duration: time.Second,
		AllowBasicAuth: true, OnBasic: func() { warned++ }})
	if err != nil || rep.Codec != "h264" || warned != 1 {
		t.Fatalf("allowed probe: %v, %+v, warned %d", err, rep, warned)
	}
	r2 := startDriver(t, cam.URL(), "generic-falling-object", "camera", "\n      allow_basic_auth: true")
	r2.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	if n := strings.Count(r2.logs.String(), "camera password sent in clear"); n != 1 {
		t.Errorf("%d loud warnings, want 1:\n%s", n, r2.logs.String())
	}
	if strings.Contains(r2.logs.String(), pass) {
		t.Error("the warning shows the password")
	}
}

package rtsp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/drivers/rtsp"
	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
)

func TestProbe(t *testing.T) {
	t.Parallel()
	cam := startCam(t, fakecam.Options{User: "admin", Password: "Probe-Pass-31"})
	go func() {
		time.Sleep(500 * time.Millisecond)
		cam.Trigger("falling")
	}()
	rep, err := rtsp.Probe(context.Background(), rtsp.ProbeOptions{URL: cam.URL(), Duration: 1500 * time.Millisecond})
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if rep.Codec != "h264" || rep.Width != 320 || rep.Height != 240 || rep.Transport != "tcp" || len(rep.Tracks) != 2 {
		t.Errorf("report %+v", rep)
	}
	if rep.FPS < 5 || rep.FPS > 15 || rep.BitrateBps <= 0 || rep.Keyframes < 1 || rep.Documents < 1 {
		t.Errorf("measured %+v", rep)
	}
	if rep.Topics["tns1:RuleEngine/FallingObjectDetector/FallingObject"] != 1 || rep.Objects != 4 {
		t.Errorf("topics %v objects %d", rep.Topics, rep.Objects)
	}
	if strings.Contains(rep.URL, "Probe-Pass-31") {
		t.Errorf("URL not redacted: %s", rep.URL)
	}

	bad := strings.Replace(cam.URL(), "Probe-Pass-31", "Nope-Pass-42", 1)
	_, err = rtsp.Probe(context.Background(), rtsp.ProbeOptions{URL: bad, Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "Nope-Pass-42") {
		t.Errorf("wrong password: %v", err)
	}
	_, err = rtsp.Probe(context.Background(), rtsp.ProbeOptions{URL: "rtsp://" + cam.Addr() + "/nothing-here", Duration: time.Second})
	if err == nil || !strings.Contains(err.Error(), "401") && !strings.Contains(err.Error(), "404") {
		t.Errorf("wrong path: %v", err)
	}
}

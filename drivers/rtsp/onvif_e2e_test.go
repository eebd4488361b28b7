package rtsp_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/edge/event"
)

// TestONVIFSnapshotEvidence: without snapshot_url, the driver finds the
// camera's snapshot through ONVIF (WS-Security UsernameToken, or HTTP
// Digest when the camera answers 401), asks once per session, and
// attaches the JPEG next to the clip. The password appears nowhere.
func TestONVIFSnapshotEvidence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		digest bool
	}{{"wsse", false}, {"http-digest", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const pass = "Onvif-Pass-4412"
			cam := startCam(t, fakecam.Options{User: "admin", Password: pass, ONVIF: true, ONVIFDigest: tc.digest})
			r := startDriver(t, cam.URL(), "generic-falling-object", "camera", "\n      onvif_url: "+cam.ONVIFURL())
			r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
			waitPreRoll(t, r.cam)
			for n := 1; n <= 2; n++ {
				if err := cam.Trigger("falling"); err != nil {
					t.Fatal(err)
				}
				ev := r.rec.wait(t, event.CameraFallingObject, n, 10*time.Second)
				if len(ev.Evidence) != 2 || ev.Evidence[0].Type != "clip" {
					t.Fatalf("incident %d: evidence %+v, data %s", n, ev.Evidence, ev.Data)
				}
				sn := ev.Evidence[1]
				if sn.Type != "snapshot" || sn.MediaType != "image/jpeg" {
					t.Fatalf("snapshot evidence %+v", sn)
				}
				jb, err := os.ReadFile(filepath.Join(r.dataDir, filepath.FromSlash(sn.Ref)))
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(jb)
				if img, err := jpeg.Decode(bytes.NewReader(jb)); err != nil || img.Bounds().Dx() != 320 || hex.EncodeToString(sum[:]) != sn.SHA256 {
					t.Errorf("snapshot %d: %v, sha256 match %v", n, err, hex.EncodeToString(sum[:]) == sn.SHA256)
				}
				if n == 1 {
					time.Sleep(1100 * time.Millisecond) // two incidents, two file names
				}
			}
			// One lookup per session (a loaded test machine may see the
			// 2 s read_timeout end a session), two JPEGs. With HTTP Digest
			// each request is sent twice (WS-Security, 401, Digest).
			sessions := cam.Sessions()
			for _, op := range []string{"GetProfiles", "GetSnapshotUri"} {
				if got := cam.ONVIFRequests(op); got < 1 || got > sessions*(1+btoi(tc.digest)) {
					t.Errorf("%s asked %d times in %d sessions", op, got, sessions)
				}
			}
			if got := cam.ONVIFRequests("snapshot"); got < 2 {
				t.Errorf("%d snapshot requests", got)
			}
			assertNoSecret(t, r, pass)
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestONVIFWrongPassword: the camera's ONVIF account has another password
// (Hikvision keeps ONVIF users apart): the clip still comes, the event
// says plainly why there is no snapshot, and no password is shown.
func TestONVIFWrongPassword(t *testing.T) {
	t.Parallel()
	const pass, onvifPass = "Rtsp-Pass-2231", "Other-Pass-7719"
	cam := startCam(t, fakecam.Options{User: "admin", Password: pass, ONVIF: true, ONVIFPassword: onvifPass})
	r := startDriver(t, cam.URL(), "generic-falling-object", "camera", "\n      onvif_url: "+cam.ONVIFURL())
	r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	waitPreRoll(t, r.cam)
	cam.Trigger("falling")
	ev := r.rec.wait(t, event.CameraFallingObject, 1, 10*time.Second)
	if len(ev.Evidence) != 1 || ev.Evidence[0].Type != "clip" {
		t.Fatalf("evidence %+v", ev.Evidence)
	}
	var data map[string]any
	json.Unmarshal(ev.Data, &data)
	msg, _ := data["snapshot_error"].(string)
	if !strings.Contains(msg, "refused the credentials") || !strings.Contains(msg, "NotAuthorized") {
		t.Errorf("snapshot_error %q", msg)
	}
	t.Logf("snapshot_error: %s", msg)
	assertNoSecret(t, r, pass, onvifPass)
}

// TestONVIFOff: onvif: off asks nothing.
func TestONVIFOff(t *testing.T) {
	t.Parallel()
	cam := startCam(t, fakecam.Options{ONVIF: true})
	r := startDriver(t, cam.URL(), "generic-falling-object", "camera", "\n      onvif: \"off\"\n      onvif_url: "+cam.ONVIFURL())
	r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	waitPreRoll(t, r.cam)
	cam.Trigger("falling")
	ev := r.rec.wait(t, event.CameraFallingObject, 1, 10*time.Second)
	if len(ev.Evidence) != 1 || strings.Contains(string(ev.Data), "snapshot_error") || cam.ONVIFRequests("GetCapabilities") != 0 {
		t.Errorf("evidence %+v data %s", ev.Evidence, ev.Data)
	}
}

func assertNoSecret(t *testing.T, r *rig, secrets ...string) {
	t.Helper()
	r.rec.mu.Lock()
	evs, _ := json.Marshal(r.rec.evs)
	r.rec.mu.Unlock()
	for where, s := range map[string]string{"logs": r.logs.String(), "events": string(evs), "health": fmt.Sprintf("%+v", r.cam.Health())} {
		for _, p := range secrets {
			if strings.Contains(s, p) {
				t.Errorf("password %q appears in %s", p, where)
			}
		}
	}
}

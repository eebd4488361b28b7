package rtsp_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/edge/event"
)

// findTool returns the path of the first tool found, skipping the test
// when none is installed outside CI (CI installs them).
func findTool(t *testing.T, hint string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed (%s)", names[0], hint)
	}
	t.Skipf("%s not installed: %s", names[0], hint)
	return ""
}

// TestClipPlaysInBrowser has Chromium, a decoder independent of this
// code, play a clip the driver cut, to the end, in a <video> element: the
// property manager's and the police platform's viewer.
func TestClipPlaysInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	browser := findTool(t, "apt-get install chromium", "chromium", "chromium-browser", "google-chrome")
	cam := startCam(t, fakecam.Options{})
	r := startDriver(t, cam.URL(), "generic-falling-object", "camera")
	r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
	waitPreRoll(t, r.cam)
	if err := cam.Trigger("falling"); err != nil {
		t.Fatal(err)
	}
	ev := r.rec.wait(t, event.CameraFallingObject, 1, 10*time.Second)
	clip := filepath.Join(r.dataDir, filepath.FromSlash(ev.Evidence[0].Ref))
	res := playInBrowser(t, browser, clip)
	t.Logf("browser: %s", res)
	var cur, dur float64
	var w, h, frames, corrupt int
	if _, err := fmt.Sscanf(res, "ended %f %f %d %d %d %d", &cur, &dur, &w, &h, &frames, &corrupt); err != nil {
		t.Fatalf("clip did not play to the end: %s", res)
	}
	if w != 320 || h != 240 || corrupt != 0 || frames < 20 || cur < 2 {
		t.Fatalf("played %.2fs of %.2fs, %dx%d, %d frames, %d corrupt", cur, dur, w, h, frames, corrupt)
	}
}

const playerPage = `<!doctype html><title>loading</title><video id="v" muted playsinline></video>
<script>
const v = document.getElementById('v');
v.onerror = () => { document.title = 'error ' + (v.error ? v.error.code + ' ' + v.error.message : '?'); };
v.onended = () => {
  const q = v.getVideoPlaybackQuality();
  document.title = ['ended', v.currentTime, v.duration, v.videoWidth, v.videoHeight, q.totalVideoFrames, q.corruptedVideoFrames].join(' ');
};
v.src = '/clip.mp4';
v.play().catch(e => { document.title = 'error play ' + e; });
</script>`

func playInBrowser(t *testing.T, browser, clip string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/clip.mp4" {
			w.Header().Set("Content-Type", "video/mp4")
			http.ServeFile(w, r, clip)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(playerPage))
	}))
	defer srv.Close()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox,
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatalf("browser: %v", err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.title.startsWith("ended") || document.title.startsWith("error")`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("browser: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return strings.TrimSpace(title)
}

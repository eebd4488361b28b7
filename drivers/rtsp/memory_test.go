package rtsp_test

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/drivers/rtsp"
	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// TestHelperFakecams is not a test: TestMemoryBound runs the test binary
// again with this test selected, so the simulated cameras live in another
// process and the gateway's RSS is measured alone.
func TestHelperFakecams(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("LINTEL_FAKECAM_HELPER"))
	if n == 0 {
		t.Skip("helper process for TestMemoryBound")
	}
	rate, _ := strconv.Atoi(os.Getenv("LINTEL_FAKECAM_BITRATE"))
	for i := 0; i < n; i++ {
		c, err := fakecam.Start(fakecam.Options{Bitrate: rate, FPS: 25, Video: gop25()})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Println("URL", c.URL())
	}
	time.Sleep(time.Hour) // killed by the parent
}

// gop25 is the test video re-generated at 25 fps with one keyframe every
// 2 s, like a typical camera profile.
func gop25() []byte {
	v := fakecam.Video{Width: 320, Height: 240, FPS: 25, GOP: 50, Frames: 100}
	var b []byte
	for _, au := range v.AccessUnits() {
		for _, n := range au {
			b = append(b, 0, 0, 0, 1)
			b = append(b, n...)
		}
	}
	return b
}

func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return -1
}

// TestMemoryBound runs 8 cameras at 4 Mbit/s with a 10 s pre-roll and
// checks the ring buffers stay within their caps; it reports RSS. It takes
// about 30 s and two busy cores, so it runs only with LINTEL_SOAK=1.
func TestMemoryBound(t *testing.T) {
	if os.Getenv("LINTEL_SOAK") != "1" {
		t.Skip("soak test: set LINTEL_SOAK=1")
	}
	const cams, rate = 8, 4_000_000
	const perCam, total = 8 << 20, 48 << 20
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFakecams$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("LINTEL_FAKECAM_HELPER=%d", cams), fmt.Sprintf("LINTEL_FAKECAM_BITRATE=%d", rate))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var urls []string
	sc := bufio.NewScanner(out)
	for len(urls) < cams && sc.Scan() {
		if u, ok := strings.CutPrefix(sc.Text(), "URL "); ok {
			urls = append(urls, u)
		}
	}
	if len(urls) != cams {
		t.Fatalf("helper started %d cameras", len(urls))
	}
	go func() {
		for sc.Scan() {
		}
	}()

	var y strings.Builder
	fmt.Fprintf(&y, "gateway: {id: gw-soak, compound: c-soak, data_dir: %s}\ndevices:\n", t.TempDir())
	for i, u := range urls {
		fmt.Fprintf(&y, "  - {id: cam-%d, kind: camera, driver: rtsp, address: %q, profile: generic-falling-object,\n"+
			"     options: {pre_roll: 10s, buffer_max: %d, buffer_total: %d}}\n", i, u, perCam, total)
	}
	cfg, err := config.Parse("soak.yaml", []byte(y.String()))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	env := edge.Env{Config: cfg, Logger: slog.New(slog.DiscardHandler), Emit: rec}
	comps, err := rtsp.New(env, cfg.DevicesFor("rtsp"))
	if err != nil {
		t.Fatal(err)
	}
	rss0 := rssKiB()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	for _, c := range comps {
		go func() { c.Run(ctx); done <- struct{}{} }()
	}
	defer func() {
		cancel()
		for range comps {
			<-done
		}
	}()
	for i := range comps {
		rec.wait(t, event.CameraOnline, i+1, 20*time.Second)
	}
	var maxBuf, maxRSS int64
	var heap runtime.MemStats
	start := time.Now()
	for time.Since(start) < 16*time.Second {
		time.Sleep(500 * time.Millisecond)
		var sum int64
		for _, c := range comps {
			h := c.(*rtsp.Camera).Health()
			if h.BufferBytes > perCam {
				t.Errorf("%s holds %d bytes > cap %d", h.Device, h.BufferBytes, perCam)
			}
			sum += h.BufferBytes
		}
		maxBuf = max(maxBuf, sum)
		maxRSS = max(maxRSS, rssKiB())
	}
	runtime.ReadMemStats(&heap)
	// Overshoot of the shared budget is at most one frame per camera.
	if maxBuf > total+cams*60_000 {
		t.Errorf("rings held %d bytes together > total cap %d", maxBuf, total)
	}
	var lines []string
	for _, c := range comps {
		h := c.(*rtsp.Camera).Health()
		lines = append(lines, fmt.Sprintf("%s %.0f kbit/s %.1f fps, buffer %.1f s %.1f MiB", h.Device, h.BitrateBps/1000, h.FPS, h.BufferSeconds, float64(h.BufferBytes)/(1<<20)))
	}
	t.Logf("8 cameras × 4 Mbit/s, pre_roll 10s, buffer_max %d MiB, buffer_total %d MiB:\n  %s", perCam>>20, total>>20, strings.Join(lines, "\n  "))
	t.Logf("rings peak %.1f MiB; RSS before %.1f MiB, peak %.1f MiB; Go heap in use %.1f MiB, sys %.1f MiB",
		float64(maxBuf)/(1<<20), float64(rss0)/1024, float64(maxRSS)/1024, float64(heap.HeapInuse)/(1<<20), float64(heap.Sys)/(1<<20))
}

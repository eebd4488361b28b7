//go:build !no_rtsp

package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSimCameraCommand runs `lintel sim camera` and probes it with
// `lintel probe rtsp`, as an installer rehearsing on a bench would.
func TestSimCameraCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb lockedBuffer
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"sim", "camera", "-listen", "127.0.0.1:0", "-events", "falling@300ms", "-loop", "0"},
			stdio{in: pr, out: &out, err: &errb})
	}()
	defer func() {
		cancel()
		pw.Close()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("sim exit %d: %s", code, errb.String())
			}
		case <-time.After(5 * time.Second):
			t.Error("sim did not stop")
		}
	}()
	re := regexp.MustCompile(`rtsp://\S+`)
	var url string
	for deadline := time.Now().Add(5 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		url = re.FindString(out.String())
	}
	if url == "" {
		t.Fatalf("no URL printed: %s %s", out.String(), errb.String())
	}
	// The camera sends a document to the sessions playing at that moment:
	// a tamper sent before the probe's PLAY is lost, and under load the
	// probe can take longer to connect than the command takes to arrive.
	// So the command is repeated until the probe is done.
	probed := make(chan struct{})
	go func() {
		tk := time.NewTicker(200 * time.Millisecond)
		defer tk.Stop()
		for {
			if _, err := pw.Write([]byte("tamper\n")); err != nil {
				return // the sim stopped
			}
			select {
			case <-probed:
				return
			case <-tk.C:
			}
		}
	}()
	var pout, perr bytes.Buffer
	code := runMain(context.Background(), []string{"probe", "rtsp", "-duration", "1500ms", url}, stdio{in: strings.NewReader(""), out: &pout, err: &perr})
	close(probed)
	if code != exitOK || !strings.Contains(pout.String(), "TamperDetector") {
		t.Fatalf("probe exit %d:\n%s%s\nsim: %s", code, pout.String(), perr.String(), out.String())
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(out.String(), "事件 event falling"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("script step not reported: %s", out.String())
		}
	}
}

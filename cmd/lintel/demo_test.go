//go:build !no_serial && !no_rtsp

package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/lintel-edge/lintel/edge/event"
)

// TestDemoEndToEnd runs the real `lintel demo` binary and checks, through
// the status page's API and the embedded broker, what a newcomer is
// promised: devices, live events, an elder alert and a falling-object
// incident with a playable clip, then a clean stop on SIGTERM.
func TestDemoEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo compound")
	}
	bin := lintelBinary(t)
	dir := t.TempDir()
	httpAddr, mqttAddr := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin, "demo", "--http", httpAddr, "--mqtt", mqttAddr, "--data", dir,
		"--speed", "600", "--households", "6", "--log-level", "warn")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var outMu sync.Mutex
	var out []string
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			outMu.Lock()
			out = append(out, sc.Text())
			outMu.Unlock()
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	waitLine(t, lines, "Ctrl-C")
	outMu.Lock()
	banner := strings.Join(out, "\n")
	outMu.Unlock()
	if !strings.Contains(banner, "http://"+httpAddr+"/") || !strings.Contains(banner, "setup code") {
		t.Fatalf("banner lacks the URL or the setup code:\n%s", banner)
	}

	// The platform's view: subscribe to the embedded broker like a city
	// platform would.
	var mu sync.Mutex
	got := map[event.Kind]int{}
	retainedOnline := false
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID("demo-test").SetAutoReconnect(false)
	cl := mqtt.NewClient(opts)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to the demo broker: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	cl.Subscribe("lintel/v1/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasSuffix(m.Topic(), "/status") && bytes.Contains(m.Payload(), []byte(`"state":"online"`)) {
			retainedOnline = true
		}
		payload := m.Payload()
		if len(payload) > 2 && payload[0] == 0x1f && payload[1] == 0x8b {
			if zr, err := gzip.NewReader(bytes.NewReader(payload)); err == nil {
				payload, _ = io.ReadAll(zr)
			}
		}
		for _, k := range []event.Kind{event.ElderAlertRaised, event.CameraFallingObject, event.MotionDetected, event.SOSPressed} {
			if bytes.Contains(payload, []byte(`"kind":"`+string(k)+`"`)) {
				got[k]++
			}
		}
	}).WaitTimeout(5 * time.Second)

	// An API token for the checks, made the way an installer would.
	genCfg := filepath.Join(dir, "demo.yaml")
	add := exec.Command(bin, "user", "add", "-c", genCfg, "-role", "manager", "tester")
	add.Stdin = strings.NewReader("correct horse battery staple\n")
	if b, err := add.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, b)
	}
	tokOut, err := exec.Command(bin, "user", "token", "-c", genCfg, "tester").Output()
	if err != nil {
		t.Fatalf("user token: %v", err)
	}
	token := strings.TrimSpace(string(tokOut))
	get := func(path string) []byte {
		req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return nil
		}
		return b
	}

	deadline := time.Now().Add(75 * time.Second)
	until := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if time.Now().After(deadline) {
				mu.Lock()
				t.Fatalf("no %s within the demo's first minute; broker saw %v\nstdout:\n%s\nstderr:\n%s", what, got, strings.Join(out, "\n"), stderr.String())
			}
			time.Sleep(300 * time.Millisecond)
		}
	}
	until("devices online", func() bool {
		var d struct {
			Devices []struct {
				ID     string `json:"id"`
				Online string `json:"online"`
			} `json:"devices"`
		}
		if json.Unmarshal(get("/api/v1/devices"), &d) != nil {
			return false
		}
		online := 0
		for _, x := range d.Devices {
			if x.Online == "online" {
				online++
			}
		}
		return online >= 3
	})
	until("the city uplink connected, with a recent delivery", func() bool {
		var sk struct {
			Sinks []struct {
				Name        string    `json:"name"`
				Connected   bool      `json:"connected"`
				Known       bool      `json:"known"`
				LastSuccess time.Time `json:"last_success"`
			} `json:"sinks"`
		}
		if json.Unmarshal(get("/api/v1/sinks"), &sk) != nil {
			return false
		}
		for _, x := range sk.Sinks {
			if x.Name == "city" && x.Known && x.Connected && time.Since(x.LastSuccess) < time.Minute {
				return true
			}
		}
		return false
	})
	until("an open SOS elder alert", func() bool {
		var a struct {
			Alerts []struct {
				State, Type string
				Severity    event.Severity
			}
		}
		if json.Unmarshal(get("/api/v1/alerts"), &a) != nil {
			return false
		}
		for _, x := range a.Alerts {
			if x.Type == "sos" && x.Severity == event.Critical {
				return true
			}
		}
		return false
	})
	var clip event.Evidence
	until("a falling-object incident with a clip", func() bool {
		var evs struct{ Events []event.Event }
		if json.Unmarshal(get("/api/v1/events?kind=camera.falling_object"), &evs) != nil {
			return false
		}
		for _, e := range evs.Events {
			for _, ev := range e.Evidence {
				if ev.Type == event.EvidenceClip {
					clip = ev
					return true
				}
			}
		}
		return false
	})
	body := get("/" + strings.TrimPrefix(clip.Ref, "/"))
	if body == nil {
		t.Fatalf("clip %s not served", clip.Ref)
	}
	sum := sha256.Sum256(body)
	if int64(len(body)) != clip.Size || hex.EncodeToString(sum[:]) != clip.SHA256 {
		t.Errorf("clip served does not match its evidence record (%d bytes)", len(body))
	}
	if len(body) < 12 || string(body[4:8]) != "ftyp" {
		t.Errorf("clip is not an MP4 file")
	}
	until("the events on the platform side", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return retainedOnline && got[event.ElderAlertRaised] > 0 && got[event.CameraFallingObject] > 0 && got[event.MotionDetected] > 0
	})

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() {
		for range lines {
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exit: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo did not stop within 30s of SIGTERM")
	}
	t.Logf("stopped in %v", time.Since(start).Round(time.Millisecond))
	outMu.Lock()
	tail := strings.Join(out, "\n")
	outMu.Unlock()
	if !strings.Contains(tail, "the platform received") {
		t.Errorf("no closing summary:\n%s", tail)
	}
	if strings.Contains(stderr.String(), "panic") || strings.Contains(stderr.String(), "level=ERROR") {
		t.Errorf("errors during the demo:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "events.db")); err != nil {
		t.Error(err)
	}
}

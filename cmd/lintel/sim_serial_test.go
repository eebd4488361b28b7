//go:build !no_serial

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to write from one goroutine while the
// test reads it from another.
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

// TestSimAndProbeSerial pairs two sensors the way an installer does on a
// bench: `lintel sim serial` plays a script on a pty, `lintel probe serial
// --learn` listens and prints the YAML that binds them.
func TestSimAndProbeSerial(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "rf0")
	script := filepath.Join(dir, "pairing.txt")
	if err := os.WriteFile(script, []byte("wait 500ms\nnoise 5\nsend A1B2CE\nsend A1B2C7\nsend 80650A\nsend 806507\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var simOut syncBuffer
	simDone := make(chan int, 1)
	go func() {
		simDone <- runMain(ctx, []string{"sim", "serial", "--codec", "sonoff", "--link", link, "--script", script, "--noise", "0.2", "--seed", "3"},
			stdio{strings.NewReader(""), &simOut, &simOut})
	}()
	for i := 0; ; i++ {
		if _, err := os.Stat(link); err == nil {
			break
		}
		if i > 300 {
			t.Fatalf("sim did not create %s:\n%s", link, simOut.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var out, errb bytes.Buffer
	code := runMain(ctx, []string{"probe", "serial", "--port", link, "--codec", "sonoff", "--learn", "--duration", "2s",
		"--household", "h-1", "--receiver", "rf-1"}, stdio{strings.NewReader(""), &out, &errb})
	cancel()
	if c := <-simDone; c != exitOK {
		t.Errorf("sim exit %d:\n%s", c, simOut.String())
	}
	if code != exitOK {
		t.Fatalf("probe exit %d\n%s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{
		"A1B2CE", "806507",
		"profile: kerui-d026", `code: "A1B2C"`,
		"profile: stc15w-generic", `code: "8065"`,
		"household: h-1", "receiver: rf-1",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("probe output lacks %q:\n%s", want, out.String())
		}
	}
	if !strings.Contains(simOut.String(), "simulated receiver") {
		t.Errorf("sim output:\n%s", simOut.String())
	}
}

func TestSimSerialUsage(t *testing.T) {
	for _, args := range [][]string{
		{"sim", "serial", "--codec", "zigbee"},
		{"sim", "serial", "--noise", "2"},
		{"probe", "serial"},
		{"probe", "serial", "--port", "/dev/null", "--codec", "framed", "--spec", "header=XY"},
	} {
		var out, errb bytes.Buffer
		if code := runMain(context.Background(), args, stdio{strings.NewReader(""), &out, &errb}); code != exitUsage {
			t.Errorf("%v: exit %d, want %d\n%s", args, code, exitUsage, errb.String())
		}
	}
}

// A script blocked writing to a pty nobody reads (the gateway it fed has
// stopped) still ends at SIGTERM: before, the write blocked for good.
func TestSimSerialStopsWithFullPTY(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "script.txt")
	if err := os.WriteFile(script, bytes.Repeat([]byte("send 1A2B3C\n"), 20000), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"sim", "serial", "-codec", "sonoff", "-link", filepath.Join(dir, "rf"),
			"-script", script, "-repeats", "1"}, stdio{strings.NewReader(""), &out, &errb})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "simulated receiver") {
		if time.Now().After(deadline) {
			t.Fatalf("simulator did not start: %s %s", out.String(), errb.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let the pty's buffer fill: nobody reads it
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("sim serial still running 5 s after its context ended: blocked writing to a full pty")
	}
}

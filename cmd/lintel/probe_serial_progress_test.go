//go:build !no_serial

package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func init() {
	moreCLIErrorCases = append(moreCLIErrorCases, func(dir, missing, good string) []cliErrorCase {
		return []cliErrorCase{
			{"sim serial missing config", []string{"sim", "serial", "-c", missing}, exitConfig, []string{"检查 -c"}},
			{"sim serial no receiver", []string{"sim", "serial", "-c", good}, exitConfig, []string{"--receiver", "--households"}},
			{"probe serial no port", []string{"probe", "serial"}, exitUsage, []string{"--port", "/dev/serial/by-id"}},
			{"probe serial missing port", []string{"probe", "serial", "--port", filepath.Join(dir, "ttyNONE")}, exitFailure, []string{"--port", "dialout"}},
			{"probe serial unknown table", []string{"probe", "serial", "--port", "x", "--profile", "no-such-table"}, exitUsage, []string{"kerui-d026", "profiles.dirs"}},
			{"probe serial missing config", []string{"probe", "serial", "--port", "x", "-c", missing}, exitConfig, []string{"检查 -c"}},
		}
	})
}

// TestProbeSerialHeartbeat listens to a receiver that sends nothing: the
// heartbeat must say so, with what to check.
func TestProbeSerialHeartbeat(t *testing.T) {
	old := learnHeartbeatEvery
	learnHeartbeatEvery = 40 * time.Millisecond
	t.Cleanup(func() { learnHeartbeatEvery = old })
	ln := listenLoopback(t)
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err == nil {
			time.Sleep(time.Second)
			c.Close()
		}
	})
	t.Cleanup(wg.Wait)
	var out, errb bytes.Buffer
	code := runMain(context.Background(), []string{"probe", "serial", "--learn", "--port", "tcp://" + ln.Addr().String(), "--duration", "300ms"},
		stdio{strings.NewReader(""), &out, &errb})
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "no data yet: 检查接收器供电、--port 和 --baud") {
		t.Errorf("no heartbeat:\n%s", out.String())
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimEldersAndReplay(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, "sim", "elders", "--elders", "6", "--days", "20", "--seed", "2", "--out", dir)
	if code != 0 {
		t.Fatalf("sim elders: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "labelled incidents") {
		t.Fatalf("output: %s", out)
	}
	alerts := filepath.Join(dir, "alerts.jsonl")
	code, out, errOut = runCLI(t, "replay", "-c", filepath.Join(dir, "lintel.yaml"), "--events", filepath.Join(dir, "events.jsonl"),
		"--truth", filepath.Join(dir, "truth.json"), "--out", alerts)
	if code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"replayed", "| incident kind |", "threshold rules together"} {
		if !strings.Contains(out, want) {
			t.Fatalf("replay output lacks %q:\n%s", want, out)
		}
	}
	b, err := os.ReadFile(alerts)
	if err != nil || !strings.Contains(string(b), `"kind":"elder.presence"`) {
		t.Fatalf("alerts file: %v", err)
	}
	if code, _, _ := runCLI(t, "replay", "-c", filepath.Join(dir, "lintel.yaml")); code != exitUsage {
		t.Fatalf("replay without --events: exit %d, want %d", code, exitUsage)
	}
}

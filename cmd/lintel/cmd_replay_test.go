package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/edge/event"
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

// simPop writes a small synthetic population to a temp directory.
func simPop(t *testing.T, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	code, _, errOut := runCLI(t, append([]string{"sim", "elders", "--elders", "6", "--days", "20", "--seed", "4", "--out", dir}, args...)...)
	if code != 0 {
		t.Fatalf("sim elders: exit %d: %s", code, errOut)
	}
	return dir
}

// lastSeq is the highest seq of a JSON lines log.
func lastSeq(t *testing.T, path string) uint64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		ev, err := event.Decode([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, ev.Seq)
	}
	return last
}

// checkDerivedIDs checks replay --out: every event has a store-made id,
// unique, and seqs continue the input's in order.
func checkDerivedIDs(t *testing.T, path string, after uint64, gateway, epoch string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 10 {
		t.Fatalf("only %d derived events", len(lines))
	}
	ids := map[string]bool{}
	prev := after
	for i, l := range lines {
		ev, err := event.Decode([]byte(l))
		if err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		if ev.ID == "" || ids[ev.ID] {
			t.Fatalf("line %d: id %q empty or repeated", i+1, ev.ID)
		}
		ids[ev.ID] = true
		if ev.Seq != prev+1 {
			t.Fatalf("line %d: seq %d after %d", i+1, ev.Seq, prev)
		}
		prev = ev.Seq
		gw, ep, seq, err := event.ParseID(ev.ID)
		if err != nil || gw != gateway || seq != ev.Seq || (epoch != "" && ep != epoch) || len(ep) != 16 {
			t.Fatalf("line %d: id %q (gateway %q epoch %q seq %d, %v), want %s:%s:%d", i+1, ev.ID, gw, ep, seq, err, gateway, epoch, ev.Seq)
		}
	}
}

func TestReplayOutIDs(t *testing.T) {
	dir := simPop(t)
	in := filepath.Join(dir, "events.jsonl")
	out := filepath.Join(dir, "alerts.jsonl")
	if code, _, errOut := runCLI(t, "replay", "-c", filepath.Join(dir, "lintel.yaml"), "--events", in, "--out", out); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errOut)
	}
	checkDerivedIDs(t, out, lastSeq(t, in), "sim-gw", "0000000000000000")

	// A log without ids (hand-made, or exported without them): the
	// derived events get a new epoch, as a new store would draw.
	b, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	bare := filepath.Join(dir, "bare.jsonl")
	re := regexp.MustCompile(`"id":"[^"]*",`)
	if err := os.WriteFile(bare, re.ReplaceAll(b, []byte(`"id":"",`)), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI(t, "replay", "-c", filepath.Join(dir, "lintel.yaml"), "--events", bare, "--out", out); code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errOut)
	}
	checkDerivedIDs(t, out, lastSeq(t, in), "sim-gw", "")
}

func TestReplayCompare(t *testing.T) {
	dir := simPop(t, "--seed", "5") // a population with a collapse after a door cycle
	out := filepath.Join(dir, "alerts.jsonl")
	in := filepath.Join(dir, "events.jsonl")
	code, stdout, errOut := runCLI(t, "replay", "--compare", "-c", filepath.Join(dir, "lintel.yaml"), "--events", in,
		"--truth", filepath.Join(dir, "truth.json"), "--out", out)
	if code != 0 {
		t.Fatalf("replay --compare: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"legacy engine, same run", "alerts raised by rule:", "before", "after",
		"| measure | before | after |", "| false care alerts per elder-month (target ≤ 0.3) |",
		"| incident kind | rule | injected | detected before | detected after |", "| median by day before | median by day after | median by night before | median by night after |",
		"collapse_after_door", "After, in full:", "| incident kind |", "threshold rules together"} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("replay --compare output lacks %q:\n%s", want, stdout)
		}
	}
	checkDerivedIDs(t, out, lastSeq(t, in), "sim-gw", "0000000000000000")
	if code, _, _ := runCLI(t, "replay", "--compare", "-c", filepath.Join(dir, "lintel.yaml"), "--events", "-"); code != exitUsage {
		t.Fatalf("replay --compare from stdin: exit %d, want %d", code, exitUsage)
	}
}

func TestSimEldersLegacyPopulation(t *testing.T) {
	dir := simPop(t, "--realistic=false")
	b, err := os.ReadFile(filepath.Join(dir, "truth.json"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"episodes"`) || strings.Contains(string(b), `"realistic": true`) {
		t.Fatal("--realistic=false wrote realistic ground truth")
	}
	dir = simPop(t)
	b, _ = os.ReadFile(filepath.Join(dir, "truth.json"))
	for _, want := range []string{`"realistic": true`, `"profiles"`, `"routines"`, `"episodes"`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("truth.json lacks %s", want)
		}
	}
}

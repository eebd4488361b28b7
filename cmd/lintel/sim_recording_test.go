package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const recTestdata = "../../edge/rules/recording/testdata"

// A recording converts to a log, config and truth that `lintel replay`
// takes, and its output scores with --evaluate --alerts; --evaluate alone
// does it all in-process.
func TestSimRecordingAndReplay(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "k.jsonl")
	code, stdout, stderr := runCLI(t, "sim", "recording", "--format", "kasteren", "--in", filepath.Join(recTestdata, "kasteren"),
		"--out", out, "--inject", "2", "--inject-door", "1", "--zone", "+01:00")
	if code != 0 {
		t.Fatalf("sim recording: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{"h-kasteren as recorded + 3 copies", "(2 at home, 1 after a door cycle)", "lintel replay -c " + filepath.Join(dir, "k.yaml")} {
		if !strings.Contains(stdout, want) {
			t.Fatalf("output lacks %q:\n%s", want, stdout)
		}
	}
	alerts := filepath.Join(dir, "k.alerts.jsonl")
	code, stdout, stderr = runCLI(t, "replay", "-c", filepath.Join(dir, "k.yaml"), "--events", out, "--truth", filepath.Join(dir, "k.truth.json"), "--out", alerts)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "replayed") || !strings.Contains(stdout, "| collapse | inactivity | 2 |") {
		t.Fatalf("replay output:\n%s", stdout)
	}
	code, stdout, stderr = runCLI(t, "sim", "recording", "--evaluate", "--truth", filepath.Join(dir, "k.truth.json"), "--alerts", alerts)
	if code != 0 {
		t.Fatalf("evaluate: exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "| collapse | 2 | 2/2 (100 %)") || !strings.Contains(stdout, "| collapse_after_door | 1 |") {
		t.Fatalf("evaluate output:\n%s", stdout)
	}
	code, stdout, stderr = runCLI(t, "sim", "recording", "--evaluate", "--format", "tapia", "--in", filepath.Join(recTestdata, "tapia"),
		"--inject", "1", "--zone", "-04:00", "--legacy", "-c", filepath.Join(dir, "k.yaml"))
	if code != exitConfig || !strings.Contains(stderr, "household h-tapia of the trace is not under rules.elders") {
		t.Fatalf("evaluate with a foreign config: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = runCLI(t, "sim", "recording", "--evaluate", "--format", "tapia", "--in", filepath.Join(recTestdata, "tapia"),
		"--inject", "1", "--zone", "-04:00", "--legacy")
	if code != 0 || strings.Count(stdout, "| collapse | 1 |") != 2 || !strings.Contains(stdout, "legacy rules") {
		t.Fatalf("evaluate in-process: exit %d\n%s%s", code, stdout, stderr)
	}
}

func init() {
	moreCLIErrorCases = append(moreCLIErrorCases, func(dir, missing, good string) []cliErrorCase {
		bad := filepath.Join(dir, "tapia-bad")
		os.MkdirAll(bad, 0o755)
		os.WriteFile(filepath.Join(bad, "sensors.csv"), []byte("140,Foyer,Door\n100,Bathroom,Toilet Flush\n"), 0o644)
		os.WriteFile(filepath.Join(bad, "activities_data.csv"), []byte("Toileting,4/31/2003,7:0:0,7:5:0\n100\nToilet Flush\n7:1:0\n7:1:2\n"), 0o644)
		nodoor := filepath.Join(dir, "tapia-nodoor")
		os.MkdirAll(nodoor, 0o755)
		os.WriteFile(filepath.Join(nodoor, "sensors.csv"), []byte("100,Bathroom,Toilet Flush\n"), 0o644)
		os.WriteFile(filepath.Join(nodoor, "activities_data.csv"), []byte("Toileting,4/3/2003,7:0:0,7:5:0\n100\nToilet Flush\n7:1:0\n7:1:2\n"), 0o644)
		out := filepath.Join(dir, "rec.jsonl")
		return []cliErrorCase{
			{"sim recording no format", []string{"sim", "recording"}, exitUsage, []string{"--format kasteren|tapia", "lintel sim recording -h"}},
			{"sim recording bad format", []string{"sim", "recording", "--format", "casas", "--in", dir}, exitUsage, []string{"want kasteren or tapia"}},
			{"sim recording no out", []string{"sim", "recording", "--format", "tapia", "--in", bad}, exitUsage, []string{"--out is required"}},
			{"sim recording missing dir", []string{"sim", "recording", "--format", "tapia", "--in", filepath.Join(dir, "none"), "--out", out}, exitFailure, []string{"sensors.csv", "检查 --in"}},
			{"sim recording bad line", []string{"sim", "recording", "--format", "tapia", "--in", bad, "--out", out}, exitFailure, []string{"activities_data.csv:1: date \"4/31/2003\"", "--skip-bad"}},
			{"sim recording no door", []string{"sim", "recording", "--format", "tapia", "--in", nodoor, "--out", out}, exitFailure, []string{"no entrance door", "--door ID"}},
			{"sim recording bad zone", []string{"sim", "recording", "--format", "tapia", "--in", bad, "--out", out, "--zone", "Mars/Olympus"}, exitFailure, []string{"--zone", "IANA"}},
			{"sim recording evaluate no truth", []string{"sim", "recording", "--evaluate", "--alerts", out}, exitUsage, []string{"needs --truth"}},
			{"sim recording evaluate bad truth", []string{"sim", "recording", "--evaluate", "--truth", good, "--alerts", out}, exitFailure, []string{"lintel sim recording --out"}},
			{"sim recording unwritable out", []string{"sim", "recording", "--format", "kasteren", "--in", filepath.Join(recTestdata, "kasteren"), "--out", filepath.Join(dir, "no", "such", "k.jsonl"), "--zone", "+01:00"}, exitFailure, []string{"check that the directory of --out"}},
		}
	})
}

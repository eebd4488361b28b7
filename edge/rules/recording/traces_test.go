package recording

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// realTraces are the recordings docs/traces.md describes, by directory
// under $LINTEL_TRACES.
var realTraces = []struct {
	dir, format, zone string
}{
	{"kasteren", "kasteren", "Europe/Amsterdam"},
	{"tapia-subject1", "tapia", "America/New_York"},
	{"tapia-subject2", "tapia", "America/New_York"},
}

// TestTraces replays the real recordings (not in the repository) through
// the rules at default settings and logs the scores:
//
//	LINTEL_TRACES=/work/traces go test ./edge/rules/recording -run TestTraces -v
//
// LINTEL_TRACES_INJECT sets how many collapses of each kind are injected
// (default 10). The test fails only if a trace cannot be converted or
// replayed: the figures are for measuring, not a gate.
func TestTraces(t *testing.T) {
	root := os.Getenv("LINTEL_TRACES")
	if root == "" {
		t.Skip("set LINTEL_TRACES to the directory holding the recordings (docs/traces.md)")
	}
	inject := 10
	if s := os.Getenv("LINTEL_TRACES_INJECT"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("LINTEL_TRACES_INJECT=%q: want a count", s)
		}
		inject = n
	}
	for _, tc := range realTraces {
		dir := filepath.Join(root, tc.dir)
		if _, err := os.Stat(dir); err != nil {
			t.Logf("%s: not there, skipped", dir)
			continue
		}
		t.Run(tc.dir, func(t *testing.T) {
			rec, err := Load(tc.format, dir, Options{SkipBad: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range rec.Problems {
				t.Logf("skipped: %v", p)
			}
			zone, err := time.LoadLocation(tc.zone)
			if err != nil {
				t.Skipf("zone %s: %v", tc.zone, err)
			}
			tr, err := Build(rec, BuildOptions{Zone: zone, Collapses: inject, DoorCollapses: inject, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			first, last := rec.Span()
			t.Logf("%s: %d sensors, %d firings, %s – %s (%d absences), %d events in %d households",
				rec.Name, len(rec.Sensors), len(rec.Firings), first.Format("2006-01-02"), last.Format("2006-01-02"),
				len(rec.Absences), len(tr.Events), len(tr.Households))
			for _, legacy := range []bool{true, false} {
				s := tr.Settings()
				s.Legacy = legacy
				derived, st, err := tr.Replay(s)
				if err != nil {
					t.Fatal(err)
				}
				name := "engine on this branch"
				if legacy {
					name = "legacy engine (fixed limits, before issue 12)"
				}
				t.Logf("%s, replay %s:\n%s", name, st.Elapsed.Round(time.Millisecond), Evaluate(&tr.Truth, derived).Markdown())
			}
		})
	}
}

package rules

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// anyHourChildEnv marks a child run of TestAnyHour, which must not start
// children of its own.
const anyHourChildEnv = "LINTEL_TEST_ANYHOUR_CHILD"

// TestAnyHour runs the rest of this package's tests again, in the test
// binary already built, with the host clock (LINTEL_TEST_NOW, see
// [testNow]) and zone (TZ) pinned to each of 00:00, 06:00, 14:00 and
// 22:00 host time in Asia/Shanghai and UTC, and fails with a child's
// output if any child fails. Each child is a subtest: -run
// 'TestAnyHour/UTC_14:00' runs one. Issue 17: a test that read the host
// clock failed every day between 08:00 and 22:00 UTC, and CI was red for
// those hours only.
func TestAnyHour(t *testing.T) {
	if os.Getenv(anyHourChildEnv) != "" {
		t.Skip("a child run of TestAnyHour")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The population evaluations replay on simulated clocks from fixed
	// dates, whatever the host's: they run once, in the parent.
	args := []string{"-test.skip=^(TestAnyHour|TestEvaluation|TestEvaluationRealistic|TestRealisticReplay|TestColdStartEqualsLegacy)$",
		"-test.count=1", "-test.timeout=5m"}
	if testing.Short() {
		args = append(args, "-test.short")
	}
	// Two children at a time: each is mostly one core (the evaluation's
	// replay); on two cores that takes 26 s for the eight where one at a
	// time took 39 s.
	sem := make(chan struct{}, min(2, runtime.GOMAXPROCS(0)))
	start := time.Now()
	t.Cleanup(func() { t.Logf("all children done in %s", time.Since(start).Round(10*time.Millisecond)) })
	for _, tz := range []string{"Asia/Shanghai", "UTC"} {
		loc, err := time.LoadLocation(tz) // embedded tzdata: see now_test.go
		if err != nil {
			t.Fatal(err)
		}
		for _, hour := range []int{0, 6, 14, 22} {
			now := time.Date(2026, 3, 2, hour, 0, 0, 0, loc).Format(time.RFC3339)
			name := strings.ReplaceAll(tz, "/", "-") + fmt.Sprintf("_%02d:00", hour)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				sem <- struct{}{}
				defer func() { <-sem }()
				t0 := time.Now()
				cmd := exec.CommandContext(t.Context(), exe, args...)
				cmd.Env = append(os.Environ(), anyHourChildEnv+"=1", "TZ="+tz, testNowEnv+"="+now)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("TZ=%s %s=%s: %v\n%s", tz, testNowEnv, now, err, out)
				}
				if bytes.Contains(out, []byte("no tests to run")) {
					t.Fatalf("the child ran no tests:\n%s", out)
				}
				t.Logf("ok in %s", time.Since(t0).Round(10*time.Millisecond))
			})
		}
	}
}

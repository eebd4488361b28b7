package rules

import (
	"os"
	"testing"
	"time"

	// Embedded zone data, so that TZ=Asia/Shanghai sets time.Local in the
	// child runs of TestAnyHour on a host without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// testNowEnv names the variable that pins the host clock the tests see,
// as an RFC 3339 time (LINTEL_TEST_NOW=2026-03-02T14:00:00Z). TestAnyHour
// sets it, with TZ, for each child run of the suite.
const testNowEnv = "LINTEL_TEST_NOW"

// testNow is the host's time for the tests: LINTEL_TEST_NOW when set,
// the real clock otherwise. It is the only place the rules tests read the
// host clock; a test whose outcome depends on the local time of day pins
// it from here with [dayAt] (the engine tests pin everything to
// [monday8], and synctest bubbles start at 2000-01-01 00:00 UTC).
func testNow(t testing.TB) time.Time {
	t.Helper()
	v := os.Getenv(testNowEnv)
	if v == "" {
		return time.Now()
	}
	ts, err := time.Parse(time.RFC3339, v)
	if err != nil {
		t.Fatalf("%s=%q: want an RFC 3339 time: %v", testNowEnv, v, err)
	}
	return ts.In(time.Local)
}

// dayAt is hour:minute compound time (cst, the rules' default +08:00) on
// the compound's calendar day of base: the day follows the host clock,
// the time of day that a rule decision depends on is fixed.
func dayAt(base time.Time, hour, minute int) time.Time {
	y, m, d := base.In(cst).Date()
	return time.Date(y, m, d, hour, minute, 0, 0, cst)
}

// TestTestNow checks the pinning itself: a child run of TestAnyHour sees
// the host time and zone it was given.
func TestTestNow(t *testing.T) {
	if v := os.Getenv(testNowEnv); v != "" {
		want, err := time.Parse(time.RFC3339, v)
		if err != nil {
			t.Fatal(err)
		}
		if got := testNow(t); !got.Equal(want) {
			t.Fatalf("testNow() = %s, want %s", got, want)
		}
	}
	if tz := os.Getenv("TZ"); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			t.Fatalf("TZ=%s: %v", tz, err)
		}
		now := testNow(t)
		_, got := now.In(time.Local).Zone()
		_, want := now.In(loc).Zone()
		if got != want {
			t.Fatalf("TZ=%s (UTC%+ds) but time.Local (%s) is UTC%+ds", tz, want, time.Local, got)
		}
	}
	// The compound's day, not the host's: 14:00 UTC is 22:00 in the
	// compound, 16:00 UTC its midnight.
	for _, tt := range []struct{ base, want string }{
		{"2026-03-02T14:00:00Z", "2026-03-02T08:00:00+08:00"},
		{"2026-03-02T15:59:00Z", "2026-03-02T08:00:00+08:00"},
		{"2026-03-02T16:00:00Z", "2026-03-03T08:00:00+08:00"},
		{"2026-03-02T23:00:00-05:00", "2026-03-03T08:00:00+08:00"},
	} {
		base, _ := time.Parse(time.RFC3339, tt.base)
		want, _ := time.Parse(time.RFC3339, tt.want)
		if got := dayAt(base, 8, 0); !got.Equal(want) {
			t.Errorf("dayAt(%s, 08:00) = %s, want %s", tt.base, got, tt.want)
		}
	}
}

package status

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

var dateTimeRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?`)

// TestOneClock: with the host in UTC and the compound at +08:00 (the
// rules' default utc_offset), every time on every page is the +08:00
// rendering of an instant the page knows; the unsynced badge is in the
// header once, and on an event only when its quality differs.
func TestOneClock(t *testing.T) {
	cheapHash(t)
	// The host's zone must differ from the compound's for the test to
	// mean anything. time.Local is not swapped here: the servers of other
	// tests read it from their goroutines (a data race).
	if _, off := time.Now().Zone(); off == 8*3600 {
		t.Skip("the host is at +08:00 like the compound: run with TZ=UTC")
	}
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	// 16:46 UTC is 00:46 the next day at +08:00: a UTC rendering differs
	// in day and hour.
	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second)
	planted := []time.Time{base, base.Add(7 * time.Minute), base.Add(20 * time.Minute)}
	raise := event.New(event.ElderAlertRaised).WithData(map[string]any{
		"alert_id": "al-clock", "rule": "inactivity", "household": "h-3-1-301", "level": 1, "mode": "normal",
		"reason_zh": "老人在家，长时间无活动", "reason_en": "at home and no activity",
		"since":     planted[0].Format(time.RFC3339Nano),
		"last_seen": map[string]any{"sos-301": map[string]any{"role": "sos", "last_seen": planted[1].Format(time.RFC3339Nano), "state": "ok"}},
	})
	raise.Time, raise.TimeQuality, raise.Household = planted[1], event.Unsynced, "h-3-1-301"
	on := event.New(event.DeviceOnline)
	on.Device, on.Time, on.TimeQuality = "sos-301", planted[2], event.Unsynced
	mode := event.New(event.ElderModeChanged).WithData(map[string]any{"mode": "away", "until": planted[2].Add(48 * time.Hour).Format(time.RFC3339)})
	mode.Household, mode.Time, mode.TimeQuality = "h-3-2-502", planted[2], event.Unsynced
	planted = append(planted, planted[2].Add(48*time.Hour))
	e.emit(raise, on, mode)
	c := e.login("installer", insPW)
	waitFor(t, "alert", func() bool { return strings.Contains(c.get("/alerts").body, "al-clock") })

	zone := time.FixedZone("", 8*3600)
	check := func(page, body string) {
		t.Helper()
		now := time.Now()
		for _, m := range dateTimeRE.FindAllString(body, -1) {
			var at time.Time
			var err error
			switch {
			case strings.HasSuffix(m, "Z"):
				t.Errorf("%s: a UTC time %q", page, m)
				continue
			case strings.Contains(m, "T") && len(m) > 19 && (m[len(m)-6] == '+' || m[len(m)-6] == '-'):
				if !strings.HasSuffix(m, "+08:00") {
					t.Errorf("%s: %q is not in the compound's zone", page, m)
				}
				at, err = time.Parse(time.RFC3339Nano, m)
			default:
				layout := map[int]string{16: "2006-01-02 15:04", 19: "2006-01-02 15:04:05"}[len(m)]
				if layout == "" {
					layout = "2006-01-02T15:04"
				}
				at, err = time.ParseInLocation(strings.Replace(layout, " ", string(m[10]), 1), m, zone)
			}
			if err != nil {
				t.Errorf("%s: %q: %v", page, m, err)
				continue
			}
			ok := at.Sub(now).Abs() < 5*time.Minute // the clock, started, log lines
			for _, p := range planted {
				ok = ok || at.Sub(p).Abs() < time.Minute
			}
			if !ok {
				t.Errorf("%s: %q is no +08:00 rendering of a time the page knows (host zone leaked?)", page, m)
			}
		}
	}
	pages := []string{"/", "/alerts", "/households", "/devices", "/events", "/events?all=1", "/diagnostics"}
	for _, pg := range pages {
		check(pg, c.get(pg).body)
	}
	if b := c.get("/events").body; !strings.Contains(b, planted[1].In(zone).Format("2006-01-02 15:04:05")) {
		t.Errorf("events page lacks the +08:00 time %s", planted[1].In(zone).Format("2006-01-02 15:04:05"))
	}

	// The clock is unsynced (the last event says so): the header says it
	// once, no event row repeats it.
	b := c.get("/events").body
	if n := strings.Count(b, `id="clock-unsynced"`); n != 1 {
		t.Errorf("unsynced header badge %d times", n)
	}
	if n := strings.Count(b, "未校时"); n != 1 {
		t.Errorf("未校时 %d times on the events page, want once (the header)", n)
	}
	// A synced event after: the header badge goes; the unsynced events
	// carry their own.
	synced := event.New(event.DeviceOnline)
	synced.Device, synced.TimeQuality, synced.Time = "cam-3", event.Synced, time.Now()
	e.emit(synced)
	waitFor(t, "synced", func() bool { return !strings.Contains(c.get("/").body, `id="clock-unsynced"`) })
	b = c.get("/events").body
	if n := strings.Count(b, "未校时"); n != 3 {
		t.Errorf("未校时 %d times on the events page, want 3 (the unsynced events)", n)
	}
	if strings.Contains(b, "已校时") {
		t.Error("a synced event carries a badge on a synced page")
	}
	check("/events after sync", b)
	_ = fmt.Sprint
}

package status

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// TestEventsWithoutNoise: resolve rows of alerts that ended by themselves
// before anyone acknowledged them, and of alerts never shown as raised,
// are left out of the default events view; the self-ended alert shows
// once, as what it was; the staff filter (all=1) shows every row.
func TestEventsWithoutNoise(t *testing.T) {
	cheapHash(t)
	e := newEnv(t, envOpt{})
	withAccounts(t, e)
	t0 := time.Now().Add(-3 * time.Hour)
	var evs []*event.Event
	add := func(k event.Kind, at time.Duration, data map[string]any) {
		ev := event.New(k).WithData(data)
		ev.Household, ev.Time = "h-3-1-301", t0.Add(at)
		evs = append(evs, ev)
	}
	// 24 no_exit alerts cleared by the system whose raise the log does not
	// hold (the 24 "告警已解决" rows).
	for i := range 24 {
		add(event.ElderAlertResolved, time.Duration(i)*time.Minute, map[string]any{"alert_id": fmt.Sprintf("al-noexit-%d", i),
			"rule": "no_exit", "outcome": "cleared", "actor": "system", "reason_zh": "老人已出门", "reason_en": "went out"})
	}
	raise := func(id, rule string, at time.Duration) {
		add(event.ElderAlertRaised, at, map[string]any{"alert_id": id, "rule": rule, "reason_zh": "原因", "reason_en": "reason"})
	}
	// Ended by itself, unseen.
	raise("al-quiet", "inactivity", 30*time.Minute)
	add(event.ElderAlertResolved, 40*time.Minute, map[string]any{"alert_id": "al-quiet", "rule": "inactivity", "outcome": "cleared", "actor": "system"})
	// Acknowledged, then cleared by itself: someone saw it, both rows stay.
	raise("al-seen", "door_left_open", 50*time.Minute)
	add(event.ElderAlertAcknowledged, 52*time.Minute, map[string]any{"alert_id": "al-seen", "rule": "door_left_open", "actor": "wang"})
	add(event.ElderAlertResolved, 55*time.Minute, map[string]any{"alert_id": "al-seen", "rule": "door_left_open", "outcome": "cleared", "actor": "system"})
	// Resolved by a person.
	raise("al-sos", "sos", 60*time.Minute)
	add(event.ElderAlertResolved, 70*time.Minute, map[string]any{"alert_id": "al-sos", "rule": "sos", "outcome": "safe", "actor": "wang"})
	e.emit(evs...)
	c := e.login("manager", mgrPW)
	waitFor(t, "tracker", func() bool { _, ok := e.srv.tr.alert("al-sos"); return ok })

	resolvedRow := "<strong>" + tr("zh", "kind.elder.alert.resolved") + "</strong>"
	raisedRow := "<strong>" + tr("zh", "kind.elder.alert.raised") + "</strong>"
	b := c.get("/events?limit=200").body
	if n := strings.Count(b, resolvedRow); n != 2 {
		t.Errorf("default view: %d resolve rows, want 2 (the acknowledged one and the one a person resolved)", n)
	}
	if n := strings.Count(b, raisedRow); n != 3 {
		t.Errorf("default view: %d raise rows, want 3", n)
	}
	if n := strings.Count(b, "无人确认前已自行解除（"); n != 1 {
		t.Errorf("the self-ended alert is told %d times, want once", n)
	}
	if !strings.Contains(b, "长时间无活动 · 无人确认前已自行解除") {
		t.Error("the self-ended alert's row does not say what it was")
	}
	all := c.get("/events?limit=200&all=1").body
	if n := strings.Count(all, resolvedRow); n != 27 {
		t.Errorf("staff filter: %d resolve rows, want 27", n)
	}
	if !strings.Contains(all, `name="all" value="1" checked`) {
		t.Error("the staff filter is not shown as on")
	}
	// The API is for machines: it lists every event.
	if r := c.get("/api/v1/events?kind=elder.alert.resolved&limit=200"); strings.Count(r.body, `"elder.alert.resolved"`) != 27 {
		t.Errorf("API events: %d resolved", strings.Count(r.body, `"elder.alert.resolved"`))
	}
	if r := c.get("/events?all=2"); r.code != 400 {
		t.Errorf("all=2: %d", r.code)
	}
}

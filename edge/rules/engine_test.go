package rules

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// cst is the compound's zone in every test: windows are local times.
var cst = time.FixedZone("CST", 8*3600)

// monday8 is Monday 2026-03-02 08:00 local.
var monday8 = time.Date(2026, 3, 2, 8, 0, 0, 0, cst)

const hh = "h-301"

// harness drives one engine with one elder (door d1, motion m1, sos s1,
// peephole p1) on a manual clock.
type harness struct {
	t   *testing.T
	e   *Engine
	clk *ManualClock
	seq uint64
	out []*event.Event
}

func newHarness(t *testing.T, mutate ...func(*Settings)) *harness {
	t.Helper()
	s := NewSettings(hh)
	el := &s.Elders[0]
	el.Sensors = []string{"d1", "m1", "s1", "p1"}
	el.Roles = map[string]string{"d1": "door", "m1": "motion", "s1": "sos", "p1": "peephole"}
	for _, m := range mutate {
		m(s)
	}
	clk := NewManualClock(monday8)
	h := &harness{t: t, e: NewEngine(s, clk), clk: clk}
	h.e.Advance(monday8)
	return h
}

// at is local time on day d (0 = Monday 2 March) at hh:mm.
func at(d, hour, minute int) time.Time {
	return time.Date(2026, 3, 2+d, hour, minute, 0, 0, cst)
}

func (h *harness) send(kind event.Kind, dev string, t time.Time, data ...map[string]any) {
	h.t.Helper()
	h.seq++
	ev := event.New(kind)
	ev.Seq, ev.Device, ev.Time = h.seq, dev, t.UTC()
	if len(data) > 0 {
		ev.WithData(data[0])
	}
	h.clk.Set(t)
	h.e.Process(ev)
	h.collect()
}

// feed puts a derived or command event through the log path.
func (h *harness) feed(ev *event.Event) {
	h.t.Helper()
	h.seq++
	ev.Seq = h.seq
	h.clk.Set(ev.Time)
	h.e.Process(ev)
	h.collect()
}

func (h *harness) advance(t time.Time) {
	h.clk.Set(t)
	h.e.Advance(t)
	h.collect()
}

func (h *harness) collect() {
	for _, ev := range h.e.Drain() {
		h.out = append(h.out, ev)
	}
}

// find returns the derived events of kind (and rule, if given).
func (h *harness) find(kind event.Kind, rule Rule) []*event.Event {
	var out []*event.Event
	for _, ev := range h.out {
		if ev.Kind != kind {
			continue
		}
		if rule != "" && dataOf(ev)["rule"] != string(rule) {
			continue
		}
		out = append(out, ev)
	}
	return out
}

func dataOf(ev *event.Event) map[string]any {
	var m map[string]any
	_ = json.Unmarshal(ev.Data, &m)
	return m
}

func (h *harness) wantRaised(rule Rule, n int, when time.Time) *event.Event {
	h.t.Helper()
	got := h.find(event.ElderAlertRaised, rule)
	if len(got) != n {
		h.t.Fatalf("%s raised %d times, want %d; events: %s", rule, len(got), n, h.dump())
	}
	if n == 0 {
		return nil
	}
	ev := got[n-1]
	if !when.IsZero() && !ev.Time.Equal(when.UTC()) {
		h.t.Fatalf("%s raised at %s, want %s", rule, ev.Time.In(cst), when)
	}
	return ev
}

func (h *harness) dump() string {
	var b strings.Builder
	for _, ev := range h.out {
		d := dataOf(ev)
		b.WriteString("\n  " + ev.Time.In(cst).Format("01-02 15:04:05") + " " + string(ev.Kind) + " " + toStr(d["rule"]) + " " + toStr(d["state"]) + toStr(d["outcome"]))
	}
	return b.String()
}

func toStr(v any) string {
	s, _ := v.(string)
	return s
}

// home puts the elder at home with motion at t.
func (h *harness) home(t time.Time) { h.send(event.MotionDetected, "m1", t) }

func (h *harness) goOut(t time.Time) {
	h.send(event.MotionDetected, "m1", t.Add(-time.Minute))
	h.send(event.DoorOpened, "d1", t)
	h.send(event.DoorClosed, "d1", t.Add(20*time.Second))
}

func (h *harness) comeBack(t time.Time) {
	h.send(event.DoorOpened, "d1", t)
	h.send(event.DoorClosed, "d1", t.Add(20*time.Second))
	h.send(event.MotionDetected, "m1", t.Add(3*time.Minute))
}

func TestInactivityDay(t *testing.T) {
	h := newHarness(t)
	h.send(event.DoorOpened, "d1", at(0, 8, 30))
	h.send(event.DoorClosed, "d1", at(0, 8, 31))
	h.home(at(0, 9, 0))
	h.advance(at(0, 14, 59))
	h.wantRaised(RuleInactivity, 0, time.Time{})
	h.advance(at(0, 15, 1))
	ev := h.wantRaised(RuleInactivity, 1, at(0, 15, 0))
	d := dataOf(ev)
	if d["thresholds"].(map[string]any)["applied"] != "6h0m0s" || ev.Severity != event.Alert {
		t.Fatalf("data %v severity %s", d, ev.Severity)
	}
	if d["presence"].(map[string]any)["state"] != "home" || d["last_seen"].(map[string]any)["m1"] == nil {
		t.Fatalf("explanation lacks presence or last seen: %v", d)
	}
	if !strings.Contains(d["reason_zh"].(string), "无任何活动") || d["data_health"].(map[string]any)["status"] != "ok" {
		t.Fatalf("reason/health: %v", d)
	}
	// Activity clears it before anyone acknowledged.
	h.home(at(0, 15, 10))
	res := h.find(event.ElderAlertResolved, RuleInactivity)
	if len(res) != 1 || dataOf(res[0])["outcome"] != OutcomeCleared {
		t.Fatalf("want one cleared resolution: %s", h.dump())
	}
}

func TestInactivityAcrossNightUsesNightLimit(t *testing.T) {
	h := newHarness(t)
	h.send(event.DoorOpened, "d1", at(0, 8, 30))
	h.send(event.DoorClosed, "d1", at(0, 8, 31))
	h.home(at(0, 20, 0)) // 20:00 + 6h crosses 22:00: the 12 h limit applies
	h.advance(at(1, 7, 59))
	h.wantRaised(RuleInactivity, 0, time.Time{})
	h.advance(at(1, 8, 1))
	ev := h.wantRaised(RuleInactivity, 1, at(1, 8, 0))
	if dataOf(ev)["thresholds"].(map[string]any)["applied"] != "12h0m0s" {
		t.Fatal("want the night limit")
	}
	// A normal night: up at 06:30.
	h2 := newHarness(t)
	h2.home(at(0, 21, 30))
	h2.home(at(1, 6, 30))
	h2.advance(at(1, 10, 0))
	h2.wantRaised(RuleInactivity, 0, time.Time{})
}

func TestNoExit(t *testing.T) {
	// Door only (no motion seen): the 24 h limit.
	h := newHarness(t)
	h.send(event.DoorOpened, "d1", at(0, 8, 30))
	h.send(event.DoorClosed, "d1", at(0, 8, 30))
	h.advance(at(1, 8, 29))
	h.wantRaised(RuleNoExit, 0, time.Time{})
	h.advance(at(1, 8, 31))
	ev := h.wantRaised(RuleNoExit, 1, at(1, 8, 30))
	if dataOf(ev)["thresholds"].(map[string]any)["applied"] != "24h0m0s" {
		t.Fatal(dataOf(ev))
	}
	h.send(event.DoorOpened, "d1", at(1, 9, 0))
	if len(h.find(event.ElderAlertResolved, RuleNoExit)) != 1 {
		t.Fatalf("door use should clear no_exit: %s", h.dump())
	}

	// Moving about at home but never going out: the 48 h limit.
	m := newHarness(t)
	m.send(event.DoorOpened, "d1", at(0, 8, 30))
	m.send(event.DoorClosed, "d1", at(0, 8, 30))
	for i := 0; i < 23; i++ {
		m.home(at(0, 9, 0).Add(time.Duration(i) * 2 * time.Hour))
	}
	m.advance(at(2, 8, 29))
	m.wantRaised(RuleNoExit, 0, time.Time{})
	m.advance(at(2, 8, 31))
	m.wantRaised(RuleNoExit, 1, at(2, 8, 30))
}

func TestNotReturnedDayAndNight(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 8, 0))
	h.goOut(at(0, 9, 0))
	h.advance(at(0, 9, 31))
	if got := h.find(event.ElderPresence, ""); len(got) == 0 || dataOf(got[len(got)-1])["state"] != "away" {
		t.Fatalf("want presence away after 30 min without motion: %s", h.dump())
	}
	h.advance(at(0, 21, 1))
	h.wantRaised(RuleNotReturned, 1, at(0, 21, 0).Add(20*time.Second))
	h.wantRaised(RuleInactivity, 0, time.Time{})
	h.comeBack(at(0, 21, 30))
	if len(h.find(event.ElderAlertResolved, RuleNotReturned)) != 1 {
		t.Fatalf("coming back should clear: %s", h.dump())
	}

	n := newHarness(t)
	n.home(at(0, 22, 30))
	n.goOut(at(0, 23, 0))
	n.advance(at(1, 0, 1))
	ev := n.wantRaised(RuleNotReturned, 1, at(1, 0, 0).Add(20*time.Second))
	if dataOf(ev)["thresholds"].(map[string]any)["variant"] != "night" {
		t.Fatal("want the night variant")
	}
}

func TestDoorLeftOpen(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.send(event.DoorOpened, "d1", at(0, 10, 0))
	h.home(at(0, 10, 5))
	h.advance(at(0, 10, 14))
	h.wantRaised(RuleDoorLeftOpen, 0, time.Time{})
	h.advance(at(0, 10, 16))
	h.wantRaised(RuleDoorLeftOpen, 1, at(0, 10, 15))
	h.send(event.DoorClosed, "d1", at(0, 10, 20))
	if len(h.find(event.ElderAlertResolved, RuleDoorLeftOpen)) != 1 {
		t.Fatal("closing should clear")
	}
}

func TestNightWandering(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 21, 0))
	for i, m := range []int{10, 40, 70, 100} {
		ts := at(1, 0, 0).Add(time.Duration(m) * time.Minute)
		h.send(event.DoorOpened, "d1", ts)
		h.send(event.DoorClosed, "d1", ts.Add(30*time.Second))
		h.home(ts.Add(2 * time.Minute))
		want := 0
		if i == 3 {
			want = 1
		}
		h.wantRaised(RuleNightWandering, want, time.Time{})
	}
	// Unacknowledged, it clears itself once the night is over and the
	// elder is home; the next night counts afresh.
	h.home(at(1, 6, 30))
	h.advance(at(1, 7, 0))
	if len(h.find(event.ElderAlertResolved, RuleNightWandering)) != 1 {
		t.Fatalf("want night_wandering cleared in the morning: %s", h.dump())
	}
	h.send(event.DoorOpened, "d1", at(1, 23, 0))
	h.wantRaised(RuleNightWandering, 1, time.Time{})
}

func TestSOSCriticalAndEscalation(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.send(event.SOSPressed, "s1", at(0, 10, 0))
	ev := h.wantRaised(RuleSOS, 1, at(0, 10, 0))
	if ev.Severity != event.Critical {
		t.Fatalf("severity %s", ev.Severity)
	}
	h.send(event.SOSPressed, "s1", at(0, 10, 1))
	h.wantRaised(RuleSOS, 1, time.Time{}) // one open alert per (elder, rule)
	h.advance(at(0, 10, 40))
	esc := h.find(event.ElderAlertEscalated, RuleSOS)
	if len(esc) != 2 || !esc[0].Time.Equal(at(0, 10, 5).UTC()) || !esc[1].Time.Equal(at(0, 10, 30).UTC()) {
		t.Fatalf("want L2 at 10:05 and L3 at 10:30: %s", h.dump())
	}
	if dataOf(esc[1])["level"] != 3.0 || esc[1].Severity != event.Critical {
		t.Fatalf("L3: %v", dataOf(esc[1]))
	}
}

func TestEscalationAckResolve(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.advance(at(0, 15, 0))
	raised := h.wantRaised(RuleInactivity, 1, at(0, 15, 0))
	id := dataOf(raised)["alert_id"].(string)
	h.advance(at(0, 15, 30))
	if n := len(h.find(event.ElderAlertEscalated, "")); n != 1 {
		t.Fatalf("want L2 at 15:30, got %d: %s", n, h.dump())
	}
	h.clk.Set(at(0, 15, 40))
	ack, err := h.e.PrepareAck(id, "grid-07", "by phone", "calling the elder")
	if err != nil {
		t.Fatal(err)
	}
	h.feed(ack)
	if _, err := h.e.PrepareAck(id, "x", "", ""); err == nil {
		t.Fatal("second ack should be refused")
	}
	h.advance(at(0, 18, 0))
	if n := len(h.find(event.ElderAlertEscalated, "")); n != 1 {
		t.Fatalf("acknowledged alerts must not escalate: %s", h.dump())
	}
	// Acknowledged alerts wait for the visit's outcome even if activity
	// resumes.
	h.home(at(0, 18, 5))
	if len(h.find(event.ElderAlertResolved, "")) != 0 {
		t.Fatal("acknowledged alert auto-resolved")
	}
	if _, err := h.e.PrepareResolve(id, "grid-07", OutcomeFalseAlarm, "", ""); err == nil {
		t.Fatal("false alarm without reason accepted")
	}
	if _, err := h.e.PrepareResolve(id, "grid-07", "maybe", "", ""); err == nil {
		t.Fatal("unknown outcome accepted")
	}
	res, err := h.e.PrepareResolve(id, "grid-07", OutcomeSafe, "", "elder was napping")
	if err != nil {
		t.Fatal(err)
	}
	h.feed(res)
	h.feed(res) // the log echo is a no-op
	if h.e.OpenAlerts() != 0 {
		t.Fatal("alert still open")
	}
	// The window restarts from the visit.
	h.advance(at(1, 0, 0))
	h.wantRaised(RuleInactivity, 1, time.Time{})
	h.advance(at(1, 6, 6))
	h.wantRaised(RuleInactivity, 2, at(1, 6, 5))
}

func TestVisitorLoiteringAndNightDoorbells(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	for i := 0; i <= 3; i++ {
		h.send(event.PeepholeVisitor, "p1", at(0, 14, i))
	}
	h.wantRaised(RuleVisitorLoitering, 1, at(0, 14, 3))
	h.advance(at(0, 14, 30))
	if len(h.find(event.ElderAlertResolved, RuleVisitorLoitering)) != 1 {
		t.Fatal("want cleared after the visitor left")
	}
	// A normal visit: the door opens within a minute.
	h.send(event.PeepholeDoorbell, "p1", at(0, 16, 0))
	h.send(event.DoorOpened, "d1", at(0, 16, 1))
	h.send(event.DoorClosed, "d1", at(0, 16, 1))
	h.send(event.PeepholeVisitor, "p1", at(0, 16, 4))
	h.wantRaised(RuleVisitorLoitering, 1, time.Time{})
	// Three rings at night, door shut.
	h.send(event.PeepholeDoorbell, "p1", at(0, 23, 0))
	h.send(event.PeepholeDoorbell, "p1", at(0, 23, 1))
	h.send(event.PeepholeDoorbell, "p1", at(0, 23, 2))
	ev := h.wantRaised(RuleVisitorLoitering, 2, at(0, 23, 2))
	if !strings.Contains(dataOf(ev)["reason_en"].(string), "anti-fraud") {
		t.Fatal(dataOf(ev))
	}
	// The device's own loitering verdict with its duration.
	h2 := newHarness(t)
	h2.send(event.PeepholeLoitering, "p1", at(0, 10, 0), map[string]any{"duration_s": 240})
	h2.wantRaised(RuleVisitorLoitering, 1, at(0, 10, 0))
}

func TestSensorHealthStaffOnlyAndQuietHours(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.send(event.SensorBatteryLow, "m1", at(0, 23, 0))
	h.wantRaised(RuleSensorHealth, 0, time.Time{})
	h.advance(at(1, 7, 1))
	ev := h.wantRaised(RuleSensorHealth, 1, at(1, 7, 0))
	d := dataOf(ev)
	if ev.Severity != event.Warning || d["audience"] != AudienceStaff || d["contacts"] != nil {
		t.Fatalf("sensor health must be a staff-only warning: %s %v", ev.Severity, d)
	}
	h.advance(at(1, 12, 0))
	if len(h.find(event.ElderAlertEscalated, RuleSensorHealth)) != 0 {
		t.Fatal("maintenance alerts do not escalate")
	}
	// Silent, then heard again: recovers by itself once the battery flag
	// is cleared by the staff's resolution.
	res, _ := h.e.PrepareResolve(dataOf(ev)["alert_id"].(string), "staff-1", OutcomeSafe, "", "battery replaced")
	h.feed(res)
	h.send(event.SensorSilent, "d1", at(1, 13, 0))
	h.wantRaised(RuleSensorHealth, 2, at(1, 13, 0))
	h.send(event.DoorOpened, "d1", at(1, 14, 0))
	if n := len(h.find(event.ElderAlertResolved, RuleSensorHealth)); n != 1 {
		t.Fatalf("want auto-resolution when the sensor reports again: %s", h.dump())
	}
}

func TestModesSuppressAndExpire(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.goOut(at(0, 10, 0))
	h.clk.Set(at(0, 11, 0))
	ev, err := h.e.PrepareMode(hh, ModeHospital, at(3, 12, 0), "staff-1", "admitted")
	if err != nil {
		t.Fatal(err)
	}
	h.feed(ev)
	h.advance(at(3, 11, 59))
	if n := len(h.find(event.ElderAlertRaised, "")); n != 0 {
		t.Fatalf("hospital mode must suppress: %s", h.dump())
	}
	h.advance(at(3, 12, 1))
	mc := h.find(event.ElderModeChanged, "")
	if len(mc) != 1 || dataOf(mc[0])["mode"] != ModeNormal || dataOf(mc[0])["actor"] != "system" {
		t.Fatalf("want expiry back to normal: %s", h.dump())
	}
	// Still away after the mode: not_returned counts from the expiry.
	h.advance(at(4, 0, 1))
	h.wantRaised(RuleNotReturned, 1, at(4, 0, 0))

	// Visitor snooze: inactivity paused; SOS is not.
	v := newHarness(t)
	v.home(at(0, 9, 0))
	v.clk.Set(at(0, 9, 1))
	ev, _ = v.e.PrepareMode(hh, ModeVisitor, at(0, 9, 1).Add(8*time.Hour), "family", "")
	v.feed(ev)
	v.advance(at(0, 16, 0))
	v.wantRaised(RuleInactivity, 0, time.Time{})
	v.send(event.SOSPressed, "s1", at(0, 16, 5))
	v.wantRaised(RuleSOS, 1, time.Time{})

	if _, err := v.e.PrepareMode(hh, ModeAway, time.Time{}, "x", ""); err == nil {
		t.Fatal("away without until accepted")
	}
	if _, err := v.e.PrepareMode("nobody", ModeAway, at(2, 0, 0), "x", ""); err == nil {
		t.Fatal("unknown household accepted")
	}
	if _, err := v.e.PrepareMode(hh, "party", at(2, 0, 0), "x", ""); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

func TestGatewayOutageDuringWindow(t *testing.T) {
	// Long outage: the window is undecidable → "no data", then the window
	// restarts from the end of the outage.
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.send(event.GatewayStopped, "", at(0, 10, 0))
	h.send(event.GatewayStarted, "", at(0, 14, 0))
	h.advance(at(0, 15, 1))
	h.wantRaised(RuleInactivity, 0, time.Time{})
	nd := h.find(event.ElderNoData, RuleInactivity)
	if len(nd) != 1 || !nd[0].Time.Equal(at(0, 15, 0).UTC()) {
		t.Fatalf("want one nodata at 15:00: %s", h.dump())
	}
	h.advance(at(0, 20, 1))
	h.wantRaised(RuleInactivity, 1, at(0, 20, 0))

	// Short outage (a reboot): the alert is raised on time and says so.
	s := newHarness(t)
	s.home(at(0, 9, 0))
	s.send(event.GatewayStopped, "", at(0, 11, 0))
	s.send(event.GatewayStarted, "", at(0, 11, 10))
	s.advance(at(0, 15, 1))
	ev := s.wantRaised(RuleInactivity, 1, at(0, 15, 0))
	dh := dataOf(ev)["data_health"].(map[string]any)
	if dh["status"] != "degraded" || dh["gateway_down_total"] != "10m0s" {
		t.Fatalf("data health %v", dh)
	}

	// Deadline inside the outage, crash without a stop event: judged
	// when the gateway is back, from the last event seen.
	c := newHarness(t)
	c.home(at(0, 9, 0))
	c.send(event.GatewayStarted, "", at(0, 15, 30)) // down since 09:00
	c.wantRaised(RuleInactivity, 0, time.Time{})
	if len(c.find(event.ElderNoData, RuleInactivity)) != 1 {
		t.Fatalf("want nodata: %s", c.dump())
	}
}

func TestSilentSensorsSayNoData(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.send(event.SensorSilent, "m1", at(0, 10, 0))
	h.send(event.DeviceOffline, "d1", at(0, 10, 0))
	h.advance(at(0, 15, 1))
	h.wantRaised(RuleInactivity, 0, time.Time{})
	nd := h.find(event.ElderNoData, RuleInactivity)
	if len(nd) != 1 {
		t.Fatalf("want nodata: %s", h.dump())
	}
	ls := dataOf(nd[0])["last_seen"].(map[string]any)
	if ls["m1"].(map[string]any)["state"] != "silent" {
		t.Fatalf("last seen %v", ls)
	}
	h.advance(at(0, 20, 0))
	if len(h.find(event.ElderNoData, RuleInactivity)) != 1 {
		t.Fatal("nodata repeated")
	}
	// Unsupervised sensors: silence is not evidence; alerts say so.
	u := newHarness(t)
	u.send(event.MotionDetected, "m1", at(0, 9, 0), map[string]any{"supervised": false})
	u.advance(at(0, 15, 1))
	ev := u.wantRaised(RuleInactivity, 1, at(0, 15, 0))
	if dataOf(ev)["data_health"].(map[string]any)["status"] != "unverified" {
		t.Fatalf("%v", dataOf(ev)["data_health"])
	}
}

func TestDisabledRule(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.Elders[0].Disabled[RuleInactivity] = true })
	h.home(at(0, 9, 0))
	h.advance(at(1, 9, 0))
	h.wantRaised(RuleInactivity, 0, time.Time{})
}

// checkpoint persists the engine's state and builds a new engine from
// it, as a restart does.
func restart(t *testing.T, h *harness) *harness {
	t.Helper()
	meta, elders, err := h.e.Checkpoint()
	if err != nil {
		t.Fatal(err)
	}
	s := h.e.set
	n := &harness{t: t, clk: h.clk, seq: h.seq}
	n.e = NewEngine(s, h.clk)
	if w := n.e.Restore(meta, elders); len(w) > 0 {
		t.Fatal(w)
	}
	return n
}

func TestRestartMidTimer(t *testing.T) {
	// Restart between raise and L2: L2 fires once, on time.
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.advance(at(0, 15, 0))
	h.wantRaised(RuleInactivity, 1, at(0, 15, 0))
	h.send(event.GatewayStopped, "", at(0, 15, 10))
	n := restart(t, h)
	n.send(event.GatewayStarted, "", at(0, 15, 12))
	n.advance(at(0, 15, 29))
	if len(n.find(event.ElderAlertEscalated, "")) != 0 || len(n.find(event.ElderAlertRaised, "")) != 0 {
		t.Fatalf("restart fired something early: %s", n.dump())
	}
	n.advance(at(0, 15, 31))
	esc := n.find(event.ElderAlertEscalated, "")
	if len(esc) != 1 || !esc[0].Time.Equal(at(0, 15, 30).UTC()) {
		t.Fatalf("want L2 at 15:30 after restart: %s", n.dump())
	}

	// Down across the L2 deadline: L2 fires when back, marked late, and
	// no new alert is raised for the still-open one.
	h2 := newHarness(t)
	h2.home(at(0, 9, 0))
	h2.advance(at(0, 15, 0))
	h2.send(event.GatewayStopped, "", at(0, 15, 10))
	n2 := restart(t, h2)
	n2.send(event.GatewayStarted, "", at(0, 16, 0))
	esc = n2.find(event.ElderAlertEscalated, "")
	if len(esc) != 1 || !esc[0].Time.Equal(at(0, 16, 0).UTC()) || dataOf(esc[0])["delayed_from"] == nil {
		t.Fatalf("want one late L2 at 16:00: %s", n2.dump())
	}
	n2.advance(at(0, 17, 1))
	if len(n2.find(event.ElderAlertEscalated, "")) != 2 {
		t.Fatalf("want L3 at 17:00: %s", n2.dump())
	}

	// Restart with a pending (not yet due) inactivity deadline keeps it.
	h3 := newHarness(t)
	h3.home(at(0, 9, 0))
	h3.advance(at(0, 12, 0))
	n3 := restart(t, h3)
	n3.advance(at(0, 15, 1))
	n3.wantRaised(RuleInactivity, 1, at(0, 15, 0))
}

func TestBaselineHint(t *testing.T) {
	h := newHarness(t, func(s *Settings) { s.Elders[0].Disabled[RuleNoExit] = true })
	// Four weeks of a steady routine: busy 08:00–20:00.
	for d := 0; d < 28; d++ {
		for hr := 7; hr < 21; hr++ {
			for m := 0; m < 60; m += 10 {
				h.home(at(d, hr, m))
			}
		}
	}
	if n := len(h.find(event.ElderHint, "")); n != 0 {
		t.Fatalf("no hint expected on the routine: %d", n)
	}
	// Then a quiet morning: one event an hour.
	for hr := 7; hr < 12; hr++ {
		h.home(at(28, hr, 5))
	}
	h.advance(at(28, 12, 1))
	hints := h.find(event.ElderHint, "")
	if len(hints) != 1 || dataOf(hints[0])["advisory"] != true || hints[0].Severity != event.Info {
		t.Fatalf("want one advisory hint: %s", h.dump())
	}
	if len(h.find(event.ElderAlertRaised, "")) != 0 {
		t.Fatal("the advisory rule must not raise alerts")
	}
}

func TestSnapshot(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.advance(at(0, 15, 1))
	snap := h.e.Snapshot()
	if len(snap.Households) != 1 {
		t.Fatal("one household")
	}
	v := snap.Households[0]
	if v.Presence.State != PresenceHome || len(v.Alerts) != 1 || v.Alerts[0].Explanation["reason_en"] == nil || v.Mode.Name != ModeNormal {
		t.Fatalf("%+v", v)
	}
}

func TestPresenceUnknownWhileMotionSilent(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.send(event.SensorSilent, "m1", at(0, 10, 0))
	h.send(event.DoorOpened, "d1", at(0, 11, 0))
	h.send(event.DoorClosed, "d1", at(0, 11, 1))
	h.advance(at(1, 12, 0))
	if st := h.e.Snapshot().Households[0].Presence.State; st != PresenceUnknown {
		t.Fatalf("presence %s, want unknown", st)
	}
	h.wantRaised(RuleNotReturned, 0, time.Time{})
	h.wantRaised(RuleInactivity, 0, time.Time{})
	// Back with the sensor: motion says home again.
	h.home(at(1, 12, 5))
	if st := h.e.Snapshot().Households[0].Presence.State; st != PresenceHome {
		t.Fatalf("presence %s, want home", st)
	}
}

// FuzzEngine feeds arbitrary event sequences: the engine must not panic,
// must keep one open alert per (elder, rule), and its state must survive
// a checkpoint and restore.
func FuzzEngine(f *testing.F) {
	f.Add([]byte{0, 1, 2, 2, 9, 3, 4, 5, 200, 7, 8, 6, 10, 11})
	f.Add([]byte{2, 255, 0, 250, 1, 250, 2, 12, 13, 14, 3})
	kinds := []event.Kind{event.DoorOpened, event.DoorClosed, event.MotionDetected, event.SOSPressed,
		event.PeepholeVisitor, event.PeepholeDoorbell, event.PeepholeLoitering, event.SensorSilent,
		event.SensorTamper, event.SensorBatteryLow, event.DeviceOffline, event.DeviceOnline,
		event.GatewayStopped, event.GatewayStarted, event.DoorHeldOpen}
	devs := map[event.Kind]string{event.SOSPressed: "s1", event.MotionDetected: "m1", event.PeepholeVisitor: "p1",
		event.PeepholeDoorbell: "p1", event.PeepholeLoitering: "p1"}
	f.Fuzz(func(t *testing.T, b []byte) {
		h := newHarness(t)
		now := monday8
		for i := 0; i+1 < len(b) && i < 400; i += 2 {
			k := kinds[int(b[i])%len(kinds)]
			now = now.Add(time.Duration(b[i+1]) * 3 * time.Minute)
			dev := devs[k]
			if dev == "" {
				dev = "d1"
			}
			h.send(k, dev, now)
			if b[i]%7 == 0 {
				h = restart(t, h)
			}
		}
		h.advance(now.Add(72 * time.Hour))
		open := map[string]int{}
		for _, ev := range h.out {
			d := dataOf(ev)
			key, _ := d["rule"].(string)
			switch ev.Kind {
			case event.ElderAlertRaised:
				open[key]++
				if open[key] > 1 {
					t.Fatalf("two open %s alerts: %s", key, h.dump())
				}
			case event.ElderAlertResolved:
				open[key]--
			}
		}
	})
}

func TestClockJumpIsOneGap(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	start := time.Now()
	h.send(event.MotionDetected, "m1", at(0, 9, 0).AddDate(30, 0, 0))
	if time.Since(start) > time.Second {
		t.Fatal("a 30-year jump was stepped through hour by hour")
	}
	h.wantRaised(RuleInactivity, 0, time.Time{})
	if len(h.find(event.ElderNoData, RuleInactivity)) != 1 {
		t.Fatalf("want one nodata for the jump: %s", h.dump())
	}
}

func TestReplaySkipsDerivedInputButAppliesActions(t *testing.T) {
	s := NewSettings(hh)
	mk := func(k event.Kind, t time.Time, data map[string]any) *event.Event {
		ev := event.New(k)
		ev.Household, ev.Time, ev.Device = hh, t.UTC(), "m1"
		if data != nil {
			ev.Device = ""
			ev.WithData(data)
		}
		return ev
	}
	in := []*event.Event{
		mk(event.MotionDetected, at(0, 9, 0), nil),
		// A live log's own alert: skipped, the replay derives its own.
		mk(event.ElderAlertRaised, at(0, 9, 30), map[string]any{"alert_id": "x", "rule": "inactivity"}),
		// Staff put the elder in hospital mode: applied.
		mk(event.ElderModeChanged, at(0, 10, 0), map[string]any{"mode": "hospital", "until": at(2, 0, 0).UTC()}),
		mk(event.GatewayStopped, at(1, 0, 0), nil),
	}
	in[3].Household, in[3].Device = "", ""
	i := 0
	var out []*event.Event
	st, err := Replay(s, func(ev *event.Event) (bool, error) {
		if i == len(in) {
			return false, nil
		}
		*ev = *in[i]
		i++
		return true, nil
	}, func(ev *event.Event) error { out = append(out, ev); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.Events != 4 || st.ByRule[RuleInactivity] != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestParseUntil(t *testing.T) {
	now := at(0, 9, 0)
	for _, tt := range []struct {
		until string
		hours float64
		want  time.Time
		bad   bool
	}{
		{"2026-03-05T18:00:00+08:00", 0, at(3, 18, 0), false},
		{"4h", 0, now.Add(4 * time.Hour), false},
		{"6", 0, now.Add(6 * time.Hour), false},
		{"", 2.5, now.Add(150 * time.Minute), false},
		{"", 0, time.Time{}, false},
		{"tomorrow", 0, time.Time{}, true},
	} {
		got, err := ParseUntil(now, tt.until, tt.hours)
		if (err != nil) != tt.bad || !got.Equal(tt.want) {
			t.Errorf("ParseUntil(%q, %v) = %v, %v", tt.until, tt.hours, got, err)
		}
	}
}

func TestSubMillisecondTimesTerminate(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0).Add(123456 * time.Nanosecond))
	done := make(chan struct{})
	go func() {
		h.e.Advance(at(0, 16, 0).Add(987654 * time.Nanosecond))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Advance did not terminate with sub-millisecond times")
	}
	h.collect()
	h.wantRaised(RuleInactivity, 1, time.Time{})
}

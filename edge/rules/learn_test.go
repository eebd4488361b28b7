package rules

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// routine plays ordinary days for an elder: up at 07:00, moving every
// 20 minutes, out 09:30–11:00 (weekdays), a nap 13:00–14:00, to bed at
// 21:30 with a trip to the toilet at 02:00.
func (h *harness) routine(from, days int) {
	h.t.Helper()
	for d := from; d < from+days; d++ {
		day := at(d, 0, 0)
		weekend := day.Weekday() == time.Saturday || day.Weekday() == time.Sunday
		move := func(a, b time.Time) {
			for t := a; t.Before(b); t = t.Add(20 * time.Minute) {
				h.send(event.MotionDetected, "m1", t)
			}
		}
		h.send(event.MotionDetected, "m1", at(d, 2, 0))
		if weekend {
			move(at(d, 7, 0), at(d, 13, 0))
		} else {
			move(at(d, 7, 0), at(d, 9, 30))
			h.goOut(at(d, 9, 30))
			h.comeBack(at(d, 11, 0))
			move(at(d, 11, 5), at(d, 13, 0))
		}
		move(at(d, 14, 0), at(d, 21, 30))
	}
}

// morning plays day d up to 09:29: the night's toilet trip, up at 07:00.
func (h *harness) morning(d int) {
	h.send(event.MotionDetected, "m1", at(d, 2, 0))
	for t := at(d, 7, 0); t.Before(at(d, 9, 29)); t = t.Add(20 * time.Minute) {
		h.send(event.MotionDetected, "m1", t)
	}
}

func TestDoorCycleThenQuietIsPossibleFallAtHome(t *testing.T) {
	h := newHarness(t)
	h.routine(0, 14)
	h.morning(14)
	// Day 14 (Monday): she opens and closes the door at 09:30 as every
	// weekday, and nothing follows: not seen leaving, so she may be lying
	// in the hallway.
	h.goOut(at(14, 9, 30))
	h.advance(at(14, 21, 0))
	ev := h.wantRaised(RuleInactivity, 1, time.Time{})
	d := dataOf(ev)
	if en := toStr(d["reason_en"]); !strings.Contains(en, "check the flat first") {
		t.Fatalf("reason %q: want responders sent to the flat first", en)
	}
	fixed := at(14, 9, 30).Add(6*time.Hour + 5*time.Minute)
	if ev.Time.After(fixed) {
		t.Fatalf("possible fall raised at %s, later than the fixed day limit + 5 min (%s)", ev.Time.In(cst), fixed)
	}
	for _, nr := range h.find(event.ElderAlertRaised, RuleNotReturned) {
		if nr.Time.Before(ev.Time) {
			t.Fatalf("not_returned at %s came before the fall check", nr.Time.In(cst))
		}
	}

	// She comes home at 11:00 and collapses in the hallway: the door's
	// word puts her home at once, and the possible fall is raised within
	// the inactivity limit, not "not back".
	h2 := newHarness(t)
	h2.routine(0, 14)
	h2.morning(14)
	h2.goOut(at(14, 9, 30))
	h2.send(event.DoorOpened, "d1", at(14, 11, 0))
	h2.send(event.DoorClosed, "d1", at(14, 11, 0).Add(20*time.Second))
	h2.wantPresence(PresenceHome, "came back through the door")
	h2.advance(at(14, 23, 0))
	ev = h2.wantRaised(RuleInactivity, 1, time.Time{})
	if v := dataOf(ev)["thresholds"].(map[string]any)["variant"]; v != "after_return" {
		t.Fatalf("variant %v, want after_return", v)
	}
	if ev.Time.After(at(14, 11, 0).Add(6*time.Hour + 5*time.Minute)) {
		t.Fatalf("raised at %s: later than the fixed limit", ev.Time.In(cst))
	}
	h2.wantRaised(RuleNotReturned, 0, time.Time{})

	// Cold start: no history, the configured not-returned limit, worded
	// with both hypotheses.
	h3 := newHarness(t)
	h3.home(at(0, 9, 0))
	h3.goOut(at(0, 9, 30))
	h3.advance(at(0, 22, 0))
	ev = h3.wantRaised(RuleNotReturned, 1, at(0, 9, 30).Add(12*time.Hour+20*time.Second))
	if en := toStr(dataOf(ev)["reason_en"]); !strings.Contains(en, "fallen at home right after the door") {
		t.Fatalf("reason %q: want the fall named as the other hypothesis", en)
	}
}

func TestReturnThroughDoorClearsAbsenceAtOnce(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 8, 30))
	h.goOut(at(0, 9, 0))
	h.advance(at(0, 21, 10))
	h.wantRaised(RuleNotReturned, 1, time.Time{})
	h.send(event.DoorOpened, "d1", at(0, 21, 30))
	h.send(event.DoorClosed, "d1", at(0, 21, 30).Add(20*time.Second))
	res := h.find(event.ElderAlertResolved, RuleNotReturned)
	if len(res) != 1 || !res[0].Time.Equal(at(0, 21, 30).Add(20*time.Second).UTC()) {
		t.Fatalf("resolved %d times (want once, at the door closing); events: %s", len(res), h.dump())
	}
	h.wantPresence(PresenceHome, "came back through the door")
}

func TestStuckSensorsNoticedAndIgnored(t *testing.T) {
	h := newHarness(t, func(s *Settings) {
		el := &s.Elders[0]
		el.Sensors = append(el.Sensors, "m2")
		el.Roles["m2"] = "motion"
	})
	// m2 fires every 5 minutes, day and night, from day 0 on; the elder
	// lives her day on m1 until she collapses at 10:00 on day 2.
	var m2 time.Time
	stuck := func(until time.Time) {
		if m2.IsZero() {
			m2 = at(0, 8, 0)
		}
		for ; m2.Before(until); m2 = m2.Add(5 * time.Minute) {
			h.send(event.MotionDetected, "m2", m2)
		}
	}
	for d := 0; d < 2; d++ {
		for t := at(d, 7, 0); t.Before(at(d, 21, 0)); t = t.Add(30 * time.Minute) {
			stuck(t)
			h.send(event.MotionDetected, "m1", t)
		}
	}
	stuck(at(2, 7, 0))
	for t := at(2, 7, 0); !t.After(at(2, 10, 0)); t = t.Add(30 * time.Minute) {
		stuck(t)
		h.send(event.MotionDetected, "m1", t)
	}
	stuck(at(2, 17, 0))
	h.advance(at(2, 17, 0))
	sh := h.find(event.ElderAlertRaised, RuleSensorHealth)
	if len(sh) == 0 || !strings.Contains(toStr(dataOf(sh[0])["reason_en"]), "m2 stuck on") {
		t.Fatalf("want a maintenance notice naming m2 stuck on; events: %s", h.dump())
	}
	ev := h.wantRaised(RuleInactivity, 1, time.Time{})
	if ev.Time.After(at(2, 16, 5)) {
		t.Fatalf("collapse raised at %s despite the stuck sensor: want by 16:05", ev.Time.In(cst))
	}

	// A stuck sensor does not keep her "home": she goes out, m2 goes on.
	h.send(event.DoorOpened, "d1", at(2, 17, 10))
	h.send(event.DoorClosed, "d1", at(2, 17, 11))
	stuck(at(2, 19, 0))
	h.advance(at(2, 19, 0))
	if p := h.presence(); p.State == PresenceHome {
		t.Fatalf("presence %+v: the stuck m2 kept her home", p)
	}

	// A door contact that reads open for a day while life goes on inside
	// is taken as stuck: the door-open alert clears, maintenance is asked.
	h2 := newHarness(t)
	h2.home(at(0, 8, 0))
	h2.send(event.DoorOpened, "d1", at(0, 9, 0))
	for t := at(0, 9, 30); t.Before(at(1, 12, 0)); t = t.Add(time.Hour) {
		h2.send(event.MotionDetected, "m1", t)
	}
	h2.advance(at(1, 12, 0))
	h2.wantRaised(RuleDoorLeftOpen, 1, at(0, 9, 15))
	if len(h2.find(event.ElderAlertResolved, RuleDoorLeftOpen)) != 1 {
		t.Fatalf("door_left_open not cleared when the contact was taken as stuck; events: %s", h2.dump())
	}
	sh = h2.find(event.ElderAlertRaised, RuleSensorHealth)
	if len(sh) == 0 || !strings.Contains(toStr(dataOf(sh[0])["reason_en"]), "d1 door contact reads open") {
		t.Fatalf("want a maintenance notice for d1; events: %s", h2.dump())
	}

	// A motion sensor that sees nothing while the door is used again and
	// again is blind.
	// (A sensor that fires rarely — a cupboard contact — is not: its own
	// norm must make the silence improbable.)
	h3 := newHarness(t)
	for d := 0; d < 4; d++ {
		for t := at(d, 7, 0); t.Before(at(d, 21, 0)); t = t.Add(10 * time.Minute) {
			h3.send(event.MotionDetected, "m1", t)
		}
	}
	for d := 4; d < 6; d++ {
		h3.send(event.DoorOpened, "d1", at(d, 9, 0))
		h3.send(event.DoorClosed, "d1", at(d, 9, 1))
		h3.send(event.DoorOpened, "d1", at(d, 11, 0))
		h3.send(event.DoorClosed, "d1", at(d, 11, 1))
	}
	h3.advance(at(6, 12, 0))
	sh = h3.find(event.ElderAlertRaised, RuleSensorHealth)
	if len(sh) == 0 || !strings.Contains(toStr(dataOf(sh[0])["reason_en"]), "m1 blind") {
		t.Fatalf("want a maintenance notice for a blind m1; events: %s", h3.dump())
	}
}

// Learned limits stay within the configured bounds whatever the history:
// the inactivity limit between the floor and the configured limit, the
// not-returned limit between the configured one and three times it.
func TestLearnedLimitsBounded(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		h := newHarness(t)
		el := h.e.list[0]
		if i%7 == 0 {
			el.cfg.Risk = map[string]bool{RiskDementia: true}
		}
		hb := el.hb
		hb.Days = float64(r.IntN(60))
		for range r.IntN(2000) {
			dt, hr, b := r.IntN(2), r.IntN(24), r.IntN(nBins)
			hb.Quiet[dt][hr][b] += r.Float64() * 3
			if r.IntN(3) == 0 {
				hb.Out[dt][hr][b] += r.Float64() * 3
			}
		}
		for range 50 {
			start := monday8.Add(time.Duration(r.Int64N(int64(14 * 24 * time.Hour))))
			c := el.cfg
			ceil := h.e.inactivityThreshold(c, start)
			l := h.e.inactivityLimit(el, start)
			if l.Applied > ceil || l.Applied < min(c.T.InactivityFloor.Std(), ceil) {
				t.Fatalf("inactivity limit %s outside [%s, %s] (%+v)", l.Applied, c.T.InactivityFloor, ceil, l)
			}
			for _, night := range []bool{false, true} {
				conf := c.T.NotReturned.Std()
				if night {
					conf = c.T.NotReturnedNight.Std()
				}
				o := h.e.outingLimit(el, start, night)
				if o.Applied < conf || o.Applied > 3*conf || (c.Risk[RiskDementia] && o.Applied != conf) {
					t.Fatalf("not-returned limit %s outside [%s, %s] (dementia %v)", o.Applied, conf, 3*conf, c.Risk[RiskDementia])
				}
			}
		}
	}
}

// Without history, the limits in force are the configured ones, and a
// replay of the simulated population's first days raises the same
// inactivity alerts at the same times as the engine before learning.
func TestColdStartEqualsLegacy(t *testing.T) {
	h := newHarness(t)
	el := h.e.list[0]
	for hr := range 48 {
		start := monday8.Add(time.Duration(hr) * 30 * time.Minute)
		if l := h.e.inactivityLimit(el, start); l.Applied != h.e.inactivityThreshold(el.cfg, start) || l.Basis != "configured" {
			t.Fatalf("cold start inactivity limit %+v", l)
		}
		if o := h.e.outingLimit(el, start, false); o.Applied != el.cfg.T.NotReturned.Std() {
			t.Fatalf("cold start outing limit %+v", o)
		}
	}
	type key struct {
		rule Rule
		hh   string
		at   time.Time
	}
	run := func(legacy bool) map[key]bool {
		p := Simulate(SimOptions{Elders: 40, Days: 6, Seed: 3})
		p.Settings.Legacy = legacy
		derived, _, err := ReplayPopulation(p)
		if err != nil {
			t.Fatal(err)
		}
		m := map[key]bool{}
		for _, ev := range derived {
			if ev.Kind == event.ElderAlertRaised {
				if r := Rule(toStr(dataOf(ev)["rule"])); r == RuleInactivity {
					m[key{r, ev.Household, ev.Time}] = true
				}
			}
		}
		return m
	}
	old, cur := run(true), run(false)
	for k := range old {
		if !cur[k] {
			t.Errorf("legacy raised %s for %s at %s, cold start did not", k.rule, k.hh, k.at.In(cst))
		}
	}
	for k := range cur {
		if !old[k] {
			t.Errorf("cold start raised %s for %s at %s, legacy did not", k.rule, k.hh, k.at.In(cst))
		}
	}
}

// An elder who is often out for long gets a staff notice by day for a
// long absence, not a night dispatch, and staff are asked to set away
// mode; with risk: dementia the care alert stays.
func TestLongOuterNoticeAndAwayProposal(t *testing.T) {
	train := func(h *harness) {
		for d := 0; d < 21; d++ {
			h.home(at(d, 7, 0))
			if d%2 == 0 {
				h.goOut(at(d, 8, 0)) // a long day out: back at 21:00
				h.comeBack(at(d, 21, 0))
			} else {
				h.goOut(at(d, 9, 0))
				h.comeBack(at(d, 10, 30))
			}
			for t := at(d, 21, 10); t.Before(at(d, 22, 0)); t = t.Add(20 * time.Minute) {
				h.home(t)
			}
		}
	}
	h := newHarness(t)
	train(h)
	// Day 22: she leaves at 08:00 and stays away two days.
	h.goOut(at(22, 8, 0))
	h.advance(at(24, 12, 0))
	for _, ev := range h.find(event.ElderAlertRaised, RuleNotReturned) {
		if ev.Time.Before(at(22, 8, 0)) {
			continue // while learning
		}
		d := dataOf(ev)
		if d["audience"] != AudienceStaff || ev.Severity != event.Warning {
			t.Fatalf("long absence raised as %v/%s, want a staff warning: %s", d["audience"], ev.Severity, toStr(d["reason_en"]))
		}
	}
	for _, ev := range h.find(event.ElderAlertEscalated, RuleNotReturned) {
		if !ev.Time.Before(at(22, 8, 0)) {
			t.Fatalf("a staff notice escalated at %s", ev.Time.In(cst))
		}
	}
	var proposed int
	for _, ev := range h.find(event.ElderHint, RuleNotReturned) {
		if dataOf(ev)["propose_mode"] == ModeAway {
			proposed++
		}
	}
	if proposed == 0 || proposed > 3 {
		t.Fatalf("away mode proposed %d times over two days, want once a day; events: %s", proposed, h.dump())
	}

	hd := newHarness(t, func(s *Settings) { s.Elders[0].Risk = map[string]bool{RiskDementia: true} })
	train(hd)
	hd.goOut(at(22, 8, 0))
	hd.advance(at(22, 20, 30))
	all := hd.find(event.ElderAlertRaised, RuleNotReturned)
	ev := all[len(all)-1]
	if want := at(22, 8, 0).Add(12*time.Hour + 20*time.Second); !ev.Time.Equal(want.UTC()) || dataOf(ev)["audience"] != AudienceCare {
		t.Fatalf("dementia: not_returned %v at %s, want the care alert at %s", dataOf(ev)["audience"], ev.Time.In(cst), want)
	}
}

// Learned habits survive a restart: the checkpoint restores the same
// limits.
func TestHabitsPersist(t *testing.T) {
	h := newHarness(t)
	h.routine(0, 14)
	el := h.e.list[0]
	start := at(14, 10, 0)
	before := h.e.inactivityLimit(el, start)
	if before.Basis == "configured" {
		t.Fatalf("no limit learned after two weeks: %+v", before)
	}
	vals, err := h.e.CheckpointHabits()
	if err != nil || len(vals[hh]) == 0 {
		t.Fatalf("habits checkpoint: %v %d bytes", err, len(vals[hh]))
	}
	if len(vals[hh]) > 16<<10 {
		t.Errorf("habits are %d bytes: want a few KB", len(vals[hh]))
	}
	h2 := newHarness(t)
	if w := h2.e.RestoreHabits(vals); len(w) > 0 {
		t.Fatal(w)
	}
	if after := h2.e.inactivityLimit(h2.e.list[0], start); after != before {
		t.Fatalf("restored limit %+v, want %+v", after, before)
	}
	if w := h2.e.RestoreHabits(map[string][]byte{hh: []byte(`{"v":1,"quiet":[[3,0,0,1]]}`)}); len(w) != 1 {
		t.Fatalf("bad habits accepted: %v", w)
	}
}

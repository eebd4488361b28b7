package rules

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// raisedEv is an elder.alert.raised event as the engine emits it.
func raisedEv(h string, r Rule, audience string, t time.Time) *event.Event {
	d := map[string]any{"rule": r, "household": h}
	if audience != "" {
		d["audience"] = audience
	}
	ev := event.New(event.ElderAlertRaised).WithData(d)
	ev.Household, ev.Time = h, t.UTC()
	return ev
}

// TestEvaluateAudience: a not_returned care alert during an unflagged trip
// is a false care alert; a staff notice there is not a care alert at all;
// a collapse is detected only by an inactivity alert after the fall;
// delays split by the local time of the fall.
func TestEvaluateAudience(t *testing.T) {
	day := func(d, h, m int) time.Time { return time.Date(2026, 3, d, h, m, 0, 0, cstZone) }
	const h = "e001"
	p := &Population{Options: SimOptions{Elders: 1, Days: 30, Realistic: true}, Households: []string{h}, Settings: NewSettings(h),
		Elders: []SimElder{{Household: h, Routines: []string{RoutineWeekendTrips}}},
		Aways: []Period{
			{Household: h, What: WhatTrip, From: day(6, 16, 0).UTC(), To: day(8, 18, 0).UTC()},
			{Household: h, What: WhatOuting, From: day(10, 8, 0).UTC(), To: day(10, 20, 30).UTC()},
		},
		Incidents: []Incident{
			{Household: h, Kind: IncCollapseAfterDoor, Rule: RuleInactivity, Start: day(12, 10, 0).UTC(), End: day(12, 17, 0).UTC(),
				Deadline: day(12, 16, 5).UTC(), Threshold: 6 * time.Hour},
			{Household: h, Kind: IncCollapseAfterDoor, Rule: RuleInactivity, Start: day(14, 23, 0).UTC(), End: day(15, 13, 0).UTC(),
				Deadline: day(15, 11, 5).UTC(), Threshold: 12 * time.Hour},
			{Household: h, Kind: IncCollapse, Rule: RuleInactivity, Start: day(16, 9, 0).UTC(), End: day(16, 16, 0).UTC(),
				Deadline: day(16, 15, 5).UTC(), Threshold: 6 * time.Hour},
			{Household: h, Kind: IncNotReturned, Rule: RuleNotReturned, Start: day(20, 9, 0).UTC(), End: day(20, 23, 0).UTC(),
				Deadline: day(20, 21, 6).UTC(), Threshold: 12 * time.Hour},
		},
	}
	hint := event.New(event.ElderHint).WithData(map[string]any{"rule": "not_returned", "propose_mode": "away", "audience": "staff"})
	hint.Household, hint.Time = h, day(7, 10, 0).UTC()
	derived := []*event.Event{
		raisedEv(h, RuleNotReturned, AudienceCare, day(7, 4, 0)),  // trip, unflagged: false care alert
		raisedEv(h, RuleNotReturned, AudienceStaff, day(7, 9, 0)), // trip: a staff notice, not a care alert
		hint, // proposing away mode while away: right
		raisedEv(h, RuleNotReturned, "", day(10, 20, 5)),            // long day out, no audience field (older log): care, false
		raisedEv(h, RuleNotReturned, AudienceCare, day(12, 10, 30)), // after the collapse: not a detection
		raisedEv(h, RuleInactivity, AudienceCare, day(15, 11, 0)),   // night collapse, in time
		raisedEv(h, RuleInactivity, AudienceCare, day(16, 12, 0)),   // day collapse, 3 h
		raisedEv(h, RuleNotReturned, AudienceStaff, day(20, 21, 0)), // injected not_returned: detected as a staff notice
		raisedEv(h, RuleSensorHealth, "", day(22, 9, 0)),            // unexplained maintenance: staff
	}
	rep := Evaluate(p, derived, ReplayStats{})
	if rep.FalseCare != 2 || rep.CareAlerts != 5 || rep.StaffNotices != 3 || rep.StaffUnexplained != 2 {
		t.Errorf("false care %d, care %d, staff %d (unexplained %d); want 2, 5, 3, 2", rep.FalseCare, rep.CareAlerts, rep.StaffNotices, rep.StaffUnexplained)
	}
	if got := rep.FalseCarePerEM; got != 2.0 {
		t.Errorf("false care per elder-month %.3f, want 2", got)
	}
	want := map[string]int{WhatTrip: 1, WhatOuting: 1}
	for _, c := range rep.FalseCareDuring {
		if want[c.What] != c.False {
			t.Errorf("false care during %s: %d, want %d", c.What, c.False, want[c.What])
		}
		delete(want, c.What)
	}
	if len(want) > 0 {
		t.Errorf("missing circumstances %v in %+v", want, rep.FalseCareDuring)
	}
	if nr := rep.Rule(RuleNotReturned); nr.Raised != 5 || nr.Staff != 2 || nr.FalseCare != 2 || nr.False != 3 {
		t.Errorf("not_returned %+v", nr)
	}
	if rep.AwayProposals != 1 || rep.AwayProposalsRight != 1 || rep.Hints != 0 {
		t.Errorf("away proposals %d (%d right), hints %d", rep.AwayProposals, rep.AwayProposalsRight, rep.Hints)
	}
	cd := rep.Kind(IncCollapseAfterDoor)
	if cd.Injected != 2 || cd.Detected != 1 || cd.InTime != 1 || cd.Misdirected != 1 || cd.InjectedDay != 1 || cd.InjectedNight != 1 ||
		cd.DetectedNight != 1 || cd.DetectedDay != 0 || cd.MedianNight != 12*time.Hour {
		t.Errorf("collapse_after_door %+v", cd)
	}
	if c := rep.Kind(IncCollapse); c.Detected != 1 || c.MedianDay != 3*time.Hour || c.MaxDay != 3*time.Hour || c.DetectedCare != 1 {
		t.Errorf("collapse %+v", c)
	}
	if nr := rep.Kind(IncNotReturned); nr.Detected != 1 || nr.DetectedCare != 0 || nr.InTime != 1 {
		t.Errorf("not_returned incident %+v", nr)
	}
	md := rep.Markdown()
	for _, s := range []string{"| median by day (06–22) | median by night |", "| as care alert |", "false care per elder-month",
		"**care alerts together** | 5 |", "| trip | 1 |", "Staff notices", "| collapse_after_door | inactivity | 2 | 1 (50 %) | 1 |"} {
		if !strings.Contains(md, s) {
			t.Errorf("markdown lacks %q:\n%s", s, md)
		}
	}
	cmp := CompareMarkdown(Evaluate(p, derived[:1], ReplayStats{}), rep)
	for _, s := range []string{"| measure | before | after |", "| false care alerts per elder-month (target ≤ 0.3) | 1.000 | 2.000 |",
		"| median by day before | median by day after |", "| collapse_after_door | inactivity | 2 | 0 (0 %) | 1 (50 %) |", "| trip | 1 | 1 |"} {
		if !strings.Contains(cmp, s) {
			t.Errorf("comparison lacks %q:\n%s", s, cmp)
		}
	}
}

// TestRealisticReplay runs a small realistic population through the
// legacy engine and the default one in the same test: the pipeline of
// `lintel replay --compare` (no accuracy targets: see
// TestEvaluationRealistic).
func TestRealisticReplay(t *testing.T) {
	p := Simulate(SimOptions{Elders: 16, Days: 35, Seed: 3, Realistic: true})
	var reps [2]Report
	for i, s := range []*Settings{LegacySettings(p.Settings), p.Settings} {
		derived, st, err := ReplayPopulationWith(p, s)
		if err != nil {
			t.Fatal(err)
		}
		reps[i] = Evaluate(p, derived, st)
	}
	if p.Settings.Legacy {
		t.Fatal("LegacySettings changed the settings it copied")
	}
	if k := reps[1].Kind(IncCollapseAfterDoor); k.Injected == 0 {
		t.Fatalf("no collapse_after_door in the population: %+v", reps[1].Kinds)
	}
	if reps[1].Aways == 0 || reps[1].CareAlerts == 0 {
		t.Fatalf("report %+v", reps[1])
	}
	t.Logf("\n%s", CompareMarkdown(reps[0], reps[1]))
}

// TestEvaluationRealistic replays the realistic population through the
// engine before issue 12 (Settings.Legacy) and the current one in the same
// run. It guards what the current engine measured (docs/rules.md) and,
// with LINTEL_RULES_TARGETS=1, checks issue 12's targets, which it does
// not all meet yet (see docs/rules.md).
func TestEvaluationRealistic(t *testing.T) {
	elders, days := evalSize()
	full := elders == 200
	p := Simulate(SimOptions{Elders: elders, Days: days, Seed: 6, Realistic: true})
	var reps [2]Report
	for i, s := range []*Settings{LegacySettings(p.Settings), p.Settings} {
		derived, st, err := ReplayPopulationWith(p, s)
		if err != nil {
			t.Fatal(err)
		}
		reps[i] = Evaluate(p, derived, st)
	}
	before, after := reps[0], reps[1]
	md := CompareMarkdown(before, after) + "\n" + after.Markdown()
	t.Logf("\n%s", md)
	if f := os.Getenv("LINTEL_EVAL_OUT"); f != "" {
		_ = os.WriteFile(f, []byte(md), 0o644)
	}
	// Regression guards (measured 200 × 90, seed 6: 0.403 false care
	// alerts per elder-month against 1.782 before; every collapse at home
	// in time; 31 of 38 collapses right after a door cycle).
	// (40 × 60 under -race or -short: less history to learn from.)
	if after.FalseCarePerEM > before.FalseCarePerEM/2 || full && (after.FalseCarePerEM > 0.45 || after.FalseCarePerEM > before.FalseCarePerEM/3) {
		t.Errorf("false care alerts %.3f per elder-month (before %.3f)", after.FalseCarePerEM, before.FalseCarePerEM)
	}
	if k := after.Kind(IncCollapse); k.Injected == 0 || k.InTime != k.Injected {
		t.Errorf("collapse: %d injected, %d within the fixed limits + 5 min", k.Injected, k.InTime)
	}
	if k := after.Kind(IncCollapseAfterDoor); k.Injected == 0 || float64(k.InTime) < 0.75*float64(k.Injected) {
		t.Errorf("collapse_after_door: %d injected, %d within the fixed limits + 5 min (want ≥ 75 %%)", k.Injected, k.InTime)
	}
	for _, kind := range []string{IncSOS, IncLoitering, IncNightDoorbells, IncNightWandering, IncDoorLeftOpen} {
		if k := after.Kind(kind); k.InTime != k.Injected {
			t.Errorf("%s: %d of %d by the deadline", kind, k.InTime, k.Injected)
		}
	}
	for _, kind := range []string{IncNotReturned, IncNotReturnedNight} {
		if k := after.Kind(kind); float64(k.Detected) < 0.85*float64(k.Injected) {
			t.Errorf("%s: detected %d of %d", kind, k.Detected, k.Injected)
		}
	}
	if os.Getenv("LINTEL_RULES_TARGETS") != "1" {
		return
	}
	if after.FalseCarePerEM > 0.3 {
		t.Errorf("target: false care alerts %.3f per elder-month, want ≤ 0.3", after.FalseCarePerEM)
	}
	for _, kind := range []string{IncCollapse, IncCollapseAfterDoor} {
		k := after.Kind(kind)
		if k.Detected != k.Injected || k.InTime != k.Injected {
			t.Errorf("target: %s: %d injected, %d detected by inactivity, %d within the fixed limits + 5 min", kind, k.Injected, k.Detected, k.InTime)
		}
		if k.DetectedDay > 0 && k.MedianDay > 3*time.Hour {
			t.Errorf("target: %s: median fall-to-alert by day %s, want ≤ 3 h", kind, k.MedianDay)
		}
	}
}

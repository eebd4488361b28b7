package rules

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// ReplayStats summarises a replay.
type ReplayStats struct {
	Events  int
	Derived int
	ByKind  map[event.Kind]int
	ByRule  map[Rule]int // raised alerts per rule
	Elapsed time.Duration
}

// Replay runs the engine over a recorded log on a simulated clock: each
// event advances the clock to its time, timers fire at their own due
// times in between. next fills ev and reports false at the end; out
// receives every derived event in order. Derived events found in the
// input (a live log replayed) are skipped, except the people's actions
// (acknowledgements, resolutions, mode changes), which are applied.
func Replay(s *Settings, next func(ev *event.Event) (bool, error), out func(*event.Event) error) (ReplayStats, error) {
	start := time.Now()
	st := ReplayStats{ByKind: map[event.Kind]int{}, ByRule: map[Rule]int{}}
	clk := NewManualClock(time.Time{})
	e := NewEngine(s, clk)
	emit := func() error {
		for _, d := range e.Drain() {
			st.Derived++
			st.ByKind[d.Kind]++
			if d.Kind == event.ElderAlertRaised {
				var x struct {
					Rule Rule `json:"rule"`
				}
				_ = json.Unmarshal(d.Data, &x)
				st.ByRule[x.Rule]++
			}
			if err := out(d); err != nil {
				return err
			}
		}
		return nil
	}
	var ev event.Event
	for {
		ok, err := next(&ev)
		if err != nil {
			return st, err
		}
		if !ok {
			break
		}
		st.Events++
		switch ev.Kind {
		case event.ElderAlertRaised, event.ElderAlertEscalated, event.ElderNoData, event.ElderHint, event.ElderPresence:
			continue
		case event.ElderAlertResolved:
			var x struct {
				Actor string `json:"actor"`
			}
			_ = json.Unmarshal(ev.Data, &x)
			if x.Actor == "system" {
				continue
			}
		}
		clk.Set(ev.Time)
		e.Process(&ev)
		if err := emit(); err != nil {
			return st, err
		}
	}
	st.Elapsed = time.Since(start)
	return st, nil
}

// ReplayPopulation replays a synthetic population and returns the
// derived events.
func ReplayPopulation(p *Population) ([]*event.Event, ReplayStats, error) {
	return ReplayPopulationWith(p, p.Settings)
}

// ReplayPopulationWith replays a synthetic population with other settings
// (LegacySettings(p.Settings) for the engine before issue 12).
func ReplayPopulationWith(p *Population, s *Settings) ([]*event.Event, ReplayStats, error) {
	var out []*event.Event
	i := 0
	st, err := Replay(s, func(ev *event.Event) (bool, error) {
		if i >= len(p.Records) {
			return false, nil
		}
		p.Fill(i, ev)
		i++
		return true, nil
	}, func(ev *event.Event) error {
		out = append(out, ev)
		return nil
	})
	return out, st, err
}

// LegacySettings returns a copy of s with Legacy set: the engine as it
// was before learned limits, door-cycle hypotheses, stuck-sensor checks
// and risk-matched severity, for before/after comparisons in one run
// (lintel replay --compare). The copy shares nothing mutable with s, so
// the two can replay at the same time.
func LegacySettings(s *Settings) *Settings {
	c := *s
	c.Legacy = true
	c.Elders = make([]Elder, len(s.Elders))
	for i, el := range s.Elders {
		el.Sensors = slices.Clone(el.Sensors)
		el.Contacts = slices.Clone(el.Contacts)
		el.Roles = maps.Clone(el.Roles)
		el.Disabled = maps.Clone(el.Disabled)
		el.Risk = maps.Clone(el.Risk)
		c.Elders[i] = el
	}
	return &c
}

// KindResult is the detection of one incident kind.
type KindResult struct {
	Kind     string
	Rule     Rule
	Injected int
	// Detected counts incidents alerted by the expected rule: for a
	// collapse (collapse, collapse_after_door) an inactivity alert raised
	// after the fall and before the elder was found; for the other kinds
	// one raised from 5 min before the incident to 2 h after it ended.
	Detected int
	// DetectedCare counts those where an alert of the rule went to care
	// (data.audience "care"), not only a staff notice.
	DetectedCare int
	InTime       int    // by the deadline (Target)
	Target       string // the deadline in words: "threshold + 5 min", "10 s"…
	MedianDelay  time.Duration
	MaxDelay     time.Duration
	// Delays split by the local time the incident began (the fall, the
	// departure…): day 06:00–22:00, night otherwise.
	InjectedDay, InjectedNight int
	DetectedDay, DetectedNight int
	MedianDay, MedianNight     time.Duration
	MaxDay, MaxNight           time.Duration
	// Misdirected counts undetected incidents that raised a care alert of
	// another rule meanwhile (a collapse in the hallway alerted as "left
	// and not back": responders look outside).
	Misdirected int
	Threshold   string
}

// RuleResult counts one rule's alerts.
type RuleResult struct {
	Rule   Rule
	Raised int
	Care   int // raised to care (data.audience "care")
	Staff  int // raised as staff notices (data.audience "staff")
	// False counts alerts not explained by an injected incident (or, for
	// sensor_health and a stuck contact's first door_left_open, a fault);
	// FalseCare those of them that went to care.
	False         int
	FalseCare     int
	PerElderMonth float64 // False per elder-month
	CarePerEM     float64 // FalseCare per elder-month
}

// Circumstance counts the false care alerts raised during one kind of
// ground-truth period ("trip", "outing", "pir_stuck_off"…; "routine"
// when none applies).
type Circumstance struct {
	What  string
	False int
}

// Report is the evaluation of a replay against the ground truth.
type Report struct {
	Elders, Days int
	ElderMonths  float64
	Events       int
	Replay       time.Duration
	Kinds        []KindResult
	Rules        []RuleResult
	// FalseThreshold is the false alerts of the threshold rules (all but
	// sos, sensor_health and the advisory rule), whatever their audience,
	// per elder-month.
	FalseThreshold float64
	// Care alerts and staff notices (data.audience of the raised alerts).
	CareAlerts, StaffNotices int
	// FalseCare is the care alerts not explained by the ground truth;
	// FalseCarePerEM per elder-month (issue 12's target: ≤ 0.3).
	FalseCare      int
	FalseCarePerEM float64
	// StaffPerEM is every staff notice per elder-month (sensor_health
	// maintenance, absences notified to staff only); StaffUnexplained
	// those not explained by an incident or fault.
	StaffPerEM       float64
	StaffUnexplained int
	// FalseCareDuring splits the false care alerts by what the ground
	// truth says was going on.
	FalseCareDuring []Circumstance
	// AwayProposals counts elder.hint events proposing away mode
	// (data.propose_mode "away"); AwayProposalsRight those raised while
	// the elder really was away (an Aways period).
	AwayProposals      int
	AwayProposalsRight int
	Hints              int // advisory hints (baseline_deviation), proposals apart
	HintsPerEM         float64
	// HintsBeforeCollapse counts collapses where a hint came before the
	// inactivity alert (the advisory rule's early warning).
	HintsBeforeCollapse int
	MedianHintLead      time.Duration
	NoData              int
	SensorFaults        int
	Aways               int
	Flagged             int // Aways with a mode set (in time or late)
	Outages             int
	Realistic           bool
}

type raisedAlert struct {
	// both: an alert that names two hypotheses (fallen at home, or not
	// back), as the fall check after an unseen departure does.
	both      bool
	rule      Rule
	household string
	audience  string
	t         time.Time
	used      bool
}

// ThresholdRule reports whether r is a threshold rule (counted in the
// false-alert target).
func ThresholdRule(r Rule) bool {
	switch r {
	case RuleSOS, RuleSensorHealth, RuleBaseline:
		return false
	}
	return true
}

func collapseKind(k string) bool { return k == IncCollapse || k == IncCollapseAfterDoor }

// Evaluate scores derived events against a population's ground truth.
// Alerts are judged by audience (data.audience of elder.alert.raised;
// without it, sensor_health is staff and every other rule care): a care
// alert the ground truth does not explain is a false care alert — a
// not_returned alert during an unflagged trip or long day out included,
// unless it is an injected not_returned incident.
func Evaluate(p *Population, derived []*event.Event, st ReplayStats) Report {
	rep := Report{Elders: p.Options.Elders, Days: p.Options.Days, Events: st.Events, Replay: st.Elapsed,
		ElderMonths: float64(p.Options.Elders*p.Options.Days) / 30, SensorFaults: len(p.Faults), Aways: len(p.Aways),
		Outages: len(p.Outages), Realistic: p.Options.Realistic}
	for _, a := range p.Aways {
		if !a.ModeAt.IsZero() || a.What == ModeAway || a.What == ModeHospital {
			rep.Flagged++
		}
	}
	offset := 8 * 3600
	if p.Settings != nil {
		offset = p.Settings.Offset
	} else if !p.Options.Start.IsZero() {
		_, offset = p.Options.Start.Zone()
	}
	isDay := func(t time.Time) bool {
		m := int(floorMod(t.Unix()+int64(offset), 86400) / 60)
		return m >= 6*60 && m < 22*60
	}
	aways := map[string][]Period{}
	for _, a := range p.Aways {
		aways[a.Household] = append(aways[a.Household], a)
	}
	var alerts []*raisedAlert
	hints := map[string][]time.Time{}
	for _, ev := range derived {
		var d struct {
			Rule        Rule   `json:"rule"`
			Audience    string `json:"audience"`
			ProposeMode string `json:"propose_mode"`
			Thresholds  struct {
				Variant string `json:"variant"`
			} `json:"thresholds"`
		}
		switch ev.Kind {
		case event.ElderAlertRaised:
			_ = json.Unmarshal(ev.Data, &d)
			if d.Audience == "" {
				d.Audience = AudienceCare
				if d.Rule == RuleSensorHealth {
					d.Audience = AudienceStaff
				}
			}
			alerts = append(alerts, &raisedAlert{rule: d.Rule, household: ev.Household, audience: d.Audience, t: ev.Time,
				both: d.Thresholds.Variant == VariantAfterDoorUnseen || d.Thresholds.Variant == VariantAfterDoorNotice})
		case event.ElderHint:
			_ = json.Unmarshal(ev.Data, &d)
			if d.ProposeMode == ModeAway {
				rep.AwayProposals++
				for _, a := range aways[ev.Household] {
					if !ev.Time.Before(a.From) && !ev.Time.After(a.To) {
						rep.AwayProposalsRight++
						break
					}
				}
				continue
			}
			rep.Hints++
			hints[ev.Household] = append(hints[ev.Household], ev.Time)
		case event.ElderNoData:
			rep.NoData++
		}
	}
	byKind := map[string]*KindResult{}
	delays := map[string][]time.Duration{}
	dayDelays := map[string][]time.Duration{}
	nightDelays := map[string][]time.Duration{}
	var leads []time.Duration
	for _, inc := range p.Incidents {
		kr := byKind[inc.Kind]
		if kr == nil {
			kr = &KindResult{Kind: inc.Kind, Rule: inc.Rule, Target: incidentTarget[inc.Kind]}
			byKind[inc.Kind] = kr
		}
		kr.Injected++
		day := isDay(inc.Start)
		if day {
			kr.InjectedDay++
		} else {
			kr.InjectedNight++
		}
		win0, win1 := inc.Start.Add(-5*time.Minute), inc.End.Add(2*time.Hour)
		hit0, hit1 := win0, win1
		if collapseKind(inc.Kind) {
			// Only an inactivity alert after the fall and before the
			// elder was found helps them.
			hit0, hit1 = inc.Start, inc.End
		}
		var hit *raisedAlert
		care, other := false, false
		for _, a := range alerts {
			if a.household != inc.Household || a.t.Before(win0) || a.t.After(win1) {
				continue
			}
			if !a.t.Before(hit0) && !a.t.After(hit1) {
				switch {
				case a.rule == inc.Rule || a.both && inc.Rule == RuleNotReturned:
					// The fall check of an unseen departure says "fallen at
					// home, or not back": it answers an absence too.
					if hit == nil {
						hit = a
					}
					care = care || a.audience == AudienceCare
				case a.audience == AudienceCare && ThresholdRule(a.rule):
					other = true
				}
			}
			a.used = true // explained by the incident
		}
		if hit == nil {
			if other {
				kr.Misdirected++
			}
			continue
		}
		kr.Detected++
		if care {
			kr.DetectedCare++
		}
		if !hit.t.After(inc.Deadline) {
			kr.InTime++
		}
		dl := hit.t.Sub(inc.Start)
		delays[inc.Kind] = append(delays[inc.Kind], dl)
		if day {
			kr.DetectedDay++
			dayDelays[inc.Kind] = append(dayDelays[inc.Kind], dl)
		} else {
			kr.DetectedNight++
			nightDelays[inc.Kind] = append(nightDelays[inc.Kind], dl)
		}
		if inc.Kind == IncCollapse {
			for _, h := range hints[inc.Household] {
				if h.After(inc.Start) && h.Before(hit.t) {
					rep.HintsBeforeCollapse++
					leads = append(leads, hit.t.Sub(h))
					break
				}
			}
		}
	}
	medMax := func(ds []time.Duration) (time.Duration, time.Duration) {
		if len(ds) == 0 {
			return 0, 0
		}
		slices.Sort(ds)
		return ds[len(ds)/2], ds[len(ds)-1]
	}
	for _, k := range IncidentKinds {
		kr := byKind[k]
		if kr == nil {
			continue
		}
		kr.MedianDelay, kr.MaxDelay = medMax(delays[k])
		kr.MedianDay, kr.MaxDay = medMax(dayDelays[k])
		kr.MedianNight, kr.MaxNight = medMax(nightDelays[k])
		rep.Kinds = append(rep.Kinds, *kr)
	}
	if len(leads) > 0 {
		slices.Sort(leads)
		rep.MedianHintLead = leads[len(leads)/2]
	}
	// Maintenance alerts are explained by the injected sensor faults
	// (deferred by quiet hours by up to a night); a contact stuck open
	// looks like an open door at first, so the door_left_open alert of its
	// first hour is explained too.
	for _, a := range alerts {
		for _, f := range p.Faults {
			if f.Household != a.household {
				continue
			}
			switch {
			case a.rule == RuleSensorHealth && !a.t.Before(f.From.Add(-time.Minute)) && !a.t.After(f.To.Add(10*time.Hour)):
				a.used = true
			case a.rule == RuleDoorLeftOpen && f.What == FaultDoorStuckOpen && !a.t.Before(f.From) && !a.t.After(f.From.Add(time.Hour)):
				a.used = true
			}
		}
	}
	byRule := map[Rule]*RuleResult{}
	falseThr := 0
	during := map[string]int{}
	for _, a := range alerts {
		rr := byRule[a.rule]
		if rr == nil {
			rr = &RuleResult{Rule: a.rule}
			byRule[a.rule] = rr
		}
		rr.Raised++
		care := a.audience == AudienceCare
		if care {
			rr.Care++
			rep.CareAlerts++
		} else {
			rr.Staff++
			rep.StaffNotices++
		}
		if a.used {
			continue
		}
		rr.False++
		if ThresholdRule(a.rule) {
			falseThr++
		}
		if !care {
			rep.StaffUnexplained++
			continue
		}
		rr.FalseCare++
		rep.FalseCare++
		during[p.circumstance(a.household, a.t)]++
	}
	for _, r := range AllRules {
		rr := byRule[r]
		if rr == nil {
			rr = &RuleResult{Rule: r}
		}
		rr.PerElderMonth = float64(rr.False) / rep.ElderMonths
		rr.CarePerEM = float64(rr.FalseCare) / rep.ElderMonths
		rep.Rules = append(rep.Rules, *rr)
	}
	for _, w := range circumstanceOrder {
		if n := during[w]; n > 0 {
			rep.FalseCareDuring = append(rep.FalseCareDuring, Circumstance{What: w, False: n})
			delete(during, w)
		}
	}
	for _, w := range slices.Sorted(maps.Keys(during)) {
		rep.FalseCareDuring = append(rep.FalseCareDuring, Circumstance{What: w, False: during[w]})
	}
	rep.FalseThreshold = float64(falseThr) / rep.ElderMonths
	rep.FalseCarePerEM = float64(rep.FalseCare) / rep.ElderMonths
	rep.StaffPerEM = float64(rep.StaffNotices) / rep.ElderMonths
	rep.HintsPerEM = float64(rep.Hints) / rep.ElderMonths
	return rep
}

var circumstanceOrder = []string{WhatTrip, WhatTripLateAway, WhatOuting, ModeAway, ModeHospital,
	FaultPIRStuckOn, FaultDoorStuckOpen, FaultPIRStuckOff, FaultPIRSilent, "gateway_outage",
	"routine: housebound elder", "routine: early riser", "routine: late sleeper", "routine"}

// circumstance says what the ground truth has going on for household at
// t: an absence (until 30 min after the return), a sensor fault (until
// 2 h after), a gateway outage (until 2 h after), or the elder's daily
// routine ("routine: housebound elder", "routine: early riser",
// "routine: late sleeper", "routine").
func (p *Population) circumstance(household string, t time.Time) string {
	if w := p.during(household, t); w != "" {
		return w
	}
	for _, e := range p.Elders {
		if e.Household != household {
			continue
		}
		switch {
		case slices.Contains(e.Routines, RoutineHousebound):
			return "routine: housebound elder"
		case slices.Contains(e.Routines, RoutineEarlyRiser):
			return "routine: early riser"
		case slices.Contains(e.Routines, RoutineLateSleeper):
			return "routine: late sleeper"
		}
	}
	return "routine"
}

func (p *Population) during(household string, t time.Time) string {
	for _, a := range p.Aways {
		if a.Household == household && !t.Before(a.From) && !t.After(a.To.Add(30*time.Minute)) {
			return a.What
		}
	}
	for _, f := range p.Faults {
		if f.Household == household && f.What != FaultBatteryLow && !t.Before(f.From) && !t.After(f.To.Add(2*time.Hour)) {
			return f.What
		}
	}
	for _, o := range p.Outages {
		if !t.Before(o.From) && !t.After(o.To.Add(2*time.Hour)) {
			return "gateway_outage"
		}
	}
	return ""
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

// Kind returns the result of one incident kind.
func (r Report) Kind(k string) KindResult {
	for _, x := range r.Kinds {
		if x.Kind == k {
			return x
		}
	}
	return KindResult{Kind: k}
}

// Rule returns the result of one rule.
func (r Report) Rule(rl Rule) RuleResult {
	for _, x := range r.Rules {
		if x.Rule == rl {
			return x
		}
	}
	return RuleResult{Rule: rl}
}

// Markdown renders the report as the tables of docs/rules.md.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Population: %d elders × %d days (%.0f elder-months), %d events, %d absences in the ground truth (%d with a mode set), %d sensor faults, %d gateway outages. Replay: %s.\n\n",
		r.Elders, r.Days, r.ElderMonths, r.Events, r.Aways, r.Flagged, r.SensorFaults, r.Outages, r.Replay.Round(time.Millisecond))
	b.WriteString("| incident kind | rule | injected | detected | as care alert | deadline | within deadline | median delay | max delay | median by day (06–22) | median by night | max by day | max by night | other alert only |\n")
	b.WriteString("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range r.Kinds {
		fmt.Fprintf(&b, "| %s | %s | %d | %d (%.0f %%) | %d | %s | %d (%.0f %%) | %s | %s | %s | %s | %s | %s | %d |\n", k.Kind, k.Rule, k.Injected,
			k.Detected, pct(k.Detected, k.Injected), k.DetectedCare, k.Target, k.InTime, pct(k.InTime, k.Injected),
			fmtEn(k.MedianDelay), fmtEn(k.MaxDelay),
			delayOf(k.MedianDay, k.DetectedDay, k.InjectedDay), delayOf(k.MedianNight, k.DetectedNight, k.InjectedNight),
			delayOf(k.MaxDay, k.DetectedDay, k.InjectedDay), delayOf(k.MaxNight, k.DetectedNight, k.InjectedNight), k.Misdirected)
	}
	b.WriteString("\n| rule | alerts raised | to care | staff notices | not explained by an injected incident or fault | of them care | false per elder-month | false care per elder-month |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, x := range r.Rules {
		if x.Rule == RuleBaseline {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %.3f | %.3f |\n", x.Rule, x.Raised, x.Care, x.Staff, x.False, x.FalseCare, x.PerElderMonth, x.CarePerEM)
	}
	fmt.Fprintf(&b, "| **threshold rules together** | | | | | | **%.3f** | |\n", r.FalseThreshold)
	fmt.Fprintf(&b, "| **care alerts together** | %d | | | | %d | | **%.3f** (target ≤ 0.3) |\n", r.CareAlerts, r.FalseCare, r.FalseCarePerEM)
	fmt.Fprintf(&b, "\nStaff notices (data.audience staff, reported apart): %d, **%.2f per elder-month** (%d not explained by an incident or fault). Away-mode proposals (`elder.hint`, propose_mode away): %d, %d of them while the elder was away.\n",
		r.StaffNotices, r.StaffPerEM, r.StaffUnexplained, r.AwayProposals, r.AwayProposalsRight)
	if len(r.FalseCareDuring) > 0 {
		b.WriteString("\n| false care alerts raised during | alerts | per elder-month |\n|---|---:|---:|\n")
		for _, c := range r.FalseCareDuring {
			fmt.Fprintf(&b, "| %s | %d | %.3f |\n", c.What, c.False, float64(c.False)/r.ElderMonths)
		}
	}
	fmt.Fprintf(&b, "\nAdvisory `baseline_deviation` (reported apart, never an alarm): %d hints, %.2f per elder-month; a hint came before the inactivity alert in %d of %d collapses (median lead %s). \"No data\" verdicts: %d.\n",
		r.Hints, r.HintsPerEM, r.HintsBeforeCollapse, r.Kind(IncCollapse).Injected, fmtEn(r.MedianHintLead), r.NoData)
	return b.String()
}

// delayOf renders a delay of n detections out of of incidents: "–" when
// none were injected, "none" when none were detected.
func delayOf(d time.Duration, n, of int) string {
	switch {
	case of == 0:
		return "–"
	case n == 0:
		return "none"
	}
	return fmtEn(d)
}

func pct(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return 100 * float64(a) / float64(b)
}

// CompareMarkdown renders two reports on the same input side by side:
// before (Settings.Legacy) and after (the settings given). The columns
// say which is which: "before" and "after".
func CompareMarkdown(before, after Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Same input, two engines: before = legacy (fixed limits, away after `away_after` of quiet), after = the settings given. %d elders × %d days (%.0f elder-months), %d events.\n\n",
		after.Elders, after.Days, after.ElderMonths, after.Events)
	b.WriteString("| measure | before | after |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| false care alerts per elder-month (target ≤ 0.3) | %.3f | %.3f |\n", before.FalseCarePerEM, after.FalseCarePerEM)
	fmt.Fprintf(&b, "| false care alerts | %d | %d |\n", before.FalseCare, after.FalseCare)
	fmt.Fprintf(&b, "| care alerts raised | %d | %d |\n", before.CareAlerts, after.CareAlerts)
	fmt.Fprintf(&b, "| staff notices per elder-month | %.2f | %.2f |\n", before.StaffPerEM, after.StaffPerEM)
	fmt.Fprintf(&b, "| staff notices not explained | %d | %d |\n", before.StaffUnexplained, after.StaffUnexplained)
	fmt.Fprintf(&b, "| false threshold alerts per elder-month (any audience) | %.3f | %.3f |\n", before.FalseThreshold, after.FalseThreshold)
	fmt.Fprintf(&b, "| away-mode proposals (while away) | %d (%d) | %d (%d) |\n", before.AwayProposals, before.AwayProposalsRight, after.AwayProposals, after.AwayProposalsRight)
	fmt.Fprintf(&b, "| advisory hints | %d | %d |\n", before.Hints, after.Hints)
	fmt.Fprintf(&b, "| \"no data\" verdicts | %d | %d |\n", before.NoData, after.NoData)
	fmt.Fprintf(&b, "| replay | %s | %s |\n", before.Replay.Round(time.Millisecond), after.Replay.Round(time.Millisecond))

	b.WriteString("\n| incident kind | rule | injected | detected before | detected after | within deadline before | within deadline after | median by day before | median by day after | median by night before | median by night after | max by day before | max by day after | max by night before | max by night after | other alert only before | other alert only after |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	kinds := []string{}
	for _, k := range IncidentKinds {
		if before.Kind(k).Injected > 0 || after.Kind(k).Injected > 0 {
			kinds = append(kinds, k)
		}
	}
	for _, k := range kinds {
		x, y := before.Kind(k), after.Kind(k)
		rule := y.Rule
		if rule == "" {
			rule = x.Rule
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d (%.0f %%) | %d (%.0f %%) | %d (%.0f %%) | %d (%.0f %%) | %s | %s | %s | %s | %s | %s | %s | %s | %d | %d |\n",
			k, rule, max(x.Injected, y.Injected),
			x.Detected, pct(x.Detected, x.Injected), y.Detected, pct(y.Detected, y.Injected),
			x.InTime, pct(x.InTime, x.Injected), y.InTime, pct(y.InTime, y.Injected),
			delayOf(x.MedianDay, x.DetectedDay, x.InjectedDay), delayOf(y.MedianDay, y.DetectedDay, y.InjectedDay),
			delayOf(x.MedianNight, x.DetectedNight, x.InjectedNight), delayOf(y.MedianNight, y.DetectedNight, y.InjectedNight),
			delayOf(x.MaxDay, x.DetectedDay, x.InjectedDay), delayOf(y.MaxDay, y.DetectedDay, y.InjectedDay),
			delayOf(x.MaxNight, x.DetectedNight, x.InjectedNight), delayOf(y.MaxNight, y.DetectedNight, y.InjectedNight),
			x.Misdirected, y.Misdirected)
	}

	b.WriteString("\n| rule | raised before | raised after | staff notices before | staff notices after | false care before | false care after | false care per elder-month before | false care per elder-month after |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range AllRules {
		if r == RuleBaseline {
			continue
		}
		x, y := before.Rule(r), after.Rule(r)
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %.3f | %.3f |\n", r, x.Raised, y.Raised, x.Staff, y.Staff,
			x.FalseCare, y.FalseCare, x.CarePerEM, y.CarePerEM)
	}

	during := map[string][2]int{}
	for _, c := range before.FalseCareDuring {
		v := during[c.What]
		v[0] = c.False
		during[c.What] = v
	}
	for _, c := range after.FalseCareDuring {
		v := during[c.What]
		v[1] = c.False
		during[c.What] = v
	}
	if len(during) > 0 {
		b.WriteString("\n| false care alerts raised during | before | after |\n|---|---:|---:|\n")
		order := slices.DeleteFunc(slices.Clone(circumstanceOrder), func(w string) bool { _, ok := during[w]; return !ok })
		for _, w := range slices.Sorted(maps.Keys(during)) {
			if !slices.Contains(circumstanceOrder, w) {
				order = append(order, w)
			}
		}
		for _, w := range order {
			fmt.Fprintf(&b, "| %s | %d | %d |\n", w, during[w][0], during[w][1])
		}
	}
	return b.String()
}

package rules

import (
	"encoding/json"
	"fmt"
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
	var out []*event.Event
	i := 0
	st, err := Replay(p.Settings, func(ev *event.Event) (bool, error) {
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

// KindResult is the detection of one incident kind.
type KindResult struct {
	Kind        string
	Rule        Rule
	Injected    int
	Detected    int    // by the expected rule, at any time before the incident ended (+2 h)
	InTime      int    // by the deadline (Target)
	Target      string // the deadline in words: "threshold + 5 min", "10 s"…
	MedianDelay time.Duration
	MaxDelay    time.Duration
	Threshold   string
}

// RuleResult counts one rule's alerts.
type RuleResult struct {
	Rule          Rule
	Raised        int
	False         int // not explained by an injected incident (or, for sensor_health, fault)
	PerElderMonth float64
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
	// sos, sensor_health and the advisory rule) per elder-month.
	FalseThreshold float64
	Hints          int
	HintsPerEM     float64
	// HintsBeforeCollapse counts collapses where a hint came before the
	// inactivity alert (the advisory rule's early warning).
	HintsBeforeCollapse int
	MedianHintLead      time.Duration
	NoData              int
	SensorFaults        int
	Aways               int
	Outages             int
}

type raisedAlert struct {
	rule      Rule
	household string
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

// Evaluate scores derived events against a population's ground truth.
func Evaluate(p *Population, derived []*event.Event, st ReplayStats) Report {
	rep := Report{Elders: p.Options.Elders, Days: p.Options.Days, Events: st.Events, Replay: st.Elapsed,
		ElderMonths: float64(p.Options.Elders*p.Options.Days) / 30, SensorFaults: len(p.Faults), Aways: len(p.Aways),
		Outages: len(p.Outages)}
	var alerts []*raisedAlert
	hints := map[string][]time.Time{}
	for _, ev := range derived {
		var d struct {
			Rule Rule `json:"rule"`
		}
		switch ev.Kind {
		case event.ElderAlertRaised:
			_ = json.Unmarshal(ev.Data, &d)
			alerts = append(alerts, &raisedAlert{rule: d.Rule, household: ev.Household, t: ev.Time})
		case event.ElderHint:
			rep.Hints++
			hints[ev.Household] = append(hints[ev.Household], ev.Time)
		case event.ElderNoData:
			rep.NoData++
		}
	}
	byKind := map[string]*KindResult{}
	delays := map[string][]time.Duration{}
	var leads []time.Duration
	for _, inc := range p.Incidents {
		kr := byKind[inc.Kind]
		if kr == nil {
			kr = &KindResult{Kind: inc.Kind, Rule: inc.Rule, Target: incidentTarget[inc.Kind]}
			byKind[inc.Kind] = kr
		}
		kr.Injected++
		win0, win1 := inc.Start.Add(-5*time.Minute), inc.End.Add(2*time.Hour)
		var hit *raisedAlert
		for _, a := range alerts {
			if a.household != inc.Household || a.t.Before(win0) || a.t.After(win1) {
				continue
			}
			if a.rule == inc.Rule && hit == nil {
				hit = a
			}
			a.used = true // explained by the incident
		}
		if hit == nil {
			continue
		}
		kr.Detected++
		if !hit.t.After(inc.Deadline) {
			kr.InTime++
		}
		delays[inc.Kind] = append(delays[inc.Kind], hit.t.Sub(inc.Start))
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
	for _, k := range IncidentKinds {
		kr := byKind[k]
		if kr == nil {
			continue
		}
		ds := delays[k]
		slices.Sort(ds)
		if len(ds) > 0 {
			kr.MedianDelay, kr.MaxDelay = ds[len(ds)/2], ds[len(ds)-1]
		}
		rep.Kinds = append(rep.Kinds, *kr)
	}
	if len(leads) > 0 {
		slices.Sort(leads)
		rep.MedianHintLead = leads[len(leads)/2]
	}
	// Maintenance alerts are explained by the injected sensor faults
	// (deferred by quiet hours by up to a night).
	for _, a := range alerts {
		if a.rule != RuleSensorHealth {
			continue
		}
		for _, f := range p.Faults {
			if f.Household == a.household && !a.t.Before(f.From.Add(-time.Minute)) && !a.t.After(f.To.Add(10*time.Hour)) {
				a.used = true
			}
		}
	}
	byRule := map[Rule]*RuleResult{}
	falseThr := 0
	for _, a := range alerts {
		rr := byRule[a.rule]
		if rr == nil {
			rr = &RuleResult{Rule: a.rule}
			byRule[a.rule] = rr
		}
		rr.Raised++
		if !a.used {
			rr.False++
			if ThresholdRule(a.rule) {
				falseThr++
			}
		}
	}
	for _, r := range AllRules {
		rr := byRule[r]
		if rr == nil {
			rr = &RuleResult{Rule: r}
		}
		rr.PerElderMonth = float64(rr.False) / rep.ElderMonths
		rep.Rules = append(rep.Rules, *rr)
	}
	rep.FalseThreshold = float64(falseThr) / rep.ElderMonths
	rep.HintsPerEM = float64(rep.Hints) / rep.ElderMonths
	return rep
}

// Kind returns the result of one incident kind.
func (r Report) Kind(k string) KindResult {
	for _, x := range r.Kinds {
		if x.Kind == k {
			return x
		}
	}
	return KindResult{Kind: k}
}

// Markdown renders the report as the tables of docs/rules.md.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Population: %d elders × %d days (%.0f elder-months), %d events, %d flagged away/hospital stays, %d sensor faults, %d gateway outages. Replay: %s.\n\n",
		r.Elders, r.Days, r.ElderMonths, r.Events, r.Aways, r.SensorFaults, r.Outages, r.Replay.Round(time.Millisecond))
	b.WriteString("| incident kind | rule | injected | detected | deadline | within deadline | median delay | max delay |\n|---|---|---:|---:|---|---:|---:|---:|\n")
	for _, k := range r.Kinds {
		fmt.Fprintf(&b, "| %s | %s | %d | %d (%.0f %%) | %s | %d (%.0f %%) | %s | %s |\n", k.Kind, k.Rule, k.Injected,
			k.Detected, pct(k.Detected, k.Injected), k.Target, k.InTime, pct(k.InTime, k.Injected), fmtEn(k.MedianDelay), fmtEn(k.MaxDelay))
	}
	b.WriteString("\n| rule | alerts raised | not explained by an injected incident or fault | false per elder-month |\n|---|---:|---:|---:|\n")
	for _, x := range r.Rules {
		if x.Rule == RuleBaseline {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %.3f |\n", x.Rule, x.Raised, x.False, x.PerElderMonth)
	}
	fmt.Fprintf(&b, "| **threshold rules together** | | | **%.3f** |\n", r.FalseThreshold)
	fmt.Fprintf(&b, "\nAdvisory `baseline_deviation` (reported apart, never an alarm): %d hints, %.2f per elder-month; a hint came before the inactivity alert in %d of %d collapses (median lead %s). \"No data\" verdicts: %d.\n",
		r.Hints, r.HintsPerEM, r.HintsBeforeCollapse, r.Kind(IncCollapse).Injected, fmtEn(r.MedianHintLead), r.NoData)
	return b.String()
}

func pct(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return 100 * float64(a) / float64(b)
}

package recording

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/rules"
)

// Delays are the fall-to-alert delays of the detected incidents of one
// kind in one part of the day.
type Delays struct {
	Injected, Detected int
	Median, Max        time.Duration
}

// KindScore is the detection of one incident kind.
type KindScore struct {
	Kind     string
	Injected int
	// Detected by an inactivity alert raised after the fall and before
	// the resident was found; InTime by the deadline (the configured
	// limit + 5 min).
	Detected, InTime int
	// Misdirected: another care alert (e.g. not_returned: "left and not
	// back") came before the inactivity alert, or instead of it.
	Misdirected int
	Day, Night  Delays // by the local time of the fall: day 06:00–22:00
}

// RuleCount is one rule's false care alerts.
type RuleCount struct {
	Rule  rules.Rule
	False int
}

// Report scores a replay of a trace against its truth.
type Report struct {
	Name       string
	Households int
	// ElderMonths is the span the households' logs cover, in months of
	// 30 days; Base* is the household replaying the recording as
	// recorded (no injection).
	ElderMonths, BaseElderMonths float64
	CareAlerts                   int // raised, all households
	// False care alerts (data.audience "care") not explained by an
	// injected incident (raised from 5 min before its start to 2 h after
	// the resident was found), per elder-month.
	False, BaseFalse           int
	FalsePerEM, BaseFalsePerEM float64
	BaseFalseByRule            []RuleCount
	// BaseFalseInAbsence were raised while the resident was really out
	// (an absence of the truth); BaseFalseNight at night (22:00–06:00);
	// BaseFalseDispatched escalated to level 3 (a visit dispatched).
	BaseFalseInAbsence, BaseFalseNight, BaseFalseDispatched int
	BaseStaffAlerts                                         int // maintenance (sensor_health), reported apart
	Kinds                                                   []KindScore
}

type alertRec struct {
	id, household string
	rule          rules.Rule
	care          bool
	t             time.Time
	level3        bool
}

// Evaluate scores derived events (a replay's output) against the truth.
func Evaluate(tr *Truth, derived []*event.Event) Report {
	rep := Report{Name: tr.Recording.Name, Households: tr.Elders}
	base := tr.Recording.Base
	for _, p := range tr.Monitored {
		m := p.To.Sub(p.From).Hours() / 24 / 30
		rep.ElderMonths += m
		if p.Household == base {
			rep.BaseElderMonths += m
		}
	}
	var alerts []*alertRec
	byID := map[string]*alertRec{}
	for _, ev := range derived {
		switch ev.Kind {
		case event.ElderAlertRaised:
			var d struct {
				ID       string     `json:"alert_id"`
				Rule     rules.Rule `json:"rule"`
				Audience string     `json:"audience"`
			}
			_ = json.Unmarshal(ev.Data, &d)
			a := &alertRec{id: d.ID, household: ev.Household, rule: d.Rule, care: d.Audience == rules.AudienceCare, t: ev.Time}
			alerts = append(alerts, a)
			if d.ID != "" {
				byID[d.ID] = a
			}
		case event.ElderAlertEscalated:
			var d struct {
				ID    string `json:"alert_id"`
				Level int    `json:"level"`
			}
			_ = json.Unmarshal(ev.Data, &d)
			if a := byID[d.ID]; a != nil && d.Level >= 3 {
				a.level3 = true
			}
		}
	}
	slices.SortStableFunc(alerts, func(a, b *alertRec) int { return a.t.Compare(b.t) })
	explained := map[*alertRec]bool{}
	scores := map[string]*KindScore{}
	delays := map[string][2][]time.Duration{}
	var kinds []string
	for _, inc := range tr.Incidents {
		ks := scores[inc.Kind]
		if ks == nil {
			ks = &KindScore{Kind: inc.Kind}
			scores[inc.Kind] = ks
			kinds = append(kinds, inc.Kind)
		}
		ks.Injected++
		night := isNight(inc.Start, tr.Recording.OffsetS)
		if night {
			ks.Night.Injected++
		} else {
			ks.Day.Injected++
		}
		var hit *alertRec
		misdirected := false
		for _, a := range alerts {
			if a.household != inc.Household {
				continue
			}
			if !a.t.Before(inc.Start.Add(-5*time.Minute)) && !a.t.After(inc.End.Add(2*time.Hour)) {
				explained[a] = true
			}
			if a.t.Before(inc.Start) || a.t.After(inc.End) {
				continue
			}
			if a.rule == rules.RuleInactivity {
				if hit == nil {
					hit = a
				}
			} else if a.care && hit == nil {
				misdirected = true
			}
		}
		if misdirected {
			ks.Misdirected++
		}
		if hit == nil {
			continue
		}
		ks.Detected++
		if !hit.t.After(inc.Deadline) {
			ks.InTime++
		}
		d := delays[inc.Kind]
		i := 0
		if night {
			i = 1
		}
		d[i] = append(d[i], hit.t.Sub(inc.Start))
		delays[inc.Kind] = d
	}
	order := []string{rules.IncCollapse, IncCollapseAfterDoor}
	slices.SortStableFunc(kinds, func(a, b string) int {
		ia, ib := slices.Index(order, a), slices.Index(order, b)
		if ia < 0 {
			ia = len(order)
		}
		if ib < 0 {
			ib = len(order)
		}
		return ia - ib
	})
	for _, k := range kinds {
		ks := scores[k]
		d := delays[k]
		ks.Day.Detected, ks.Day.Median, ks.Day.Max = stats(d[0])
		ks.Night.Detected, ks.Night.Median, ks.Night.Max = stats(d[1])
		rep.Kinds = append(rep.Kinds, *ks)
	}
	falseBy := map[rules.Rule]int{}
	for _, a := range alerts {
		if a.household == base && !a.care {
			rep.BaseStaffAlerts++
		}
		if !a.care {
			continue
		}
		rep.CareAlerts++
		if explained[a] {
			continue
		}
		rep.False++
		if a.household != base {
			continue
		}
		rep.BaseFalse++
		falseBy[a.rule]++
		if a.level3 {
			rep.BaseFalseDispatched++
		}
		if isNight(a.t, tr.Recording.OffsetS) {
			rep.BaseFalseNight++
		}
		for _, p := range tr.Absences {
			if p.Household == base && !a.t.Before(p.From) && !a.t.After(p.To) {
				rep.BaseFalseInAbsence++
				break
			}
		}
	}
	for _, r := range rules.AllRules {
		if n := falseBy[r]; n > 0 {
			rep.BaseFalseByRule = append(rep.BaseFalseByRule, RuleCount{r, n})
		}
	}
	if rep.ElderMonths > 0 {
		rep.FalsePerEM = float64(rep.False) / rep.ElderMonths
	}
	if rep.BaseElderMonths > 0 {
		rep.BaseFalsePerEM = float64(rep.BaseFalse) / rep.BaseElderMonths
	}
	return rep
}

func isNight(t time.Time, offset int) bool {
	m := minuteOfDay(t, offset)
	return m < 6*60 || m >= 22*60
}

func stats(ds []time.Duration) (int, time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return len(ds), ds[len(ds)/2], ds[len(ds)-1]
}

// Kind returns the score of one incident kind.
func (r Report) Kind(k string) KindScore {
	for _, x := range r.Kinds {
		if x.Kind == k {
			return x
		}
	}
	return KindScore{Kind: k}
}

func hm(d time.Duration) string {
	if d <= 0 {
		return "–"
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func frac(a, b int) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%d/%d (%.0f %%)", a, b, 100*float64(a)/float64(b))
}

// Markdown renders the report as two tables.
func (r Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**: %.2f elder-months as recorded; %d households in all (%.2f elder-months) — the recording and one copy per injected collapse.\n\n",
		r.Name, r.BaseElderMonths, r.Households, r.ElderMonths)
	b.WriteString("| injected | n | detected (inactivity, before found) | within limit + 5 min | another care alert first | day: median / max delay | night: median / max delay |\n|---|---:|---:|---:|---:|---|---|\n")
	for _, k := range r.Kinds {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %d | %s / %s (%d of %d) | %s / %s (%d of %d) |\n", k.Kind, k.Injected,
			frac(k.Detected, k.Injected), frac(k.InTime, k.Injected), k.Misdirected,
			hm(k.Day.Median), hm(k.Day.Max), k.Day.Detected, k.Day.Injected,
			hm(k.Night.Median), hm(k.Night.Max), k.Night.Detected, k.Night.Injected)
	}
	var byRule []string
	for _, x := range r.BaseFalseByRule {
		byRule = append(byRule, fmt.Sprintf("%s %d", x.Rule, x.False))
	}
	if len(byRule) == 0 {
		byRule = []string{"none"}
	}
	fmt.Fprintf(&b, "\n| false care alerts | count | per elder-month |\n|---|---:|---:|\n")
	fmt.Fprintf(&b, "| as recorded (%s) | %d | **%.2f** |\n", strings.Join(byRule, ", "), r.BaseFalse, r.BaseFalsePerEM)
	fmt.Fprintf(&b, "| … raised while the resident was really out | %d | |\n| … at night (22:00–06:00) | %d | |\n| … escalated to a dispatched visit (L3) | %d | |\n",
		r.BaseFalseInAbsence, r.BaseFalseNight, r.BaseFalseDispatched)
	fmt.Fprintf(&b, "| all households, not explained by an injected collapse | %d | %.2f |\n", r.False, r.FalsePerEM)
	fmt.Fprintf(&b, "\nStaff-only maintenance alerts as recorded: %d.\n", r.BaseStaffAlerts)
	return b.String()
}

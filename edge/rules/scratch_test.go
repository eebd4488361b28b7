package rules

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

func TestScratchFalse(t *testing.T) {
	p := Simulate(SimOptions{Elders: 200, Days: 90, Seed: 6, Realistic: true})
	derived, _, _ := ReplayPopulationWith(p, p.Settings)
	cnt := map[string]int{}
	for _, ev := range derived {
		if ev.Kind != event.ElderAlertRaised {
			continue
		}
		var d struct {
			Rule       Rule
			Audience   string
			Thresholds map[string]any
			Presence   Presence
			ReasonEn   string `json:"reason_en"`
		}
		json.Unmarshal(ev.Data, &d)
		if d.Audience != AudienceCare || (d.Rule != RuleInactivity && d.Rule != RuleNotReturned) {
			continue
		}
		hit := false
		for _, inc := range p.Incidents {
			if inc.Household == ev.Household && !ev.Time.Before(inc.Start.Add(-5*time.Minute)) && !ev.Time.After(inc.End.Add(2*time.Hour)) {
				hit = true
			}
		}
		if hit {
			continue
		}
		during := "-"
		for _, a := range p.Aways {
			if a.Household == ev.Household && !ev.Time.Before(a.From) && !ev.Time.After(a.To) {
				during = a.What
			}
		}
		for _, a := range p.Faults {
			if a.Household == ev.Household && !ev.Time.Before(a.From) && !ev.Time.After(a.To.Add(12*time.Hour)) {
				during += "+" + a.What
			}
		}
		day := ev.Time.Sub(p.Options.Start) / (24 * time.Hour)
		early := "late"
		if day < 10 {
			early = "first10d"
		}
		k := fmt.Sprint(d.Rule, " ", d.Thresholds["variant"], " ", d.Presence.State, "/", d.Presence.Basis, " during=", during, " ", early, " basis=", d.Thresholds["limit"].(map[string]any)["basis"])
		cnt[k]++
	}
	var ks []string
	for k := range cnt {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(i, j int) bool { return cnt[ks[i]] > cnt[ks[j]] })
	for _, k := range ks {
		fmt.Println(cnt[k], k)
	}
}

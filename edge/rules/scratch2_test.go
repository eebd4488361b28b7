package rules

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestScratchMiss(t *testing.T) {
	p := Simulate(SimOptions{Elders: 200, Days: 90, Seed: 6, Realistic: true})
	derived, _, _ := ReplayPopulationWith(p, p.Settings)
	z := time.FixedZone("", 8*3600)
	for _, inc := range p.Incidents {
		if inc.Kind != IncCollapseAfterDoor && inc.Kind != IncNotReturned {
			continue
		}
		var lines []string
		hit := false
		for _, ev := range derived {
			if ev.Household != inc.Household || ev.Time.Before(inc.Start.Add(-3*time.Hour)) || ev.Time.After(inc.End.Add(2*time.Hour)) {
				continue
			}
			var d map[string]any
			json.Unmarshal(ev.Data, &d)
			x := ""
			if th, ok := d["thresholds"].(map[string]any); ok {
				x = fmt.Sprint(th["variant"], " ", th["applied"])
			}
			if string(ev.Kind) == "elder.alert.raised" && Rule(fmt.Sprint(d["rule"])) == inc.Rule && !ev.Time.Before(inc.Start) {
				hit = true
			}
			lines = append(lines, fmt.Sprintf("   %s %s %v %v %s %v %v", ev.Time.In(z).Format("01-02 15:04:05"), ev.Kind, d["rule"], d["state"], x, d["basis"], d["audience"]))
		}
		if hit {
			continue
		}
		fmt.Printf("== %s %s start %s end %s days=%d\n", inc.Kind, inc.Household, inc.Start.In(z).Format("Mon 01-02 15:04"), inc.End.In(z).Format("01-02 15:04"), int(inc.Start.Sub(p.Options.Start).Hours()/24))
		for _, l := range lines {
			fmt.Println(l)
		}
	}
}

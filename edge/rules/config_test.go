package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
)

const baseYAML = `
gateway: {id: gw-1, compound: c-1}
compound:
  households:
    - {id: h-301, label: "3-1-301"}
    - {id: h-302, label: "3-1-302"}
devices:
  - {id: door-301, kind: door, driver: serial, address: /dev/ttyUSB0, household: h-301}
  - {id: pir-301, kind: motion, driver: serial, address: /dev/ttyUSB0, household: h-301}
  - {id: door-302, kind: door, driver: serial, address: /dev/ttyUSB0, household: h-302}
`

func TestConfigDefaultsAndOverrides(t *testing.T) {
	cfg, err := config.Parse("lintel.yaml", []byte(baseYAML+`
rules:
  quiet_hours: "23:00-06:30"
  thresholds: {no_exit: 48h}
  disabled: [baseline_deviation]
  elders:
    - household: h-301
      contacts: [c-8812, grid-07]
      thresholds: {inactivity_day: 4h}
    - household: h-302
      sensors: [door-302]
      windows: {night_start: "21:00"}
      quiet_hours: none
      risk: [dementia]
      learned_limits: false
`))
	if err != nil {
		t.Fatal(err)
	}
	s := FromConfig(cfg)
	if len(s.Elders) != 2 || s.Offset != 8*3600 {
		t.Fatalf("%+v", s)
	}
	a, b := s.Elders[0], s.Elders[1]
	if a.T.InactivityDay.Std() != 4*time.Hour || a.T.InactivityNight.Std() != 12*time.Hour || a.T.NoExit.Std() != 48*time.Hour {
		t.Fatalf("thresholds %+v", a.T)
	}
	if len(a.Sensors) != 2 || a.Roles["pir-301"] != "motion" || !a.Disabled[RuleBaseline] || a.QuietStart != 23*60 {
		t.Fatalf("elder a %+v", a)
	}
	if !a.Learn || b.Learn || !b.Risk[RiskDementia] || a.Risk[RiskDementia] || a.T.InactivityFloor.Std() != 90*time.Minute {
		t.Fatalf("learning/risk: a %v %v, b %v %v", a.Learn, a.Risk, b.Learn, b.Risk)
	}
	if b.NightStart != 21*60 || b.Quiet || b.T.InactivityDay.Std() != 6*time.Hour || len(b.Sensors) != 1 {
		t.Fatalf("elder b %+v", b)
	}
}

func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "rules:\n  thresholds: {inactivty_day: 4h}\n", `unknown key "inactivty_day" (did you mean "inactivity_day"?)`},
		{"unknown household", "rules:\n  elders:\n    - household: h-999\n", `unknown household "h-999"`},
		{"unknown sensor", "rules:\n  elders:\n    - {household: h-301, sensors: [nope]}\n", `unknown device "nope"`},
		{"bound twice", "rules:\n  elders:\n    - {household: h-301, sensors: [door-301]}\n    - {household: h-302, sensors: [door-301]}\n", `already bound`},
		{"too short", "rules:\n  thresholds: {inactivity_day: 5m}\n", `too short`},
		{"bad window", "rules:\n  windows: {day_start: \"6am\"}\n", `want a local time`},
		{"bad escalation", "rules:\n  escalation: {l2: 3h}\n", `must be later than l2`},
		{"bad rule", "rules:\n  disabled: [sleepwalking]\n", `unknown rule "sleepwalking"`},
		{"contact with spaces", "rules:\n  elders:\n    - {household: h-301, contacts: [\"Zhang San 138\"]}\n", `opaque id`},
		{"elder override typo", "rules:\n  elders:\n    - {household: h-301, thresholds: {no_exits: 2h}}\n", `rules.elders[0].thresholds.no_exits`},
		{"bad offset", "rules:\n  utc_offset: CST\n", `UTC offset`},
		{"unknown risk", "rules:\n  elders:\n    - {household: h-301, risk: [wandering]}\n", `rules.elders[0].risk[0]: unknown risk "wandering"`},
		{"floor above ceiling", "rules:\n  thresholds: {inactivity_floor: 7h}\n", `must not be above inactivity_day`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse("lintel.yaml", []byte(baseYAML+tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "lintel.yaml:") {
				t.Fatalf("no position: %v", err)
			}
		})
	}
}

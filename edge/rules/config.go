package rules

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
)

// Rule names a detection rule; it is data.rule in the derived events.
type Rule string

// Rules, in the order docs/rules.md describes them.
const (
	RuleInactivity       Rule = "inactivity"
	RuleNoExit           Rule = "no_exit"
	RuleNotReturned      Rule = "not_returned"
	RuleDoorLeftOpen     Rule = "door_left_open"
	RuleNightWandering   Rule = "night_wandering"
	RuleSOS              Rule = "sos"
	RuleVisitorLoitering Rule = "visitor_loitering"
	RuleSensorHealth     Rule = "sensor_health"
	RuleBaseline         Rule = "baseline_deviation"
)

// AllRules lists every rule.
var AllRules = []Rule{RuleInactivity, RuleNoExit, RuleNotReturned, RuleDoorLeftOpen, RuleNightWandering,
	RuleSOS, RuleVisitorLoitering, RuleSensorHealth, RuleBaseline}

func knownRule(s string) bool {
	for _, r := range AllRules {
		if string(r) == s {
			return true
		}
	}
	return false
}

// Thresholds are the tunable limits of the rules. The defaults come from
// deployed programmes (research/domain.md §1): inactivity 6 h by day and
// 12 h across the night, no exit 24 h (Chongqing; Hong Kong uses 48 h),
// door open 10–30 min, "left at night and not back" 30–60 min.
type Thresholds struct {
	InactivityDay    config.Duration `yaml:"inactivity_day"`
	InactivityNight  config.Duration `yaml:"inactivity_night"`
	NoExit           config.Duration `yaml:"no_exit"`
	NoExitActive     config.Duration `yaml:"no_exit_active"`
	NotReturned      config.Duration `yaml:"not_returned"`
	NotReturnedNight config.Duration `yaml:"not_returned_night"`
	DoorLeftOpen     config.Duration `yaml:"door_left_open"`
	NightOpenings    int             `yaml:"night_openings"`
	Loitering        config.Duration `yaml:"loitering"`
	NightDoorbells   int             `yaml:"night_doorbells"`
	DoorbellWindow   config.Duration `yaml:"doorbell_window"`
	AwayAfter        config.Duration `yaml:"away_after"`
	BaselineDays     int             `yaml:"baseline_days"`
	BaselineK        float64         `yaml:"baseline_k"`
	// InactivityFloor is the shortest inactivity limit learning may
	// give: inactivity_day and inactivity_night are the ceiling.
	InactivityFloor config.Duration `yaml:"inactivity_floor"`
	// StuckAfter is how long a door contact may read open while life goes
	// on inside before it is taken as stuck (a moved magnet).
	StuckAfter config.Duration `yaml:"stuck_after"`
}

// Risks an elder can be enrolled with (rules.elders[].risk).
const (
	// RiskDementia: an absence is always a care alert at the configured
	// limits, never lengthened by habit or softened to a staff notice
	// (someone who may wander and get lost).
	RiskDementia = "dementia"
)

var knownRisks = []string{RiskDementia}

// Escalation holds the timers of unacknowledged alerts: L1 is raised at
// once (property staff + grid worker + contacts), L2 after L2 (community
// duty phone), L3 after L3 (a visit is dispatched). SOS escalates faster.
type Escalation struct {
	L2    config.Duration `yaml:"l2"`
	L3    config.Duration `yaml:"l3"`
	SOSL2 config.Duration `yaml:"sos_l2"`
	SOSL3 config.Duration `yaml:"sos_l3"`
}

// Windows splits the local day into day and night ("06:00", "22:00").
type Windows struct {
	DayStart   string `yaml:"day_start"`
	NightStart string `yaml:"night_start"`
}

// Config is the "rules" section of lintel.yaml.
type Config struct {
	// UTCOffset is the compound's local offset; windows are local times.
	// China has one zone and no DST, so a fixed offset suffices and needs
	// no time zone database on the box.
	UTCOffset      string     `yaml:"utc_offset"`
	Windows        Windows    `yaml:"windows"`
	QuietHours     string     `yaml:"quiet_hours"`
	Thresholds     Thresholds `yaml:"thresholds"`
	Escalation     Escalation `yaml:"escalation"`
	Disabled       []string   `yaml:"disabled"`
	MaxGapFraction float64    `yaml:"max_gap_fraction"`
	PresenceEvents bool       `yaml:"presence_events"`
	// LearnedLimits lets each elder's own history shorten the inactivity
	// limit (never below inactivity_floor) and lengthen the not-returned
	// limit (see docs/rules.md); false = the configured limits only.
	LearnedLimits bool          `yaml:"learned_limits"`
	Elders        []ElderConfig `yaml:"elders"`
}

// ElderConfig is one monitored elder (one household: they live alone).
// Only households listed here are monitored: enrolment follows the
// elder's or guardian's consent.
type ElderConfig struct {
	Household  string      `yaml:"household"`
	Sensors    []string    `yaml:"sensors"`
	Thresholds config.Node `yaml:"thresholds"` // any key of rules.thresholds
	Windows    *Windows    `yaml:"windows"`
	QuietHours *string     `yaml:"quiet_hours"`
	Disabled   []string    `yaml:"disabled"`
	Contacts   []string    `yaml:"contacts"`
	// Risk lists what the enrolment found (e.g. dementia): it keeps the
	// fast, unsoftened alerts for this elder.
	Risk []string `yaml:"risk"`
	// LearnedLimits, when set, overrides rules.learned_limits.
	LearnedLimits *bool `yaml:"learned_limits"`
}

// DefaultConfig returns the defaults of the rules section.
func DefaultConfig() Config {
	return Config{
		UTCOffset:  "+08:00",
		Windows:    Windows{DayStart: "06:00", NightStart: "22:00"},
		QuietHours: "22:00-07:00",
		Thresholds: Thresholds{
			InactivityDay:    dur(6 * time.Hour),
			InactivityNight:  dur(12 * time.Hour),
			NoExit:           dur(24 * time.Hour),
			NoExitActive:     dur(48 * time.Hour),
			NotReturned:      dur(12 * time.Hour),
			NotReturnedNight: dur(time.Hour),
			DoorLeftOpen:     dur(15 * time.Minute),
			NightOpenings:    3,
			Loitering:        dur(3 * time.Minute),
			NightDoorbells:   3,
			DoorbellWindow:   dur(30 * time.Minute),
			AwayAfter:        dur(30 * time.Minute),
			BaselineDays:     21,
			BaselineK:        2.5,
			InactivityFloor:  dur(90 * time.Minute),
			StuckAfter:       dur(24 * time.Hour),
		},
		Escalation: Escalation{
			L2: dur(30 * time.Minute), L3: dur(2 * time.Hour),
			SOSL2: dur(5 * time.Minute), SOSL3: dur(30 * time.Minute),
		},
		MaxGapFraction: 0.25,
		PresenceEvents: true,
		LearnedLimits:  true,
	}
}

func dur(d time.Duration) config.Duration { return config.Duration(d) }

// Elder is the effective setting of one elder, defaults applied.
type Elder struct {
	Household  string
	Sensors    []string          // explicit binding; empty = the household's devices, or any device reporting for it
	Roles      map[string]string // device id → door, motion, sos, peephole, other (from the device kind)
	T          Thresholds
	DayStart   int // minutes after local midnight
	NightStart int
	Quiet      bool
	QuietStart int
	QuietEnd   int
	Disabled   map[Rule]bool
	Contacts   []string
	Risk       map[string]bool
	Learn      bool // learned limits on for this elder
}

// Settings is everything the engine needs, resolved from a Config.
type Settings struct {
	Offset         int // seconds east of UTC
	Escalation     Escalation
	MaxGapFraction float64
	PresenceEvents bool
	Elders         []Elder
	// Legacy runs the engine exactly as it was before learned limits,
	// door-cycle hypotheses, stuck-sensor checks and risk-matched
	// severity: fixed limits, away after away_after of quiet. For
	// before/after comparisons (lintel replay --compare); never in a
	// gateway.
	Legacy bool
}

// Zone returns the local zone of the settings.
func (s *Settings) Zone() *time.Location { return time.FixedZone("local", s.Offset) }

// NewSettings returns settings with the defaults and one default elder per
// household given (handy for tests and the simulator).
func NewSettings(households ...string) *Settings {
	c := DefaultConfig()
	s := &Settings{Offset: 8 * 3600, Escalation: c.Escalation, MaxGapFraction: c.MaxGapFraction, PresenceEvents: c.PresenceEvents}
	for _, h := range households {
		s.Elders = append(s.Elders, DefaultElder(h))
	}
	return s
}

// DefaultElder returns an elder with the default thresholds and windows.
func DefaultElder(household string) Elder {
	c := DefaultConfig()
	ds, _ := parseClock(c.Windows.DayStart)
	ns, _ := parseClock(c.Windows.NightStart)
	qs, qe, q, _ := parseSpan(c.QuietHours)
	return Elder{Household: household, T: c.Thresholds, DayStart: ds, NightStart: ns,
		Quiet: q, QuietStart: qs, QuietEnd: qe, Disabled: map[Rule]bool{}, Roles: map[string]string{},
		Risk: map[string]bool{}, Learn: c.LearnedLimits}
}

var (
	resolvedMu sync.Mutex
	resolved   = map[*config.Config]*Settings{}
)

func init() { config.RegisterSection("rules", validateSection) }

// FromConfig returns the settings validated when cfg was loaded. A config
// built in code (never parsed) gets the defaults and no elders.
func FromConfig(cfg *config.Config) *Settings {
	resolvedMu.Lock()
	defer resolvedMu.Unlock()
	if s, ok := resolved[cfg]; ok {
		return s
	}
	return NewSettings()
}

// roleOfKind maps a device kind (config) to the role the rules give it.
func roleOfKind(kind string) string {
	switch kind {
	case "door", "motion", "sos", "peephole":
		return kind
	}
	return "other"
}

func validateSection(r *config.Reporter, cfg *config.Config, n config.Node) {
	c := DefaultConfig()
	n.Decode(r, &c)
	path := n.Path()
	if path == "" {
		path = "rules"
	}
	s := &Settings{Escalation: c.Escalation, MaxGapFraction: c.MaxGapFraction, PresenceEvents: c.PresenceEvents}
	off, err := parseOffset(c.UTCOffset)
	if err != nil {
		r.At(path+".utc_offset", "%v", err)
	}
	s.Offset = off
	ds, ns := checkWindows(r, path+".windows", c.Windows)
	qs, qe, q, err := parseSpan(c.QuietHours)
	if err != nil {
		r.At(path+".quiet_hours", "%v", err)
	}
	checkThresholds(r, path+".thresholds", c.Thresholds)
	e := c.Escalation
	for name, d := range map[string]config.Duration{"l2": e.L2, "l3": e.L3, "sos_l2": e.SOSL2, "sos_l3": e.SOSL3} {
		if d.Std() < time.Minute {
			r.At(path+".escalation."+name, "%s is too short: at least 1m", d)
		}
	}
	if e.L3 <= e.L2 {
		r.At(path+".escalation.l3", "%s must be later than l2 (%s)", e.L3, e.L2)
	}
	if e.SOSL3 <= e.SOSL2 {
		r.At(path+".escalation.sos_l3", "%s must be later than sos_l2 (%s)", e.SOSL3, e.SOSL2)
	}
	if c.MaxGapFraction < 0 || c.MaxGapFraction > 1 {
		r.At(path+".max_gap_fraction", "%v: want a fraction between 0 and 1", c.MaxGapFraction)
	}
	globalOff := checkDisabled(r, path+".disabled", c.Disabled)

	devices := map[string]config.Device{}
	for _, d := range cfg.Devices {
		devices[d.ID] = d
	}
	bound := map[string]string{}
	seen := map[string]bool{}
	for i, ec := range c.Elders {
		p := fmt.Sprintf("%s.elders[%d]", path, i)
		el := Elder{Household: ec.Household, T: c.Thresholds, DayStart: ds, NightStart: ns,
			Quiet: q, QuietStart: qs, QuietEnd: qe, Disabled: map[Rule]bool{}, Roles: map[string]string{},
			Contacts: ec.Contacts, Risk: map[string]bool{}, Learn: c.LearnedLimits}
		if ec.LearnedLimits != nil {
			el.Learn = *ec.LearnedLimits
		}
		for j, rk := range ec.Risk {
			if !slices.Contains(knownRisks, rk) {
				r.At(fmt.Sprintf("%s.risk[%d]", p, j), "unknown risk %q: want one of %s", rk, strings.Join(knownRisks, ", "))
				continue
			}
			el.Risk[rk] = true
		}
		switch {
		case ec.Household == "":
			r.At(p+".household", "missing: the household id from compound.households")
		case seen[ec.Household]:
			r.At(p+".household", "household %q is listed twice", ec.Household)
		default:
			if _, ok := cfg.Household(ec.Household); !ok {
				r.At(p+".household", "unknown household %q: declare it under compound.households", ec.Household)
			}
		}
		seen[ec.Household] = true
		if !ec.Thresholds.IsZero() {
			ec.Thresholds.Decode(r, &el.T)
			checkThresholds(r, p+".thresholds", el.T)
		}
		if ec.Windows != nil {
			w := c.Windows
			if ec.Windows.DayStart != "" {
				w.DayStart = ec.Windows.DayStart
			}
			if ec.Windows.NightStart != "" {
				w.NightStart = ec.Windows.NightStart
			}
			el.DayStart, el.NightStart = checkWindows(r, p+".windows", w)
		}
		if ec.QuietHours != nil {
			el.QuietStart, el.QuietEnd, el.Quiet, err = parseSpan(*ec.QuietHours)
			if err != nil {
				r.At(p+".quiet_hours", "%v", err)
			}
		}
		for rl := range globalOff {
			el.Disabled[rl] = true
		}
		for rl := range checkDisabled(r, p+".disabled", ec.Disabled) {
			el.Disabled[rl] = true
		}
		for j, id := range ec.Contacts {
			if id == "" || len(id) > 64 || strings.ContainsAny(id, " \t\n") {
				r.At(fmt.Sprintf("%s.contacts[%d]", p, j), "%q: want an opaque id (no names or phone numbers), 1–64 characters without spaces", id)
			}
		}
		if len(ec.Sensors) > 0 {
			for j, id := range ec.Sensors {
				sp := fmt.Sprintf("%s.sensors[%d]", p, j)
				d, ok := devices[id]
				if !ok {
					r.At(sp, "unknown device %q", id)
					continue
				}
				if other, dup := bound[id]; dup {
					r.At(sp, "device %q is already bound to household %q", id, other)
				}
				bound[id] = ec.Household
				el.Sensors = append(el.Sensors, id)
				el.Roles[id] = roleOfKind(d.Kind)
			}
		} else {
			for _, d := range cfg.Devices {
				if d.Household == ec.Household && !d.Disabled {
					el.Sensors = append(el.Sensors, d.ID)
					el.Roles[d.ID] = roleOfKind(d.Kind)
				}
			}
		}
		s.Elders = append(s.Elders, el)
	}
	resolvedMu.Lock()
	resolved[cfg] = s
	resolvedMu.Unlock()
}

func checkDisabled(r *config.Reporter, path string, names []string) map[Rule]bool {
	out := map[Rule]bool{}
	for i, n := range names {
		if !knownRule(n) {
			r.At(fmt.Sprintf("%s[%d]", path, i), "unknown rule %q", n)
			continue
		}
		out[Rule(n)] = true
	}
	return out
}

func checkWindows(r *config.Reporter, path string, w Windows) (day, night int) {
	day, err := parseClock(w.DayStart)
	if err != nil {
		r.At(path+".day_start", "%v", err)
	}
	night, err = parseClock(w.NightStart)
	if err != nil {
		r.At(path+".night_start", "%v", err)
	}
	if err == nil && night <= day {
		r.At(path+".night_start", "%q must be later in the day than day_start %q", w.NightStart, w.DayStart)
	}
	return day, night
}

func checkThresholds(r *config.Reporter, path string, t Thresholds) {
	atLeast := func(name string, d config.Duration, min time.Duration) {
		if d.Std() < min {
			r.At(path+"."+name, "%s is too short: at least %s", d, min)
		}
	}
	atLeast("inactivity_day", t.InactivityDay, 30*time.Minute)
	atLeast("inactivity_night", t.InactivityNight, 30*time.Minute)
	atLeast("no_exit", t.NoExit, 2*time.Hour)
	if t.NoExitActive < t.NoExit {
		r.At(path+".no_exit_active", "%s must be at least no_exit (%s)", t.NoExitActive, t.NoExit)
	}
	atLeast("not_returned", t.NotReturned, 30*time.Minute)
	atLeast("not_returned_night", t.NotReturnedNight, 5*time.Minute)
	atLeast("door_left_open", t.DoorLeftOpen, time.Minute)
	atLeast("loitering", t.Loitering, 30*time.Second)
	atLeast("doorbell_window", t.DoorbellWindow, time.Minute)
	atLeast("away_after", t.AwayAfter, time.Minute)
	if t.NightOpenings < 1 {
		r.At(path+".night_openings", "%d: want at least 1", t.NightOpenings)
	}
	if t.NightDoorbells < 1 {
		r.At(path+".night_doorbells", "%d: want at least 1", t.NightDoorbells)
	}
	if t.BaselineDays < 7 {
		r.At(path+".baseline_days", "%d: want at least 7 days of history", t.BaselineDays)
	}
	if t.BaselineK < 1 || t.BaselineK > 10 {
		r.At(path+".baseline_k", "%v: want between 1 and 10 standard deviations", t.BaselineK)
	}
	atLeast("inactivity_floor", t.InactivityFloor, 30*time.Minute)
	if t.InactivityFloor > t.InactivityDay {
		r.At(path+".inactivity_floor", "%s must not be above inactivity_day (%s): it is the shortest limit learning may give", t.InactivityFloor, t.InactivityDay)
	}
	atLeast("stuck_after", t.StuckAfter, time.Hour)
}

// parseClock parses "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
		return 0, fmt.Errorf("%q: want a local time like \"06:00\"", s)
	}
	return hh*60 + mm, nil
}

// parseSpan parses "22:00-07:00"; "" means none.
func parseSpan(s string) (start, end int, ok bool, err error) {
	if s == "" || s == "none" {
		return 0, 0, false, nil
	}
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false, fmt.Errorf("%q: want a span like \"22:00-07:00\" or \"none\"", s)
	}
	if start, err = parseClock(strings.TrimSpace(a)); err != nil {
		return 0, 0, false, err
	}
	if end, err = parseClock(strings.TrimSpace(b)); err != nil {
		return 0, 0, false, err
	}
	if start == end {
		return 0, 0, false, fmt.Errorf("%q: start and end are the same", s)
	}
	return start, end, true, nil
}

// parseOffset parses "+08:00" into seconds.
func parseOffset(s string) (int, error) {
	t, err := time.Parse("-07:00", s)
	if err != nil {
		return 8 * 3600, fmt.Errorf("%q: want a UTC offset like \"+08:00\"", s)
	}
	_, off := t.Zone()
	return off, nil
}

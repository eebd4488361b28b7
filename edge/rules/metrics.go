package rules

import (
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// RuleLevel keys a count by rule and escalation level.
type RuleLevel struct {
	Rule  Rule
	Level int
}

// RuleOutcome keys a count by rule and resolution outcome.
type RuleOutcome struct {
	Rule    Rule
	Outcome string
}

// Metrics is what the rules report for monitoring (the status page's
// /metrics). Its keys are rule names, levels and outcomes only, never a
// household: which home has an alert is personal data (PIPL) and stays
// on the authenticated pages.
type Metrics struct {
	Elders    int
	Open      map[RuleLevel]int      // open alerts now
	Raised    map[Rule]uint64        // alerts raised since start
	Escalated map[RuleLevel]uint64   // escalations, by the level reached
	Resolved  map[RuleOutcome]uint64 // resolutions, by outcome ("cleared" = the engine's own)
	NoData    map[Rule]uint64        // "no data" decisions
	Hints     uint64                 // advisory hints
	Events    uint64                 // log events processed
	// LagEvents is how many log events the engine has not processed yet;
	// LagSeconds (valid when LagKnown) how old the oldest of them is.
	LagEvents  uint64
	LagSeconds float64
	LagKnown   bool
	// CheckpointAge is the time since the state was last persisted (zero
	// before the first checkpoint).
	CheckpointAge time.Duration
}

// counters are the engine's running totals behind [Metrics].
type counters struct {
	raised    map[Rule]uint64
	escalated map[RuleLevel]uint64
	resolved  map[RuleOutcome]uint64
	nodata    map[Rule]uint64
	hints     uint64
	events    uint64
}

// count notes a derived event actually emitted (not one suppressed as
// already in the log: the process that emitted it counted it).
func (c *counters) count(k event.Kind, data map[string]any) {
	if c.raised == nil {
		c.raised, c.escalated = map[Rule]uint64{}, map[RuleLevel]uint64{}
		c.resolved, c.nodata = map[RuleOutcome]uint64{}, map[Rule]uint64{}
	}
	r, _ := data["rule"].(Rule)
	switch k {
	case event.ElderAlertRaised:
		c.raised[r]++
	case event.ElderAlertEscalated:
		l, _ := data["level"].(int)
		c.escalated[RuleLevel{r, l}]++
	case event.ElderAlertResolved:
		o, _ := data["outcome"].(string)
		switch o {
		case OutcomeSafe, OutcomeFalseAlarm, OutcomeNeededHelp, OutcomeEmergency, OutcomeCleared:
		default:
			// A resolution from elsewhere in the log with a free-form
			// outcome: a label must stay a small known set.
			o = "other"
		}
		c.resolved[RuleOutcome{r, o}]++
	case event.ElderNoData:
		c.nodata[r]++
	case event.ElderHint:
		c.hints++
	}
}

// metrics returns the engine's part of [Metrics] (copies).
func (e *Engine) metrics() Metrics {
	m := Metrics{Elders: len(e.list), Open: map[RuleLevel]int{}, Raised: map[Rule]uint64{},
		Escalated: map[RuleLevel]uint64{}, Resolved: map[RuleOutcome]uint64{}, NoData: map[Rule]uint64{},
		Hints: e.cnt.hints, Events: e.cnt.events}
	for _, el := range e.list {
		for _, a := range el.st.Alerts {
			m.Open[RuleLevel{a.Rule, a.Level}]++
		}
	}
	for k, v := range e.cnt.raised {
		m.Raised[k] = v
	}
	for k, v := range e.cnt.escalated {
		m.Escalated[k] = v
	}
	for k, v := range e.cnt.resolved {
		m.Resolved[k] = v
	}
	for k, v := range e.cnt.nodata {
		m.NoData[k] = v
	}
	return m
}

// Metrics returns the engine's counts and open alerts (no lag or
// checkpoint: those are the service's).
func (e *Engine) Metrics() Metrics { return e.metrics() }

// Metrics returns the service's figures for monitoring. It reads the log
// for the lag, outside the engine's lock.
func (s *Service) Metrics() Metrics {
	s.mu.Lock()
	m := s.e.metrics()
	seq := s.e.Seq()
	cp := s.lastCP
	s.mu.Unlock()
	if !cp.IsZero() {
		m.CheckpointAge = time.Since(cp)
	}
	if last := s.o.Log.LastSeq(); last > seq {
		m.LagEvents = last - seq
		if evs, err := s.o.Log.ReadRange(seq, 1); err == nil && len(evs) > 0 && !evs[0].Time.IsZero() {
			m.LagSeconds, m.LagKnown = max(0, s.o.Clock.Now().Sub(evs[0].Time).Seconds()), true
		}
	} else {
		m.LagKnown = true
	}
	return m
}

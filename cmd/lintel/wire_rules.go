package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/rules"
	"github.com/lintel-edge/lintel/edge/status"
)

// The elder-safety rules run as a service of `lintel run` when the
// configuration enrols at least one elder (rules.elders). They follow the
// store's live events (falling back to reading the log from their own
// position), append derived events through the runtime, and serve the
// alert and mode commands of the status page and the platform.
func init() {
	services = append(services, serviceFactory{name: "rules", order: 10, new: newRulesService})
	StatusMetrics = append(StatusMetrics, func(r prometheus.Registerer) error { return r.Register(rulesMetrics{}) })
}

var (
	rulesMu  sync.Mutex
	rulesSvc *rules.Service
)

// runningRules returns the running rules service, or nil; the status page
// reads its Snapshot.
func runningRules() *rules.Service {
	rulesMu.Lock()
	defer rulesMu.Unlock()
	return rulesSvc
}

func newRulesService(env edge.Env, gw *gateway) (edge.Component, error) {
	s := rules.FromConfig(env.Config)
	if len(s.Elders) == 0 {
		env.Logger.Info("rules off: no elders enrolled under rules.elders")
		rulesMu.Lock()
		rulesSvc = nil // not a previous serve's (tests run several)
		rulesMu.Unlock()
		return nil, nil
	}
	svc, err := rules.NewService(rules.ServiceOptions{
		Settings: s, Log: env.Store, State: env.Store, Emit: env.Emit, Cursor: "rules",
		Logger: env.Logger.With("component", "rules"),
	})
	if err != nil {
		return nil, err
	}
	registerRuleCommands(env.Commands, svc)
	rulesMu.Lock()
	rulesSvc = svc
	rulesMu.Unlock()
	return svc, nil
}

// strictArgs decodes command arguments, refusing unknown fields.
func strictArgs(args json.RawMessage, v any) error {
	d := json.NewDecoder(bytes.NewReader(args))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", rules.ErrBadArgument, err)
	}
	return nil
}

func registerRuleCommands(c *edge.Commands, svc *rules.Service) {
	c.Handle("alert.ack", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a struct {
			AlertID string `json:"alert_id"`
			Where   string `json:"where"`
			Note    string `json:"note"`
		}
		if err := strictArgs(args, &a); err != nil {
			return nil, err
		}
		ev, err := svc.Ack(ctx, a.AlertID, actor, a.Where, a.Note)
		if err != nil {
			return nil, err
		}
		return map[string]any{"alert_id": a.AlertID, "event": ev.ID}, nil
	})
	c.Handle("alert.resolve", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a struct {
			AlertID string `json:"alert_id"`
			Outcome string `json:"outcome"`
			Reason  string `json:"reason"`
			Note    string `json:"note"`
		}
		if err := strictArgs(args, &a); err != nil {
			return nil, err
		}
		ev, err := svc.Resolve(ctx, a.AlertID, actor, a.Outcome, a.Reason, a.Note)
		if err != nil {
			return nil, err
		}
		return map[string]any{"alert_id": a.AlertID, "outcome": a.Outcome, "event": ev.ID}, nil
	})
	c.Handle("elder.mode", func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a struct {
			Household string  `json:"household"`
			Mode      string  `json:"mode"`
			Until     string  `json:"until"`
			Hours     float64 `json:"hours"`
			Note      string  `json:"note"`
		}
		if err := strictArgs(args, &a); err != nil {
			return nil, err
		}
		until, err := rules.ParseUntil(svc.Now(), a.Until, a.Hours)
		if err != nil {
			return nil, err
		}
		ev, err := svc.SetMode(ctx, a.Household, a.Mode, until, actor, a.Note)
		if err != nil {
			return nil, err
		}
		res := map[string]any{"household": a.Household, "mode": a.Mode, "event": ev.ID}
		if !until.IsZero() {
			res["until"] = until
		}
		return res, nil
	})
}

// rulesMetrics exports the rules engine's figures on the status page's
// /metrics. Labels are rule names, levels and outcomes only — never a
// household id: which home has an alert is personal data (PIPL) and is
// shown only on the authenticated pages. Without a running engine it
// exports nothing.
type rulesMetrics struct{}

var (
	rulesDescElders = prometheus.NewDesc("lintel_rules_elders",
		"Elders monitored by the rules engine.", nil, nil)
	rulesDescOpen = prometheus.NewDesc("lintel_rules_alerts_open",
		"Open elder-safety alerts by rule and escalation level.", []string{"rule", "level"}, nil)
	rulesDescRaised = prometheus.NewDesc("lintel_rules_alerts_raised_total",
		"Elder-safety alerts raised since the gateway started, by rule.", []string{"rule"}, nil)
	rulesDescEscalated = prometheus.NewDesc("lintel_rules_alerts_escalated_total",
		"Escalations of unacknowledged alerts, by rule and the level reached.", []string{"rule", "level"}, nil)
	rulesDescResolved = prometheus.NewDesc("lintel_rules_alerts_resolved_total",
		"Resolved alerts by rule and outcome (cleared: the condition ended before anyone acknowledged).", []string{"rule", "outcome"}, nil)
	rulesDescNoData = prometheus.NewDesc("lintel_rules_nodata_total",
		"\"No data\" decisions (gateway down or sensors silent for the window), by rule.", []string{"rule"}, nil)
	rulesDescHints = prometheus.NewDesc("lintel_rules_hints_total",
		"Advisory baseline_deviation hints (never alarms).", nil, nil)
	rulesDescEvents = prometheus.NewDesc("lintel_rules_events_processed_total",
		"Log events the rules engine has processed.", nil, nil)
	rulesDescLagEvents = prometheus.NewDesc("lintel_rules_lag_events",
		"Log events not yet processed by the rules engine.", nil, nil)
	rulesDescLagSeconds = prometheus.NewDesc("lintel_rules_lag_seconds",
		"Age of the oldest log event not yet processed by the rules engine (0 when caught up).", nil, nil)
	rulesDescCheckpoint = prometheus.NewDesc("lintel_rules_checkpoint_age_seconds",
		"Seconds since the rules engine last persisted its state.", nil, nil)
)

func (rulesMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rulesDescElders, rulesDescOpen, rulesDescRaised, rulesDescEscalated,
		rulesDescResolved, rulesDescNoData, rulesDescHints, rulesDescEvents, rulesDescLagEvents,
		rulesDescLagSeconds, rulesDescCheckpoint} {
		ch <- d
	}
}

func (rulesMetrics) Collect(ch chan<- prometheus.Metric) {
	svc := runningRules()
	if svc == nil {
		return
	}
	m := svc.Metrics()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(rulesDescElders, float64(m.Elders))
	// Every rule and level, zeros included, so a dashboard sees an alert
	// count fall back to 0 rather than a series vanish.
	for _, r := range rules.AllRules {
		for l := 1; l <= 3; l++ {
			gauge(rulesDescOpen, float64(m.Open[rules.RuleLevel{Rule: r, Level: l}]), string(r), strconv.Itoa(l))
		}
		counter(rulesDescRaised, m.Raised[r], string(r))
		counter(rulesDescNoData, m.NoData[r], string(r))
	}
	for k, v := range m.Escalated {
		counter(rulesDescEscalated, v, string(k.Rule), strconv.Itoa(k.Level))
	}
	for k, v := range m.Resolved {
		counter(rulesDescResolved, v, string(k.Rule), k.Outcome)
	}
	counter(rulesDescHints, m.Hints)
	counter(rulesDescEvents, m.Events)
	gauge(rulesDescLagEvents, float64(m.LagEvents))
	if m.LagKnown {
		gauge(rulesDescLagSeconds, m.LagSeconds)
	}
	if m.CheckpointAge > 0 {
		gauge(rulesDescCheckpoint, m.CheckpointAge.Seconds())
	}
}

// statusLimits maps the limits in force to the household page's.
func statusLimits(ls []rules.RuleLimit) []status.Limit {
	out := make([]status.Limit, 0, len(ls))
	for _, l := range ls {
		out = append(out, status.Limit{Rule: string(l.Rule), Applied: l.Applied, Basis: l.Basis, WhyZh: l.WhyZh, WhyEn: l.WhyEn})
	}
	return out
}

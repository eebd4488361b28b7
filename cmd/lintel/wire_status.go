package main

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/status"
)

// The local status page runs as a service of `lintel run` unless
// status.disabled is set. It reads the event log, sends actions through
// the command router (which writes the audit events), and takes the
// households' presence and modes from the rules engine when it runs.
func init() {
	services = append(services, serviceFactory{name: "status", order: 20, new: newStatusService})
	configNotes = append(configNotes, status.Notes)
}

// newMetricsRegistry returns the registry served on the status page's
// /metrics. Components wired here register their collectors on it (the
// drivers' below; sinks and the rules engine once the lead wires them).
// Each serve gets its own: a registry refuses a collector registered
// twice, and a process may run serve more than once (tests).
func newMetricsRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// StatusMetrics are hooks that register collectors on the registry of
// the status page's /metrics; wiring files append to it from init (the
// rules engine's in wire_rules.go). A collector reads its component at
// scrape time, so the order services start in does not matter.
var StatusMetrics []func(prometheus.Registerer) error

func newStatusService(env edge.Env, gw *gateway) (edge.Component, error) {
	sc, err := status.FromConfig(env.Config)
	if err != nil {
		return nil, err
	}
	if sc.Disabled {
		env.Logger.Info("status page off: status.disabled is set")
		return nil, nil
	}
	reg := newMetricsRegistry()
	drivers := newDriverHealth(env.Config)
	if err := reg.Register(driverMetrics{h: drivers, perDevice: sc.Metrics.PerDevice}); err != nil {
		return nil, fmt.Errorf("driver metrics: %w", err)
	}
	for _, register := range StatusMetrics {
		if err := register(reg); err != nil {
			return nil, fmt.Errorf("status metrics: %w", err)
		}
	}
	return status.New(status.Options{
		Config: env.Config, Status: sc, Log: env.Store, Logger: env.Logger.With("component", "status"),
		Commands: env.Commands, Version: env.Version, Started: gw.started,
		Households: rulesHouseholds{},
		Devices:    drivers,
		Buses:      drivers,
		Sinks:      sinkHealth{cfg: env.Config, st: env.Store},
		StoreStats: func() any { return env.Store.Stats() },
		Storage: func() status.Storage {
			st := env.Store.Stats()
			out := status.Storage{Full: st.Disk.Full, FullSince: st.Disk.FullSince, FreeBytes: st.Disk.FreeBytes,
				TotalBytes: st.Disk.TotalBytes, QuotaBytes: st.Disk.QuotaBytes,
				Quarantined: st.Recovery.Quarantined != "" || st.Recovery.JournalQuarantined != ""}
			for _, r := range st.Recovery.Lost {
				out.Lost += r.Len()
			}
			return out
		},
		Counters: func() map[string]uint64 {
			em, rej := gw.runtime.Counts()
			return map[string]uint64{"events_emitted": em, "events_rejected": rej}
		},
		Clock:    func() (time.Time, event.TimeQuality) { return edge.SystemClock{}.Now() },
		Registry: reg,
		Recent:   gw.recent,
	})
}

// rulesHouseholds adapts the rules engine's snapshot to the page. Without
// a running engine it returns nothing and the page derives households
// from the log.
type rulesHouseholds struct{}

func (rulesHouseholds) Households() []status.Household {
	svc := runningRules()
	if svc == nil {
		return nil
	}
	snap := svc.Snapshot()
	out := make([]status.Household, 0, len(snap.Households))
	for _, h := range snap.Households {
		out = append(out, status.Household{
			ID: h.Household, Presence: h.Presence.State, PresenceReason: h.Presence.Reason, PresenceReasonZh: h.Presence.ReasonZh,
			LastActivity: h.LastActivity, Mode: h.Mode.Name, ModeUntil: h.Mode.Until, OpenAlerts: len(h.Alerts),
			Limits: statusLimits(h.Limits),
		})
	}
	return out
}

package sdnotify

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Watchdog feeds systemd's service watchdog while, and only while, every
// loop registered in Liveness is alive.
type Watchdog struct {
	Notifier *Notifier
	Liveness *Liveness
	// Interval between pings: half of [WatchdogInterval], as sd_notify(3)
	// recommends, so one late tick does not expire the timer.
	Interval time.Duration
	Logger   *slog.Logger

	withheld string // stale loops last reported, "" while pinging
	sendErr  string // last notify error logged, to log each kind once
}

// Run pings every Interval until ctx ends and returns nil then. With an
// Interval of 0 (watchdog off) it only waits for ctx.
func (w *Watchdog) Run(ctx context.Context) error {
	if w.Interval <= 0 {
		<-ctx.Done()
		return nil
	}
	w.Tick()
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			w.Tick()
		}
	}
}

// Tick checks the loops once and pings if all are alive. It reports
// whether it pinged. Run calls it; it is exported for tests of wiring.
func (w *Watchdog) Tick() bool {
	stale := w.Liveness.Stale()
	if len(stale) > 0 {
		parts := make([]string, len(stale))
		for i, s := range stale {
			parts[i] = fmt.Sprintf("%s silent %s (deadline %s)", s.Name, s.Silent.Round(time.Second), s.Deadline)
		}
		desc := strings.Join(parts, ", ")
		names := make([]string, len(stale))
		for i, s := range stale {
			names[i] = s.Name
		}
		key := strings.Join(names, ",")
		// Log when the set of stale loops changes, not on every tick: the
		// message matters once, and systemd will restart us shortly.
		if key != w.withheld {
			w.Logger.Error("watchdog ping withheld: critical loop stalled, systemd will restart the daemon",
				"loops", key, "detail", desc)
			w.send(Status("watchdog withheld: " + desc))
		}
		w.withheld = key
		return false
	}
	if w.withheld != "" {
		w.Logger.Warn("watchdog pings resumed", "loops", w.withheld)
		w.withheld = ""
		w.send(Ping, Status("running"))
		return true
	}
	w.send(Ping)
	return true
}

func (w *Watchdog) send(states ...string) {
	err := w.Notifier.Notify(states...)
	switch {
	case err == nil:
		w.sendErr = ""
	case err.Error() != w.sendErr:
		w.sendErr = err.Error()
		w.Logger.Warn("notify systemd", "err", err)
	}
}

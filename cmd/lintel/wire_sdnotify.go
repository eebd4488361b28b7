package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/sdnotify"
)

// The daemon under systemd (packaging/lintel.service: Type=notify,
// WatchdogSec=30s): READY=1 once every part has started, WATCHDOG=1 every
// WatchdogSec/2 while the critical loops in sdnotify.Default are alive,
// STOPPING=1 at shutdown. Outside systemd this service is not created.
func init() {
	services = append(services, serviceFactory{name: "sdnotify", order: -1000, new: newSystemdNotify})
}

// The store writer is probed from here rather than beating itself: a
// new LastSeq proves a commit happened; when the log is idle a Flush
// round-trips the writer goroutine. Flush commits (an fsync), so it is
// done at most once a minute on an idle gateway to spare the flash.
const (
	storeLoop         = "store/writer"
	storeProbeEvery   = 5 * time.Second
	storeProbeIdle    = 60 * time.Second
	storeProbeTimeout = 10 * time.Second
	// storeDeadline > storeProbeIdle + storeProbeTimeout + storeProbeEvery,
	// so a healthy idle store is never reported stale.
	storeDeadline = 90 * time.Second
)

type systemdNotify struct {
	n        *sdnotify.Notifier
	interval time.Duration // ping period; 0 = watchdog off
	gw       *gateway
	log      *slog.Logger
}

func newSystemdNotify(env edge.Env, gw *gateway) (edge.Component, error) {
	n := sdnotify.FromEnv()
	if !n.Enabled() {
		return nil, nil
	}
	log := env.Logger.With("component", "sdnotify")
	wd, err := sdnotify.WatchdogInterval()
	if err != nil {
		// A malformed variable is systemd's or a wrapper's bug; without
		// pings the unit would be killed, so say why before it happens.
		log.Error("watchdog settings unreadable, not pinging", "err", err)
	}
	return &systemdNotify{n: n, interval: wd / 2, gw: gw, log: log}, nil
}

func (s *systemdNotify) Run(ctx context.Context) error {
	select {
	case <-s.gw.ready:
	case <-ctx.Done():
		s.notify(sdnotify.Stopping)
		return nil
	}
	s.notify(sdnotify.Ready, sdnotify.Status(fmt.Sprintf("运行中 running: gateway %s, %d devices, %d sinks",
		s.gw.cfg.Gateway.ID, len(s.gw.cfg.Devices), len(s.gw.cfg.Sinks))))
	s.log.Info("systemd notified ready", "watchdog_ping", s.interval.String())

	var wg sync.WaitGroup
	if s.interval > 0 {
		sdnotify.Register(storeLoop, storeDeadline)
		defer sdnotify.Unregister(storeLoop)
		wg.Go(func() { s.probeStore(ctx) })
		w := &sdnotify.Watchdog{Notifier: s.n, Liveness: sdnotify.Default, Interval: s.interval, Logger: s.log}
		wg.Go(func() { _ = w.Run(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	s.notify(sdnotify.Stopping, sdnotify.Status("stopping"))
	return nil
}

// probeStore beats storeLoop whenever the store writer is seen to work.
func (s *systemdNotify) probeStore(ctx context.Context) {
	last, seen := s.gw.store.LastSeq(), time.Now()
	t := time.NewTicker(storeProbeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if seq := s.gw.store.LastSeq(); seq != last {
			last, seen = seq, time.Now()
			sdnotify.Beat(storeLoop)
			continue
		}
		if time.Since(seen) < storeProbeIdle {
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, storeProbeTimeout)
		err := s.gw.store.Flush(pctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("store writer probe failed", "err", err)
			}
			continue
		}
		seen = time.Now()
		sdnotify.Beat(storeLoop)
	}
}

func (s *systemdNotify) notify(states ...string) {
	if err := s.n.Notify(states...); err != nil {
		s.log.Warn("notify systemd", "err", err)
	}
}

// systemdStopping tells systemd at once that the daemon is stopping. serve
// should call it when shutdown begins: the service's own STOPPING=1 comes
// only after drivers and sinks have drained (up to 15 s), and on a
// self-initiated stop systemd would meanwhile still expect watchdog pings.
func systemdStopping() {
	_ = sdnotify.FromEnv().Notify(sdnotify.Stopping, sdnotify.Status("stopping"))
}

// Referenced until serve calls it, so linters do not flag it as unused.
var _ = systemdStopping

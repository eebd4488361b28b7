package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/status"
	"github.com/lintel-edge/lintel/edge/store"
)

func init() {
	register(command{name: "run", summary: "run the gateway daemon (lintel run -c /etc/lintel/lintel.yaml)", run: runDaemon})
}

// Shutdown budgets. Their sum stays below the unit's TimeoutStopSec.
const (
	driverStopBudget = 5 * time.Second
	sinkDrainBudget  = 10 * time.Second
	serviceBudget    = 5 * time.Second
)

// A service is a gateway part wired by cmd/lintel itself rather than by a
// driver or sink registry: the rules engine, the status page. Files that
// add one append a factory to services from init.
type serviceFactory struct {
	name  string
	order int // lower starts earlier and stops later
	new   func(env edge.Env, gw *gateway) (edge.Component, error)
}

var services []serviceFactory

// gateway is the running daemon's parts, for services that need them.
type gateway struct {
	cfg      *config.Config
	log      *slog.Logger
	store    *store.Store
	runtime  *edge.Runtime
	commands *edge.Commands
	started  time.Time
	ready    chan struct{}
	// recent keeps the latest warnings and errors for the diagnostics page.
	recent *status.RecentLog
}

// storeCursors name services that read the log under a cursor of their
// own (the rules engine): the store keeps events until they acked them.
var storeCursors = map[string]func(*config.Config) bool{}

func runDaemon(ctx context.Context, args []string, io stdio) error {
	fs := newFlags("run", io)
	file := fs.String("c", "/etc/lintel/lintel.yaml", "configuration file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log, io)

	// The first SIGINT/SIGTERM starts the ordered shutdown; stop() restores
	// default handling so a second signal ends the process at once.
	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-sigCtx.Done()
		stop()
	}()
	return serve(sigCtx, cfg, log, nil)
}

// serve runs the gateway until ctx ends. onReady, if set, is called once
// every component has started (tests and the demo use it).
func serve(ctx context.Context, cfg *config.Config, log *slog.Logger, onReady func(*gateway)) error {
	start := time.Now()
	// What `lintel check` checks beyond the file, before anything is
	// opened: a configuration that cannot start leaves no trace.
	if err := preflight(cfg); err != nil {
		return err
	}
	recent := status.NewRecentLog(log.Handler())
	log = slog.New(recent)
	sinkNames := make([]string, 0, len(cfg.Sinks))
	for name := range cfg.Sinks {
		sinkNames = append(sinkNames, name)
	}
	sort.Strings(sinkNames)
	cursors := append([]string(nil), sinkNames...)
	for name, wanted := range storeCursors {
		if wanted(cfg) {
			cursors = append(cursors, name)
		}
	}
	sort.Strings(cursors)

	st, err := store.Open(store.Options{
		Path: cfg.StorePath(), Gateway: cfg.Gateway.ID, Compound: cfg.Gateway.Compound, Sinks: cursors,
		MaxBytes: int64(cfg.Storage.MaxBytes), MaxAge: cfg.Storage.MaxAge.Std(), FlushWindow: cfg.Storage.FlushWindow.Std(),
		Logger:      log.With("component", "store"),
		TimeQuality: func() event.TimeQuality { _, q := edge.SystemClock{}.Now(); return q },
	})
	if err != nil {
		return fmt.Errorf("open event log %s: %w", cfg.StorePath(), err)
	}
	// The store closes last, after everything that writes to it stopped;
	// a failed final commit means the stop was not clean.
	storeClosed := false
	closeStore := func() error {
		storeClosed = true
		if err := st.Close(); err != nil {
			log.Error("close event log", "err", err)
			return err
		}
		log.Info("event log closed")
		return nil
	}
	defer func() {
		if !storeClosed {
			_ = closeStore()
		}
	}()

	for _, n := range notes(cfg) {
		log.Warn("configuration note", "note", n)
	}
	rt := edge.NewRuntime(cfg, st, log.With("component", "runtime"), nil)
	cmds := edge.NewCommands(rt)
	env := edge.Env{Config: cfg, Logger: log, Emit: rt, Store: st, Commands: cmds, Version: version}
	gw := &gateway{cfg: cfg, log: log, store: st, runtime: rt, commands: cmds, started: start, ready: make(chan struct{}), recent: recent}

	drv, snk, err := buildParts(env)
	if err != nil {
		return err
	}
	var svc []part
	sort.SliceStable(services, func(i, j int) bool { return services[i].order < services[j].order })
	for _, s := range services {
		c, err := s.new(env, gw)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if c != nil {
			svc = append(svc, part{s.name, c})
		}
	}

	rec := st.Recovery()
	var lost uint64
	for _, r := range rec.Lost {
		lost += r.Len()
	}
	if err := rt.Emit(ctx, event.New(event.GatewayStarted).WithData(map[string]any{
		"version": version, "boot": st.BootCount(), "epoch": st.Epoch(),
		"quarantined":         rec.Quarantined != "" || rec.JournalQuarantined != "",
		"store_quarantined":   rec.Quarantined != "",
		"journal_quarantined": rec.JournalQuarantined != "",
		"unclean_stop":        rec.Unclean,
		"seqs_lost":           lost,
		"seqs_skipped":        rec.Skipped.Len(),
	})); err != nil {
		return fmt.Errorf("record start: %w", err)
	}

	// Start order: services (status page, rules), sinks, then drivers, so
	// nothing produces before its consumers are up. Stop is the reverse.
	failed := make(chan error, len(drv)+len(snk)+len(svc))
	startAll := func(parts []part) (context.CancelFunc, chan struct{}) {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		left := len(parts)
		if left == 0 {
			close(done)
			return cancel, done
		}
		fin := make(chan struct{}, left)
		for _, p := range parts {
			go func() {
				defer func() { fin <- struct{}{} }()
				if err := p.c.Run(cctx); err != nil && cctx.Err() == nil {
					failed <- fmt.Errorf("%s: %w", p.name, err)
				}
			}()
		}
		go func() {
			for range left {
				<-fin
			}
			close(done)
		}()
		return cancel, done
	}
	stopSvc, svcDone := startAll(svc)
	stopSnk, snkDone := startAll(snk)
	stopDrv, drvDone := startAll(drv)
	log.Info("gateway running", "gateway", cfg.Gateway.ID, "compound", cfg.Gateway.Compound,
		"devices", len(cfg.Devices), "drivers", len(drv), "sinks", len(snk), "services", len(svc),
		"startup", time.Since(start).Round(time.Millisecond).String())
	close(gw.ready)
	if onReady != nil {
		onReady(gw)
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "cause", context.Cause(ctx))
	case runErr = <-failed:
		log.Error("component failed, shutting down", "err", runErr)
	}
	systemdStopping()

	wait := func(what string, cancel context.CancelFunc, done chan struct{}, budget time.Duration) {
		cancel()
		select {
		case <-done:
		case <-time.After(budget):
			log.Warn("stop budget exceeded, moving on", "part", what, "budget", budget.String())
		}
	}
	wait("drivers", stopDrv, drvDone, driverStopBudget)
	wait("sinks", stopSnk, snkDone, sinkDrainBudget)
	wait("services", stopSvc, svcDone, serviceBudget)

	// Recorded even after a failure so the platform sees why it stopped.
	stopCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	data := map[string]any{"uptime_s": int64(time.Since(start).Seconds())}
	if runErr != nil {
		data["error"] = runErr.Error()
	}
	if err := rt.Emit(stopCtx, event.New(event.GatewayStopped).WithData(data)); err != nil && !errors.Is(err, store.ErrClosed) {
		log.Warn("record stop", "err", err)
	}
	cerr := closeStore()
	if runErr != nil {
		return runErr
	}
	if cerr != nil {
		log.Error("stopped, but not cleanly: the event log's final commit failed", "err", cerr)
		return fmt.Errorf("close event log: %w", cerr)
	}
	log.Info("stopped cleanly")
	return nil
}

// newLogger builds the daemon's one logger: text for a person at a
// terminal, JSON for journald and files.
func newLogger(c config.Log, io stdio) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	format := c.Format
	if format == "auto" {
		format = "json"
		if f, ok := io.err.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(io.err, opts))
	}
	return slog.New(slog.NewJSONHandler(io.err, opts))
}

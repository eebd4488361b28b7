package main

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// Start-time validation, shared by `lintel run` and `lintel check` so that
// check fails exactly where run would, with the same message.
//
// Loading the file (edge/config) checks what it says. Building the
// drivers and sinks checks what it points at: the env: and file: secrets
// a driver reads when it is built (a camera's password), the certificates
// a sink loads, a driver this binary was built without. Constructors do
// no device or network I/O (drivers/README.md), so check builds them too,
// with nothing behind them, and throws them away; run does the same
// before it opens the event log, then builds them for real.

// part is one component of the running gateway, named for its logs.
type part struct {
	name string
	c    edge.Component
}

// buildParts builds the components of every enabled device's driver and of
// every sink. Every problem is returned at once, as a config error (78).
func buildParts(env edge.Env) (drv, snk []part, err error) {
	cfg := env.Config
	var errs []error
	for _, name := range edge.Drivers() {
		devs := cfg.DevicesFor(name)
		if len(devs) == 0 {
			continue
		}
		cs, err := edge.NewDrivers(name, env, devs)
		if err != nil {
			errs = append(errs, prefixEach("driver "+name, err)...)
			continue
		}
		for _, c := range cs {
			drv = append(drv, part{name, c})
		}
	}
	for _, d := range cfg.Devices {
		if !d.Disabled && !edge.HasDriver(d.Driver) {
			errs = append(errs, fmt.Errorf("device %q: driver %q is not built into this lintel", d.ID, d.Driver))
		}
	}
	names := make([]string, 0, len(cfg.Sinks))
	for name := range cfg.Sinks {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c, err := edge.NewSink(name, env, cfg.Sinks[name])
		if err != nil {
			errs = append(errs, prefixEach("sink "+name, err)...)
			continue
		}
		snk = append(snk, part{name, c})
	}
	if len(errs) > 0 {
		return nil, nil, startProblems(cfg.File, errs)
	}
	return drv, snk, nil
}

// preflight is buildParts with nothing behind the parts: events go
// nowhere, logs are discarded, there is no store and no command registry
// (constructors keep them for Run; the city sink only checks its log is
// set, which a typed nil store is).
func preflight(cfg *config.Config) error {
	env := edge.Env{Config: cfg, Logger: slog.New(slog.DiscardHandler), Emit: discardEmitter{}, Version: version}
	_, _, err := buildParts(env)
	return err
}

type discardEmitter struct{}

func (discardEmitter) Emit(context.Context, ...*event.Event) error { return nil }

// prefixEach flattens a joined error (a driver reports each device's
// problem) into one error per line, each with prefix.
func prefixEach(prefix string, err error) []error {
	var out []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, prefixEach(prefix, e)...)
		}
		return out
	}
	return []error{fmt.Errorf("%s: %w", prefix, err)}
}

// startProblems is the error for what stops run: the problems, one per
// line, and the next step.
func startProblems(file string, errs []error) error {
	lines := make([]string, len(errs))
	for i, e := range errs {
		lines[i] = e.Error()
	}
	err := fmt.Errorf("%s: %d 个启动问题 problem(s) stop `lintel run`:\n%s%w", file, len(errs), strings.Join(lines, "\n"),
		&joined{errs})
	return configErr(withNextStep(err, startNextStep(file, errs)))
}

// joined keeps the problems reachable by errors.Is/As without printing
// them a second time.
type joined struct{ errs []error }

func (j *joined) Error() string   { return "" }
func (j *joined) Unwrap() []error { return j.errs }

func startNextStep(file string, errs []error) string {
	vars := map[string]bool{}
	for _, e := range errs {
		walkErrors(e, func(e error) {
			if u, ok := e.(*config.UnsetEnvError); ok {
				vars[u.Var] = true
			}
		})
	}
	if len(vars) == 0 {
		return fmt.Sprintf("修正上面的问题，然后运行 fix the problems above, then run `lintel check -c %s` "+
			"(a configuration for another machine: `lintel check --file-only -c %s` checks the file alone)", file, file)
	}
	names := make([]string, 0, len(vars))
	demo := true
	for v := range vars {
		names = append(names, v)
		demo = demo && strings.HasPrefix(v, "LINTEL_DEMO_")
	}
	sort.Strings(names)
	list := strings.Join(names, ", ")
	if demo {
		// configs/demo.yaml: the simulated cameras' password is made up
		// by `lintel demo` at each start.
		return fmt.Sprintf("这是演示小区的配置，连接的是模拟设备 this is the demo compound's configuration, for simulated devices: "+
			"run it with its simulators with `lintel demo` (`make demo` in a source tree), which starts them and sets %s itself. "+
			"To run it with `lintel run -c %s` instead, start the simulators (`lintel sim modbus|serial|camera`, see configs/demo.yaml) "+
			"and set %s to the simulated cameras' password (`lintel sim camera -user lintel -password-file FILE`)", list, file, list)
	}
	return fmt.Sprintf("设置环境变量 set %s before starting: for the service, `systemctl edit lintel` and add "+
		"`Environment=%s=…` under [Service]; or give the secret as file:/etc/lintel/<name> (root:lintel, mode 0640). "+
		"Then run `lintel check -c %s`", list, names[0], file)
}

// walkErrors calls f on err and everything it wraps.
func walkErrors(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walkErrors(e, f)
		}
	case interface{ Unwrap() error }:
		walkErrors(u.Unwrap(), f)
	}
}

package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	register(command{name: "check", summary: "validate a configuration file (all problems at once, file:line:col)", run: runCheck})
}

// configNotes say what a valid configuration does that is probably not
// what was meant (every platform command refused, the page on the LAN in
// plain HTTP). `lintel check` prints them and `lintel run` logs them at
// start. Files that know a section add a function from init.
var configNotes []func(c *config.Config) []string

// notes collects every configNotes entry for c.
func notes(c *config.Config) []string {
	var out []string
	for _, f := range configNotes {
		out = append(out, f(c)...)
	}
	return out
}

// checkHooks run after a successful load when --probe is given (issue:
// commissioning); each probes one kind of device and reports.
var checkHooks []func(ctx context.Context, c *config.Config, io stdio) error

func runCheck(ctx context.Context, args []string, io stdio) error {
	fs := newFlags("check", io)
	file := fs.String("c", "/etc/lintel/lintel.yaml", "configuration file")
	dump := fs.Bool("print", false, "print the effective configuration (defaults applied, secrets redacted)")
	fileOnly := fs.Bool("file-only", false, "check the file alone, not what `lintel run` needs beside it (secrets, certificates): for a configuration written for another machine")
	probe := fs.Bool("probe", false, "also reach every device and broker once and print a commissioning report (stop the daemon first)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		return err
	}
	if *dump {
		_, _ = io.out.Write(cfg.Dump())
		return nil
	}
	// What `lintel run` checks before it starts, so check fails where run
	// would: secrets in the environment, certificates, drivers built in.
	if !*fileOnly {
		if err := preflight(cfg); err != nil {
			return err
		}
	}
	fmt.Fprintf(io.out, "%s: 配置有效 configuration OK (%d devices, %d households, %d sinks)\n",
		*file, len(cfg.Devices), len(cfg.Compound.Households), len(cfg.Sinks))
	fmt.Fprint(io.out, placeholderWarning(cfg))
	for _, n := range notes(cfg) {
		fmt.Fprintf(io.out, "警告 warning: %s\n", n)
	}
	if *probe {
		for _, h := range checkHooks {
			if err := h(ctx, cfg, io); err != nil {
				return err
			}
		}
	}
	return nil
}

// loadConfig loads a file and turns its problems into exit code 78.
func loadConfig(file string) (*config.Config, error) {
	cfg, err := config.Load(file)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			return nil, configErr(configNextStep(file, fmt.Errorf("%d 个配置问题 configuration problem(s):\n%w", len(ps), err)))
		}
		return nil, configErr(configNextStep(file, fmt.Errorf("read configuration: %w", err)))
	}
	return cfg, nil
}

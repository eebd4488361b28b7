package main

import (
	"context"
	"fmt"
	"sort"
)

// subcommand is one entry under a dispatcher like `lintel sim` or
// `lintel probe`.
type subcommand struct {
	summary string
	run     func(ctx context.Context, args []string, io stdio) error
}

// simCommands are the device simulators (`lintel sim modbus|serial|camera|elders|recording`),
// each added from its own file.
var simCommands = map[string]subcommand{}

// probeCommands are the installer diagnostics (`lintel probe modbus|serial|rtsp`).
var probeCommands = map[string]subcommand{}

func init() {
	register(command{name: "sim", summary: "run a device or platform simulator (modbus, serial, camera, elders, recording, viid)", run: dispatcher("sim", simCommands)})
	register(command{name: "probe", summary: "installer diagnostics: scan a bus, learn radio codes, test a camera", run: dispatcher("probe", probeCommands)})
}

func dispatcher(name string, subs map[string]subcommand) func(context.Context, []string, stdio) error {
	return func(ctx context.Context, args []string, io stdio) error {
		names := make([]string, 0, len(subs))
		for n := range subs {
			names = append(names, n)
		}
		sort.Strings(names)
		if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
			// Asked-for help is output; a missing target is a mistake.
			w := io.out
			if len(args) == 0 {
				w = io.err
			}
			fmt.Fprintf(w, "用法 usage: lintel %s <%s> [flags]\n", name, joinOr(names))
			for _, n := range names {
				fmt.Fprintf(w, "  %-8s %s\n", n, subs[n].summary)
			}
			fmt.Fprintf(w, "运行 run `lintel %s <%s> -h` 查看各项参数 for each one's flags\n", name, joinOr(names))
			if len(args) == 0 {
				return usageErr("missing what to %s", name)
			}
			return nil
		}
		s, ok := subs[args[0]]
		if !ok {
			return usageErr("unknown %s target %q: want %s", name, args[0], joinOr(names))
		}
		return s.run(ctx, args[1:], io)
	}
}

func joinOr(names []string) string {
	if len(names) == 0 {
		return "(none built in)"
	}
	out := names[0]
	for _, n := range names[1:] {
		out += "|" + n
	}
	return out
}

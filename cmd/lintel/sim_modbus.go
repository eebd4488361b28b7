package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lintel-edge/lintel/drivers/modbus"
	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	simCommands["modbus"] = subcommand{
		summary: "simulate Modbus devices (any profile) over TCP, RTU on a pty, or RTU-over-TCP",
		run:     runSimModbus,
	}
}

// modbusList collects a repeatable flag.
type modbusList []string

func (l *modbusList) String() string     { return strings.Join(*l, ",") }
func (l *modbusList) Set(s string) error { *l = append(*l, s); return nil }

func runSimModbus(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("sim modbus", std)
	var devs, lates, silent modbusList
	fs.Var(&devs, "device", "unit=profile to serve, repeatable (default 1=barrier-gate 2=access-4door 3=relay-16ch 4=rs485-sensor)")
	tcpAddr := fs.String("tcp", "127.0.0.1:1502", "serve Modbus TCP on host:port (empty: off)")
	rtu := fs.Bool("rtu", false, "also serve RTU on a new pty and print its path")
	link := fs.String("link", "", "with -rtu: also create this symlink to the pty")
	rtuTCP := fs.String("rtuovertcp", "", "also serve RTU framing on TCP host:port, like a serial device server")
	random := fs.Duration("random", 5*time.Second, "change a random point this often (0: never; off with -script)")
	baud := fs.Int("baud", 0, "RTU: simulate the wire time of this baud rate (0: reply at once)")
	parity := fs.String("parity", "none", "RTU wire timing: none, even or odd")
	turnaround := fs.Duration("turnaround", 2*time.Millisecond, "RTU wire timing: slave think time")
	fs.Var(&lates, "late", "unit:delay — that unit answers late (the stale-reply trap), repeatable")
	fs.Var(&silent, "silent", "unit that never answers (a dead device), repeatable")
	script := fs.String("script", "", "play a script of changes, looping: a file (lines \"delay unit point value\") or gate-cycle")
	strict := fs.Bool("strict", false, "answer 'illegal data address' for reads of unmapped addresses")
	profDir := fs.String("profiles", "", "extra directory of profiles")
	verbose := fs.Bool("v", false, "log every change and request problem")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *script != "" && !modbusFlagSet(fs, "random") {
		*random = 0
	}
	if len(devs) == 0 {
		devs = modbusList{"1=barrier-gate", "2=access-4door", "3=relay-16ch", "4=rs485-sensor"}
	}
	if *tcpAddr == "" && !*rtu && *rtuTCP == "" {
		return usageErr("nothing to serve: give -tcp, -rtu or -rtuovertcp")
	}
	lvl := slog.LevelWarn
	if *verbose {
		lvl = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(std.err, &slog.HandlerOptions{Level: lvl}))
	cfg := config.New()
	if *profDir != "" {
		cfg.Profiles.Dirs = []string{*profDir}
	}
	sim := modbus.NewSim(modbus.SimWire{Baud: *baud, Parity: *parity, Turnaround: *turnaround}, log)
	var units []string
	for _, d := range devs {
		u, name, ok := strings.Cut(d, "=")
		n, err := strconv.Atoi(u)
		if !ok || err != nil || n < 1 || n > 247 {
			return usageErr("-device %q: want unit=profile with unit 1–247", d)
		}
		p, err := modbus.LoadProfile(cfg, name)
		if err != nil {
			return configErr(fmt.Errorf("-device %s: %w (available: %s)", d, err, strings.Join(cfg.ProfileNames("profiles"), ", ")))
		}
		sd := sim.Add(uint8(n), p)
		sd.Strict = *strict
		units = append(units, fmt.Sprintf("%d=%s", n, name))
	}
	for _, l := range lates {
		u, d, ok := strings.Cut(l, ":")
		n, err := strconv.Atoi(u)
		dur, derr := time.ParseDuration(d)
		if !ok || err != nil || derr != nil || sim.Device(uint8(n)) == nil {
			return usageErr("-late %q: want unit:delay like 2:500ms for a served unit", l)
		}
		sim.Device(uint8(n)).Late = dur
	}
	for _, s := range silent {
		n, err := strconv.Atoi(s)
		if err != nil || sim.Device(uint8(n)) == nil {
			return usageErr("-silent %q: want a served unit id", s)
		}
		sim.Device(uint8(n)).Silent = true
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	fmt.Fprintf(std.out, "Modbus 模拟器 simulator: 设备 devices %s\n", strings.Join(units, " "))
	if *tcpAddr != "" {
		wg.Go(func() { errs <- sim.ServeTCP(ctx, *tcpAddr) })
		fmt.Fprintf(std.out, "Modbus TCP: 网关地址 gateway address tcp://%s\n", *tcpAddr)
	}
	if *rtu {
		master, slave, err := modbus.OpenPTY()
		if err != nil {
			return err
		}
		defer slave.Close()
		if *link != "" {
			_ = os.Remove(*link)
			if err := os.Symlink(slave.Name(), *link); err != nil {
				return withNextStep(fmt.Errorf("link %s: %w", *link, err), "检查 -link 所在目录是否可写 check that the directory of -link is writable")
			}
			defer os.Remove(*link)
		}
		wg.Go(func() { errs <- sim.ServeRTU(ctx, master) })
		fmt.Fprintf(std.out, "Modbus RTU 串口 port: 网关地址 gateway address rtu://%s\n", slave.Name())
	}
	if *rtuTCP != "" {
		ln, err := net.Listen("tcp", *rtuTCP)
		if err != nil {
			return withNextStep(fmt.Errorf("listen %s: %w", *rtuTCP, err), "换一个端口，例如 use another address, e.g. -rtuovertcp 127.0.0.1:0")
		}
		wg.Go(func() { errs <- sim.ServeRTUOverTCP(ctx, ln) })
		fmt.Fprintf(std.out, "RTU over TCP: 网关地址 gateway address rtuovertcp://%s\n", ln.Addr())
	}
	if *script != "" {
		text := modbus.GateCycleScript
		if *script != "gate-cycle" {
			b, err := os.ReadFile(*script)
			if err != nil {
				return usageErr("-script: %v", err)
			}
			text = string(b)
		}
		steps, err := modbus.ParseScript(strings.NewReader(text))
		if err != nil {
			return usageErr("-script %s: %v", *script, err)
		}
		wg.Go(func() {
			if err := sim.Play(ctx, steps, true, func(st modbus.ScriptStep) {
				fmt.Fprintf(std.out, "%s 脚本 script: unit %d %s = %v\n", time.Now().Format("15:04:05"), st.Unit, st.Point, st.Value)
			}); err != nil {
				errs <- err
			}
		})
	}
	if *random > 0 {
		wg.Go(func() {
			sim.Animate(ctx, *random, func(unit uint8, point string, v float64) {
				fmt.Fprintf(std.out, "%s 变化 change: unit %d %s = %v\n", time.Now().Format("15:04:05"), unit, point, v)
			})
		})
	}
	fmt.Fprintln(std.out, "按 Ctrl-C 停止 press Ctrl-C to stop")
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		stop()
	}
	wg.Wait()
	if err != nil {
		// A server that stops on its own almost always could not bind.
		return withNextStep(err, "检查地址是否被占用，换一个端口 check that nothing else listens there, or use another port (-tcp 127.0.0.1:0)")
	}
	return nil
}

func modbusFlagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

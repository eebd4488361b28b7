//go:build !no_serial

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lintel-edge/lintel/drivers/serial"
	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	simCommands["serial"] = subcommand{
		summary: "simulate a 433 MHz radio receiver (sonoff, rfxtrx, framed, line) on a pty or TCP",
		run:     runSimSerial,
	}
}

func runSimSerial(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("sim serial", std)
	codecName := fs.String("codec", serial.CodecSonoff, "receiver protocol: sonoff, rfxtrx, framed or line")
	spec := fs.String("spec", "", "framed/line settings, e.g. header=FD,code_bytes=3,data_bytes=1,checksum=xor,trailer=DF or format=csv,fields=code;data;rssi")
	cfgFile := fs.String("c", "", "take the codec and the sensors of a receiver from this configuration")
	rxID := fs.String("receiver", "", "the receiver device in -c (default: the first serial receiver)")
	link := fs.String("link", "", "also create this symlink to the pty (stands in for /dev/serial/by-id/…)")
	listen := fs.String("listen", "", "serve on TCP host:port (a serial server) instead of a pty")
	script := fs.String("script", "", "play this script file (- for stdin) instead of daily routines")
	households := fs.Int("households", 2, "demo households to simulate when no -c is given")
	speed := fs.Float64("speed", 60, "routines: simulated seconds per real second")
	days := fs.Int("days", 7, "routines: days to simulate")
	startAt := fs.String("start", "06:00", "routines: simulated time of day to start at")
	repeats := fs.Int("repeats", 3, "copies of each frame (RF repeats)")
	noise := fs.Float64("noise", 0.02, "chance of noise bytes before a frame (0–1)")
	drop := fs.Float64("drop", 0.02, "chance a frame copy is lost (0–1)")
	unplugEvery := fs.Duration("unplug-every", 0, "pty: unplug the receiver this often (real time; 0: never)")
	unplugFor := fs.Duration("unplug-for", 5*time.Second, "pty: how long each unplug lasts")
	seed := fs.Uint64("seed", 0, "random seed for routines and noise (0: from the clock)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *noise < 0 || *noise > 1 || *drop < 0 || *drop > 1 || *repeats < 1 || *repeats > 20 {
		return usageErr("--noise and --drop take 0–1, --repeats 1–20")
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	start, err := time.Parse("15:04", *startAt)
	if err != nil {
		return usageErr("--start %q: want HH:MM", *startAt)
	}

	// Codec and sensors: from a configuration, or demo households.
	var copts serial.CodecOptions
	var sensors []serial.SimSensor
	if *cfgFile != "" {
		cfg, err := loadConfig(*cfgFile)
		if err != nil {
			return configNextStep(*cfgFile, err)
		}
		copts, sensors, err = simFromConfig(cfg, *rxID)
		if err != nil {
			return configErr(withNextStep(err, "用 --receiver 指定配置中的串口接收器设备 id，或不带 -c 用 --households 模拟 name a serial receiver device of the configuration with --receiver, or simulate demo households with --households instead of -c"))
		}
	} else {
		copts, err = serial.ParseCodecSpec(*codecName, *spec)
		if err != nil {
			return usageErr("--codec/--spec: %v", err)
		}
		sensors, err = demoSensors(*households)
		if err != nil {
			return err
		}
	}
	codec, err := serial.NewCodec(copts)
	if err != nil {
		return usageErr("%v", err)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Where the bytes go.
	sim := &serial.Sim{Codec: codec, Repeats: *repeats, Gap: 40 * time.Millisecond,
		Noise: *noise, Drop: *drop, Rand: rand.New(rand.NewPCG(*seed, 0x5e41))}
	if *listen != "" {
		srv, err := serial.ListenTCP(*listen)
		if err != nil {
			return withNextStep(err, "换一个端口，例如 use another address, e.g. --listen 127.0.0.1:0")
		}
		defer srv.Close()
		sim.SetOut(srv)
		fmt.Fprintf(std.out, "模拟接收器 simulated receiver: tcp://%s, codec %s\n", srv.Addr(), codec.Name())
	} else {
		pl := &pluggedPTY{link: *link}
		if err := pl.plug(); err != nil {
			return err
		}
		defer pl.unplug()
		// A script blocked in a write to a pty nobody reads (the
		// gateway stopped) must still stop at SIGTERM: closing the pty
		// ends the write.
		stop := context.AfterFunc(ctx, pl.unplug)
		defer stop()
		sim.SetOut(pl.p)
		fmt.Fprintf(std.out, "模拟接收器 simulated receiver: %s, codec %s\n", pl.where(), codec.Name())
		if *unplugEvery > 0 {
			done := make(chan struct{})
			defer func() { <-done }()
			go func() {
				defer close(done)
				pl.cycle(ctx, sim, *unplugEvery, *unplugFor, std)
			}()
		}
	}

	if *script != "" {
		var r io.Reader = std.in
		if *script != "-" {
			f, err := os.Open(*script)
			if err != nil {
				return usageErr("--script: %v", err)
			}
			defer f.Close()
			r = f
		}
		sc, err := serial.ParseScript(r)
		if err != nil {
			return usageErr("%v", err)
		}
		err = sim.RunScript(ctx, sc, sensors)
		if err == nil && ctx.Err() == nil {
			fmt.Fprintln(std.out, "脚本结束 script done; Ctrl-C 退出 to quit")
			<-ctx.Done()
		}
		return err
	}

	if len(sensors) == 0 {
		return usageErr("no sensors to simulate: give -c with sensors bound to the receiver, or --households")
	}
	printSimSensors(std.out, sensors)
	byHH := map[string][]serial.SimSensor{}
	for _, s := range sensors {
		byHH[s.Household] = append(byHH[s.Household], s)
	}
	rnd := rand.New(rand.NewPCG(*seed, 7))
	var all []serial.Happening
	hhs := make([]string, 0, len(byHH))
	for h := range byHH {
		hhs = append(hhs, h)
	}
	sort.Strings(hhs)
	for _, h := range hhs {
		all = append(all, serial.Routine(rnd, byHH[h], *days)...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].At < all[j].At })
	from := time.Duration(start.Hour())*time.Hour + time.Duration(start.Minute())*time.Minute
	fmt.Fprintf(std.out, "日常作息 daily routines: %d households, %d days, ×%g speed\n", len(hhs), *days, *speed)
	return sim.RunRoutine(ctx, all, from, *speed, func(h serial.Happening) {
		day, tod := h.At/(24*time.Hour), h.At%(24*time.Hour)
		fmt.Fprintf(std.out, "[day %d %02d:%02d] %-10s %-14s %-9s (%s)\n", day+1, int(tod.Hours()), int(tod.Minutes())%60,
			h.Sensor.Household, h.Sensor.ID, h.Meaning, h.Why)
	})
}

// simFromConfig takes a receiver's codec and its sensors from a config.
func simFromConfig(cfg *config.Config, rxID string) (serial.CodecOptions, []serial.SimSensor, error) {
	var rx *config.Device
	for i, d := range cfg.Devices {
		if d.Driver == "serial" && d.Kind == serial.KindReceiver && (rxID == "" || d.ID == rxID) {
			rx = &cfg.Devices[i]
			break
		}
	}
	if rx == nil {
		return serial.CodecOptions{}, nil, fmt.Errorf("no serial receiver %q in the configuration", rxID)
	}
	o, err := serial.ReceiverFromConfig(*rx)
	if err != nil {
		return serial.CodecOptions{}, nil, err
	}
	var out []serial.SimSensor
	for _, d := range cfg.DevicesFor("serial") {
		if d.Kind == serial.KindReceiver {
			continue
		}
		s, err := serial.SensorFromConfig(cfg, d)
		if err != nil {
			return serial.CodecOptions{}, nil, err
		}
		if serial.ReceiverID(cfg, d) != rx.ID {
			continue
		}
		out = append(out, serial.SimSensor{ID: s.ID, Kind: s.Kind, Household: s.Household, Table: s.Table, Addr: s.Addr, Heartbeat: s.Heartbeat})
	}
	return o.CodecOptions(), out, nil
}

// demoSensors makes n households with a Kerui door magnet and PIR and an
// EV1527 SOS button each.
func demoSensors(n int) ([]serial.SimSensor, error) {
	if n < 1 || n > 500 {
		return nil, usageErr("--households: want 1–500")
	}
	tables, err := serial.LoadTables(config.New())
	if err != nil {
		return nil, err
	}
	k, sos := tables["kerui-d026"], tables["ev1527-sos"]
	if k == nil || sos == nil {
		return nil, errors.New("built-in code tables kerui-d026 and ev1527-sos are missing")
	}
	var out []serial.SimSensor
	for i := range n {
		h := fmt.Sprintf("h-demo-%d", i+1)
		base := uint64(0xA0000 + 16*(i+1))
		out = append(out,
			serial.SimSensor{ID: fmt.Sprintf("door-demo-%d", i+1), Kind: "door", Household: h, Table: k, Addr: base + 1},
			serial.SimSensor{ID: fmt.Sprintf("pir-demo-%d", i+1), Kind: "motion", Household: h, Table: k, Addr: base + 2},
			serial.SimSensor{ID: fmt.Sprintf("sos-demo-%d", i+1), Kind: "sos", Household: h, Table: sos, Addr: base + 3},
		)
	}
	return out, nil
}

func printSimSensors(w io.Writer, ss []serial.SimSensor) {
	fmt.Fprintln(w, "模拟传感器 simulated sensors (id, kind, household, profile, code):")
	for _, s := range ss {
		digits := (s.Table.AddressBits + 3) / 4
		if digits == 0 {
			digits = 6
		}
		fmt.Fprintf(w, "  %-16s %-7s %-12s %-18s %0*X\n", s.ID, s.Kind, s.Household, s.Table.Name, digits, s.Addr)
	}
	fmt.Fprintln(w, strings.Repeat("-", 60))
}

// pluggedPTY is the simulated receiver's pty, which can be unplugged and
// plugged back (a new /dev/pts/N behind the same link, as udev does).
type pluggedPTY struct {
	link string
	mu   sync.Mutex
	p    *serial.PTY
}

func (pl *pluggedPTY) plug() error {
	p, err := serial.OpenPTY()
	if err != nil {
		return err
	}
	if pl.link != "" {
		tmp := pl.link + ".new"
		_ = os.Remove(tmp)
		if err := os.Symlink(p.Path(), tmp); err != nil {
			_ = p.Close()
			return fmt.Errorf("link %s: %w", pl.link, err)
		}
		if err := os.Rename(tmp, pl.link); err != nil {
			_ = p.Close()
			return fmt.Errorf("link %s: %w", pl.link, err)
		}
	}
	pl.mu.Lock()
	pl.p = p
	pl.mu.Unlock()
	return nil
}

func (pl *pluggedPTY) unplug() {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.p != nil {
		_ = pl.p.Close()
		pl.p = nil
	}
	if pl.link != "" {
		_ = os.Remove(pl.link)
	}
}

func (pl *pluggedPTY) where() string {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.link != "" {
		return pl.link + " → " + pl.p.Path()
	}
	return pl.p.Path()
}

// cycle unplugs the pty every `every` for `gone`, until ctx ends.
func (pl *pluggedPTY) cycle(ctx context.Context, sim *serial.Sim, every, gone time.Duration, std stdio) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sim.SetOut(io.Discard)
		pl.unplug()
		fmt.Fprintln(std.out, "拔出 unplugged")
		select {
		case <-ctx.Done():
			return
		case <-time.After(gone):
		}
		if err := pl.plug(); err != nil {
			fmt.Fprintf(std.out, "插回失败 replug failed: %v\n", err)
			return
		}
		pl.mu.Lock()
		sim.SetOut(pl.p)
		pl.mu.Unlock()
		fmt.Fprintf(std.out, "插回 plugged back: %s\n", pl.where())
	}
}

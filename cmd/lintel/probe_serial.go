//go:build !no_serial

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/lintel-edge/lintel/drivers/serial"
	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	probeCommands["serial"] = subcommand{
		summary: "listen on a radio receiver port; --learn lists sensor codes and prints the YAML to bind them",
		run:     runProbeSerial,
	}
}

func runProbeSerial(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("probe serial", std)
	port := fs.String("port", "", "receiver port: /dev/serial/by-id/…, serial:///dev/ttyUSB0 or tcp://host:port (required)")
	codecName := fs.String("codec", serial.CodecSonoff, "receiver protocol: sonoff, rfxtrx, framed or line")
	spec := fs.String("spec", "", "framed/line settings, e.g. header=FD,code_bytes=3,data_bytes=1,checksum=xor,trailer=DF")
	baud := fs.Int("baud", 0, "line speed (0: the codec's usual one)")
	parity := fs.String("parity", "none", "none, even or odd")
	learn := fs.Bool("learn", false, "pairing mode: list each code heard (count, last data, RSSI) and print YAML to bind it")
	duration := fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
	profile := fs.String("profile", "", "learn: read codes with this code table only (e.g. kerui-d026)")
	household := fs.String("household", "", "learn: household id for the printed YAML")
	kind := fs.String("kind", "", "learn: sensor kind for the printed YAML (door, motion, sos, smoke, water)")
	receiver := fs.String("receiver", "", "learn: receiver device id for the printed YAML")
	cfgFile := fs.String("c", "", "also use the code tables under profiles.dirs of this configuration")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *port == "" {
		return usageErr("--port is required")
	}
	copts, err := serial.ParseCodecSpec(*codecName, *spec)
	if err != nil {
		return usageErr("--codec/--spec: %v", err)
	}
	cfg := config.New()
	if *cfgFile != "" {
		if cfg, err = loadConfig(*cfgFile); err != nil {
			return err
		}
	}
	tables, err := serial.LoadTables(cfg)
	if err != nil {
		return configErr(err)
	}
	if *profile != "" {
		t, ok := tables[*profile]
		if !ok {
			return usageErr("--profile %q: unknown code table", *profile)
		}
		tables = map[string]*serial.Table{*profile: t}
	}
	codec, err := serial.NewCodec(copts)
	if err != nil {
		return usageErr("%v", err)
	}
	if *baud == 0 {
		*baud = serial.DefaultBaud(*codecName)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	conn, err := serial.OpenPort(ctx, serial.PortSpec{Address: *port, Baud: *baud, Parity: *parity})
	if err != nil {
		return fmt.Errorf("打开端口失败 cannot open the port: %w", err)
	}
	stopClose := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stopClose()
	defer conn.Close()
	fmt.Fprintf(std.out, "正在监听 listening on %s (codec %s, %d baud). 请逐个触发传感器 trigger each sensor; Ctrl-C 结束 to finish.\n",
		config.RedactURL(*port), codec.Name(), *baud)

	sc := serial.NewScanner(codec)
	l := serial.NewLearner()
	buf := make([]byte, 512)
	var readErr error
	for {
		n, err := conn.Read(buf)
		now := time.Now()
		sc.Feed(buf[:n], func(f serial.Frame) {
			h, isNew := l.Add(now, f)
			switch {
			case h == nil:
			case !*learn:
				fmt.Fprintf(std.out, "%s %s\n", now.Format("15:04:05.000"), h.Describe())
			case isNew:
				fmt.Fprintf(std.out, "新代码 new code   %s\n", h.Describe())
			}
		})
		if err != nil {
			if ctx.Err() == nil {
				readErr = err
			}
			break
		}
	}
	st := sc.Stats()
	fmt.Fprintf(std.out, "\n收到 received %d bytes, %d frames, %d skipped, %d garbage bytes\n", st.Bytes, st.Frames, st.Skipped, st.Garbage)
	if *learn {
		printLearned(std, l, tables, *kind, *household, *receiver, *port)
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return fmt.Errorf("端口断开 port lost: %w", readErr)
	}
	return nil
}

func printLearned(std stdio, l *serial.Learner, tables map[string]*serial.Table, kind, household, receiver, port string) {
	heard := l.Heard()
	if len(heard) == 0 {
		fmt.Fprintln(std.out, "没有听到任何代码 no codes heard: check the codec, the baud rate and the antenna")
		return
	}
	fmt.Fprintf(std.out, "\n听到的代码 codes heard (%d):\n", len(heard))
	for _, h := range heard {
		fmt.Fprintf(std.out, "  %s\n", h.Describe())
	}
	fmt.Fprintln(std.out, "\n绑定配置 YAML to bind each code (paste under devices:, set household and kind):")
	bound := map[string]bool{} // profile/code already printed: a sensor sends several words
	best := l.Best(tables)
	for _, h := range heard {
		cands := serial.Candidates(h.Frame, tables)
		c, ok := best[h]
		if !ok {
			fmt.Fprintf(std.out, "  # %s: no code table fits this %d-bit code; write one in configs/radio\n", h.Frame.CodeHex(), h.Frame.Bits)
			continue
		}
		meaning := string(c.Meaning)
		if meaning == "" {
			meaning = "unknown to this table"
		}
		fmt.Fprintf(std.out, "  # %s heard ×%d: with %s, code %X data %X = %s\n", h.Frame.CodeHex(), h.Count, c.Profile, c.Addr, c.Data, meaning)
		for _, o := range cands {
			if o.Meaning != "" && o.Profile != c.Profile {
				fmt.Fprintf(std.out, "  #   or with %s: code %X data %X = %s\n", o.Profile, o.Addr, o.Data, o.Meaning)
			}
		}
		key := fmt.Sprintf("%s/%X", c.Profile, c.Addr)
		if bound[key] {
			continue
		}
		bound[key] = true
		serial.BindingYAML(std.out, c, "", kind, household, receiver, port)
	}
}

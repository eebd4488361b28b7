//go:build !no_serial

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
		return usageErr("--port is required, e.g. --port /dev/serial/by-id/… (list them: ls /dev/serial/by-id/)")
	}
	copts, err := serial.ParseCodecSpec(*codecName, *spec)
	if err != nil {
		return usageErr("--codec/--spec: %v", err)
	}
	cfg := config.New()
	if *cfgFile != "" {
		if cfg, err = loadConfig(*cfgFile); err != nil {
			return configNextStep(*cfgFile, err)
		}
	}
	tables, err := serial.LoadTables(cfg)
	if err != nil {
		return configErr(withNextStep(err, "修正 profiles.dirs 下的代码表后重试 fix the code table under profiles.dirs, then try again"))
	}
	if *profile != "" {
		t, ok := tables[*profile]
		if !ok {
			return usageErr("--profile %q: unknown code table: want one of %s (or add yours under profiles.dirs and give -c)", *profile, tableNames(tables))
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
		return fmt.Errorf("打开端口失败 cannot open the port: %w\n下一步 next: 检查 --port 路径（ls /dev/serial/by-id/）、接收器是否插好、是否有 dialout 权限，并先停止 lintel 服务 check the --port path, that the receiver is plugged in, that you are in the dialout group, and stop the lintel service first", err)
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
	// The heartbeat writes from its own goroutine: std.out is shared.
	out := &syncWriter{w: std.out}
	hb := &listenHeartbeat{began: time.Now()}
	hbDone := make(chan struct{})
	var hbWG sync.WaitGroup
	hbWG.Go(func() { hb.run(hbDone, out, learnHeartbeatEvery) })
	stopHB := sync.OnceFunc(func() { close(hbDone); hbWG.Wait() })
	defer stopHB()
	for {
		n, err := conn.Read(buf)
		now := time.Now()
		hb.bytes.Add(int64(n))
		sc.Feed(buf[:n], func(f serial.Frame) {
			hb.frames.Add(1)
			hb.lastFrame.Store(now.UnixNano())
			h, isNew := l.Add(now, f)
			switch {
			case h == nil:
			case !*learn:
				fmt.Fprintf(out, "%s %s\n", now.Format("15:04:05.000"), h.Describe())
			case isNew:
				hb.codes.Add(1)
				fmt.Fprintf(out, "新代码 new code   %s\n", h.Describe())
			}
		})
		if err != nil {
			if ctx.Err() == nil {
				readErr = err
			}
			break
		}
	}
	stopHB()
	st := sc.Stats()
	fmt.Fprintf(std.out, "\n收到 received %d bytes, %d frames, %d skipped, %d garbage bytes\n", st.Bytes, st.Frames, st.Skipped, st.Garbage)
	if *learn {
		printLearned(std, l, tables, *kind, *household, *receiver, *port)
	}
	if readErr != nil && !errors.Is(readErr, context.Canceled) {
		return fmt.Errorf("端口断开 port lost: %w\n下一步 next: 检查 USB 线和接收器供电后重新运行 check the USB cable and the receiver's power, then run again", readErr)
	}
	return nil
}

func printLearned(std stdio, l *serial.Learner, tables map[string]*serial.Table, kind, household, receiver, port string) {
	heard := l.Heard()
	if len(heard) == 0 {
		fmt.Fprintln(std.out, "没有听到任何代码 no codes heard: 检查 --codec、--baud 和天线，靠近接收器再触发传感器 check --codec, --baud and the antenna, and trigger the sensor close to the receiver")
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

// learnHeartbeatEvery paces the "still listening" line: without it a
// silent receiver (wrong port, wrong baud, dead antenna) looks exactly like
// a working one waiting for a sensor.
var learnHeartbeatEvery = 10 * time.Second

// listenHeartbeat counts what the read loop saw, for the heartbeat line.
type listenHeartbeat struct {
	began     time.Time
	bytes     atomic.Int64
	frames    atomic.Int64
	codes     atomic.Int64
	lastFrame atomic.Int64 // unix ns; 0 = none yet
}

func (h *listenHeartbeat) run(done <-chan struct{}, w io.Writer, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		up := time.Since(h.began).Round(time.Second)
		b, f := h.bytes.Load(), h.frames.Load()
		switch {
		case b == 0:
			fmt.Fprintf(w, "… 监听 %s，尚未收到任何数据 listening %s, no data yet: 检查接收器供电、--port 和 --baud check the receiver's power, --port and --baud\n", up, up)
		case f == 0:
			fmt.Fprintf(w, "… 监听 %s，收到 %d 字节但无法解码 listening %s, %d bytes but no frame decoded: 检查 --codec 和 --baud check --codec and --baud\n", up, b, up, b)
		default:
			ago := time.Since(time.Unix(0, h.lastFrame.Load())).Round(time.Second)
			fmt.Fprintf(w, "… 监听 %s：%d 帧，%d 个新代码，最近一次 %s 前 listening %s: %d frames, %d new codes, last %s ago\n",
				up, f, h.codes.Load(), ago, up, f, h.codes.Load(), ago)
		}
	}
}

// syncWriter serialises writes from the read loop and the heartbeat.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func tableNames(tables map[string]*serial.Table) string {
	names := make([]string, 0, len(tables))
	for n := range tables {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

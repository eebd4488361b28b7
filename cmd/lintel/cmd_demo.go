//go:build !no_serial && !no_rtsp

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"go.yaml.in/yaml/v3"

	"github.com/lintel-edge/lintel/configs"
	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/drivers/serial"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/sync/city"
)

func init() {
	register(command{name: "demo", summary: "a whole simulated compound: device simulators, embedded broker, status page", run: runDemo})
}

// demoHooks let files for other device families add their simulators and
// devices to the demo (the Modbus gates, for one).
var demoHooks []func(ctx context.Context, d *demo) error

// demo is one running demo compound.
type demo struct {
	dataDir string
	log     *slog.Logger
	root    *yaml.Node // the generated configuration, before parsing
	wg      sync.WaitGroup
	closers []func()
}

func runDemo(ctx context.Context, args []string, io stdio) error {
	fs := newFlags("demo", io)
	httpAddr := fs.String("http", "127.0.0.1:8080", "status page address")
	mqttAddr := fs.String("mqtt", "127.0.0.1:1883", "embedded MQTT broker address (plain TCP, loopback only)")
	dataDir := fs.String("data", "", "data directory (default: a new temporary directory, removed at exit)")
	speed := fs.Float64("speed", 60, "pace of the simulated households' routines (60: an hour passes in a minute)")
	households := fs.Int("households", 24, "number of simulated households (3–500)")
	logLevel := fs.String("log-level", "warn", "gateway log level: debug, info, warn, error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *households < 3 || *households > 500 {
		return usageErr("--households %d: want 3–500", *households)
	}
	if *speed <= 0 || *speed > 100000 {
		return usageErr("--speed %g: want a positive factor up to 100000", *speed)
	}
	for _, a := range []struct{ flag, addr string }{{"--http", *httpAddr}, {"--mqtt", *mqttAddr}} {
		if err := loopbackAddr(a.addr); err != nil {
			return usageErr("%s %q: %v", a.flag, a.addr, err)
		}
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr("--log-level %q: want debug, info, warn or error", *logLevel)
	}
	log := slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: lvl}))

	dir := *dataDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "lintel-demo-")
		if err != nil {
			return err
		}
		dir = tmp
		defer os.RemoveAll(tmp)
	} else if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	dir, _ = filepath.Abs(dir)

	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-sigCtx.Done(); stop() }()
	simCtx, cancelSims := context.WithCancel(context.WithoutCancel(ctx))

	d := &demo{dataDir: dir, log: log}
	defer func() {
		cancelSims()
		d.wg.Wait()
		for i := len(d.closers) - 1; i >= 0; i-- {
			d.closers[i]()
		}
	}()

	// The city platform stand-in: an embedded broker on loopback.
	broker, err := startBroker(*mqttAddr)
	if err != nil {
		return fmt.Errorf("embedded MQTT broker on %s: %w (choose another with --mqtt 127.0.0.1:PORT)", *mqttAddr, err)
	}
	d.closers = append(d.closers, func() { broker.Close() })

	// Radio receiver: a pty the serial driver opens through <data>/rf0.
	pt, err := serial.OpenPTY()
	if err != nil {
		return err
	}
	d.closers = append(d.closers, func() { pt.Close() })
	link := filepath.Join(dir, "rf0")
	_ = os.Remove(link)
	if err := os.Symlink(pt.Path(), link); err != nil {
		return err
	}

	// Cameras: a falling-object camera and a peephole, with a password
	// made up now (no default passwords, not even in a demo).
	pw := randomToken(9)
	os.Setenv("LINTEL_DEMO_CAMERA_PASSWORD", pw)
	cam, err := fakecam.Start(fakecam.Options{User: "lintel", Password: pw, Logger: log.With("sim", "camera")})
	if err != nil {
		return fmt.Errorf("simulated camera: %w", err)
	}
	d.closers = append(d.closers, cam.Close)
	peep, err := fakecam.Start(fakecam.Options{User: "lintel", Password: pw, FPS: 5, Logger: log.With("sim", "peephole")})
	if err != nil {
		return fmt.Errorf("simulated peephole: %w", err)
	}
	d.closers = append(d.closers, peep.Close)

	// The configuration: configs/demo.yaml with the real addresses and
	// the generated households.
	d.root = new(yaml.Node)
	if err := yaml.Unmarshal(configs.Demo, d.root); err != nil {
		return fmt.Errorf("configs/demo.yaml: %w", err)
	}
	d.set("gateway.data_dir", dir)
	d.set("status.listen", *httpAddr)
	d.set("sinks.city.broker", "tcp://"+broker.addr)
	d.setDevice("rf-b3", "address", link)
	d.setDevice("cam-b3-south", "address", "rtsp://lintel@"+cam.Addr()+"/stream1")
	d.setDevice("peep-3-1-301", "address", "rtsp://lintel@"+peep.Addr()+"/stream1")
	if err := d.addHouseholds(*households); err != nil {
		return err
	}
	for _, h := range demoHooks {
		if err := h(simCtx, d); err != nil {
			return err
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(d.root); err != nil {
		return err
	}
	genPath := filepath.Join(dir, "demo.yaml")
	if err := os.WriteFile(genPath, buf.Bytes(), 0o640); err != nil {
		return err
	}
	cfg, err := config.Parse(genPath, buf.Bytes())
	if err != nil {
		return fmt.Errorf("generated demo configuration: %w", err)
	}
	cfg.Log.Level = *logLevel

	// The platform's reference receiver, acking every batch.
	out, err := os.OpenFile(filepath.Join(dir, "received.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	d.closers = append(d.closers, func() { out.Close() })
	var recvMu sync.Mutex
	recvKinds := map[event.Kind]int{}
	rcv, err := city.NewReceiver(city.ReceiverOptions{
		Broker: "tcp://" + broker.addr, Filter: "lintel/v1/+/+", ClientID: "demo-platform", Ack: true, GapCheck: true,
		Out: out, Sync: out.Sync, Logger: log.With("component", "receiver"),
		OnEvent: func(_ string, ev *event.Event, _ time.Time) {
			recvMu.Lock()
			recvKinds[ev.Kind]++
			recvMu.Unlock()
		},
	})
	if err != nil {
		return err
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := rcv.Run(simCtx); err != nil && simCtx.Err() == nil {
			log.Warn("reference receiver stopped", "err", err)
		}
	}()

	onReady := func(gw *gateway) {
		code, _ := os.ReadFile(filepath.Join(dir, "status-setup-code"))
		w := io.out
		fmt.Fprintf(w, "\nLintel 演示小区 demo compound — %d households, routines ×%g\n", *households, *speed)
		fmt.Fprintf(w, "  状态页 status page:   http://%s/\n", *httpAddr)
		if c := strings.TrimSpace(string(code)); c != "" {
			fmt.Fprintf(w, "  首次设置码 setup code: %s   (在状态页创建第一个账号 create the first account with it)\n", c)
		}
		fmt.Fprintf(w, "  城市平台 city broker:  mqtt://%s   (topics lintel/v1/%s/%s/…)\n", broker.addr, cfg.Gateway.Compound, cfg.Gateway.ID)
		fmt.Fprintf(w, "  平台收到 received:     %s\n", filepath.Join(dir, "received.jsonl"))
		fmt.Fprintf(w, "  数据目录 data:         %s\n", dir)
		fmt.Fprintf(w, "  按 Ctrl-C 停止 press Ctrl-C to stop\n\n")
		d.startSimulations(simCtx, cfg, pt, cam, peep, *speed, w)
	}
	err = serve(sigCtx, cfg, log, onReady)
	recvMu.Lock()
	kinds := make([]string, 0, len(recvKinds))
	for k, n := range recvKinds {
		kinds = append(kinds, fmt.Sprintf("%s×%d", k, n))
	}
	recvMu.Unlock()
	sort.Strings(kinds)
	fmt.Fprintf(io.out, "平台共收到 the platform received %d events (%d duplicates dropped): %s\n",
		rcv.Events.Load(), rcv.Duplicates.Load(), strings.Join(kinds, ", "))
	return err
}

// startSimulations plays the households' routines on the radio receiver
// and a script of incidents an onlooker can expect within a minute.
func (d *demo) startSimulations(ctx context.Context, cfg *config.Config, pt *serial.PTY, cam, peep *fakecam.Camera, speed float64, w interface{ Write([]byte) (int, error) }) {
	codecOpts, sensors, err := simFromConfig(cfg, "rf-b3")
	if err != nil {
		d.log.Error("demo radio sensors", "err", err)
		return
	}
	codec, err := serial.NewCodec(codecOpts)
	if err != nil {
		d.log.Error("demo radio codec", "err", err)
		return
	}
	sim := &serial.Sim{Codec: codec, Out: pt, Repeats: 3, Gap: 30 * time.Millisecond, Rand: mrand.New(mrand.NewPCG(7, 11))}
	byHH := map[string][]serial.SimSensor{}
	for _, s := range sensors {
		byHH[s.Household] = append(byHH[s.Household], s)
	}
	hhs := make([]string, 0, len(byHH))
	for h := range byHH {
		hhs = append(hhs, h)
	}
	sort.Strings(hhs)
	rnd := mrand.New(mrand.NewPCG(2026, 11))
	var all []serial.Happening
	for _, h := range hhs {
		all = append(all, serial.Routine(rnd, byHH[h], 30)...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].At < all[j].At })
	// Routines start at 06:20 simulated time: the compound wakes up as the
	// demo starts, so motion and doors show within a minute.
	from := 6*time.Hour + 20*time.Minute

	say := func(format string, args ...any) {
		fmt.Fprintf(w, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	d.wg.Add(3)
	go func() {
		defer d.wg.Done()
		if err := sim.RunRoutine(ctx, all, from, speed, nil); err != nil && ctx.Err() == nil {
			d.log.Warn("demo routines stopped", "err", err)
		}
	}()
	go func() {
		defer d.wg.Done()
		// The scripted incidents, so the page has something to show soon.
		steps := []struct {
			after time.Duration
			do    func()
		}{
			{8 * time.Second, func() {
				say("模拟 simulating: 3-1-301 按下 SOS 按钮 presses the SOS button")
				for _, s := range byHH["h-3-1-301"] {
					if s.Kind == "sos" {
						if f, err := serial.SensorFrame(codec, s.Table, s.Addr, serial.Alarm); err == nil {
							_ = sim.Send(ctx, f)
						}
					}
				}
			}},
			{15 * time.Second, func() {
				say("模拟 simulating: 3栋南立面高空抛物 an object falls past building 3's south façade")
				_ = cam.Trigger("falling")
			}},
			{25 * time.Second, func() {
				say("模拟 simulating: 3-1-301 门口有访客并按门铃 a visitor rings at 3-1-301")
				_ = peep.Trigger("visitor")
				_ = peep.Trigger("doorbell")
			}},
		}
		start := time.Now()
		for _, st := range steps {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(st.after))):
				st.do()
			}
		}
	}()
	go func() {
		defer d.wg.Done()
		// Every few minutes another object falls, so the camera stays busy.
		t := time.NewTicker(4 * time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = cam.Trigger("falling")
			}
		}
	}()
}

// addHouseholds adds generated households (with a door magnet, a PIR and
// an SOS button each, and an elder rules entry) until there are n.
func (d *demo) addHouseholds(n int) error {
	households := d.get("compound.households")
	devices := d.get("devices")
	elders := d.get("rules.elders")
	if households == nil || devices == nil || elders == nil {
		return errors.New("configs/demo.yaml lacks compound.households, devices or rules.elders")
	}
	floors := []struct{ b, u string }{{"b3", "1"}, {"b3", "2"}, {"b5", "1"}}
	for i := len(households.Content); i < n; i++ {
		f := floors[i%len(floors)]
		room := fmt.Sprintf("%d%02d", 4+i/6, 1+i%6)
		h := fmt.Sprintf("h-%s-%s-%s", strings.TrimPrefix(f.b, "b"), f.u, room)
		label := fmt.Sprintf("%s-%s-%s", strings.TrimPrefix(f.b, "b"), f.u, room)
		households.Content = append(households.Content, yamlNode(fmt.Sprintf(
			"{id: %s, label: %s, place: {building: %s, unit: %q, room: %q}}", h, label, f.b, f.u, room)))
		for k, s := range []struct{ kind, prefix, profile string }{{"door", "door", "kerui-d026"}, {"motion", "pir", "kerui-d026"}, {"sos", "sos", "ev1527-sos"}} {
			devices.Content = append(devices.Content, yamlNode(fmt.Sprintf(
				"{id: %s-%s, kind: %s, driver: serial, household: %s, profile: %s, options: {receiver: rf-b3, code: \"%05X\"}}",
				s.prefix, strings.TrimPrefix(h, "h-"), s.kind, h, s.profile, 0xB0000+16*i+k+1)))
		}
		elders.Content = append(elders.Content, yamlNode("{household: "+h+"}"))
	}
	return nil
}

func yamlNode(src string) *yaml.Node {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		panic("demo: bad generated YAML " + src + ": " + err.Error())
	}
	return n.Content[0]
}

// get finds the node at a dotted path of mapping keys.
func (d *demo) get(path string) *yaml.Node {
	n := d.root.Content[0]
	for _, k := range strings.Split(path, ".") {
		var next *yaml.Node
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
			}
		}
		if next == nil {
			return nil
		}
		n = next
	}
	return n
}

// set replaces the scalar at a dotted path.
func (d *demo) set(path, value string) {
	if n := d.get(path); n != nil {
		n.Kind, n.Tag, n.Value, n.Style = yaml.ScalarNode, "!!str", value, 0
	}
}

// setDevice sets a key of the device with id.
func (d *demo) setDevice(id, key, value string) {
	for _, dev := range d.get("devices").Content {
		var isIt bool
		for i := 0; i+1 < len(dev.Content); i += 2 {
			if dev.Content[i].Value == "id" && dev.Content[i+1].Value == id {
				isIt = true
			}
		}
		if !isIt {
			continue
		}
		for i := 0; i+1 < len(dev.Content); i += 2 {
			if dev.Content[i].Value == key {
				dev.Content[i+1].Value = value
				return
			}
		}
		dev.Content = append(dev.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
	}
}

// demoBroker is the embedded MQTT broker standing in for the city's.
type demoBroker struct {
	srv  *mqttsrv.Server
	addr string
}

func startBroker(addr string) (*demoBroker, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	real := ln.Addr().String()
	ln.Close()
	srv := mqttsrv.New(&mqttsrv.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	// Anonymous access is acceptable only because the listener is bound
	// to loopback (checked by loopbackAddr).
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "demo", Address: real})); err != nil {
		return nil, err
	}
	if err := srv.Serve(); err != nil {
		return nil, err
	}
	return &demoBroker{srv: srv, addr: real}, nil
}

func (b *demoBroker) Close() { _ = b.srv.Close() }

func loopbackAddr(a string) error {
	host, _, err := net.SplitHostPort(a)
	if err != nil {
		return errors.New("want host:port")
	}
	ip := net.ParseIP(host)
	if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("the demo listens on loopback only (127.0.0.1:PORT)")
	}
	return nil
}

func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

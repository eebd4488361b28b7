package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lintel-edge/lintel/drivers/modbus"
	"github.com/lintel-edge/lintel/drivers/rtsp"
	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/drivers/serial"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/sdnotify"
	"github.com/lintel-edge/lintel/edge/status"
)

// TestDriverSources runs the daemon's serve with a real Modbus TCP
// simulator, a radio receiver on a pty and a fake camera, and checks that
// the status page's devices and buses APIs and /metrics show the drivers'
// own live figures, that the poll loops are watched by the watchdog's
// liveness registry, and that the camera's password appears nowhere.
func TestDriverSources(t *testing.T) {
	const canary = "Canary-Pw-7f3e9"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	// Modbus TCP: a barrier gate controller at unit 1.
	mbAddr := freeAddr(t)
	sim := modbus.NewSim(modbus.SimWire{}, quiet)
	prof, err := modbus.LoadProfile(config.New(), "barrier-gate")
	if err != nil {
		t.Fatal(err)
	}
	sim.Add(1, prof)
	simDone := make(chan error, 1)
	go func() { simDone <- sim.ServeTCP(ctx, mbAddr) }()
	t.Cleanup(func() { cancel(); <-simDone })

	// A Sonoff RF bridge on a pty, and a door magnet it hears.
	pt, err := serial.OpenPTY()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("open a pty: %v (CI must run the pty tests)", err)
		}
		t.Skipf("no pty here (%v): this test needs /dev/ptmx", err)
	}
	t.Cleanup(func() { pt.Close() })
	codec, err := serial.NewCodec(serial.CodecOptions{Codec: serial.CodecSonoff})
	if err != nil {
		t.Fatal(err)
	}
	tables, err := serial.LoadTables(config.New())
	if err != nil {
		t.Fatal(err)
	}
	doorFrame, err := serial.SensorFrame(codec, tables["kerui-d026"], 0xA1B2C, serial.Open)
	if err != nil {
		t.Fatal(err)
	}
	radio := &serial.Sim{Codec: codec, Out: pt, Repeats: 2}

	// A camera with digest authentication and a password to look for.
	cam, err := fakecam.Start(fakecam.Options{User: "lintel", Password: canary, FPS: 10, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)

	dir := t.TempDir()
	httpAddr := freeAddr(t)
	yaml := fmt.Sprintf(`
gateway: {id: gw-sources, compound: c-1, data_dir: %[1]s}
compound:
  buildings: [{id: "1", units: ["1"]}]
  households: [{id: h-301, label: 1-1-301, place: {building: "1", unit: "1", room: "301"}}]
devices:
  - {id: gate-1, kind: barrier, driver: modbus, address: "tcp://%[2]s", profile: barrier-gate, place: {building: "1"},
     options: {unit: 1, poll_interval: 100ms}}
  - {id: rf-1, kind: receiver, driver: serial, address: %[3]s, options: {codec: sonoff, reconnect_min: 100ms, reconnect_max: 500ms}}
  - {id: door-301, kind: door, driver: serial, address: %[3]s, household: h-301, profile: kerui-d026,
     options: {receiver: rf-1, code: "A1B2C"}}
  - {id: cam-1, kind: camera, driver: rtsp, address: "%[4]s", profile: generic-falling-object, place: {building: "1"},
     options: {transport: tcp, clip_dir: %[1]s/clips}}
status:
  listen: %[5]s
  metrics: {per_device: true}   # this test reads the per-device series
`, dir, mbAddr, pt.Path(), cam.URL(), httpAddr)
	if !strings.Contains(yaml, canary) {
		t.Fatal("the camera URL should carry the canary password")
	}
	cfg, err := config.Parse("sources.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	acc, err := status.OpenAccounts(filepath.Join(dir, "accounts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.Add("li", status.RoleViewer, "li-password-1234", false); err != nil {
		t.Fatal(err)
	}
	tok, err := acc.AddToken("li")
	if err != nil {
		t.Fatal(err)
	}

	ready := make(chan *gateway, 1)
	done := make(chan error, 1)
	sctx, stop := context.WithCancel(ctx)
	go func() { done <- serve(sctx, cfg, quiet, func(gw *gateway) { ready <- gw }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("daemon not ready")
	}
	stopped := false
	shutdown := func() {
		if stopped {
			return
		}
		stopped = true
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}
	defer shutdown()

	get := func(path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+httpAddr+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return ""
		}
		return string(b)
	}
	var devs map[string]status.Device
	var buses map[string]status.Bus
	var lastDevs, lastBuses string
	deadline := time.Now().Add(15 * time.Second)
	for {
		// The receiver must be open before the sensor can be heard; keep
		// pressing until the page shows the door.
		_ = radio.Send(ctx, doorFrame)
		lastDevs, lastBuses = get("/api/v1/devices"), get("/api/v1/buses")
		var dv struct{ Devices []status.Device }
		var bv struct{ Buses []status.Bus }
		_ = json.Unmarshal([]byte(lastDevs), &dv)
		_ = json.Unmarshal([]byte(lastBuses), &bv)
		devs, buses = map[string]status.Device{}, map[string]status.Bus{}
		for _, d := range dv.Devices {
			devs[d.ID] = d
		}
		for _, b := range bv.Buses {
			buses[b.Name] = b
		}
		mb, cb := buses["tcp:"+mbAddr], buses["cam-1"]
		if devs["gate-1"].Online == "online" && devs["gate-1"].Detail["rtt_ms"] != "" &&
			devs["rf-1"].Online == "online" && devs["door-301"].Online == "online" && !devs["door-301"].LastSeen.IsZero() &&
			devs["cam-1"].Online == "online" && mb.Requests > 0 && cb.OK && cb.Detail["fps"] != "" && cb.Detail["fps"] != "0.0" &&
			buses["rf-1"].OK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drivers' health not on the page in time:\ndevices: %s\nbuses: %s", lastDevs, lastBuses)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if d := devs["gate-1"]; d.Detail["bus"] != "tcp:"+mbAddr || d.Detail["unit"] != "1" || d.Battery != -1 {
		t.Errorf("modbus device: %+v", d)
	}
	if d := devs["door-301"]; d.Detail["receiver"] != "rf-1" || d.Detail["door"] != "open" {
		t.Errorf("door magnet: %+v", d)
	}
	if b := buses["tcp:"+mbAddr]; b.Kind != "modbus" || !b.OK || b.Detail["exceptions"] != "0" || b.Since.IsZero() {
		t.Errorf("modbus bus: %+v", b)
	}
	if b := buses["cam-1"]; b.Kind != "camera" || b.Detail["codec"] != "h264" || b.Detail["bitrate_kbps"] == "0" {
		t.Errorf("camera stream: %+v", b)
	}
	if b := buses["rf-1"]; b.Kind != "serial" || b.Detail["frames"] == "0" {
		t.Errorf("radio receiver: %+v", b)
	}

	wants := []string{
		`lintel_modbus_transactions_total{bus="tcp:` + mbAddr + `"}`,
		`lintel_modbus_device_rtt_seconds{bus="tcp:` + mbAddr + `",device="gate-1"}`,
		`lintel_modbus_device_up{bus="tcp:` + mbAddr + `",device="gate-1"} 1`,
		`lintel_radio_receiver_up{device="rf-1"} 1`,
		`lintel_radio_frames_total{device="rf-1"}`,
		`lintel_radio_sensor_last_seen_timestamp_seconds{device="door-301",receiver="rf-1"}`,
		`lintel_radio_sensor_door_open{device="door-301",receiver="rf-1"} 1`,
		`lintel_camera_up{device="cam-1"} 1`,
		`lintel_camera_frames_per_second{device="cam-1"}`,
		`lintel_camera_bitrate_bits_per_second{device="cam-1"}`,
		`lintel_bus_requests{bus="cam-1",kind="camera"}`,
		`lintel_device_up{device="door-301",driver="serial",kind="door"} 1`,
	}
	// The series appear as the drivers report their first statistics: on
	// a loaded machine that can be a few seconds after the devices are up.
	var metrics string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		metrics = get("/metrics")
		missing := 0
		for _, want := range wants {
			if !strings.Contains(metrics, want) {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range wants {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for name, body := range map[string]string{"/metrics": metrics, "/api/v1/devices": lastDevs, "/api/v1/buses": lastBuses} {
		if strings.Contains(body, canary) {
			t.Errorf("%s shows the camera's password", name)
		}
		if strings.Contains(body, cam.Addr()+"/stream") && name == "/metrics" {
			t.Errorf("%s shows the camera's URL", name)
		}
	}

	// Every poll loop is watched, under its own name, and beating.
	loops := []string{"poll/tcp:" + mbAddr, "radio/rf-1", "camera/cam-1"}
	names := sdnotify.Default.Names()
	for _, l := range loops {
		if !slices.Contains(names, l) {
			t.Errorf("liveness registry lacks %s: %v", l, names)
		}
	}
	for _, s := range sdnotify.Default.Stale() {
		if slices.Contains(loops, s.Name) {
			t.Errorf("loop %s stale: %+v", s.Name, s)
		}
	}
	// A clean stop is not a hang: the loops leave the registry.
	shutdown()
	names = sdnotify.Default.Names()
	for _, l := range loops {
		if slices.Contains(names, l) {
			t.Errorf("%s still watched after shutdown", l)
		}
	}
	if n := len(modbus.Snapshots()) + len(serial.Snapshots()) + len(rtsp.Snapshots()); n != 0 {
		t.Errorf("%d driver instances still registered after shutdown", n)
	}
}

// TestDriverHealthMapping checks how the drivers' snapshots become the
// page's devices and buses and the metrics: what counts as online,
// offline or unknown, and that other gateways' devices are left out.
func TestDriverHealthMapping(t *testing.T) {
	now := time.Date(2026, 11, 27, 8, 0, 0, 0, time.UTC)
	heard := now.Add(-time.Minute)
	rssi := -71
	// Only the ids matter here; the other gateway's devices are absent,
	// and a disabled one is left out like them.
	cfg := &config.Config{}
	for _, id := range []string{"gate-1", "gate-2", "gate-3", "rf-up", "rf-down", "door-1", "pir-1", "sos-1", "door-2", "cam-1", "cam-2"} {
		cfg.Devices = append(cfg.Devices, config.Device{ID: id})
	}
	cfg.Devices = append(cfg.Devices, config.Device{ID: "cam-off", Disabled: true})
	h := newDriverHealth(cfg)
	h.now = func() time.Time { return now }
	h.modbusSnap = func() []modbus.BusStats {
		return []modbus.BusStats{
			{Bus: "tcp:10.0.0.5:502", Transport: "tcp", Transactions: 100, Timeouts: 7, Exceptions: 2, ReadItems: 10, UsefulItems: 5,
				Devices: []modbus.DeviceStats{
					{ID: "gate-1", Unit: 1, State: "online", Requests: 90, RTTLast: 12 * time.Millisecond, RTTAvg: 10 * time.Millisecond, RTTMax: 30 * time.Millisecond},
					{ID: "gate-2", Unit: 2, State: "offline", Requests: 10, Failures: 7, LastErr: "read holding 0+2 unit 2: request timed out"},
					{ID: "gate-3", Unit: 3}, // not polled yet
					{ID: "other-gw-gate", Unit: 4, State: "online"},
				}},
			{Bus: "tcp:10.9.9.9:502", Devices: []modbus.DeviceStats{{ID: "other-gw-gate", State: "online"}}},
		}
	}
	h.serialSnap = func() []serial.ReceiverStatus {
		return []serial.ReceiverStatus{
			{ID: "rf-up", Codec: "sonoff", Online: true, Since: heard, Stats: serial.Stats{Frames: 40}, Sensors: []serial.SensorStatus{
				{ID: "door-1", Supervised: true, Heartbeat: "1h0m0s", LastSeen: &heard, Door: serial.DoorClosed, RSSI: &rssi},
				{ID: "pir-1", Supervised: true, Silent: true, LastSeen: &heard},
				{ID: "sos-1"}, // unsupervised, never heard
			}},
			{ID: "rf-down", Codec: "sonoff", Since: heard, LastError: "open /dev/ttyUSB1: no such file or directory",
				Sensors: []serial.SensorStatus{{ID: "door-2", LastSeen: &heard}}},
			{ID: "rf-other-gw", Online: true, Since: heard},
		}
	}
	h.cameraSnap = func() []rtsp.Health {
		return []rtsp.Health{
			{Device: "cam-1", State: rtsp.StateOnline, VideoLost: true, FPS: 0, LastKeyframe: now.Add(-8 * time.Second), Codec: "h264", Transport: "tcp"},
			{Device: "cam-2", State: rtsp.StateConnecting},
			{Device: "cam-off", State: rtsp.StateOnline},
		}
	}

	devs := map[string]status.Device{}
	for _, d := range h.Devices() {
		if _, dup := devs[d.ID]; dup {
			t.Errorf("device %s twice", d.ID)
		}
		devs[d.ID] = d
	}
	wantOnline := map[string]string{
		"gate-1": "online", "gate-2": "offline", "gate-3": "",
		"rf-up": "online", "rf-down": "offline",
		"door-1": "online", "pir-1": "offline", "sos-1": "", "door-2": "unknown",
		"cam-1": "online", "cam-2": "",
	}
	for id, want := range wantOnline {
		d, ok := devs[id]
		if !ok {
			t.Errorf("device %s missing", id)
			continue
		}
		if d.Online != want {
			t.Errorf("%s online = %q, want %q", id, d.Online, want)
		}
		if d.Battery != -1 {
			t.Errorf("%s battery = %d, want -1 (unknown)", id, d.Battery)
		}
	}
	if len(devs) != len(wantOnline) {
		t.Errorf("devices: %d, want %d (other gateways' left out)", len(devs), len(wantOnline))
	}
	if d := devs["gate-1"].Detail; d["rtt_ms"] != "12.00" || d["rtt_avg_ms"] != "10.00" || d["rtt_max_ms"] != "30.00" || d["bus"] != "tcp:10.0.0.5:502" {
		t.Errorf("gate-1 detail: %v", d)
	}
	if d := devs["door-1"]; !d.LastSeen.Equal(heard) || d.Detail["rssi"] != "-71" || d.Detail["door"] != "closed" || d.Detail["heartbeat"] != "1h0m0s" {
		t.Errorf("door-1: %+v", d)
	}
	if d := devs["cam-1"]; !d.LastSeen.Equal(now.Add(-8*time.Second)) || d.Detail["since_keyframe_s"] != "8.0" || d.Detail["video_lost"] != "true" {
		t.Errorf("cam-1: %+v", d)
	}

	buses := map[string]status.Bus{}
	for _, b := range h.Buses() {
		buses[b.Name] = b
	}
	if len(buses) != 5 {
		t.Errorf("buses: %v", buses)
	}
	mb := buses["tcp:10.0.0.5:502"]
	if mb.OK || mb.Requests != 100 || mb.Timeouts != 7 || mb.Detail["exceptions"] != "2" || mb.Detail["offline"] != "1" ||
		mb.Detail["read_efficiency"] != "0.50" || !strings.HasPrefix(mb.LastError, "gate-2: ") {
		t.Errorf("modbus bus: %+v", mb)
	}
	if b := buses["rf-down"]; b.OK || b.Kind != "serial" || b.LastError == "" {
		t.Errorf("receiver down: %+v", b)
	}
	if b := buses["cam-1"]; b.OK || b.LastError != "video lost" {
		t.Errorf("camera without video: %+v", b)
	}

	// The collector's families are checked against its descriptions.
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(driverMetrics{h: h, perDevice: true}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] += len(mf.GetMetric())
	}
	for name, n := range map[string]int{
		"lintel_modbus_transactions_total": 1, "lintel_modbus_device_up": 3, "lintel_modbus_device_rtt_seconds": 1,
		"lintel_radio_receiver_up": 2, "lintel_radio_sensor_silent": 2, "lintel_radio_sensor_door_open": 1,
		"lintel_radio_sensor_rssi": 1, "lintel_camera_up": 2, "lintel_camera_keyframe_age_seconds": 1,
	} {
		if series[name] != n {
			t.Errorf("%s: %d series, want %d", name, series[name], n)
		}
	}

	// By default (status.metrics.per_device off) no series names a
	// device: counts and sums by kind and building, no door state, no
	// last-seen time.
	reg = prometheus.NewPedanticRegistry()
	if err := reg.Register(driverMetrics{h: h}); err != nil {
		t.Fatal(err)
	}
	if mfs, err = reg.Gather(); err != nil {
		t.Fatal(err)
	}
	series = map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] += len(mf.GetMetric())
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "device" || h.ids[l.GetValue()] {
					t.Errorf("%s labelled %s=%s without per_device", mf.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
	for _, name := range []string{"lintel_radio_sensor_door_open", "lintel_radio_sensor_last_seen_timestamp_seconds", "lintel_radio_sensor_rssi", "lintel_modbus_device_up"} {
		if series[name] != 0 {
			t.Errorf("%s exported without per_device", name)
		}
	}
	for _, name := range []string{"lintel_modbus_transactions_total", "lintel_modbus_devices", "lintel_radio_receivers_up", "lintel_radio_sensors", "lintel_cameras"} {
		if series[name] == 0 {
			t.Errorf("%s missing from the aggregated metrics", name)
		}
	}
}

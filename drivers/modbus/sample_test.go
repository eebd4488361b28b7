package modbus

import (
	"os"
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
)

// TestSampleConfig loads sample.yaml as `lintel check` does and builds
// its buses without starting them.
func TestSampleConfig(t *testing.T) {
	b, err := os.ReadFile("sample.yaml")
	must(t, err)
	cfg, err := config.Parse("sample.yaml", b)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.DevicesFor("modbus")) != 4 {
		t.Fatalf("%d modbus devices", len(cfg.DevicesFor("modbus")))
	}
	buses, err := NewBuses(edge.Env{Config: cfg, Logger: testLogger(t), Emit: newRecorder(), Commands: edge.NewCommands(newRecorder())}, cfg.DevicesFor("modbus"))
	must(t, err)
	if len(buses) != 3 {
		t.Fatalf("%d buses, want 3 (one RTU port shared by two devices, one RTU-over-TCP, one TCP)", len(buses))
	}
	for _, b := range buses {
		if b.Name() == "rtu:/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K1234-if00-port0" && len(b.devs) != 2 {
			t.Errorf("shared RTU bus has %d devices", len(b.devs))
		}
	}
	readme, err := os.ReadFile("README.md")
	must(t, err)
	if !strings.Contains(string(readme), string(b)) {
		t.Error("README.md must embed sample.yaml verbatim under ## Configuration")
	}
}

// TestConfigProblems checks that device options and the profile itself
// are validated with positions through config.Parse.
func TestConfigProblems(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(dir+"/broken.yaml", []byte("model: x\npoints:\n  - {name: a, table: holdin}\n"), 0o644))
	y := `gateway: {id: gw, compound: c, data_dir: /tmp/x}
profiles: {dirs: [` + dir + `]}
devices:
  - id: a
    kind: gate
    driver: modbus
    address: rtu:///dev/ttyS1
    profile: barrier-gate
    options: {unit: 300, baud: 9601, parity: mark, pol_interval: 1s, never_read: ["holding:0-3", "hold:1"]}
  - id: b
    kind: gate
    driver: modbus
    address: rtu:///dev/ttyS1
    profile: barrier-gate
    options: {unit: 2, baud: 19200}
  - id: c
    kind: sensor
    driver: modbus
    address: tcp://10.0.0.1:502
    profile: broken
`
	_, err := config.Parse("lintel.yaml", []byte(y))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		"lintel.yaml:9:15: devices[0].options.unit: 300: want 1–247",
		"devices[0].options.baud: 9601",
		`devices[0].options.parity: "mark"`,
		`devices[0].options.pol_interval: unknown key "pol_interval"`,
		`devices[0].options.never_read[0]: covers point "gate_state"`,
		`devices[0].options.never_read[1]: "hold:1"`,
		`devices[1].options: bus /dev/ttyS1: 19200 none 1 disagrees with devices[0]`,
		`devices[2].profile: profile ` + dir + `/broken.yaml:3:15: points[0].table: "holdin"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in\n%v", want, err)
		}
	}
}

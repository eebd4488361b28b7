package serial

import (
	_ "embed"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lintel-edge/lintel/edge/config"
)

//go:embed sample.yaml
var sampleYAML []byte

func TestSampleLoads(t *testing.T) {
	c, err := config.Parse("sample.yaml", sampleYAML)
	if err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	devs := c.DevicesFor("serial")
	if len(devs) != 5 {
		t.Fatalf("%d serial devices", len(devs))
	}
	o, err := ReceiverFromConfig(devs[0])
	if err != nil || o.Codec != CodecSonoff || o.DedupWindow.Std() != DefaultDedupWindow || DefaultBaud(o.Codec) != 19200 {
		t.Errorf("receiver options = %+v, %v", o, err)
	}
	s, err := SensorFromConfig(c, devs[1])
	if err != nil || s.Addr != 0xA1B2C || s.Table == nil || s.Table.Name != "kerui-d026" || s.Supervised() {
		t.Errorf("door sensor = %+v, %v", s, err)
	}
	if Supervised(c, "door-3-1-301") || !Supervised(c, "door2-3-1-301") || Supervised(c, "rf-b3") || Supervised(c, "nope") {
		t.Error("Supervised wrong")
	}
	s, _ = SensorFromConfig(c, devs[4])
	if s.Heartbeat != time.Hour {
		t.Errorf("heartbeat = %v", s.Heartbeat)
	}
}

// TestConfigProblems edits the sample and checks that each mistake is
// reported at the right path.
func TestConfigProblems(t *testing.T) {
	tests := []struct {
		name, from, to, wantPath string
	}{
		{"no codec", "      codec: sonoff\n", "", "devices[0].options.codec"},
		{"bad codec", "codec: sonoff", "codec: zigbee", "devices[0].options.codec"},
		{"bad baud", "      # baud: 0", "      baud: 9601", "devices[0].options.baud"},
		{"bad parity", "      # parity: none", "      parity: mark", "devices[0].options.parity"},
		{"tiny window", "      # dedup_window: 2s", "      dedup_window: 10ms", "devices[0].options.dedup_window"},
		{"framed without header", "codec: sonoff", "codec: framed\n      framed: {code_bytes: 3}", "devices[0].options.framed"},
		{"framed on sonoff", "      # baud: 0", "      framed: {header: FD, code_bytes: 3}", "devices[0].options.framed"},
		{"line bad format", "codec: sonoff", "codec: line\n      line: {format: xml}", "devices[0].options.line"},
		{"unknown option", "      # parity: none", "      pairty: none", "devices[0].options.pairty"},
		{"receiver profile", "    place: {building: b3, position", "    profile: kerui-d026\n    place: {building: b3, position", "devices[0].profile"},
		{"no code", "      code: \"A1B2C\"\n", "", "devices[1].options.code"},
		{"bad code", "code: \"A1B2C\"", "code: \"XYZ\"", "devices[1].options.code"},
		{"wide code", "code: \"A1B2C\"", "code: \"A1B2C3\"", "devices[1].options.code"},
		{"duplicate code", "code: \"12345\"", "code: \"A1B2C\"", "devices[2].options.code"},
		{"unknown receiver", "receiver: rf-b3\n      ## The sensor", "receiver: rf-b9\n      ## The sensor", "devices[1].options.receiver"},
		{"kind not in table", "    kind: motion\n", "    kind: smoke\n", "devices[2].kind"},
		{"bad heartbeat", "heartbeat: 1h", "heartbeat: 5s", "devices[4].options.heartbeat"},
		{"no household", "    household: h-3-1-301\n    profile: kerui-d026\n    options:\n      ## The receiver", "    profile: kerui-d026\n    options:\n      ## The receiver", "devices[1].household"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := string(sampleYAML)
			if !strings.Contains(y, tt.from) {
				t.Fatalf("sample has no %q", tt.from)
			}
			y = strings.Replace(y, tt.from, tt.to, 1)
			_, err := config.Parse("sample.yaml", []byte(y))
			var ps config.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("accepted (err %v)", err)
			}
			for _, p := range ps {
				if strings.HasPrefix(p.Path, tt.wantPath) {
					if p.Line == 0 {
						t.Errorf("problem without a line: %v", p)
					}
					return
				}
			}
			t.Errorf("no problem at %s; got:\n%v", tt.wantPath, err)
		})
	}
}

func TestSensorByAddress(t *testing.T) {
	// With no receiver option, the sensor binds to the receiver on its port.
	y := strings.Replace(string(sampleYAML), "      receiver: rf-b3\n      ## The sensor", "      ## The sensor", 1)
	c, err := config.Parse("sample.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	d := c.DevicesFor("serial")[1]
	o, _ := decodeSensorOptions(d.Options)
	if rx, ok := receiverOf(c, d, o); !ok || rx.ID != "rf-b3" {
		t.Errorf("receiverOf = %v %v", rx.ID, ok)
	}
}

// TestRuntimeDecodeMatchesValidation: options are decoded twice (by
// edge/config when validating, by go.yaml.in/yaml at run time); both must
// read every key the same way.
func TestRuntimeDecodeMatchesValidation(t *testing.T) {
	y := strings.Replace(string(sampleYAML), "      codec: sonoff\n", `      codec: line
      baud: 115200
      parity: even
      dedup_window: 750ms
      reconnect_min: 200ms
      reconnect_max: 1m
      line:
        format: kv
        keys: {code: id, data: cmd}
        max_line: 128
`, 1)
	y = strings.Replace(y, "      # heartbeat: none\n", "      heartbeat: 2h\n", 1)
	c, err := config.Parse("sample.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	devs := c.DevicesFor("serial")
	o, err := ReceiverFromConfig(devs[0])
	if err != nil {
		t.Fatal(err)
	}
	want := ReceiverOptions{Codec: CodecLine, Baud: 115200, Parity: "even", DedupWindow: config.Duration(750 * time.Millisecond),
		ReconnectMin: config.Duration(200 * time.Millisecond), ReconnectMax: config.Duration(time.Minute),
		Line: LineOptions{Format: LineKV, Keys: map[string]string{"code": "id", "data": "cmd"}, MaxLine: 128}}
	if diff := cmp.Diff(want, o); diff != "" {
		t.Errorf("runtime options (-want +got):\n%s", diff)
	}
	s, err := SensorFromConfig(c, devs[1])
	if err != nil || s.Heartbeat != 2*time.Hour || ReceiverID(c, devs[1]) != "rf-b3" {
		t.Errorf("sensor = %+v, %v", s, err)
	}
	tables, err := LoadTables(c)
	if err != nil || tables["kerui-d026"] == nil || tables["stc15w-generic"] == nil {
		t.Errorf("LoadTables = %v, %v", tables, err)
	}
}

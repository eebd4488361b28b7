package event_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var update = flag.Bool("update", false, "rewrite golden files")

var t0 = time.Date(2026, 11, 27, 8, 30, 15, 123_456_789, time.FixedZone("CST", 8*3600))

// goldenEvents are one event per family of kinds, as the platform sees them.
func goldenEvents() map[string]*event.Event {
	stamp := func(e *event.Event, seq uint64) *event.Event {
		e.Seq = seq
		e.Gateway = "gw-hf-0001"
		e.Compound = "hf-shushan-001"
		e.ID = event.FormatID(e.Gateway, "3f9a0c1b2d4e5f60", seq)
		e.Time = t0
		e.TimeQuality = event.Synced
		return e
	}
	return map[string]*event.Event{
		"door_opened": stamp(&event.Event{Kind: event.DoorOpened, Severity: event.Info, Device: "door-3-1-301",
			Place: &event.Place{Building: "3", Unit: "1", Room: "301"}, Household: "h-3-1-301",
			Data: json.RawMessage(`{"code":"A1B2C3","rssi":-71}`)}, 41),
		"gate_forced_open": stamp(event.New(event.GateForcedOpen).WithData(map[string]any{"channel": 2, "door": "north"}), 42),
		"falling_object": stamp(&event.Event{Kind: event.CameraFallingObject, Severity: event.Alert, Device: "cam-b3-east",
			Place: &event.Place{Building: "3", Position: "east façade"},
			Data:  json.RawMessage(`{"objects":[{"id":"17","class":"Object","likelihood":0.8,"track":[{"t":"2026-11-27T00:30:14.700Z","box":{"left":0.24,"top":0.09,"right":0.26,"bottom":0.11},"center":{"x":0.25,"y":0.1}},{"t":"2026-11-27T00:30:14.900Z","box":{"left":0.24,"top":0.29,"right":0.26,"bottom":0.31},"center":{"x":0.25,"y":0.3}}]}],"start_floor":17,"start_floor_source":"floor_bands","start_point":{"x":0.25,"y":0.1},"topic":"tns1:RuleEngine/FallingObjectDetector/FallingObject"}`),
			Evidence: []event.Evidence{{Type: event.EvidenceClip, Ref: "clips/cam-b3-east/20261127T003014Z.mp4", MediaType: "video/mp4",
				SHA256: strings.Repeat("ab", 32), Size: 1843211}}}, 43),
		"elder_alert": stamp(&event.Event{Kind: event.ElderAlertRaised, Severity: event.Critical, Household: "h-3-1-301",
			Data: json.RawMessage(`{"alert_id":"al-h-3-1-301-sos-mwyfwb8e","level":1,"notify":["property_staff","grid_worker","contacts"],"reason_en":"SOS button pressed at 11-27 08:30 (sos-3-1-301)","reason_zh":"11-27 08:30 按下紧急呼叫按钮（sos-3-1-301）","rule":"sos"}`)}, 44),
		"unsynced_minimal": func() *event.Event {
			e := stamp(event.New(event.GatewayStarted), 1)
			e.Time = time.Date(1970, 1, 1, 0, 2, 3, 0, time.UTC)
			e.TimeQuality = event.Unsynced
			return e
		}(),
	}
}

func TestGolden(t *testing.T) {
	for name, e := range goldenEvents() {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(e, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("encoding changed:\n got: %s\nwant: %s", got, want)
			}
			back, err := event.Decode(want)
			if err != nil {
				t.Fatalf("decode golden: %v", err)
			}
			again, _ := json.MarshalIndent(back, "", "  ")
			if !bytes.Equal(append(again, '\n'), want) {
				t.Errorf("round trip changed the bytes:\n%s", again)
			}
		})
	}
}

func compileSchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("../../docs/event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("event.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGoldenMatchesSchema(t *testing.T) {
	s := compileSchema(t)
	files, _ := filepath.Glob("testdata/*.golden.json")
	if len(files) < 5 {
		t.Fatalf("found %d golden files", len(files))
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// The schema must reject what Decode rejects, or it documents nothing.
	for _, bad := range []string{
		`{"id":"x","seq":1,"gateway":"g","compound":"c","time":"2026-11-27T00:00:00.000Z","time_quality":"synced","kind":"Door Opened","severity":"info"}`,
		`{"id":"x","seq":1,"gateway":"g","compound":"c","time":"2026-11-27T00:00:00.000Z","time_quality":"synced","kind":"door.opened","severity":"loud"}`,
		`{"id":"x","seq":1,"gateway":"g","compound":"c","time":"2026-11-27T00:00:00.000Z","time_quality":"synced","kind":"door.opened","severity":"info","extra":1}`,
	} {
		v, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if s.Validate(v) == nil {
			t.Errorf("schema accepted %s", bad)
		}
		if _, err := event.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode accepted %s", bad)
		}
	}
}

func TestKindsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/events.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range event.Kinds() {
		if !bytes.Contains(doc, []byte("`"+string(k)+"`")) {
			t.Errorf("docs/events.md does not describe %s", k)
		}
		if !k.Valid() {
			t.Errorf("kind %s has an invalid shape", k)
		}
		if !k.DefaultSeverity().Valid() || k.Description() == "" {
			t.Errorf("kind %s lacks severity or description", k)
		}
	}
}

func TestKindValid(t *testing.T) {
	tests := []struct {
		k    event.Kind
		want bool
	}{
		{"door.opened", true}, {"elder.alert.raised", true}, {"telemetry", true}, {"a_b.c9", true},
		{"", false}, {".door", false}, {"door.", false}, {"door..opened", false}, {"Door.opened", false},
		{"door opened", false}, {event.Kind(strings.Repeat("a", 65)), false},
	}
	for _, tt := range tests {
		if got := tt.k.Valid(); got != tt.want {
			t.Errorf("%q.Valid() = %v", tt.k, got)
		}
	}
}

func TestIDRoundTrip(t *testing.T) {
	id := event.FormatID("gw-1.a", "00ff", 18446744073709551615)
	g, e, s, err := event.ParseID(id)
	if err != nil || g != "gw-1.a" || e != "00ff" || s != 18446744073709551615 {
		t.Fatalf("ParseID(%q) = %q %q %d %v", id, g, e, s, err)
	}
	for _, bad := range []string{"", "x", "a:b", "a:b:c", ":b:1"} {
		if _, _, _, err := event.ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	e := &event.Event{Kind: "Bad Kind", Severity: "loud", TimeQuality: "maybe", Data: json.RawMessage(`[1]`),
		Evidence: []event.Evidence{{Type: "movie", SHA256: "zz", Size: -1}}}
	err := e.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"kind", "severity", "time_quality", "data", "evidence[0].type", "evidence[0].ref", "evidence[0].sha256", "evidence[0].size"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}

func TestTimeAlwaysUTCMillis(t *testing.T) {
	e := event.New(event.DoorOpened)
	e.Time = t0
	b, _ := json.Marshal(e)
	if !bytes.Contains(b, []byte(`"time":"2026-11-27T00:30:15.123Z"`)) {
		t.Fatalf("time not RFC 3339 UTC ms: %s", b)
	}
}

func FuzzDecode(f *testing.F) {
	for _, e := range goldenEvents() {
		b, _ := json.Marshal(e)
		f.Add(b)
	}
	f.Add([]byte(`{"time":"x"}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := event.Decode(b)
		if err != nil {
			return
		}
		// Anything accepted must re-encode and decode to the same bytes.
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		e2, err := event.Decode(out)
		if err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		out2, _ := json.Marshal(e2)
		if !bytes.Equal(out, out2) {
			t.Fatalf("unstable encoding:\n%s\n%s", out, out2)
		}
	})
}

package rtsp

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lintel-edge/lintel/edge/event"
)

func readDoc(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "metadata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestParseMetadata(t *testing.T) {
	tests := []struct {
		file   string
		gzip   bool
		events []Notification
		frames []Frame
	}{
		{file: "axis-pir-changed.xml", events: []Notification{{
			Topic: "tns1:Device/tnsaxis:Sensor/PIR", Operation: "Changed",
			UtcTime: time.Date(2019, 3, 12, 23, 48, 28, 425164000, time.UTC), UtcTimeRaw: "2019-03-12T23:48:28.425164Z",
			Source: []Item{{"sensor", "0"}}, Data: []Item{{"state", "1"}},
		}}},
		{file: "axis-motionalarm-initialized.xml", events: []Notification{{
			Topic: "tns1:VideoSource/MotionAlarm", Operation: "Initialized",
			UtcTime: time.Date(2024, 6, 1, 2, 3, 4, 500000000, time.UTC), UtcTimeRaw: "2024-06-01T02:03:04.500000Z",
			Source: []Item{{"Source", "0"}}, Data: []Item{{"State", "0"}},
		}}},
		{file: "hikvision-cellmotion.xml", events: []Notification{{
			Topic: "tns1:RuleEngine/CellMotionDetector/Motion", Operation: "Changed",
			UtcTime: time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC), UtcTimeRaw: "2024-05-01T08:00:00Z",
			Source: []Item{{"VideoSourceConfigurationToken", "VideoSourceToken"}, {"VideoAnalyticsConfigurationToken", "VideoAnalyticsToken"}},
			Key:    []Item{{"Rule", "MyMotionDetectorRule"}},
			Data:   []Item{{"IsMotion", "true"}},
		}}},
		{file: "hikvision-cellmotion.xml", gzip: true, events: []Notification{{
			Topic: "tns1:RuleEngine/CellMotionDetector/Motion", Operation: "Changed",
			UtcTime: time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC), UtcTimeRaw: "2024-05-01T08:00:00Z",
			Source: []Item{{"VideoSourceConfigurationToken", "VideoSourceToken"}, {"VideoAnalyticsConfigurationToken", "VideoAnalyticsToken"}},
			Key:    []Item{{"Rule", "MyMotionDetectorRule"}},
			Data:   []Item{{"IsMotion", "true"}},
		}}},
		{file: "tapo-value-before-name.xml", events: []Notification{
			{
				Topic: "tns1:RuleEngine/CellMotionDetector/Motion", Operation: "Changed",
				UtcTime: time.Date(2023, 11, 2, 10, 11, 12, 0, time.UTC), UtcTimeRaw: "2023-11-02T10:11:12Z",
				Source: []Item{{"VideoSourceConfigurationToken", "vsconf"}, {"VideoAnalyticsConfigurationToken", "VideoAnalyticsToken"}, {"Rule", "MyMotionDetectorRule"}},
				Data:   []Item{{"IsMotion", "true"}},
			},
			{
				Topic: "tns1:RuleEngine/PeopleDetector/People", Operation: "Changed",
				UtcTime: time.Date(2023, 11, 2, 10, 11, 13, 0, time.UTC), UtcTimeRaw: "2023-11-02T10:11:13Z",
				Source: []Item{{"VideoSourceConfigurationToken", "vsconf"}},
				Data:   []Item{{"IsPeople", "true"}},
			},
		}},
		{file: "hanwha-objects.xml", frames: []Frame{{
			UtcTime: time.Date(2024, 2, 3, 4, 5, 6, 100000000, time.UTC),
			Objects: []Object{{
				ID: "42", Class: "Vehicle", Likelihood: 0.93,
				// pixels 320..400 x 120..240 of a 640x480 image
				Box:    &Box{Left: 0.5, Top: 0.25, Right: 0.625, Bottom: 0.5},
				Center: &Point{X: 0.5625, Y: 0.375},
			}},
		}}},
		{file: "default-namespace.xml",
			frames: []Frame{{
				UtcTime: time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC),
				Objects: []Object{{ID: "7", Class: "Human", Likelihood: 0.8, Box: &Box{Left: 0.25, Top: 0.25, Right: 0.75, Bottom: 0.75}}},
			}},
			events: []Notification{{
				Topic: "onvif:RuleEngine/TamperDetector/Tamper", Operation: "Changed",
				UtcTime: time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC), UtcTimeRaw: "2024-02-03T04:05:06Z",
				Source: []Item{{"VideoSourceConfigurationToken", "0"}}, Data: []Item{{"IsTamper", "true"}},
			}},
		},
		{file: "falling-object.xml",
			frames: []Frame{
				{UtcTime: time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), Objects: []Object{{ID: "5", Box: &Box{Left: 0.55, Top: 0.09, Right: 0.57, Bottom: 0.11}, Center: &Point{X: 0.56, Y: 0.1}}}},
				{UtcTime: time.Date(2026, 11, 27, 3, 0, 0, 400000000, time.UTC), Objects: []Object{{ID: "5", Box: &Box{Left: 0.55, Top: 0.39, Right: 0.57, Bottom: 0.41}, Center: &Point{X: 0.56, Y: 0.4}}}},
			},
			events: []Notification{{
				Topic: "tns1:RuleEngine/vnd:FallingObjectDetector/FallingObject", Operation: "Changed",
				UtcTime: time.Date(2026, 11, 27, 3, 0, 0, 400000000, time.UTC), UtcTimeRaw: "2026-11-27T03:00:00.400Z",
				Source: []Item{{"VideoSourceConfigurationToken", "vs0"}, {"Rule", "高空抛物"}},
				Data:   []Item{{"ObjectId", "5"}, {"State", "true"}},
			}},
		},
	}
	for _, tt := range tests {
		name := tt.file
		if tt.gzip {
			name += ".gz"
		}
		t.Run(name, func(t *testing.T) {
			doc := readDoc(t, tt.file)
			if tt.gzip {
				doc = gz(doc)
			}
			md, err := ParseMetadata(doc)
			if err != nil {
				t.Fatalf("ParseMetadata: %v", err)
			}
			if diff := cmp.Diff(tt.events, md.Events); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.frames, md.Frames); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMetadataTruncated(t *testing.T) {
	doc := readDoc(t, "tapo-value-before-name.xml")
	// Cut inside the second notification: the first is complete and kept.
	cut := bytes.Index(doc, []byte("PeopleDetector"))
	md, err := ParseMetadata(doc[:cut])
	if err == nil {
		t.Fatal("want an error for a truncated document")
	}
	if len(md.Events) != 1 || md.Events[0].Topic != "tns1:RuleEngine/CellMotionDetector/Motion" {
		t.Fatalf("want the complete first notification only, got %+v", md.Events)
	}
	for _, bad := range []string{"", "<", "not xml", "<a></b>", "\x1f\x8bjunk", "<tt:MetadataStream><tt:Event>"} {
		if _, err := ParseMetadata([]byte(bad)); bad != "" && err == nil {
			t.Errorf("ParseMetadata(%q): want error", bad)
		}
	}
}

func packets(doc []byte, n int) [][]byte {
	var out [][]byte
	size := (len(doc) + n - 1) / n
	for len(doc) > 0 {
		k := min(size, len(doc))
		out = append(out, doc[:k])
		doc = doc[k:]
	}
	return out
}

func TestReassembler(t *testing.T) {
	doc := readDoc(t, "hikvision-cellmotion.xml")
	parts := packets(doc, 4)

	t.Run("whole", func(t *testing.T) {
		var r Reassembler
		var got [][]byte
		seq := uint16(65533) // wraps
		for round := 0; round < 2; round++ {
			for i, p := range parts {
				if d, ok := r.Push(seq, uint32(1000*round), i == len(parts)-1, p); ok {
					got = append(got, d)
				}
				seq++
			}
		}
		if len(got) != 2 || !bytes.Equal(got[0], doc) || !bytes.Equal(got[1], doc) {
			t.Fatalf("got %d documents", len(got))
		}
	})
	t.Run("loss drops the partial document", func(t *testing.T) {
		var r Reassembler
		var got [][]byte
		seq := uint16(0)
		for round := 0; round < 3; round++ {
			for i, p := range parts {
				seq++
				if round == 1 && i == 2 {
					continue // lost
				}
				if d, ok := r.Push(seq, uint32(1000*round), i == len(parts)-1, p); ok {
					got = append(got, d)
				}
			}
		}
		if len(got) != 2 || r.Dropped != 1 {
			t.Fatalf("got %d documents, dropped %d; want 2 and 1", len(got), r.Dropped)
		}
		for _, d := range got {
			if !bytes.Equal(d, doc) {
				t.Fatalf("document damaged: %q", d)
			}
		}
	})
	t.Run("lost marker", func(t *testing.T) {
		var r Reassembler
		var got [][]byte
		seq := uint16(0)
		for round := 0; round < 2; round++ {
			for i, p := range parts {
				seq++
				marker := i == len(parts)-1 && round == 1
				if d, ok := r.Push(seq, uint32(1000*round), marker, p); ok {
					got = append(got, d)
				}
			}
		}
		if len(got) != 1 || !bytes.Equal(got[0], doc) || r.Dropped != 1 {
			t.Fatalf("got %d documents, dropped %d", len(got), r.Dropped)
		}
	})
	t.Run("oversized", func(t *testing.T) {
		r := Reassembler{MaxSize: len(doc) - 1}
		var n int
		for i, p := range parts {
			if _, ok := r.Push(uint16(i), 0, i == len(parts)-1, p); ok {
				n++
			}
		}
		if n != 0 {
			t.Fatal("oversized document returned")
		}
		if d, ok := r.Push(uint16(len(parts)), 5, true, []byte("<tt:MetadataStream/>")); !ok || string(d) != "<tt:MetadataStream/>" {
			t.Fatal("next document lost after an oversized one")
		}
	})
}

func TestMapper(t *testing.T) {
	fo := mustProfile(t, "generic-falling-object")
	ph := mustProfile(t, "generic-peephole")
	bands := []FloorBand{{Floor: 18, YMin: 0, YMax: 0.2}, {Floor: 17, YMin: 0.2, YMax: 0.4}, {Floor: 16, YMin: 0.4, YMax: 1}}
	at := time.Date(2026, 11, 27, 3, 0, 1, 0, time.UTC)

	type want struct {
		kind event.Kind
		clip bool
		data map[string]any // a subset of data to compare
	}
	tests := []struct {
		name string
		prof *Profile
		docs []string
		want []want
	}{
		{"falling object with track and floor", fo, []string{"falling-object.xml"}, []want{{
			kind: event.CameraFallingObject, clip: true,
			data: map[string]any{"start_floor": float64(18), "start_point": map[string]any{"x": 0.56, "y": 0.1}, "start_floor_source": "floor_bands"},
		}}},
		{"tamper in default namespace", fo, []string{"default-namespace.xml"}, []want{{kind: event.CameraTamper, clip: true}}},
		{"motion (hikvision)", fo, []string{"hikvision-cellmotion.xml"}, []want{{kind: event.MotionDetected}}},
		{"motion repeated within cooldown", fo, []string{"hikvision-cellmotion.xml", "hikvision-cellmotion.xml"}, []want{{kind: event.MotionDetected}}},
		{"initialized state dump ignored", fo, []string{"axis-motionalarm-initialized.xml"}, nil},
		{"unknown topic kept raw", fo, []string{"axis-pir-changed.xml"}, []want{{
			kind: event.CameraEvent, data: map[string]any{"topic": "tns1:Device/tnsaxis:Sensor/PIR", "active": true},
		}}},
		{"tapo motion and people at a peephole", ph, []string{"tapo-value-before-name.xml"}, []want{
			{kind: event.MotionDetected}, {kind: event.PeepholeVisitor},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMapper(tt.prof, "cam-1", bands)
			var got []Incident
			for i, f := range tt.docs {
				md, err := ParseMetadata(readDoc(t, f))
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, m.Handle(md, at.Add(time.Duration(i)*time.Second))...)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d incidents, want %d: %+v", len(got), len(tt.want), got)
			}
			for i, w := range tt.want {
				ev := got[i].Event
				if ev.Kind != w.kind || got[i].Clip != w.clip || ev.Device != "cam-1" {
					t.Errorf("incident %d: kind %s clip %v device %q; want %s %v", i, ev.Kind, got[i].Clip, ev.Device, w.kind, w.clip)
				}
				if err := ev.Validate(); err != nil {
					t.Errorf("incident %d: invalid event: %v", i, err)
				}
				var data map[string]any
				if err := json.Unmarshal(ev.Data, &data); err != nil {
					t.Fatal(err)
				}
				for k, v := range w.data {
					if diff := cmp.Diff(v, data[k]); diff != "" {
						t.Errorf("incident %d data.%s (-want +got):\n%s", i, k, diff)
					}
				}
			}
		})
	}
}

func TestPeepholeKinds(t *testing.T) {
	ph := mustProfile(t, "generic-peephole")
	m := NewMapper(ph, "ph-1", nil)
	doc := func(topic, item, val string) *Metadata {
		return &Metadata{Events: []Notification{{Topic: topic, Operation: "Changed", Data: []Item{{item, val}}}}}
	}
	at := time.Now()
	cases := []struct {
		md   *Metadata
		want event.Kind
	}{
		{doc("tns1:RuleEngine/LoiteringDetector/Loitering", "State", "true"), event.PeepholeLoitering},
		{doc("tns1:RuleEngine/MyDoorbell/Doorbell", "Ring", "1"), event.PeepholeDoorbell},
		{doc("tns1:Device/Trigger/DigitalInput", "LogicalState", "true"), event.PeepholeDoorbell},
		{doc("tns1:RuleEngine/FieldDetector/ObjectsInside", "IsInside", "false"), ""},
		{doc("tns1:Monitoring/ProcessorUsage", "Value", "12"), ""},
	}
	for i, c := range cases {
		got := m.Handle(c.md, at.Add(time.Duration(i)*time.Hour))
		switch {
		case c.want == "" && len(got) != 0:
			t.Errorf("case %d: want nothing, got %s", i, got[0].Event.Kind)
		case c.want != "" && (len(got) != 1 || got[0].Event.Kind != c.want):
			t.Errorf("case %d: want %s, got %+v", i, c.want, got)
		}
	}
}

func mustProfile(t testing.TB, name string) *Profile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "configs", "cameras", name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseProfile(b)
	if err != nil {
		t.Fatalf("profile %s: %v", name, err)
	}
	return p
}

func TestNormalizeTopic(t *testing.T) {
	for in, want := range map[string]string{
		"tns1:RuleEngine/CellMotionDetector/Motion": "ruleengine/cellmotiondetector/motion",
		"tns1:Device/tnsaxis:Sensor/PIR":            "device/sensor/pir",
		" VideoSource/MotionAlarm ":                 "videosource/motionalarm",
	} {
		if got := NormalizeTopic(in); got != want {
			t.Errorf("NormalizeTopic(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzMetadata feeds a document cut into packets, with an optional loss,
// through the reassembler and the parser: nothing may panic, a returned
// document must be a concatenation of whole consecutive payloads, and the
// mapper must produce valid events from whatever parses.
func FuzzMetadata(f *testing.F) {
	ents, _ := os.ReadDir(filepath.Join("testdata", "metadata"))
	for _, e := range ents {
		b := readDoc(f, e.Name())
		f.Add(b, uint8(3), uint8(255))
		f.Add(b, uint8(1), uint8(0))
		f.Add(gz(b), uint8(2), uint8(255))
	}
	prof := mustProfile(f, "generic-falling-object")
	f.Fuzz(func(t *testing.T, doc []byte, nparts, lose uint8) {
		parts := packets(doc, int(nparts%8)+1)
		r := Reassembler{MaxSize: 64 << 10}
		var want []byte
		for i, p := range parts {
			if int(lose) == i {
				want = nil
				continue
			}
			want = append(want, p...)
			d, ok := r.Push(uint16(i), 0, i == len(parts)-1, p)
			if !ok {
				continue
			}
			if len(d) > 64<<10 || !bytes.Equal(d, want) {
				t.Fatalf("reassembled %d bytes that are not the payloads since the last loss", len(d))
			}
			md, _ := ParseMetadata(d)
			m := NewMapper(prof, "cam", []FloorBand{{Floor: 1, YMin: 0, YMax: 1}})
			for _, inc := range m.Handle(md, time.Unix(0, 0)) {
				if err := inc.Event.Validate(); err != nil {
					t.Fatalf("invalid event: %v", err)
				}
			}
		}
	})
}

// TestImageCoordinates: a profile for cameras writing 0..1, y-down
// positions regardless of the standard gets them unchanged.
func TestImageCoordinates(t *testing.T) {
	p, err := ParseProfile([]byte(`name: x
coordinates: image
topics:
  - {topic: "RuleEngine/*FallingObject*/*", kind: camera.falling_object}
`))
	if err != nil {
		t.Fatal(err)
	}
	md, err := ParseMetadata([]byte(`<MetadataStream><VideoAnalytics><Frame><Object ObjectId="1"><Appearance><Shape>
<BoundingBox left="0.2" top="0.1" right="0.3" bottom="0.2"/><CenterOfGravity x="0.25" y="0.15"/></Shape></Appearance></Object></Frame></VideoAnalytics>
<Event><NotificationMessage><Topic>tns1:RuleEngine/FallingObjectDetector/FallingObject</Topic><Message><Message PropertyOperation="Changed">
<Data><SimpleItem Name="State" Value="true"/></Data></Message></Message></NotificationMessage></Event></MetadataStream>`))
	if err != nil {
		t.Fatal(err)
	}
	incs := NewMapper(p, "c", []FloorBand{{Floor: 9, YMin: 0.1, YMax: 0.2}}).Handle(md, time.Now())
	if len(incs) != 1 {
		t.Fatalf("%d incidents", len(incs))
	}
	var data struct {
		StartPoint Point `json:"start_point"`
		StartFloor int   `json:"start_floor"`
		Objects    []TrackedObject
	}
	json.Unmarshal(incs[0].Event.Data, &data)
	if data.StartPoint != (Point{0.25, 0.15}) || data.StartFloor != 9 || *data.Objects[0].Track[0].Box != (Box{0.2, 0.1, 0.3, 0.2}) {
		t.Fatalf("data %s", incs[0].Event.Data)
	}
}

package serial

import (
	"bytes"
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lintel-edge/lintel/edge/config"
)

func TestParseScript(t *testing.T) {
	sc, err := ParseScript(strings.NewReader(`
# comment
wait 1.5s
send A1B2CE     # word
send 123456 02
sensor door-1 open
noise 4
raw AA A4 01`))
	if err != nil {
		t.Fatal(err)
	}
	ops := []string{}
	for _, s := range sc {
		ops = append(ops, s.Op)
	}
	if diff := cmp.Diff([]string{"wait", "send", "send", "sensor", "noise", "raw"}, ops); diff != "" {
		t.Error(diff)
	}
	if sc[1].Frame != (Frame{Code: 0xA1B2CE, Bits: 24}) || sc[2].Frame != (Frame{Code: 0x123456, Bits: 24, Data: 2, HasData: true}) {
		t.Errorf("frames %+v %+v", sc[1].Frame, sc[2].Frame)
	}
	for _, bad := range []string{"wait", "wait soon", "send", "send XYZ", "sensor door-1 opened", "noise -1", "raw", "jump 3"} {
		if _, err := ParseScript(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestSimScriptThroughScanner plays a script with heavy noise and drops
// into a buffer and checks the decoder still finds the sensor.
func TestSimScriptThroughScanner(t *testing.T) {
	k := shippedTable(t, "kerui-d026")
	var out bytes.Buffer
	sim := &Sim{Codec: &Sonoff{}, Out: &out, Repeats: 6, Noise: 0.5, Drop: 0.3, Rand: rand.New(rand.NewPCG(9, 9))}
	sc, _ := ParseScript(strings.NewReader("sensor door-1 open\nnoise 50\nsensor door-1 close\nsend A1B2CB"))
	if err := sim.RunScript(context.Background(), sc, []SimSensor{{ID: "door-1", Kind: "door", Table: k, Addr: 0xA1B2C}}); err != nil {
		t.Fatal(err)
	}
	tr := NewTracker("rx", []Sensor{{ID: "door-1", Kind: "door", Table: k, Addr: 0xA1B2C, Profile: "kerui-d026"}}, time.Second, t0)
	var got []string
	frames, _ := scanAll(&Sonoff{}, out.Bytes(), 3)
	for _, f := range frames {
		got = append(got, kinds(tr.Frame(t0, f))...)
	}
	if diff := cmp.Diff([]string{"door.opened@door-1", "door.closed@door-1", "sensor.tamper@door-1"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestRoutine(t *testing.T) {
	k := shippedTable(t, "kerui-d026")
	ss := []SimSensor{
		{ID: "door-1", Kind: "door", Household: "h-1", Table: k, Addr: 1},
		{ID: "pir-1", Kind: "motion", Household: "h-1", Table: k, Addr: 2},
	}
	hs := Routine(rand.New(rand.NewPCG(1, 1)), ss, 3)
	count := map[string]int{}
	for i, h := range hs {
		if i > 0 && h.At < hs[i-1].At {
			t.Fatal("not sorted")
		}
		count[h.Why]++
	}
	if count["wake"] != 6 || count["go out"] != 9 || count["return"] != 9 {
		t.Errorf("counts = %v", count)
	}
	// Played fast into a receiver, the doors come out balanced.
	var out bytes.Buffer
	sim := &Sim{Codec: &Sonoff{}, Out: &out, Repeats: 2}
	if err := sim.RunRoutine(context.Background(), hs, 0, 1e9, nil); err != nil {
		t.Fatal(err)
	}
	frames, _ := scanAll(&Sonoff{}, out.Bytes(), 0)
	if len(frames) != 2*len(hs) {
		t.Errorf("%d frames for %d happenings", len(frames), len(hs))
	}
}

func TestLearner(t *testing.T) {
	tables := map[string]*Table{}
	for _, n := range []string{"kerui-d026", "stc15w-generic", "rfxtrx-security1"} {
		tables[n] = shippedTable(t, n)
	}
	l := NewLearner()
	for _, w := range []uint64{0xA1B2CE, 0xA1B2CE, 0xA1B2C7, 0x806507, 0x80650A} {
		l.Add(t0, word(w))
	}
	l.Add(t0, Frame{Code: 0x123456, Bits: 24, Data: 2, HasData: true, RSSI: 7, HasRSSI: true})
	hs := l.Heard()
	if len(hs) != 5 || hs[0].Count != 2 {
		t.Fatalf("heard = %v", hs)
	}
	if d := hs[4].Describe(); !strings.Contains(d, "123456") || !strings.Contains(d, "rssi=7") {
		t.Errorf("describe = %q", d)
	}
	best := l.Best(tables)
	for i, want := range []string{"kerui-d026", "kerui-d026", "stc15w-generic", "stc15w-generic", "rfxtrx-security1"} {
		if got := best[hs[i]].Profile; got != want {
			t.Errorf("heard %s: best table %s, want %s", hs[i].Frame.CodeHex(), got, want)
		}
	}
	var y bytes.Buffer
	BindingYAML(&y, best[hs[2]], "", "", "h-1", "rf-1", "/dev/ttyUSB0")
	for _, s := range []string{"profile: stc15w-generic", `code: "8065"`, "kind: door", "receiver: rf-1"} {
		if !strings.Contains(y.String(), s) {
			t.Errorf("YAML lacks %q:\n%s", s, y.String())
		}
	}
	// The printed block parses as a device of a config.
	doc := "gateway: {id: gw, compound: c}\ncompound:\n  households: [{id: h-1}]\ndevices:\n" +
		"  - id: rf-1\n    kind: receiver\n    driver: serial\n    address: /dev/ttyUSB0\n    options: {codec: sonoff}\n" + y.String()
	if _, err := config.Parse("learned.yaml", []byte(doc)); err != nil {
		t.Errorf("learned YAML: %v\n%s", err, doc)
	}
}

func TestParseCodecSpec(t *testing.T) {
	o, err := ParseCodecSpec(CodecLine, "format=regex,pattern=^RX (?P<code>[0-9A-F]+),(?P<data>[0-9A-F]+)")
	if err != nil || o.Line.Pattern != "^RX (?P<code>[0-9A-F]+),(?P<data>[0-9A-F]+)" {
		t.Errorf("%+v %v", o, err)
	}
	if _, err := ParseCodecSpec(CodecFramed, ""); err != nil {
		t.Errorf("framed default: %v", err)
	}
	for _, bad := range [][2]string{{CodecFramed, "header=FD"}, {CodecFramed, "colour=red"}, {CodecLine, "format"}, {CodecFramed, "header=FD,code_bytes=x"}} {
		if _, err := ParseCodecSpec(bad[0], bad[1]); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestDriverSupervision runs a receiver whose clock is fake: a supervised
// sensor that stays quiet gets one sensor.silent.
func TestDriverSupervision(t *testing.T) {
	p, err := OpenPTY()
	if err != nil {
		noPTY(t, err)
	}
	defer p.Close()
	k := shippedTable(t, "kerui-d026")
	o := e2eCases()[0].opts
	rec := newRecorder()
	rx, err := NewReceiver("rx-s", p.Path(), o, []Sensor{
		{ID: "pir-1", Kind: "motion", Household: "h-1", Profile: "kerui-d026", Table: k, Addr: 2, Heartbeat: time.Hour},
		{ID: "door-1", Kind: "door", Household: "h-1", Profile: "kerui-d026", Table: k, Addr: 1},
	}, rec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := t0
	rx.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	rx.tick = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rx.Run(ctx) }()
	defer func() { cancel(); <-done }()
	n := rec.waitFor(t, 0, "device.online@rx-s")
	mu.Lock()
	now = now.Add(3*time.Hour + time.Second)
	mu.Unlock()
	n = rec.waitFor(t, n, "sensor.silent@pir-1")
	time.Sleep(50 * time.Millisecond) // ten more ticks: no second one
	if got := rec.kinds(); len(got) != n {
		t.Errorf("events = %v", got)
	}
	if !rx.Supervised("pir-1") || rx.Supervised("door-1") {
		t.Error("Supervised wrong")
	}
}

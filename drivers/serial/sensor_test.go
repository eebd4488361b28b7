package serial

import (
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lintel-edge/lintel/configs"
	"github.com/lintel-edge/lintel/edge/event"
)

func shippedTable(t testing.TB, name string) *Table {
	t.Helper()
	tb, err := LoadTable(configs.FS, "radio/"+name+".yaml", name)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

func TestShippedTables(t *testing.T) {
	ents, err := fs.ReadDir(configs.FS, "radio")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok {
			continue
		}
		n++
		shippedTable(t, name)
	}
	if n < 2 {
		t.Fatalf("%d tables shipped", n)
	}
	k := shippedTable(t, "kerui-d026")
	for data, want := range map[uint32]Meaning{0xE: Open, 0x7: Close, 0xB: Tamper, 0xF: BatteryLow, 0xA: Motion} {
		if got, _ := k.Meaning(data); got != want {
			t.Errorf("kerui %X = %q, want %q", data, got, want)
		}
	}
	s := shippedTable(t, "stc15w-generic")
	for data, want := range map[uint32]Meaning{0x0A: Open, 0x0E: Close, 0x07: Tamper} {
		if got, _ := s.Meaning(data); got != want {
			t.Errorf("stc15w %X = %q, want %q", data, got, want)
		}
	}
	// The research capture 806507 is the STC15W sensor 8065 reporting tamper.
	addr, data, ok := s.Split(0x806507, 24)
	if !ok || addr != 0x8065 || data != 0x07 {
		t.Errorf("Split(806507) = %X %X %v", addr, data, ok)
	}
}

func TestTableErrors(t *testing.T) {
	bad := map[string]string{
		"no kinds":      "codes: {\"0xE\": open}",
		"bad kind":      "kinds: [fridge]\ncodes: {\"0xE\": open}",
		"bad meaning":   "kinds: [door]\ncodes: {\"0xE\": opened}",
		"wide data":     "kinds: [door]\nword: {address_bits: 20, data_bits: 4}\ncodes: {\"0x1E\": open}",
		"bad heartbeat": "kinds: [door]\nheartbeat: 5\ncodes: {\"0xE\": open}",
		"unknown key":   "kinds: [door]\ncode: {\"0xE\": open}",
		"bad hex":       "kinds: [door]\ncodes: {\"XY\": open}",
	}
	for name, y := range bad {
		if _, err := ParseTable(name, []byte(y)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// clock is a fake clock for tracker tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time                { return c.t }
func (c *clock) add(d time.Duration) time.Time { c.t = c.t.Add(d); return c.t }

var t0 = time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC)

func kinds(evs []*event.Event) []string {
	out := []string{}
	for _, e := range evs {
		out = append(out, string(e.Kind)+"@"+e.Device)
	}
	return out
}

func testSensors(t testing.TB) []Sensor {
	k, s, sec := shippedTable(t, "kerui-d026"), shippedTable(t, "stc15w-generic"), shippedTable(t, "rfxtrx-security1")
	return []Sensor{
		{ID: "door-301", Kind: "door", Household: "h-301", Profile: "kerui-d026", Table: k, Addr: 0xA1B2C},
		{ID: "pir-301", Kind: "motion", Household: "h-301", Profile: "kerui-d026", Table: k, Addr: 0x12345, Heartbeat: time.Hour},
		{ID: "door-302", Kind: "door", Household: "h-302", Profile: "stc15w-generic", Table: s, Addr: 0x8065},
		{ID: "sos-302", Kind: "sos", Household: "h-302", Profile: "rfxtrx-security1", Table: sec, Addr: 0x123456},
	}
}

func word(code uint64) Frame { return Frame{Code: code, Bits: 24} }

func TestTrackerDedupAndDoorState(t *testing.T) {
	c := &clock{t: t0}
	tr := NewTracker("rx-1", testSensors(t), 2*time.Second, c.now())
	var got []string
	feed := func(d time.Duration, f Frame) {
		got = append(got, kinds(tr.Frame(c.add(d), f))...)
	}
	// A burst of 8 repeats 100 ms apart is one event.
	for i := range 8 {
		feed(time.Duration(min(i, 1))*100*time.Millisecond, word(0xA1B2CE))
	}
	// Close, then open again 1 s later: different data, not a repeat.
	feed(5*time.Second, word(0xA1B2C7))
	feed(time.Second, word(0xA1B2CE))
	// The close is missed; a later open must not be a second opening.
	feed(time.Minute, word(0xA1B2CE))
	// Close repeated after the window: still one close.
	feed(time.Minute, word(0xA1B2C7))
	feed(time.Minute, word(0xA1B2C7))
	// STC15W: 8065 0A open, 0E close, 07 tamper.
	feed(time.Second, word(0x80650A))
	feed(100*time.Millisecond, word(0x80650A))
	feed(time.Second, word(0x806507))
	// Motion twice, far apart.
	feed(time.Second, word(0x12345A))
	feed(10*time.Second, word(0x12345A))
	// Unknown code.
	feed(time.Second, word(0xFFFFF1))
	want := []string{
		"door.opened@door-301", "door.closed@door-301", "door.opened@door-301",
		"door.closed@door-301",
		"door.opened@door-302", "sensor.tamper@door-302",
		"motion.detected@pir-301", "motion.detected@pir-301",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	snap := tr.Snapshot()
	if snap[0].Door != DoorClosed || snap[0].Repeats != 7 || snap[0].Ignored != 2 {
		t.Errorf("door-301 snapshot = %+v", snap[0])
	}
	if u := tr.Unknown(); len(u) != 1 || u[0].Code != "FFFFF1" {
		t.Errorf("unknown = %+v", u)
	}
}

func TestTrackerLongBurstIsCut(t *testing.T) {
	c := &clock{t: t0}
	tr := NewTracker("rx-1", testSensors(t), time.Second, c.now())
	n := 0
	// A PIR stuck sending every 500 ms for 10 s reports every 4 windows.
	for range 20 {
		n += len(tr.Frame(c.add(500*time.Millisecond), word(0x12345A)))
	}
	if n < 2 || n > 4 {
		t.Errorf("%d events from a 10 s stuck burst, want 2–4", n)
	}
}

func TestTrackerEventData(t *testing.T) {
	c := &clock{t: t0}
	tr := NewTracker("rx-1", testSensors(t), 2*time.Second, c.now())
	evs := tr.Frame(c.add(time.Second), word(0xA1B2CE))
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	e := evs[0]
	if e.Household != "h-301" || e.Device != "door-301" || !e.Time.Equal(t0.Add(time.Second)) || e.Severity != event.Info {
		t.Errorf("event = %+v", e)
	}
	m, _ := e.DataMap()
	if m["supervised"] != false || m["code"] != "A1B2C" || m["data"] != "E" || m["meaning"] != "open" || m["receiver"] != "rx-1" {
		t.Errorf("data = %v", m)
	}
	if err := e.Validate(); err != nil {
		t.Error(err)
	}
	evs = tr.Frame(c.add(time.Second), word(0x12345A))
	m, _ = evs[0].DataMap()
	if m["supervised"] != true {
		t.Errorf("pir supervised = %v", m["supervised"])
	}
}

func TestTrackerSecurity1Flags(t *testing.T) {
	c := &clock{t: t0}
	tr := NewTracker("rx-1", testSensors(t), 2*time.Second, c.now())
	sec := func(status uint32, tamper, batt bool) Frame {
		return Frame{Code: 0x123456, Bits: 24, Data: status, HasData: true, Tamper: tamper, BatteryLow: batt, HasFlags: true, RSSI: 5, HasRSSI: true}
	}
	var got []string
	for _, step := range []struct {
		d time.Duration
		f Frame
	}{
		{time.Second, sec(0x06, false, false)},   // panic → sos.pressed
		{time.Minute, sec(0x07, true, false)},    // end panic, tamper → sensor.tamper
		{time.Minute, sec(0x00, true, false)},    // still tampered: nothing
		{time.Minute, sec(0x00, false, true)},    // battery low
		{time.Hour, sec(0x00, false, true)},      // battery low again within a day: nothing
		{25 * time.Hour, sec(0x02, false, true)}, // alarm on a sos → sos.pressed; battery again after a day
		{time.Minute, sec(0x00, true, false)},    // tamper again after it cleared
	} {
		got = append(got, kinds(tr.Frame(c.add(step.d), step.f))...)
	}
	want := []string{"sos.pressed@sos-302", "sensor.tamper@sos-302", "sensor.battery_low@sos-302",
		"sensor.battery_low@sos-302", "sos.pressed@sos-302", "sensor.tamper@sos-302"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if s := tr.Snapshot()[3]; s.RSSI == nil || *s.RSSI != 5 || !s.Tamper {
		t.Errorf("snapshot = %+v", s)
	}
}

func TestTrackerSupervision(t *testing.T) {
	c := &clock{t: t0}
	tr := NewTracker("rx-1", testSensors(t), 2*time.Second, c.now())
	if next := tr.NextTick(); !next.Equal(t0.Add(3 * time.Hour)) {
		t.Errorf("NextTick = %v", next)
	}
	// Heard after 1 h: the 3-period clock restarts.
	tr.Frame(c.add(time.Hour), word(0x12345A))
	if evs := tr.Tick(c.add(2*time.Hour + 59*time.Minute)); len(evs) != 0 {
		t.Fatalf("silent too early: %v", kinds(evs))
	}
	evs := tr.Tick(c.add(time.Minute))
	if diff := cmp.Diff([]string{"sensor.silent@pir-301"}, kinds(evs)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	m, _ := evs[0].DataMap()
	if m["last_seen"] != "2026-03-01T08:00:00.000Z" || m["heartbeat"] != "1h0m0s" {
		t.Errorf("data = %v", m)
	}
	// Once only, however long the silence.
	for range 10 {
		if evs := tr.Tick(c.add(time.Hour)); len(evs) != 0 {
			t.Fatalf("second silent: %v", kinds(evs))
		}
	}
	if !tr.Snapshot()[1].Silent {
		t.Error("snapshot not silent")
	}
	// Heard again, then silent again: a new episode.
	tr.Frame(c.add(time.Minute), word(0x123450))
	if tr.Snapshot()[1].Silent {
		t.Error("still silent after a frame")
	}
	if evs := tr.Tick(c.add(3 * time.Hour)); len(evs) != 1 {
		t.Errorf("second episode: %v", kinds(evs))
	}
	// Unsupervised sensors are never silent.
	for _, s := range tr.Snapshot() {
		if !s.Supervised && s.Silent {
			t.Errorf("%s silent but unsupervised", s.ID)
		}
	}
}

func TestTrackerPausedWhileReceiverOffline(t *testing.T) {
	c := &clock{t: t0}
	tr := NewTracker("rx-1", testSensors(t), 2*time.Second, c.now())
	tr.Pause()
	if evs := tr.Tick(c.add(5 * time.Hour)); len(evs) != 0 {
		t.Fatalf("silent while the receiver is offline: %v", kinds(evs))
	}
	tr.Resume(c.now())
	if evs := tr.Tick(c.add(2 * time.Hour)); len(evs) != 0 {
		t.Fatalf("silent 2 h after the receiver came back: %v", kinds(evs))
	}
	if evs := tr.Tick(c.add(time.Hour)); len(evs) != 1 {
		t.Fatalf("want one silent 3 h after the receiver came back, got %v", kinds(evs))
	}
}

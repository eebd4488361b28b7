package serial

import (
	"sort"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// Sensor is one radio sensor bound to a receiver.
type Sensor struct {
	ID        string
	Kind      string // door, motion, sos, smoke, water
	Household string
	Profile   string // code table name
	Table     *Table
	// Addr is the sensor's radio address (options.code).
	Addr uint64
	// Heartbeat is the supervision period; 0 means the sensor sends no
	// heartbeat, so its silence means nothing.
	Heartbeat time.Duration
}

// Supervised reports whether silence of this sensor is meaningful.
func (s Sensor) Supervised() bool { return s.Heartbeat > 0 }

// Code formats the address as the installer writes it.
func (s Sensor) Code() string {
	if s.Table != nil && s.Table.AddressBits > 0 {
		return hexDigits(s.Addr, s.Table.AddressBits)
	}
	return hexDigits(s.Addr, 24)
}

// DoorState is a door magnet's last known position.
type DoorState string

// Door states.
const (
	DoorUnknown DoorState = "unknown"
	DoorOpen    DoorState = "open"
	DoorClosed  DoorState = "closed"
)

// Tracker turns a receiver's frames into sensor events: it matches codes
// to sensors, drops RF repeats, tracks door state and supervises
// heartbeats. It is not safe for concurrent use and has no clock of its
// own: callers pass the time, so tests run on a fake one.
type Tracker struct {
	receiver string
	window   time.Duration
	sensors  []*sensorState
	byAddr   map[uint64][]*sensorState
	splits   [][2]int // distinct (address_bits, data_bits) of the tables
	unknown  map[string]*UnknownCode
	paused   bool
}

// MissedSilences is how many heartbeat periods a supervised sensor may
// miss before sensor.silent.
const MissedSilences = 3

// batteryRepeat limits sensor.battery_low to one per sensor per day: a
// low battery is reported with every transmission by some models.
const batteryRepeat = 24 * time.Hour

// maxUnknown bounds the unknown-code list kept for installers.
const maxUnknown = 64

type sensorState struct {
	Sensor
	lastSeen    time.Time
	heardEver   bool
	supervision time.Time // lastSeen or the tracker's start, whichever is later
	lastSig     uint64
	lastFrame   time.Time
	burstStart  time.Time
	door        DoorState
	silent      bool
	tamper      bool
	batteryAt   time.Time
	rssi        int
	hasRSSI     bool
	frames      uint64
	repeats     uint64
	events      uint64
	ignored     uint64 // door reports that repeated the known state
}

// UnknownCode is a code heard on a receiver that no sensor is bound to.
type UnknownCode struct {
	Code     string    `json:"code"`
	Count    uint64    `json:"count"`
	LastSeen time.Time `json:"last_seen"`
	LastData string    `json:"last_data,omitempty"`
	RSSI     *int      `json:"rssi,omitempty"`
}

// NewTracker returns a tracker for the sensors of one receiver; start is
// when supervision begins (a sensor never heard is silent three periods
// after start).
func NewTracker(receiver string, sensors []Sensor, window time.Duration, start time.Time) *Tracker {
	t := &Tracker{receiver: receiver, window: window, byAddr: map[uint64][]*sensorState{}, unknown: map[string]*UnknownCode{}}
	seen := map[[2]int]bool{}
	for _, s := range sensors {
		st := &sensorState{Sensor: s, supervision: start, door: DoorUnknown}
		t.sensors = append(t.sensors, st)
		t.byAddr[s.Addr] = append(t.byAddr[s.Addr], st)
		if s.Table != nil && s.Table.AddressBits > 0 {
			k := [2]int{s.Table.AddressBits, s.Table.DataBits}
			if !seen[k] {
				seen[k] = true
				t.splits = append(t.splits, k)
			}
		}
	}
	return t
}

// match finds the sensor a frame comes from and its data value.
func (t *Tracker) match(f Frame) (*sensorState, uint32, bool) {
	if f.HasData {
		if ss := t.byAddr[f.Code]; len(ss) > 0 {
			return ss[0], f.Data, true
		}
		return nil, 0, false
	}
	for _, sp := range t.splits {
		if f.Bits != sp[0]+sp[1] {
			continue
		}
		addr := f.Code >> sp[1]
		data := uint32(f.Code & (1<<sp[1] - 1))
		for _, s := range t.byAddr[addr] {
			if s.Table.AddressBits == sp[0] && s.Table.DataBits == sp[1] {
				return s, data, true
			}
		}
	}
	return nil, 0, false
}

// Frame handles one frame heard at now and returns the events it causes
// (none for a repeat, an unknown code or a door report that repeats the
// known state).
func (t *Tracker) Frame(now time.Time, f Frame) []*event.Event {
	s, data, ok := t.match(f)
	if !ok {
		t.noteUnknown(now, f)
		return nil
	}
	s.frames++
	s.lastSeen, s.heardEver = now, true
	if now.After(s.supervision) {
		s.supervision = now
	}
	s.silent = false
	if f.HasRSSI {
		s.rssi, s.hasRSSI = f.RSSI, true
	}
	sig := uint64(data)
	if f.Tamper {
		sig |= 1 << 40
	}
	if f.BatteryLow {
		sig |= 1 << 41
	}
	// RF repeats: the same signal right after itself. The window slides
	// with each repeat, but a burst is cut after 4 windows so a sensor
	// stuck sending still reports now and then.
	if !s.lastFrame.IsZero() && sig == s.lastSig && now.Sub(s.lastFrame) < t.window && now.Sub(s.burstStart) < 4*t.window {
		s.lastFrame = now
		s.repeats++
		return nil
	}
	s.lastSig, s.lastFrame, s.burstStart = sig, now, now

	var evs []*event.Event
	add := func(k event.Kind, m Meaning) {
		evs = append(evs, t.event(now, s, k, m, data, f))
	}
	// Flags decoded by the receiver (RFXtrx Security1) are states: report
	// their changes only.
	if f.Tamper && !s.tamper {
		add(event.SensorTamper, Tamper)
	}
	if f.HasFlags {
		s.tamper = f.Tamper
	}
	if f.BatteryLow && now.Sub(s.batteryAt) >= batteryRepeat {
		s.batteryAt = now
		add(event.SensorBatteryLow, BatteryLow)
	}

	m, known := s.Table.Meaning(data)
	if !known {
		return evs
	}
	switch m {
	case Tamper:
		s.tamper = true
		add(event.SensorTamper, m)
	case TamperOK:
		s.tamper = false
	case Heartbeat:
		// Signs of life only.
	case BatteryLow:
		if now.Sub(s.batteryAt) >= batteryRepeat {
			s.batteryAt = now
			add(event.SensorBatteryLow, m)
		}
	default:
		if k, ok := kindFor(s.Kind, m); ok {
			if s.Kind == "door" {
				next := DoorOpen
				if k == event.DoorClosed {
					next = DoorClosed
				}
				// A missed "close" must not make the next "open" a
				// second opening (nor a missed "open" a second close).
				if s.door == next {
					s.ignored++
					return evs
				}
				s.door = next
			}
			add(k, m)
		}
	}
	return evs
}

// kindFor resolves a meaning for a sensor kind.
func kindFor(kind string, m Meaning) (event.Kind, bool) {
	switch kind {
	case "door":
		switch m {
		case Open, Alarm:
			return event.DoorOpened, true
		case Close, Restore:
			return event.DoorClosed, true
		}
	case "motion":
		if m == Motion || m == Alarm {
			return event.MotionDetected, true
		}
	case "sos":
		if m == SOS || m == Alarm {
			return event.SOSPressed, true
		}
	case "smoke":
		if m == Smoke || m == Alarm {
			return event.SmokeAlarm, true
		}
	case "water":
		if m == Water || m == Alarm {
			return event.WaterLeak, true
		}
	}
	return "", false
}

func (t *Tracker) event(now time.Time, s *sensorState, k event.Kind, m Meaning, data uint32, f Frame) *event.Event {
	s.events++
	d := map[string]any{
		"receiver":   t.receiver,
		"code":       s.Code(),
		"data":       hexDigits(uint64(data), max(4, s.Table.DataBits)),
		"meaning":    string(m),
		"profile":    s.Profile,
		"supervised": s.Supervised(),
	}
	if f.HasRSSI {
		d["rssi"] = f.RSSI
	}
	e := event.New(k).WithData(d)
	e.Device, e.Household, e.Time = s.ID, s.Household, now
	return e
}

func (t *Tracker) noteUnknown(now time.Time, f Frame) {
	key := f.CodeHex()
	u := t.unknown[key]
	if u == nil {
		if len(t.unknown) >= maxUnknown {
			return
		}
		u = &UnknownCode{Code: key}
		t.unknown[key] = u
	}
	u.Count++
	u.LastSeen = now
	u.LastData = ""
	if f.HasData {
		u.LastData = hexDigits(uint64(f.Data), 4)
	}
	if f.HasRSSI {
		r := f.RSSI
		u.RSSI = &r
	}
}

// Pause stops supervision while the receiver itself is offline: sensors
// that cannot be heard are not silent, the receiver is (device.offline).
func (t *Tracker) Pause() { t.paused = true }

// Resume restarts supervision when the receiver is back: every supervised
// sensor gets three full periods from now to be heard.
func (t *Tracker) Resume(now time.Time) {
	if !t.paused {
		return
	}
	t.paused = false
	for _, s := range t.sensors {
		if !s.silent && now.After(s.supervision) {
			s.supervision = now
		}
	}
}

// Tick runs supervision at now: a supervised sensor not heard for
// MissedSilences heartbeat periods gets one sensor.silent, and no other
// until it has been heard again.
func (t *Tracker) Tick(now time.Time) []*event.Event {
	if t.paused {
		return nil
	}
	var evs []*event.Event
	for _, s := range t.sensors {
		if !s.Supervised() || s.silent {
			continue
		}
		if now.Sub(s.supervision) < MissedSilences*s.Heartbeat {
			continue
		}
		s.silent = true
		d := map[string]any{
			"receiver":   t.receiver,
			"code":       s.Code(),
			"profile":    s.Profile,
			"supervised": true,
			"heartbeat":  s.Heartbeat.String(),
			"missed":     MissedSilences,
		}
		if s.heardEver {
			d["last_seen"] = s.lastSeen.UTC().Format(event.TimeLayout)
		}
		e := event.New(event.SensorSilent).WithData(d)
		e.Device, e.Household, e.Time = s.ID, s.Household, now
		evs = append(evs, e)
	}
	return evs
}

// NextTick is the earliest time Tick can have something to report; zero
// when no sensor is supervised.
func (t *Tracker) NextTick() time.Time {
	var next time.Time
	for _, s := range t.sensors {
		if !s.Supervised() || s.silent {
			continue
		}
		due := s.supervision.Add(MissedSilences * s.Heartbeat)
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	return next
}

// SensorStatus is one sensor's state for the status page.
type SensorStatus struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Household  string     `json:"household,omitempty"`
	Receiver   string     `json:"receiver"`
	Code       string     `json:"code"`
	Profile    string     `json:"profile"`
	Supervised bool       `json:"supervised"`
	Heartbeat  string     `json:"heartbeat,omitempty"`
	LastSeen   *time.Time `json:"last_seen,omitempty"`
	Silent     bool       `json:"silent"`
	Door       DoorState  `json:"door,omitempty"`
	Tamper     bool       `json:"tamper,omitempty"`
	RSSI       *int       `json:"rssi,omitempty"`
	Frames     uint64     `json:"frames"`
	Repeats    uint64     `json:"repeats"`
	Events     uint64     `json:"events"`
	Ignored    uint64     `json:"ignored_same_state"`
}

// Snapshot copies every sensor's state, in configuration order.
func (t *Tracker) Snapshot() []SensorStatus {
	out := make([]SensorStatus, 0, len(t.sensors))
	for _, s := range t.sensors {
		st := SensorStatus{
			ID: s.ID, Kind: s.Kind, Household: s.Household, Receiver: t.receiver, Code: s.Code(),
			Profile: s.Profile, Supervised: s.Supervised(), Silent: s.silent, Tamper: s.tamper,
			Frames: s.frames, Repeats: s.repeats, Events: s.events, Ignored: s.ignored,
		}
		if s.Supervised() {
			st.Heartbeat = s.Heartbeat.String()
		}
		if s.heardEver {
			ls := s.lastSeen
			st.LastSeen = &ls
		}
		if s.Kind == "door" {
			st.Door = s.door
		}
		if s.hasRSSI {
			r := s.rssi
			st.RSSI = &r
		}
		out = append(out, st)
	}
	return out
}

// Unknown lists codes heard that no sensor is bound to, most heard first.
func (t *Tracker) Unknown() []UnknownCode {
	out := make([]UnknownCode, 0, len(t.unknown))
	for _, u := range t.unknown {
		c := *u
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Code < out[j].Code
	})
	return out
}

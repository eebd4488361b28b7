package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// Clock tells the engine what time it is when nothing else does: between
// events (timers) and for commands. Replay and tests use a [ManualClock].
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// ManualClock is a clock that moves only when told to.
type ManualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewManualClock returns a clock stopped at t.
func NewManualClock(t time.Time) *ManualClock { return &ManualClock{t: t} }

// Now implements Clock.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t (backwards too; the engine never goes back).
func (c *ManualClock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Add moves the clock forward by d and returns the new time.
func (c *ManualClock) Add(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	return c.t
}

// motionGrace is how long after the door closes a motion is ambiguous (a
// PIR near the door still sees the person who just left).
const motionGrace = time.Minute

// maxJump is the longest step of time taken as observed.
const maxJump = 7 * 24 * time.Hour

// visitGap ends a peephole visit session.
const visitGap = 5 * time.Minute

// Engine evaluates the elder-safety rules. It is a deterministic state
// machine: its only inputs are events (in log order) and the times given
// to Advance, so a replay of a log gives the same alerts as the live run.
// It is not safe for concurrent use; [Service] serialises access.
type Engine struct {
	set       *Settings
	clock     Clock
	now       time.Time
	elders    map[string]*elder
	list      []*elder
	byDevice  map[string]*elder
	timers    timerHeap
	meta      metaState
	out       []*event.Event
	dirty     map[*elder]bool
	urgent    bool
	suppress  map[string]bool
	metaDirty bool
	zone      *time.Location
	cnt       counters
}

type elder struct {
	cfg *Elder
	st  *elderState
	gen uint64
	// Cached facts about the sensors, so evaluation need not walk them:
	// problems is set whenever a sensor may have a problem.
	hasDoor, hasMotion, problems bool
	// due is the pending timer (armed) in unix ms.
	due   int64
	armed bool
	// open routing: no sensors bound in the config, so any device that
	// reports for the household is taken as the elder's.
	open bool
	// hb is what the engine has learned of the elder's habits.
	hb *habits
	// stuckHour is the local hour the stuck checks last ran.
	stuckHour int64
	// The last inactivity limit computed, and what it depends on.
	lim    Limit
	limKey limKey
	limOK  bool
}

// NewEngine returns an engine for the elders in s, reading the time from
// clock for timers and commands.
func NewEngine(s *Settings, clock Clock) *Engine {
	if clock == nil {
		clock = SystemClock{}
	}
	e := &Engine{set: s, clock: clock, elders: map[string]*elder{}, byDevice: map[string]*elder{},
		dirty: map[*elder]bool{}, meta: metaState{V: stateVersion}, zone: s.Zone()}
	for i := range s.Elders {
		c := &s.Elders[i]
		el := &elder{cfg: c, st: newElderState(), open: len(c.Sensors) == 0, hb: &habits{V: habitsVersion}}
		for _, d := range c.Sensors {
			e.byDevice[d] = el
			el.st.Sensors[d] = &sensorState{Role: c.Roles[d]}
		}
		e.elders[c.Household] = el
		e.list = append(e.list, el)
	}
	return e
}

// Now is the engine's time: the latest of the event times and clock
// readings it was given. It never goes backwards.
func (e *Engine) Now() time.Time { return e.now }

// Seq is the highest log sequence number processed.
func (e *Engine) Seq() uint64 { return e.meta.Seq }

// Drain returns the derived events produced since the last call.
func (e *Engine) Drain() []*event.Event {
	out := e.out
	e.out = nil
	return out
}

// Tick advances the engine to the clock's time.
func (e *Engine) Tick() { e.Advance(e.clock.Now()) }

// NextDue is the earliest time a timer is pending, or zero.
func (e *Engine) NextDue() time.Time {
	for len(e.timers) > 0 {
		t := e.timers[0]
		if t.el.gen != t.gen {
			e.timers.pop()
			continue
		}
		return time.UnixMilli(t.due)
	}
	return time.Time{}
}

// Advance fires every timer due at or before t, each at its own due time
// (or at the end of a gateway outage it fell into: nobody could act while
// the gateway was down, and nothing was observed either).
func (e *Engine) Advance(t time.Time) {
	// Engine time is whole milliseconds, as timers and event times are:
	// a finer "now" could sit between a timer's due millisecond and its
	// exact due time and never get past it.
	t = t.UTC().Truncate(time.Millisecond)
	if !e.now.IsZero() && t.Sub(e.now) > maxJump {
		// A week with no event at all is a clock jump (a box that
		// booted in 1970 got NTP) or a gateway long off: nothing was
		// observed, and every timer should be judged once at the end,
		// not once per hour in between.
		e.addGap(gap{From: e.now, To: t.UTC()})
	}
	ms := t.UnixMilli()
	for len(e.timers) > 0 && e.timers[0].due <= ms {
		tm := e.timers.pop()
		if tm.el.gen != tm.gen {
			continue
		}
		tm.el.armed = false
		at := time.UnixMilli(tm.due).UTC()
		if g, ok := e.gapAt(at); ok {
			at = g.To
		}
		if at.After(e.now) {
			e.now = at
		}
		e.schedule(tm.el, e.now)
	}
	if t.After(e.now) {
		e.now = t.UTC()
	}
}

// Process applies one event from the log. Events must come in log order;
// an event stamped earlier than the engine's time (a late or unsynced
// clock) is applied at the engine's time.
func (e *Engine) Process(ev *event.Event) {
	e.cnt.events++
	t := ev.Time.UTC().Truncate(time.Millisecond)
	if t.Before(e.now) {
		t = e.now
	}
	switch ev.Kind {
	case event.GatewayStopped:
		e.Advance(t)
		e.meta.Down, e.meta.DownFrom = true, t
		e.metaDirty = true
		e.noteSeq(ev, nil)
		return
	case event.GatewayStarted:
		from := e.now
		if e.meta.Down {
			from = e.meta.DownFrom
		}
		e.meta.Down = false
		if !from.IsZero() && t.Sub(from) > time.Second {
			e.addGap(gap{From: from, To: t})
		}
		e.Advance(t)
		e.noteSeq(ev, nil)
		return
	}
	e.Advance(t)
	el := e.route(ev)
	if el == nil {
		e.noteSeq(ev, nil)
		return
	}
	if ev.Seq != 0 && ev.Seq <= el.st.Seq {
		// Already applied before a restart (the elder's state was saved
		// after the engine-wide position).
		e.noteSeq(ev, nil)
		return
	}
	e.noteSeq(ev, el)
	s := el.st
	if s.FirstSeen.IsZero() {
		s.FirstSeen = t
	}
	switch ev.Kind {
	case event.ElderAlertAcknowledged:
		e.applyAck(el, ev, t)
	case event.ElderAlertResolved:
		e.applyResolve(el, ev, t)
	case event.ElderModeChanged:
		e.applyMode(el, ev, t)
	case event.ElderAlertRaised, event.ElderAlertEscalated, event.ElderNoData, event.ElderHint, event.ElderPresence:
		// Our own output coming back through the log.
	default:
		e.applySensor(el, ev, t)
	}
	e.schedule(el, t)
}

func (e *Engine) noteSeq(ev *event.Event, el *elder) {
	if ev.Seq > e.meta.Seq {
		e.meta.Seq = ev.Seq
		e.metaDirty = true
	}
	if el != nil && ev.Seq > el.st.Seq {
		el.st.Seq = ev.Seq
		e.dirty[el] = true
	}
}

func (e *Engine) route(ev *event.Event) *elder {
	if ev.Device != "" {
		if el := e.byDevice[ev.Device]; el != nil {
			return el
		}
	}
	if ev.Household == "" {
		return nil
	}
	el := e.elders[ev.Household]
	if el == nil {
		return nil
	}
	switch ev.Kind {
	case event.ElderAlertAcknowledged, event.ElderAlertResolved, event.ElderModeChanged,
		event.ElderAlertRaised, event.ElderAlertEscalated, event.ElderNoData, event.ElderHint, event.ElderPresence:
		return el
	}
	if el.open {
		return el
	}
	return nil
}

func roleOfEvent(k event.Kind) string {
	switch k {
	case event.DoorOpened, event.DoorClosed, event.DoorHeldOpen:
		return "door"
	case event.MotionDetected:
		return "motion"
	case event.SOSPressed:
		return "sos"
	case event.PeepholeVisitor, event.PeepholeLoitering, event.PeepholeDoorbell:
		return "peephole"
	}
	return ""
}

var unsupervisedMark = []byte(`"supervised"`)

func (e *Engine) applySensor(el *elder, ev *event.Event, t time.Time) {
	s := el.st
	dev := ev.Device
	if dev == "" {
		dev = "?"
	}
	sn := s.Sensors[dev]
	if sn == nil {
		sn = &sensorState{Role: el.cfg.Roles[dev]}
		s.Sensors[dev] = sn
	}
	if r := roleOfEvent(ev.Kind); r != "" && (sn.Role == "" || sn.Role == "other") {
		sn.Role = r
	} else if r == "peephole" && sn.Role == "motion" && el.cfg.Roles[dev] == "" {
		// Open routing guessed "motion" from a peephole's own motion
		// detector: its peephole events say where it really looks.
		sn.Role, el.hasMotion = r, false
	}
	// A frame from the sensor proves it alive, except the driver's own
	// reports that it is not.
	switch ev.Kind {
	case event.SensorSilent, event.DeviceOffline, event.SensorTamper, event.SensorBatteryLow:
		el.problems = true
	}
	switch ev.Kind {
	case event.SensorSilent, event.DeviceOffline:
		if !sn.Silent {
			sn.Silent, sn.SilentAt = true, t
			s.Baseline.Learn = false
		}
		return
	default:
		if sn.Silent {
			sn.Silent = false
			// The silence was unobserved time for the rules that rely on
			// this sensor: their windows restart now.
			switch sn.Role {
			case "door":
				s.ArmFrom[RuleNoExit] = t
				s.ArmFrom[RuleInactivity] = t
			case "motion":
				s.ArmFrom[RuleInactivity] = t
			}
		}
		sn.LastSeen = t
	}
	if len(ev.Data) > 0 && bytes.Contains(ev.Data, unsupervisedMark) {
		var d struct {
			Supervised *bool `json:"supervised"`
		}
		if json.Unmarshal(ev.Data, &d) == nil && d.Supervised != nil {
			sn.Unsupervised = !*d.Supervised
		}
	}
	switch ev.Kind {
	case event.SensorTamper:
		sn.Tamper = true
	case event.SensorBatteryLow:
		sn.BatteryLow = true
	case event.DoorOpened, event.DoorHeldOpen:
		e.activity(el, t, dev)
		s.LastDoor = t
		if !s.DoorOpen {
			if sn.Stuck == "open" {
				break // a stuck contact repeating itself
			}
			e.doorOpening(el, t, dev)
			s.DoorOpen, s.DoorOpenedAt = true, t
			if e.inNight(el.cfg, t) {
				if k := e.nightKey(el.cfg, t); k != s.NightKey {
					s.NightKey, s.NightOpens = k, 0
				}
				s.NightOpens++
			}
			e.answered(el, t, dev)
		}
		s.VisitStart = time.Time{}
	case event.DoorClosed:
		if sn.Stuck == "open" {
			// The contact reads closed again (the magnet was refitted):
			// the door was closed all along, this is no door cycle.
			sn.Stuck, el.problems = "", true
			s.LastDoor = t
			break
		}
		e.activity(el, t, dev)
		s.LastDoor = t
		wasOpen := s.DoorOpen
		s.DoorOpen, s.DoorClosedAt = false, t
		if wasOpen {
			e.doorClosed(el, t)
		}
	case event.MotionDetected:
		if sn.Role == "peephole" {
			// A peephole's motion detector looks at the landing: a
			// neighbour passing is neither the elder's activity nor
			// evidence of presence.
			break
		}
		if !e.set.Legacy && e.countMotion(el, sn, t) {
			break // stuck "on": not believed
		}
		e.activity(el, t, dev)
		s.LastMotion = t
		if !e.set.Legacy {
			e.motionAfterDoor(el, t)
		}
		if !e.set.Legacy && s.Presence.State == PresenceHome && s.Presence.Basis == BasisDoor && !s.DoorOpen && t.Sub(s.DoorClosedAt) > motionGrace {
			// Home on the door's word, now seen: say so.
			s.Presence.Basis = BasisSeen
			s.Presence.Reason += "; motion at " + e.clockText(t) + " (" + dev + ")"
			s.Presence.ReasonZh += "；" + e.clockText(t) + " 检测到室内活动（" + dev + "）"
		}
		if !s.DoorOpen && (s.DoorClosedAt.IsZero() || t.Sub(s.DoorClosedAt) > motionGrace) && s.Presence.State != PresenceHome {
			e.setPresence(el, t, PresenceHome, BasisSeen,
				"motion at "+e.clockText(t)+" ("+dev+")", e.clockText(t)+" 检测到室内活动（"+dev+"）")
		}
	case event.SOSPressed:
		e.activity(el, t, dev)
		e.sos(el, t, dev)
	case event.PeepholeVisitor, event.PeepholeLoitering, event.PeepholeDoorbell:
		if dir := residentDirection(ev.Data); dir != "" {
			// The camera recognised the resident: not a visitor.
			e.peepholeResident(el, t, dev, dir)
			break
		}
		if s.VisitStart.IsZero() || t.Sub(s.VisitLast) > visitGap {
			s.VisitStart = t
		}
		s.VisitLast = t
		e.visitor(el, ev, t)
	}
}

var residentMark = []byte(`"resident"`)

// residentDirection reads a peephole's report that the person it sees is
// the enrolled resident walking out ("out") or in ("in"): data.resident
// true and data.direction out/leaving/exit or in/arriving/enter. Cameras
// that cannot tell report neither, and their events are visitors.
func residentDirection(data []byte) string {
	if len(data) == 0 || !bytes.Contains(data, residentMark) {
		return ""
	}
	var d struct {
		Resident  bool   `json:"resident"`
		Direction string `json:"direction"`
	}
	if json.Unmarshal(data, &d) != nil || !d.Resident {
		return ""
	}
	switch d.Direction {
	case "out", "leaving", "exit":
		return "out"
	case "in", "arriving", "enter":
		return "in"
	}
	return ""
}

// answerWindow is how close a peephole visit and motion inside must come
// before a door opening for it to be someone answering the door.
const answerWindow = 3 * time.Minute

// peepholeMatch is how far a peephole's resident report may be from the
// door cycle it explains (the camera's own detection and cooldown lag).
const peepholeMatch = 2 * time.Minute

// answered marks a door opening as an answered visit: a visitor was at
// the door (peephole) and someone moved inside just before it opened.
// That door cycle is not a departure, so presence stays home even if the
// elder then sits still for longer than away_after.
func (e *Engine) answered(el *elder, t time.Time, dev string) {
	s := el.st
	if s.VisitLast.IsZero() || t.Sub(s.VisitLast) > answerWindow {
		return
	}
	if s.LastMotion.IsZero() || t.Sub(s.LastMotion) > answerWindow ||
		(!s.DoorClosedAt.IsZero() && !s.LastMotion.After(s.DoorClosedAt.Add(motionGrace))) {
		// No one seen moving inside: the elder coming home, seen at the
		// door by the peephole, is not someone answering.
		return
	}
	s.Answered = t
	en := fmt.Sprintf("answered the door at %s (%s) to a visitor seen by the peephole at %s, motion inside at %s",
		e.clockText(t), dev, e.clockText(s.VisitLast), e.clockText(s.LastMotion))
	zh := fmt.Sprintf("%s 猫眼发现访客，室内 %s 有活动，%s 开门应答（%s），判断在家", e.clockText(s.VisitLast),
		e.clockText(s.LastMotion), e.clockText(t), dev)
	if s.Presence.State != PresenceHome {
		e.setPresence(el, t, PresenceHome, BasisSeen, en, zh)
		return
	}
	// Already home: keep the state and its start, refresh the reasoning
	// so the next alert shows why the door cycle was not a departure.
	s.Presence.Reason, s.Presence.ReasonZh = en, zh
	e.dirty[el] = true
}

// peepholeResident applies the peephole seeing the resident leave or
// come back. Seeing the elder is activity; "in" is home at once; "out"
// is judged with the door cycle it belongs to (presence).
func (e *Engine) peepholeResident(el *elder, t time.Time, dev, dir string) {
	s := el.st
	e.activity(el, t, dev)
	if dir == "out" {
		s.SeenOut, s.SeenOutDev = t, dev
		return
	}
	s.SeenIn, s.SeenOut = t, time.Time{}
	if p := s.PendingDoorUse; !p.IsZero() {
		// Seen coming back: the last door use was a departure.
		s.PendingDoorUse = time.Time{}
		if !e.set.Legacy && s.Mode.Name == ModeNormal {
			e.learnDoorUse(el, p, true)
			e.learnOuting(el, p, t.Sub(p))
		}
	}
	if s.Presence.State != PresenceHome {
		e.setPresence(el, t, PresenceHome, BasisSeen,
			"the peephole ("+dev+") saw the elder come back at "+e.clockText(t),
			e.clockText(t)+" 猫眼（"+dev+"）看到老人回家")
	}
}

func (e *Engine) activity(el *elder, t time.Time, dev string) {
	s := el.st
	if !e.set.Legacy && !s.LastActivity.IsZero() {
		e.learnGap(el, s.LastActivity, t, dev)
	}
	s.LastActivity, s.LastActBy = t, dev
	b := &s.Baseline
	if b.Hour == hourIndex(t, e.set.Offset) {
		b.Count++
	}
}

func (e *Engine) setPresence(el *elder, t time.Time, state, basis, reason, reasonZh string) {
	s := el.st
	prev := s.Presence.State
	if prev == state {
		return
	}
	if e.set.Legacy {
		basis = ""
	}
	s.Presence = Presence{State: state, Since: t, Reason: reason, ReasonZh: reasonZh, Basis: basis}
	if state == PresenceAway {
		s.Baseline.Learn = false
	} else {
		s.LeftAt, s.LeftAtNight = time.Time{}, false
	}
	e.dirty[el] = true
	if e.set.PresenceEvents {
		d := map[string]any{"state": state, "previous": prev, "since": t, "reason": reason, "reason_zh": reasonZh}
		if basis != "" {
			d["basis"] = basis
		}
		e.emit(event.ElderPresence, el, t, "", d)
	}
}

// schedule evaluates an elder at now and arms its next timer.
func (e *Engine) schedule(el *elder, now time.Time) {
	next := e.evaluate(el, now)
	var due int64
	if !next.IsZero() {
		// Round up: a timer must not fire before its time.
		due = (next.UnixNano() + int64(time.Millisecond) - 1) / int64(time.Millisecond)
	}
	if el.armed && due == el.due {
		return // the pending timer is still right
	}
	el.gen++
	el.due, el.armed = due, due != 0
	if due != 0 {
		e.timers.push(timer{due: due, el: el, gen: el.gen})
	}
}

// gaps

func (e *Engine) addGap(g gap) {
	for _, x := range e.meta.Gaps {
		if x == g {
			return
		}
	}
	e.meta.Gaps = append(e.meta.Gaps, g)
	// Keep two weeks: no window is longer.
	cut := g.To.Add(-14 * 24 * time.Hour)
	i := 0
	for i < len(e.meta.Gaps) && e.meta.Gaps[i].To.Before(cut) {
		i++
	}
	e.meta.Gaps = e.meta.Gaps[i:]
	e.metaDirty, e.urgent = true, true
	for _, el := range e.list {
		el.st.Baseline.Learn = false
	}
}

func (e *Engine) gapAt(t time.Time) (gap, bool) {
	for _, g := range e.meta.Gaps {
		if t.After(g.From) && t.Before(g.To) {
			return g, true
		}
	}
	return gap{}, false
}

// gapOverlap is how much of [from, to] the gateway was down, and the end
// of the last gap touching it.
func (e *Engine) gapOverlap(from, to time.Time) (time.Duration, time.Time, []gap) {
	var total time.Duration
	var end time.Time
	var gs []gap
	for _, g := range e.meta.Gaps {
		a, b := later(g.From, from), earlier(g.To, to)
		if b.After(a) {
			total += b.Sub(a)
			end = g.To
			gs = append(gs, g)
		}
	}
	return total, end, gs
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func latest(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}

// local time helpers

func (e *Engine) minuteOfDay(t time.Time) int {
	s := t.Unix() + int64(e.set.Offset)
	return int((s - floorDiv(s, 86400)*86400) / 60)
}

func (e *Engine) inNight(c *Elder, t time.Time) bool {
	m := e.minuteOfDay(t)
	return m >= c.NightStart || m < c.DayStart
}

// nightKey identifies the night t falls in by the local day it started.
func (e *Engine) nightKey(c *Elder, t time.Time) int64 {
	d := floorDiv(t.Unix()+int64(e.set.Offset), 86400)
	if e.minuteOfDay(t) < c.DayStart {
		d--
	}
	return d
}

// nextAt returns the first time after t whose local minute of day is m.
func (e *Engine) nextAt(t time.Time, m int) time.Time {
	cur := e.minuteOfDay(t)
	delta := m - cur
	if delta <= 0 {
		delta += 24 * 60
	}
	base := t.Truncate(time.Minute)
	return base.Add(time.Duration(delta) * time.Minute)
}

func (e *Engine) inQuiet(c *Elder, t time.Time) bool {
	if !c.Quiet {
		return false
	}
	m := e.minuteOfDay(t)
	if c.QuietStart < c.QuietEnd {
		return m >= c.QuietStart && m < c.QuietEnd
	}
	return m >= c.QuietStart || m < c.QuietEnd
}

// InactivityThreshold is the inactivity limit that applies to a silence
// starting at start: the day limit when the whole day limit fits before
// the night window starts, the night limit otherwise (sleep is long
// silence, and night hours must not raise a daytime alarm).
func (e *Engine) InactivityThreshold(household string, start time.Time) time.Duration {
	el := e.elders[household]
	if el == nil {
		return 0
	}
	return e.inactivityThreshold(el.cfg, start)
}

func (e *Engine) inactivityThreshold(c *Elder, start time.Time) time.Duration {
	day := c.T.InactivityDay.Std()
	if e.inNight(c, start) {
		return c.T.InactivityNight.Std()
	}
	if !start.Add(day).After(e.nextAt(start, c.NightStart)) {
		return day
	}
	return c.T.InactivityNight.Std()
}

func (e *Engine) clockText(t time.Time) string {
	return t.In(e.zone).Format("01-02 15:04")
}

// emit queues a derived event, unless the same event is already in the
// log (a catch-up after a restart re-derives what was emitted before).
func (e *Engine) emit(k event.Kind, el *elder, t time.Time, sev event.Severity, data map[string]any) {
	t = t.UTC().Truncate(time.Millisecond)
	if e.suppress != nil {
		id, _ := data["alert_id"].(string)
		key := dedupKey(k, el.cfg.Household, t, id)
		if e.suppress[key] {
			delete(e.suppress, key)
			return
		}
	}
	e.cnt.count(k, data)
	ev := event.New(k)
	if sev != "" {
		ev.Severity = sev
	}
	ev.Time = t
	ev.Household = el.cfg.Household
	b, err := json.Marshal(data)
	if err != nil {
		b = []byte(`{}`)
	}
	ev.Data = b
	e.out = append(e.out, ev)
	e.dirty[el] = true
}

func dedupKey(k event.Kind, household string, t time.Time, alertID string) string {
	return string(k) + "|" + household + "|" + strconv.FormatInt(t.UnixMilli(), 10) + "|" + alertID
}

// timers

type timer struct {
	due int64 // unix ms
	el  *elder
	gen uint64
}

// timerHeap is a min-heap by due time (ties by household, for a
// deterministic order). Hand-written rather than container/heap: boxing
// each timer in an interface cost an allocation per event.
type timerHeap []timer

func (h timerHeap) less(i, j int) bool {
	if h[i].due != h[j].due {
		return h[i].due < h[j].due
	}
	return h[i].el.cfg.Household < h[j].el.cfg.Household
}

func (h *timerHeap) push(t timer) {
	*h = append(*h, t)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !a.less(i, p) {
			break
		}
		a[i], a[p] = a[p], a[i]
		i = p
	}
}

func (h *timerHeap) pop() timer {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && a.less(r, l) {
			m = r
		}
		if !a.less(m, i) {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

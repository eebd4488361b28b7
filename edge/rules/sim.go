package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// SimOptions sizes a synthetic population.
type SimOptions struct {
	Elders int
	Days   int
	Seed   uint64
	// Start is local midnight of the first day (default Monday
	// 2026-03-02 00:00 +08:00).
	Start time.Time
	// Realistic adds the routines real single-resident traces show
	// (issue 12; sim_routines.go): per-elder routine types — long days
	// out (7–13 h), weekend trips with away mode set late or never, door
	// cycles without leaving, visitors, elders who rarely leave, early
	// risers, late sleepers, long naps — stuck sensors (a PIR stuck on or
	// off, a door contact stuck open) and collapses right after a door
	// cycle. False gives the population of issue 6, unchanged for a
	// given seed. `lintel sim elders` and docs/rules.md use true.
	Realistic bool
}

// Incident kinds injected by the simulator (the ground truth).
const (
	IncCollapse          = "collapse"            // collapse at home: no activity until found
	IncCollapseAfterDoor = "collapse_after_door" // realistic only: a door open + close (coming home, the bins, a delivery), then a collapse right after; no activity until found
	IncNotReturned       = "not_returned"        // left by day, not back for 13–16 h
	IncNotReturnedNight  = "not_returned_night"  // left at night, back after 1.5–3 h
	IncNightWandering    = "night_wandering"     // 4–7 door openings in one night, at home
	IncDoorLeftOpen      = "door_left_open"      // door open 30–120 min while at home
	IncSOS               = "sos"                 // SOS pressed (once or twice) at home; help comes 8–40 min later
	IncLoitering         = "loitering"           // a stranger lingers at the door 4–10 min by day, door shut (peephole)
	IncNightDoorbells    = "night_doorbells"     // 3–5 rings at night 2–8 min apart, door shut (peephole)
)

// IncidentKinds lists the kinds in report order.
var IncidentKinds = []string{IncCollapse, IncCollapseAfterDoor, IncNotReturned, IncNotReturnedNight, IncNightWandering, IncDoorLeftOpen,
	IncSOS, IncLoitering, IncNightDoorbells}

// incidentTarget is when each kind must be detected, as the report says
// it (the incidents' Deadline holds the exact time).
var incidentTarget = map[string]string{
	IncCollapse: "threshold + 5 min", IncCollapseAfterDoor: "threshold + 5 min", IncNotReturned: "threshold + 5 min", IncNotReturnedNight: "threshold + 5 min",
	IncNightWandering: "4th opening + 1 min", IncDoorLeftOpen: "threshold + 5 min",
	IncSOS: "10 s", IncLoitering: "loitering + 1 min", IncNightDoorbells: "3rd ring + 1 min",
}

// Incident is one injected, labelled incident.
type Incident struct {
	Household string    `json:"household"`
	Kind      string    `json:"kind"`
	Rule      Rule      `json:"rule"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	// Deadline is the latest acceptable detection: the start of the
	// rule's condition plus its threshold plus 5 minutes.
	Deadline  time.Time     `json:"deadline"`
	Threshold time.Duration `json:"threshold_ns"`
}

// Period is a labelled interval: an absence (Population.Aways: What
// "away", "hospital", "trip", "trip_away_late", "outing"), a sensor fault
// (Faults: "pir_silent", "battery_low", "pir_stuck_on",
// "door_stuck_open", "pir_stuck_off"), a gateway outage (Outages:
// "reboot", "power_cut") or a routine episode (Episodes: "door_cycle",
// "visitor", "nap").
type Period struct {
	Household string    `json:"household,omitempty"`
	What      string    `json:"what"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	// ModeAt is when staff set the away or hospital mode of an absence;
	// zero when nobody did (a trip or a day out nobody was told of).
	ModeAt time.Time `json:"mode_at,omitzero"`
}

// Record is one simulated event in compact form (a population of 200
// elders over 90 days is about 1.5 million of them).
type Record struct {
	T     int64  // unix ms
	Elder uint16 // index into Population.Households
	Kind  uint8  // index into simKinds
	Aux   uint32 // index into Population.Modes for mode changes
}

var simKinds = []event.Kind{
	event.DoorOpened, event.DoorClosed, event.MotionDetected, event.PeepholeVisitor, event.PeepholeDoorbell,
	event.SensorBatteryLow, event.SensorSilent, event.DeviceOnline, event.ElderModeChanged,
	event.GatewayStopped, event.GatewayStarted, event.SOSPressed,
}

const (
	kOpen uint8 = iota
	kClose
	kMotion
	kVisitor
	kBell
	kBattery
	kSilent
	kOnline
	kMode
	kStopped
	kStarted
	kSOS
)

// SimMode is a mode change set by staff in the simulation.
type SimMode struct {
	Mode  string    `json:"mode"`
	Until time.Time `json:"until"`
}

// Population is a synthetic compound: settings, events and ground truth.
type Population struct {
	Options      SimOptions
	Settings     *Settings
	Households   []string
	Unsupervised []bool
	Records      []Record
	Modes        []SimMode
	Incidents    []Incident
	Aways        []Period
	Faults       []Period
	Outages      []Period
	// Elders is each elder's make-up (routine types, usual wake and
	// sleep), in Households order.
	Elders []SimElder
	// Episodes are labelled routine episodes that must raise nothing:
	// door cycles without leaving, visitors, naps of an hour or more
	// (realistic populations only).
	Episodes []Period

	devs [][4]string // door, pir, peephole, sos ids per elder
}

var unsupervisedData = json.RawMessage(`{"supervised":false}`)

// Fill sets ev to record i (reusing ev's storage: the engine keeps no
// reference to the events it processes).
func (p *Population) Fill(i int, ev *event.Event) {
	r := p.Records[i]
	k := simKinds[r.Kind]
	*ev = event.Event{Seq: uint64(i) + 1, Kind: k, Severity: k.DefaultSeverity(), Time: time.UnixMilli(r.T).UTC(),
		Gateway: "sim-gw", Compound: "sim", TimeQuality: event.Synced}
	if r.Kind == kStopped || r.Kind == kStarted {
		return
	}
	h := p.Households[r.Elder]
	ev.Household = h
	if len(p.devs) != len(p.Households) {
		p.devs = make([][4]string, len(p.Households))
		for i, x := range p.Households {
			p.devs[i] = [4]string{x + "-door", x + "-pir", x + "-eye", x + "-sos"}
		}
	}
	switch r.Kind {
	case kOpen, kClose:
		ev.Device = p.devs[r.Elder][0]
		if p.Unsupervised[r.Elder] {
			ev.Data = unsupervisedData
		}
	case kMotion, kBattery, kSilent, kOnline:
		ev.Device = p.devs[r.Elder][1]
	case kVisitor, kBell:
		ev.Device = p.devs[r.Elder][2]
	case kSOS:
		ev.Device = p.devs[r.Elder][3]
	case kMode:
		m := p.Modes[r.Aux]
		d := map[string]any{"household": h, "mode": m.Mode, "actor": "staff-sim"}
		if !m.Until.IsZero() {
			d["until"] = m.Until
		}
		ev.WithData(d)
	}
}

// Event returns record i as a new event.
func (p *Population) Event(i int) *event.Event {
	ev := new(event.Event)
	p.Fill(i, ev)
	return ev
}

type elderProfile struct {
	wake, sleep   float64 // hours
	rate          float64 // motion events per awake hour at home
	morning, noon float64 // outing probabilities
	toilet        float64 // mean night trips
	peephole      bool
}

type simGen struct {
	r   *rand.Rand
	idx uint16
	p   elderProfile
	out []Record

	// Realistic populations only (sim_routines.go).
	ps       *persona
	sleptAt  int64              // when the elder went to bed the day before (late sleepers: after midnight)
	longOut  map[int64][2]int64 // local midnight → a long day out (leave, back)
	nextDoor int64              // housebound: local midnight of the next day the door is used
	episodes []Period
	house    string
}

func (g *simGen) add(t int64, k uint8) { g.out = append(g.out, Record{T: t, Elder: g.idx, Kind: k}) }

const (
	msMin  = int64(60_000)
	msHour = 60 * msMin
	msDay  = 24 * msHour
)

func (g *simGen) uni(a, b int64) int64 { return a + int64(g.r.Float64()*float64(b-a)) }

// active adds motion at home between from and to: a Poisson process at the
// elder's rate with the 2-minute lockout of a cheap PIR, and no motion in
// [quietFrom, quietTo) (a nap).
func (g *simGen) active(from, to, quietFrom, quietTo int64) {
	mean := float64(msHour) / g.p.rate
	t := from
	for {
		t += max(2*msMin, int64(g.r.ExpFloat64()*mean))
		if t >= to {
			return
		}
		if t >= quietFrom && t < quietTo {
			t = quietTo
			continue
		}
		g.add(t, kMotion)
	}
}

// out adds a departure at t; back adds a return at t.
func (g *simGen) leave(t int64) {
	g.add(t-g.uni(30_000, 2*msMin), kMotion)
	g.add(t, kOpen)
	g.add(t+g.uni(10_000, 40_000), kClose)
}

func (g *simGen) back(t int64) {
	g.add(t, kOpen)
	g.add(t+g.uni(10_000, 40_000), kClose)
	g.add(t+g.uni(90_000, 4*msMin), kMotion)
}

// doorCall is someone at the door answered by the elder, who walks past
// the motion sensor to open it.
func (g *simGen) doorCall(t int64) {
	if g.p.peephole {
		g.add(t-g.uni(10_000, 40_000), kVisitor)
		g.add(t-g.uni(5_000, 10_000), kBell)
	}
	g.add(t-g.uni(10_000, 60_000), kMotion)
	g.add(t, kOpen)
	c := t + g.uni(20_000, 90_000)
	g.add(c, kClose)
	g.add(c+g.uni(70_000, 3*msMin), kMotion)
}

// day generates one ordinary day starting at local midnight ds.
func (g *simGen) day(ds int64, weekend bool) {
	r := g.r
	wake := ds + int64((g.p.wake+r.NormFloat64()*0.3)*float64(msHour))
	sleep := ds + int64((g.p.sleep+r.NormFloat64()*0.3)*float64(msHour))
	// Night before wake: toilet trips.
	g.night(ds, wake)
	g.add(wake, kMotion)
	type act struct {
		start, end int64
		kind       int // 0 outing, 1 garbage, 2 door call, 3 family visit
	}
	var acts []act
	if r.Float64() < g.p.morning {
		s := g.uni(wake+30*msMin, ds+10*msHour)
		acts = append(acts, act{s, s + g.uni(45*msMin, 3*msHour), 0})
	}
	if r.Float64() < g.p.noon {
		s := g.uni(ds+14*msHour+30*msMin, ds+16*msHour+30*msMin)
		acts = append(acts, act{s, s + g.uni(45*msMin, 150*msMin), 0})
	}
	if r.Float64() < 0.2 {
		s := g.uni(ds+18*msHour+30*msMin, ds+19*msHour+30*msMin)
		acts = append(acts, act{s, s + g.uni(30*msMin, 60*msMin), 0})
	}
	if r.Float64() < 0.7 { // rubbish to the sorted bins, morning or evening
		s := g.uni(ds+7*msHour, ds+8*msHour)
		if r.IntN(2) == 0 {
			s = g.uni(ds+18*msHour, ds+20*msHour)
		}
		acts = append(acts, act{s, s + g.uni(3*msMin, 8*msMin), 1})
	}
	if r.Float64() < 0.3 {
		s := g.uni(ds+10*msHour, ds+17*msHour)
		acts = append(acts, act{s, s + 2*msMin, 2})
	}
	if weekend && r.Float64() < 0.4 {
		s := g.uni(ds+10*msHour, ds+14*msHour)
		acts = append(acts, act{s, s + g.uni(2*msHour, 4*msHour), 3})
	}
	slices.SortFunc(acts, func(a, b act) int { return int(a.start - b.start) })
	if g.p.peephole && r.Float64() < 0.3 {
		// A courier rings and leaves the parcel at the door within two
		// minutes, whether or not the elder is in: not loitering.
		s := g.uni(ds+9*msHour, ds+19*msHour)
		g.add(s, kVisitor)
		g.add(s+g.uni(5_000, 20_000), kBell)
		g.add(s+g.uni(40_000, 100_000), kVisitor)
	}
	if g.p.peephole && r.Float64() < 0.03 {
		// A neighbour rings once late in the evening; nobody answers.
		s := g.uni(ds+22*msHour, ds+23*msHour+30*msMin)
		g.add(s, kVisitor)
		g.add(s+g.uni(5_000, 20_000), kBell)
	}
	nap0, nap1 := int64(0), int64(0)
	if r.Float64() < 0.6 {
		nap0 = g.uni(ds+12*msHour+30*msMin, ds+13*msHour+30*msMin)
		nap1 = nap0 + g.uni(30*msMin, 120*msMin)
	}
	cur := wake
	for _, a := range acts {
		if a.start < cur+5*msMin || a.end > sleep-10*msMin {
			continue // overlaps the previous one or bedtime: skip
		}
		g.active(cur, a.start, nap0, nap1)
		switch a.kind {
		case 0, 1:
			g.leave(a.start)
			g.back(a.end)
		case 2:
			g.doorCall(a.start)
		case 3:
			g.doorCall(a.start)
			g.rate(2, func() { g.active(a.start, a.end, 0, 0) })
			g.add(a.end, kOpen)
			g.add(a.end+g.uni(20_000, 60_000), kClose)
			g.add(a.end+g.uni(90_000, 3*msMin), kMotion)
		}
		cur = a.end + 4*msMin
	}
	g.active(cur, sleep, nap0, nap1)
	g.add(sleep, kMotion)
	g.night(sleep, ds+msDay)
}

func (g *simGen) rate(f float64, fn func()) {
	old := g.p.rate
	g.p.rate *= f
	fn()
	g.p.rate = old
}

// night adds toilet trips between from and to.
func (g *simGen) night(from, to int64) {
	if to <= from {
		return
	}
	frac := float64(to-from) / float64(9*msHour)
	n := poisson(g.r, g.p.toilet*frac)
	for i := 0; i < n; i++ {
		t := g.uni(from+10*msMin, to-10*msMin)
		if t <= from {
			continue
		}
		g.add(t, kMotion)
		g.add(t+g.uni(2*msMin, 6*msMin), kMotion)
	}
}

func poisson(r *rand.Rand, mean float64) int {
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p < l {
			return k
		}
		k++
	}
}

type block struct {
	from, to int64
	events   []Record
}

// Simulate builds a synthetic population: daily routines (sleep, meals
// and naps, outings, rubbish runs, callers and family visits, night
// toilet trips), flagged away and hospital stays, sensor faults and
// gateway outages, with labelled incidents injected. With o.Realistic,
// each elder also draws routine types (sim_routines.go) and may get a
// stuck sensor; collapses may come right after a door cycle.
func Simulate(o SimOptions) *Population {
	if o.Start.IsZero() {
		o.Start = time.Date(2026, 3, 2, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	}
	p := &Population{Options: o}
	for i := 0; i < o.Elders; i++ {
		p.Households = append(p.Households, fmt.Sprintf("e%03d", i+1))
	}
	p.Settings = NewSettings(p.Households...)
	eng := NewEngine(p.Settings, nil)
	start := o.Start.UnixMilli()
	end := start + int64(o.Days)*msDay
	master := rand.New(rand.NewPCG(o.Seed, 0x5eed))

	// Compound-wide outages: reboots with a clean stop, one power cut
	// without.
	type outage struct {
		from, to int64
		clean    bool
	}
	var outages []outage
	if o.Days >= 5 {
		for i := 0; i < max(1, o.Days/30); i++ {
			f := start + 2*msDay + int64(master.Float64()*float64(end-start-4*msDay))
			outages = append(outages, outage{f, f + 5*msMin + int64(master.IntN(6))*msMin, true})
		}
		f := start + 3*msDay + int64(master.Float64()*float64(end-start-5*msDay))
		outages = append(outages, outage{f, f + 30*msMin + int64(master.IntN(60))*msMin, false})
	}
	busyCompound := func(a, b int64) bool {
		for _, x := range outages {
			if a < x.to+2*msHour && b > x.from-2*msHour {
				return true
			}
		}
		return false
	}

	for i := 0; i < o.Elders; i++ {
		r := rand.New(rand.NewPCG(o.Seed, uint64(i)+1))
		g := &simGen{r: r, idx: uint16(i), p: elderProfile{
			wake: 5.8 + r.Float64()*1.6, sleep: 20.8 + r.Float64()*1.4, rate: 3 + r.Float64()*4,
			morning: 0.75 + r.Float64()*0.2, noon: 0.3 + r.Float64()*0.4, toilet: 0.4 + r.Float64()*1.6,
			peephole: r.Float64() < 0.5,
		}}
		p.Unsupervised = append(p.Unsupervised, r.Float64() < 0.2)
		h := p.Households[i]
		g.house = h
		var rr *rand.Rand // the realistic routines' own stream
		if o.Realistic {
			rr = rand.New(rand.NewPCG(o.Seed^0x7265616c, uint64(i)+1))
			g.ps = drawPersona(rr, &g.p)
		}
		p.Elders = append(p.Elders, g.simElder(p.Unsupervised[i]))
		var blocks []block
		// reserved are the long days out: incidents keep clear of them.
		var reserved []block
		freeBlocks := func(a, b int64) bool {
			if a < start+msDay || b > end-msDay || busyCompound(a, b) {
				return false
			}
			for _, x := range blocks {
				if a < x.to+msDay && b > x.from-msDay {
					return false
				}
			}
			return true
		}
		free := func(a, b int64) bool {
			if !freeBlocks(a, b) {
				return false
			}
			for _, x := range reserved {
				if a < x.to+2*msHour && b > x.from-2*msHour {
					return false
				}
			}
			return true
		}
		dayAt := func(minDay int) int64 {
			return start + int64(minDay+r.IntN(max(1, o.Days-minDay-2)))*msDay
		}
		mode := func(t int64, name string, until int64) Record {
			p.Modes = append(p.Modes, SimMode{Mode: name, Until: time.UnixMilli(until).UTC()})
			return Record{T: t, Elder: g.idx, Kind: kMode, Aux: uint32(len(p.Modes) - 1)}
		}
		stay := func(what string, from, to int64) {
			b := block{from: from, to: to}
			sub := &simGen{r: r, idx: g.idx, p: g.p}
			sub.leave(from)
			sub.back(to)
			m := mode(from+g.uni(10*msMin, 2*msHour), what, to+g.uni(2*msHour, 24*msHour))
			b.events = append(sub.out, m)
			blocks = append(blocks, b)
			p.Aways = append(p.Aways, Period{Household: h, What: what, From: time.UnixMilli(from).UTC(), To: time.UnixMilli(to).UTC(),
				ModeAt: time.UnixMilli(m.T).UTC()})
		}
		// Flagged stays away: visiting children, hospital.
		for _, x := range []struct {
			what       string
			prob       float64
			minD, maxD int64
		}{{ModeAway, 0.35, 2, 6}, {ModeHospital, 0.15, 3, 10}} {
			if r.Float64() < x.prob {
				for try := 0; try < 20; try++ {
					f := dayAt(1) + g.uni(9*msHour, 11*msHour)
					t := f + g.uni(x.minD*msDay, x.maxD*msDay)
					if free(f, t) {
						stay(x.what, f, t)
						break
					}
				}
			}
		}
		if o.Realistic {
			// Weekend trips (away mode set late or never), then the long
			// days out around them.
			g.trips(rr, start, o.Days, freeBlocks, mode, func(b block) { blocks = append(blocks, b) }, &p.Aways)
			reserved = g.planLongOutings(rr, start, o.Days, blocks, &p.Aways)
			g.nextDoor = start + int64(rr.IntN(3))*msDay
		}
		// Incidents.
		nInc := 0
		if r.Float64() < 0.95 {
			nInc++
		}
		if r.Float64() < 0.35 {
			nInc++
		}
		var kinds []string
		for k := 0; k < nInc; k++ {
			kind := IncCollapse
			x := r.Float64()
			if o.Realistic && x < 0.40 && r.Float64() < 0.4 {
				// Part of the collapses come right after a door cycle.
				kind = IncCollapseAfterDoor
			}
			switch {
			case x < 0.40:
			case x < 0.55:
				kind = IncNotReturned
			case x < 0.70:
				kind = IncNotReturnedNight
			case x < 0.85:
				kind = IncNightWandering
			default:
				kind = IncDoorLeftOpen
			}
			kinds = append(kinds, kind)
		}
		// SOS presses, and for elders with a peephole the anti-fraud
		// incidents, drawn apart so the other kinds keep their shares.
		if r.Float64() < 0.3 {
			kinds = append(kinds, IncSOS)
		}
		if g.p.peephole && r.Float64() < 0.6 {
			if r.IntN(2) == 0 {
				kinds = append(kinds, IncLoitering)
			} else {
				kinds = append(kinds, IncNightDoorbells)
			}
		}
		for _, kind := range kinds {
			for try := 0; try < 30; try++ {
				ds := dayAt(2)
				inc, b, ok := g.incident(kind, ds, eng, &p.Settings.Elders[i], mode)
				if ok && free(b.from, b.to) {
					blocks = append(blocks, b)
					p.Incidents = append(p.Incidents, inc)
					break
				}
			}
		}
		// Routine, then the blocks replace whatever the routine had there.
		for d := 0; d < o.Days; d++ {
			ds := start + int64(d)*msDay
			wd := (floorDiv(ds/1000+8*3600, 86400) + 4) % 7
			if o.Realistic {
				g.dayReal(ds, wd == 0 || wd == 6)
			} else {
				g.day(ds, wd == 0 || wd == 6)
			}
		}
		// Sensor faults: a motion sensor silent for hours; a low battery.
		var faults []block
		if r.Float64() < 0.25 {
			f := dayAt(1) + g.uni(0, msDay)
			t := f + g.uni(2*msHour, 10*msHour)
			if free(f, t) {
				faults = append(faults, block{from: f, to: t})
				p.Faults = append(p.Faults, Period{Household: h, What: "pir_silent", From: time.UnixMilli(f).UTC(), To: time.UnixMilli(t).UTC()})
			}
		}
		if r.Float64() < 0.3 {
			t := dayAt(1) + g.uni(0, msDay)
			g.add(t, kBattery)
			p.Faults = append(p.Faults, Period{Household: h, What: "battery_low", From: time.UnixMilli(t).UTC(), To: time.UnixMilli(t).UTC()})
		}
		var stuck []stuckFault
		if o.Realistic {
			stuck = g.stuckFaults(rr, start, o.Days, freeBlocks, faults, &p.Faults)
			g.applyStuck(stuck)
		}
		kept := g.out[:0]
		for _, rec := range g.out {
			in := false
			for _, b := range blocks {
				if rec.T >= b.from && rec.T <= b.to {
					in = true
					break
				}
			}
			for _, f := range faults {
				if rec.Kind == kMotion && rec.T >= f.from && rec.T <= f.to {
					in = true
				}
			}
			if !in && rec.T >= start && rec.T < end {
				kept = append(kept, rec)
			}
		}
		for _, b := range blocks {
			kept = append(kept, b.events...)
		}
		for _, f := range faults {
			kept = append(kept, Record{T: f.from, Elder: g.idx, Kind: kSilent}, Record{T: f.to, Elder: g.idx, Kind: kOnline})
		}
		p.Records = append(p.Records, kept...)
		if o.Realistic {
			p.Episodes = append(p.Episodes, g.keptEpisodes(blocks, stuck, faults, start, end)...)
		}
	}
	// Outages drop everything recorded meanwhile.
	if len(outages) > 0 {
		kept := p.Records[:0]
		for _, rec := range p.Records {
			drop := false
			for _, x := range outages {
				if rec.T >= x.from && rec.T < x.to {
					drop = true
				}
			}
			if !drop {
				kept = append(kept, rec)
			}
		}
		p.Records = kept
		for _, x := range outages {
			if x.clean {
				p.Records = append(p.Records, Record{T: x.from, Kind: kStopped})
			}
			p.Records = append(p.Records, Record{T: x.to, Kind: kStarted})
			what := "reboot"
			if !x.clean {
				what = "power_cut"
			}
			p.Outages = append(p.Outages, Period{What: what, From: time.UnixMilli(x.from).UTC(), To: time.UnixMilli(x.to).UTC()})
		}
	}
	slices.SortStableFunc(p.Records, func(a, b Record) int {
		if a.T != b.T {
			if a.T < b.T {
				return -1
			}
			return 1
		}
		return int(a.Elder) - int(b.Elder)
	})
	slices.SortFunc(p.Incidents, func(a, b Incident) int { return a.Start.Compare(b.Start) })
	if o.Realistic && len(outages) > 0 {
		// An episode the outages cut into is not what the log shows.
		p.Episodes = slices.DeleteFunc(p.Episodes, func(e Period) bool {
			for _, x := range outages {
				if e.From.UnixMilli()-2*msMin < x.to && e.To.UnixMilli()+msMin > x.from {
					return true
				}
			}
			return false
		})
	}
	if o.Realistic {
		// Ground truth in time order (the legacy population keeps the
		// order it always had).
		for _, ps := range [][]Period{p.Aways, p.Faults, p.Episodes} {
			slices.SortStableFunc(ps, func(a, b Period) int { return a.From.Compare(b.From) })
		}
	}
	return p
}

// incident builds one labelled incident on day ds.
func (g *simGen) incident(kind string, ds int64, eng *Engine, c *Elder, mode func(int64, string, int64) Record) (Incident, block, bool) {
	h := c.Household
	sub := &simGen{r: g.r, idx: g.idx, p: g.p}
	inc := Incident{Household: h, Kind: kind}
	var b block
	slack := 5 * time.Minute
	switch kind {
	case IncCollapse:
		var c, from int64
		if g.r.Float64() < 0.25 { // on a night toilet trip
			c = ds + g.uni(msHour, 4*msHour)
			from = c - 5*msMin
			sub.add(c-3*msMin, kMotion)
		} else {
			c = ds + g.uni(9*msHour, 18*msHour)
			// Moving about before the fall, so presence is clearly "home".
			from = c - 2*msHour - msMin
			sub.add(c-2*msHour, kMotion)
			sub.active(c-2*msHour, c-5*msMin, 0, 0)
		}
		sub.add(c, kMotion)
		T := eng.InactivityThreshold(h, time.UnixMilli(c))
		found := c + T.Milliseconds() + sub.uni(20*msMin, 2*msHour)
		sub.add(found, kOpen) // rescuers
		sub.add(found+30_000, kClose)
		sub.active(found, found+30*msMin, 0, 0)
		sub.add(found+40*msMin, kOpen) // to hospital
		sub.add(found+41*msMin, kClose)
		back := found + sub.uni(3*msDay, 7*msDay)
		sub.out = append(sub.out, mode(found+90*msMin, ModeHospital, back+12*msHour))
		sub.back(back)
		b = block{from: from, to: back + 5*msMin}
		inc.Rule, inc.Start, inc.End, inc.Threshold = RuleInactivity, time.UnixMilli(c), time.UnixMilli(found), T
		inc.Deadline = inc.Start.Add(T + slack)
	case IncCollapseAfterDoor:
		inc, b = g.collapseAfterDoor(sub, ds, eng, inc, mode)
	case IncNotReturned:
		l := ds + g.uni(9*msHour, 15*msHour)
		sub.active(l-msHour, l-3*msMin, 0, 0)
		sub.leave(l)
		close := sub.out[len(sub.out)-1].T
		ret := l + sub.uni(13*msHour, 16*msHour)
		sub.back(ret)
		T := 12 * time.Hour
		b = block{from: l - msHour - msMin, to: ret + 5*msMin}
		inc.Rule, inc.Start, inc.End, inc.Threshold = RuleNotReturned, time.UnixMilli(l), time.UnixMilli(ret), T
		inc.Deadline = time.UnixMilli(close).Add(T + slack)
	case IncNotReturnedNight:
		l := ds + g.uni(0, 3*msHour) - msHour // 23:00–02:00
		sub.add(l-40*msMin, kMotion)
		sub.leave(l)
		close := sub.out[len(sub.out)-1].T
		ret := l + sub.uni(90*msMin, 3*msHour)
		sub.back(ret)
		T := time.Hour
		b = block{from: l - 41*msMin, to: ret + 5*msMin}
		inc.Rule, inc.Start, inc.End, inc.Threshold = RuleNotReturned, time.UnixMilli(l), time.UnixMilli(ret), T
		inc.Deadline = time.UnixMilli(close).Add(T + slack)
	case IncNightWandering:
		n := 4 + g.r.IntN(4)
		t := ds + g.uni(0, msHour)
		first := t
		var fourth int64
		for i := 0; i < n; i++ {
			sub.add(t-msMin, kMotion)
			sub.add(t, kOpen)
			sub.add(t+g.uni(20_000, 2*msMin), kClose)
			sub.add(t+3*msMin, kMotion)
			if i == 3 {
				fourth = t
			}
			t += g.uni(15*msMin, 40*msMin)
		}
		b = block{from: first - 2*msMin, to: t}
		inc.Rule, inc.Start, inc.End = RuleNightWandering, time.UnixMilli(first), time.UnixMilli(t)
		inc.Deadline = time.UnixMilli(fourth).Add(time.Minute)
	case IncSOS:
		c := ds + g.uni(8*msHour, 20*msHour)
		sub.add(c-30*msMin, kMotion)
		sub.active(c-30*msMin, c-2*msMin, 0, 0)
		sub.add(c-msMin, kMotion)
		sub.add(c, kSOS)
		if g.r.Float64() < 0.5 { // pressed again: nobody answered yet
			sub.add(c+g.uni(10_000, 60_000), kSOS)
		}
		found := c + g.uni(8*msMin, 40*msMin)
		sub.add(found, kOpen) // property staff or a neighbour
		sub.add(found+30_000, kClose)
		sub.active(found, found+40*msMin, 0, 0)
		b = block{from: c - 31*msMin, to: found + 41*msMin}
		inc.Rule, inc.Start, inc.End = RuleSOS, time.UnixMilli(c), time.UnixMilli(found)
		inc.Deadline = inc.Start.Add(10 * time.Second)
	case IncLoitering:
		if !g.p.peephole {
			return inc, b, false
		}
		v := ds + g.uni(9*msHour, 20*msHour)
		d := g.uni(4*msMin, 10*msMin)
		sub.add(v-g.uni(5*msMin, 20*msMin), kMotion) // the elder is in, keeping still
		for t := v; t < v+d; t += g.uni(30_000, 45_000) {
			sub.add(t, kVisitor) // the camera's 30 s cooldown
		}
		if g.r.IntN(2) == 0 {
			sub.add(v+g.uni(msMin, 3*msMin), kBell)
		}
		sub.add(v+d+g.uni(5*msMin, 12*msMin), kMotion)
		T := c.T.Loitering.Std()
		b = block{from: v - 21*msMin, to: v + d + 13*msMin}
		inc.Rule, inc.Start, inc.End, inc.Threshold = RuleVisitorLoitering, time.UnixMilli(v), time.UnixMilli(v+d), T
		inc.Deadline = inc.Start.Add(T + time.Minute)
	case IncNightDoorbells:
		if !g.p.peephole {
			return inc, b, false
		}
		first := ds + g.uni(-msHour, 4*msHour) // 23:00–04:00
		n := 3 + g.r.IntN(3)
		t := first
		var third int64
		for i := 0; i < n; i++ {
			if g.r.IntN(2) == 0 {
				sub.add(t-g.uni(5_000, 20_000), kVisitor)
			}
			sub.add(t, kBell)
			if i == 2 {
				third = t
			}
			t += g.uni(2*msMin, 8*msMin)
		}
		sub.add(t+g.uni(5*msMin, 20*msMin), kMotion) // woken, not opening
		b = block{from: first - msMin, to: t + 21*msMin}
		inc.Rule, inc.Start, inc.End = RuleVisitorLoitering, time.UnixMilli(first), time.UnixMilli(t)
		inc.Deadline = time.UnixMilli(third).Add(time.Minute)
	case IncDoorLeftOpen:
		o := ds + g.uni(9*msHour, 18*msHour)
		c := o + g.uni(30*msMin, 120*msMin)
		sub.add(o-msMin, kMotion)
		sub.add(o, kOpen)
		sub.active(o, c, 0, 0)
		sub.add(c, kClose)
		sub.add(c+2*msMin, kMotion)
		T := 15 * time.Minute
		b = block{from: o - 2*msMin, to: c + 3*msMin}
		inc.Rule, inc.Start, inc.End, inc.Threshold = RuleDoorLeftOpen, time.UnixMilli(o), time.UnixMilli(c), T
		inc.Deadline = inc.Start.Add(T + slack)
	}
	inc.Start, inc.End, inc.Deadline = inc.Start.UTC(), inc.End.UTC(), inc.Deadline.UTC()
	b.events = sub.out
	return inc, b, true
}

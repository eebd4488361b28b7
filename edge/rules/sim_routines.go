package rules

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"
)

// The routines of a realistic population (SimOptions.Realistic, issue
// 12): what real single-resident traces show and the issue-6 population
// did not. Each elder draws a make-up of routine types (SimElder.Routines)
// from a stream of its own; the ground truth of every routine is written
// out: absences as Population.Aways, stuck sensors as Population.Faults,
// benign episodes as Population.Episodes.

// Routine types an elder can draw (SimElder.Routines).
const (
	// RoutineLongOutings: long days out, 7–13 h, on some weekdays: a day
	// job, a day at the family's, a day centre. Aways "outing", no mode.
	RoutineLongOutings = "long_outings"
	// RoutineWeekendTrips: 1–3 nights away from a Friday afternoon or a
	// Saturday morning, every 3–6 weeks; nobody sets away mode (Aways
	// "trip"), or staff set it hours after the elder left
	// ("trip_away_late"), or in time ("away").
	RoutineWeekendTrips = "weekend_trips"
	// RoutineHousebound: never goes out; the door is used every 2–4 days
	// (a delivery, the bins by the door, a carer).
	RoutineHousebound = "housebound"
	// RoutineEarlyRiser: up at 04:30–05:25, in bed by 20:00–21:00; most
	// go out for morning exercise (晨练) around 05:15–06:15.
	RoutineEarlyRiser = "early_riser"
	// RoutineLateSleeper: in bed at 23:00–00:45, up at 07:30–09:00.
	RoutineLateSleeper = "late_sleeper"
	// RoutineLongNaps: an afternoon nap of 1–3 h on most days.
	RoutineLongNaps = "long_naps"
	// RoutineDoorCycles: door opened and closed without leaving (bins by
	// the door, a delivery): motion again 1–10 min after the close.
	// Episodes "door_cycle".
	RoutineDoorCycles = "door_cycles"
	// RoutineVisitors: someone comes in (door open + close), stays 20 min
	// to 3 h (more motion), leaves (door open + close); the elder moves
	// again 1–10 min later. Episodes "visitor".
	RoutineVisitors = "visitors"
)

// RoutineTypes lists the routine types.
var RoutineTypes = []string{RoutineLongOutings, RoutineWeekendTrips, RoutineHousebound, RoutineEarlyRiser,
	RoutineLateSleeper, RoutineLongNaps, RoutineDoorCycles, RoutineVisitors}

// Period whats of the ground truth.
const (
	// Aways.
	WhatOuting       = "outing"         // a long day out (7–13 h), no mode set
	WhatTrip         = "trip"           // 1–3 days away, away mode never set
	WhatTripLateAway = "trip_away_late" // 1–3 days away, away mode set 3–30 h after leaving
	// (flagged stays keep their mode's name: "away", "hospital").

	// Faults.
	FaultPIRSilent     = "pir_silent"      // the motion sensor reported silent (sensor.silent … device.online)
	FaultBatteryLow    = "battery_low"     // a low-battery report (From = To)
	FaultPIRStuckOn    = "pir_stuck_on"    // the PIR fires every 2–6 min, day and night, for 2–6 days
	FaultDoorStuckOpen = "door_stuck_open" // the contact reads open (an open, no close) for 2–6 days while life goes on inside
	FaultPIRStuckOff   = "pir_stuck_off"   // the PIR reports nothing for 2–6 days while the door cycles

	// Episodes.
	EpisodeDoorCycle = "door_cycle" // door open + close without leaving; From = open, To = motion again
	EpisodeVisitor   = "visitor"    // From = door opened to the visitor, To = elder moving after they left
	EpisodeNap       = "nap"        // a nap of an hour or more (no motion From–To)
)

// SimElder is one simulated elder's make-up: the ground truth of who
// they are, for tests and for reading a report.
type SimElder struct {
	Household string   `json:"household"`
	Routines  []string `json:"routines,omitempty"`
	// Wake and Sleep are the usual local times ("06:12", "23:40";
	// daily times scatter by about 20 min).
	Wake     string `json:"wake"`
	Sleep    string `json:"sleep"`
	Peephole bool   `json:"peephole,omitempty"`
	// UnsupervisedDoor: the door sensor sends no heartbeat.
	UnsupervisedDoor bool `json:"unsupervised_door,omitempty"`
	// LongOutingDays are the weekdays of the long days out ("Tue").
	LongOutingDays []string `json:"long_outing_days,omitempty"`
}

// persona is the realistic part of an elder's profile.
type persona struct {
	routines         []string
	longDays         [7]bool // by weekday, 0 = Sunday
	longProb         float64 // share of those weekdays actually out
	lenMin, lenMax   float64 // hours out
	depMin, depMax   float64 // local hour of leaving
	trips            bool
	housebound       bool
	exercise         float64 // share of days with early morning exercise
	longNaps         bool
	napProb          float64
	doorCycles       float64 // mean door cycles without leaving per day
	visitors         float64 // share of days with a visitor
	tripEvery        float64 // days between trips, on average
	tripModeLate     float64 // share of trips whose away mode is set late
	tripModeOnTime   float64 // ... set in time
	stuckCandidate   float64 // draw for a stuck sensor
	visitorMaxHours  float64
	doorCycleMaxGapM float64 // minutes before motion is seen again, at most
}

func (ps *persona) has(r string) bool { return ps != nil && slices.Contains(ps.routines, r) }

// drawPersona draws an elder's routine types, adjusting their wake and
// sleep times.
func drawPersona(r *rand.Rand, p *elderProfile) *persona {
	ps := &persona{visitorMaxHours: 3, doorCycleMaxGapM: 10}
	add := func(s string) { ps.routines = append(ps.routines, s) }
	ps.housebound = r.Float64() < 0.06
	if ps.housebound {
		add(RoutineHousebound)
	} else {
		if r.Float64() < 0.30 {
			add(RoutineLongOutings)
			var days []time.Weekday
			switch r.IntN(3) {
			case 0: // a day job
				days = []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
				ps.longProb, ps.lenMin, ps.lenMax, ps.depMin, ps.depMax = 0.9, 8.5, 10.5, 7, 8.5
			case 1: // a day at the family's, one or two weekdays
				all := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
				r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
				days = all[:1+r.IntN(2)]
				ps.longProb, ps.lenMin, ps.lenMax, ps.depMin, ps.depMax = 0.8, 7, 13, 8.5, 10.5
			default: // a day centre, two or three weekdays
				all := []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}
				r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
				days = all[:2+r.IntN(2)]
				ps.longProb, ps.lenMin, ps.lenMax, ps.depMin, ps.depMax = 0.9, 7, 9, 7.5, 9
			}
			for _, d := range days {
				ps.longDays[d] = true
			}
		}
		if r.Float64() < 0.35 {
			add(RoutineWeekendTrips)
			ps.trips = true
			ps.tripEvery = 21 + r.Float64()*21
			ps.tripModeLate, ps.tripModeOnTime = 0.25, 0.15
		}
	}
	switch y := r.Float64(); {
	case y < 0.14:
		add(RoutineEarlyRiser)
		p.wake, p.sleep = 4.5+r.Float64()*0.9, 20+r.Float64()
		if !ps.housebound && r.Float64() < 0.65 {
			ps.exercise = 0.5 + r.Float64()*0.35
		}
	case y < 0.28:
		add(RoutineLateSleeper)
		p.wake, p.sleep = 7.5+r.Float64()*1.5, 23+r.Float64()*1.75
	}
	if r.Float64() < 0.35 {
		add(RoutineLongNaps)
		ps.longNaps, ps.napProb = true, 0.7+r.Float64()*0.25
	}
	if r.Float64() < 0.75 {
		add(RoutineDoorCycles)
		ps.doorCycles = 0.3 + r.Float64()*0.9
	}
	if !ps.housebound && r.Float64() < 0.40 {
		add(RoutineVisitors)
		ps.visitors = 0.1 + r.Float64()*0.3
	}
	ps.stuckCandidate = r.Float64()
	return ps
}

func (g *simGen) simElder(unsup bool) SimElder {
	clock := func(h float64) string {
		m := int(h*60+0.5) % (24 * 60)
		return fmt.Sprintf("%02d:%02d", m/60, m%60)
	}
	e := SimElder{Household: g.house, Wake: clock(g.p.wake), Sleep: clock(g.p.sleep), Peephole: g.p.peephole, UnsupervisedDoor: unsup}
	if g.ps != nil {
		e.Routines = slices.Clone(g.ps.routines)
		for d, on := range g.ps.longDays {
			if on {
				e.LongOutingDays = append(e.LongOutingDays, time.Weekday(d).String()[:3])
			}
		}
	}
	return e
}

// simWeekday is the local weekday of a local midnight (0 = Sunday), in
// the simulator's +08:00.
func simWeekday(ds int64) int { return int((floorDiv(ds/1000+8*3600, 86400) + 4) % 7) }

func uniR(r *rand.Rand, a, b int64) int64 { return a + int64(r.Float64()*float64(b-a)) }

func hoursMS(h float64) int64 { return int64(h * float64(msHour)) }

func msUTC(t int64) time.Time { return time.UnixMilli(t).UTC() }

// trips adds the weekend trips: from a Friday afternoon or a Saturday
// morning, back 1–3 days later in the afternoon or evening.
func (g *simGen) trips(r *rand.Rand, start int64, days int, free func(a, b int64) bool, mode func(int64, string, int64) Record,
	addBlock func(block), aways *[]Period) {
	ps := g.ps
	if !ps.trips || days < 10 {
		return
	}
	n := max(1, int(float64(days)/ps.tripEvery+0.5))
	for k := 0; k < n; k++ {
		for try := 0; try < 20; try++ {
			d := 1 + r.IntN(max(1, days-5))
			ds := start + int64(d)*msDay
			var from int64
			switch simWeekday(ds) {
			case 5: // Friday
				from = ds + uniR(r, 15*msHour, 19*msHour)
			case 6: // Saturday
				from = ds + uniR(r, 8*msHour, 12*msHour)
			default:
				continue
			}
			nights := 1 + r.IntN(3)
			to := ds + int64(nights)*msDay + uniR(r, 14*msHour, 21*msHour)
			if !free(from, to) {
				continue
			}
			sub := &simGen{r: r, idx: g.idx, p: g.p}
			sub.leave(from)
			sub.back(to)
			per := Period{Household: g.house, What: WhatTrip, From: msUTC(from), To: msUTC(to)}
			switch x := r.Float64(); {
			case x < ps.tripModeLate:
				// Family told the staff hours later.
				at := from + uniR(r, 3*msHour, 30*msHour)
				at = min(at, to-2*msHour)
				at = max(at, from+3*msHour)
				m := mode(at, ModeAway, to+uniR(r, 2*msHour, 24*msHour))
				sub.out = append(sub.out, m)
				per.What, per.ModeAt = WhatTripLateAway, msUTC(at)
			case x < ps.tripModeLate+ps.tripModeOnTime:
				at := from + uniR(r, 10*msMin, 2*msHour)
				m := mode(at, ModeAway, to+uniR(r, 2*msHour, 24*msHour))
				sub.out = append(sub.out, m)
				per.What, per.ModeAt = ModeAway, msUTC(at)
			}
			addBlock(block{from: from, to: to, events: sub.out})
			*aways = append(*aways, per)
			break
		}
	}
}

// planLongOutings picks the long days out, clear of the blocks, and
// returns them as reserved intervals.
func (g *simGen) planLongOutings(r *rand.Rand, start int64, days int, blocks []block, aways *[]Period) []block {
	ps := g.ps
	g.longOut = map[int64][2]int64{}
	var res []block
	for d := 1; d < days-1; d++ {
		ds := start + int64(d)*msDay
		if !ps.longDays[simWeekday(ds)] || r.Float64() >= ps.longProb {
			continue
		}
		dep := ds + hoursMS(ps.depMin+r.Float64()*(ps.depMax-ps.depMin))
		dep = max(dep, ds+hoursMS(g.p.wake+0.75))
		ret := dep + hoursMS(ps.lenMin+r.Float64()*(ps.lenMax-ps.lenMin))
		clash := false
		for _, b := range blocks {
			if dep < b.to+2*msHour && ret > b.from-2*msHour {
				clash = true
			}
		}
		if clash {
			continue
		}
		g.longOut[ds] = [2]int64{dep, ret}
		res = append(res, block{from: dep, to: ret})
		*aways = append(*aways, Period{Household: g.house, What: WhatOuting, From: msUTC(dep), To: msUTC(ret)})
	}
	return res
}

const (
	raOut = iota // an outing: leave, back
	raCall
	raFamily
	raCycle
	raVisitor
)

type ract struct {
	start, end int64
	kind       int
	t1         int64 // door cycle: the close; visitor: they leave (door open)
}

// dayReal generates one day of a realistic population starting at local
// midnight ds: the issue-6 day (sleep, meals and naps, outings, rubbish
// runs, callers, couriers, family visits, toilet trips) shaped by the
// elder's routine types.
func (g *simGen) dayReal(ds int64, weekend bool) {
	r, ps := g.r, g.ps
	wake := ds + int64((g.p.wake+r.NormFloat64()*0.3)*float64(msHour))
	sleep := ds + int64((g.p.sleep+r.NormFloat64()*0.3)*float64(msHour))
	lo, long := g.longOut[ds]
	if long {
		wake = min(wake, lo[0]-40*msMin)
		if sleep < lo[1]+45*msMin {
			sleep = lo[1] + g.uni(45*msMin, 90*msMin)
		}
	}
	g.night(max(ds, g.sleptAt), wake)
	g.add(wake, kMotion)
	var acts []ract
	switch {
	case long:
		acts = append(acts, ract{start: lo[0], end: lo[1], kind: raOut})
	case ps.housebound:
		if ds >= g.nextDoor {
			s := g.uni(ds+9*msHour, ds+18*msHour)
			if r.Float64() < 0.6 {
				acts = append(acts, g.doorCycleAct(s))
			} else {
				acts = append(acts, g.visitorAct(s))
			}
			g.nextDoor = ds + int64(2+r.IntN(3))*msDay
		}
	default:
		if ps.exercise > 0 && r.Float64() < ps.exercise {
			s := max(g.uni(ds+5*msHour+15*msMin, ds+6*msHour+15*msMin), wake+10*msMin)
			acts = append(acts, ract{start: s, end: s + g.uni(40*msMin, 100*msMin), kind: raOut})
		}
		if r.Float64() < g.p.morning {
			s := g.uni(wake+30*msMin, ds+10*msHour)
			acts = append(acts, ract{start: s, end: s + g.uni(45*msMin, 3*msHour), kind: raOut})
		}
		if r.Float64() < g.p.noon {
			s := g.uni(ds+14*msHour+30*msMin, ds+16*msHour+30*msMin)
			acts = append(acts, ract{start: s, end: s + g.uni(45*msMin, 150*msMin), kind: raOut})
		}
		if r.Float64() < 0.2 {
			s := g.uni(ds+18*msHour+30*msMin, ds+19*msHour+30*msMin)
			acts = append(acts, ract{start: s, end: s + g.uni(30*msMin, 60*msMin), kind: raOut})
		}
		if r.Float64() < 0.5 { // rubbish to the sorted bins downstairs
			s := g.uni(ds+7*msHour, ds+8*msHour)
			if r.IntN(2) == 0 {
				s = g.uni(ds+18*msHour, ds+20*msHour)
			}
			acts = append(acts, ract{start: s, end: s + g.uni(3*msMin, 8*msMin), kind: raOut})
		}
		if r.Float64() < 0.3 {
			s := g.uni(ds+10*msHour, ds+17*msHour)
			acts = append(acts, ract{start: s, end: s + 2*msMin, kind: raCall})
		}
		if weekend && r.Float64() < 0.4 {
			s := g.uni(ds+10*msHour, ds+14*msHour)
			acts = append(acts, ract{start: s, end: s + g.uni(2*msHour, 4*msHour), kind: raFamily})
		}
		for n := poisson(r, ps.doorCycles); n > 0; n-- {
			acts = append(acts, g.doorCycleAct(g.uni(ds+7*msHour+30*msMin, ds+20*msHour+30*msMin)))
		}
		if ps.visitors > 0 && r.Float64() < ps.visitors {
			acts = append(acts, g.visitorAct(g.uni(ds+9*msHour, ds+18*msHour)))
		}
	}
	slices.SortFunc(acts, func(a, b ract) int { return int(a.start - b.start) })
	if g.p.peephole && r.Float64() < 0.3 {
		// A courier rings and leaves the parcel at the door within two
		// minutes, whether or not the elder is in: not loitering.
		s := g.uni(ds+9*msHour, ds+19*msHour)
		g.add(s, kVisitor)
		g.add(s+g.uni(5_000, 20_000), kBell)
		g.add(s+g.uni(40_000, 100_000), kVisitor)
	}
	if g.p.peephole && r.Float64() < 0.03 {
		s := g.uni(ds+22*msHour, ds+23*msHour+30*msMin)
		g.add(s, kVisitor)
		g.add(s+g.uni(5_000, 20_000), kBell)
	}
	nap0, nap1 := int64(0), int64(0)
	switch {
	case long:
	case ps.longNaps && r.Float64() < ps.napProb:
		nap0 = g.uni(ds+12*msHour+30*msMin, ds+14*msHour+30*msMin)
		nap1 = nap0 + g.uni(msHour, 3*msHour)
	case r.Float64() < 0.6:
		nap0 = g.uni(ds+12*msHour+30*msMin, ds+13*msHour+30*msMin)
		nap1 = nap0 + g.uni(30*msMin, 120*msMin)
	}
	napClear := nap1-nap0 >= msHour && nap0 > wake && nap1 < sleep
	cur := wake
	for _, a := range acts {
		if a.start < cur+5*msMin || a.end > sleep-10*msMin {
			continue // overlaps the previous one or bedtime: skip
		}
		g.active(cur, a.start, nap0, nap1)
		if a.start < nap1+2*msMin && a.end > nap0-2*msMin {
			napClear = false
		}
		switch a.kind {
		case raOut:
			g.leave(a.start)
			g.back(a.end)
		case raCall:
			g.doorCall(a.start)
		case raFamily:
			g.doorCall(a.start)
			g.rate(2, func() { g.active(a.start, a.end, 0, 0) })
			g.add(a.end, kOpen)
			g.add(a.end+g.uni(20_000, 60_000), kClose)
			g.add(a.end+g.uni(90_000, 3*msMin), kMotion)
		case raCycle:
			if g.p.peephole && r.Float64() < 0.4 {
				// A delivery: the courier rings, the elder opens.
				g.add(a.start-g.uni(40_000, 90_000), kVisitor)
				g.add(a.start-g.uni(20_000, 40_000), kBell)
			}
			g.add(a.start-g.uni(10_000, 60_000), kMotion)
			g.add(a.start, kOpen)
			g.add(a.t1, kClose)
			g.add(a.end, kMotion)
			g.episode(EpisodeDoorCycle, a.start, a.end)
		case raVisitor:
			if g.p.peephole {
				g.add(a.start-g.uni(20_000, 50_000), kVisitor)
				g.add(a.start-g.uni(5_000, 15_000), kBell)
			}
			g.add(a.start-g.uni(10_000, 60_000), kMotion)
			g.add(a.start, kOpen)
			in := a.start + g.uni(20_000, 90_000)
			g.add(in, kClose)
			g.rate(2, func() { g.active(in+msMin, a.t1-msMin, 0, 0) })
			g.add(a.t1-g.uni(10_000, 50_000), kMotion) // seeing them out
			g.add(a.t1, kOpen)
			out := a.t1 + g.uni(20_000, 60_000)
			g.add(out, kClose)
			g.add(a.end, kMotion)
			g.episode(EpisodeVisitor, a.start, a.end)
		}
		cur = a.end + 4*msMin
	}
	if napClear {
		g.episode(EpisodeNap, nap0, nap1)
	}
	g.active(cur, sleep, nap0, nap1)
	g.add(sleep, kMotion)
	g.sleptAt = sleep
	g.night(sleep, ds+msDay)
}

// doorCycleAct is a door opened and closed without leaving (the bins by
// the door, a delivery taken in): motion again 1–10 min after the close.
func (g *simGen) doorCycleAct(s int64) ract {
	c := s + g.uni(10_000, 3*msMin)
	return ract{start: s, t1: c, end: c + g.uni(msMin, int64(g.ps.doorCycleMaxGapM)*msMin), kind: raCycle}
}

// visitorAct is a visitor let in, staying 20 min to 3 h.
func (g *simGen) visitorAct(s int64) ract {
	leave := s + g.uni(20*msMin, hoursMS(g.ps.visitorMaxHours))
	return ract{start: s, t1: leave, end: leave + 60_000 + g.uni(msMin, 10*msMin), kind: raVisitor}
}

func (g *simGen) episode(what string, from, to int64) {
	g.episodes = append(g.episodes, Period{Household: g.house, What: what, From: msUTC(from), To: msUTC(to)})
}

type stuckFault struct {
	what     string
	from, to int64
}

// stuckFaults draws a sensor stuck for 2–6 days: a PIR stuck on (5 % of
// elders), a door contact stuck open (5 %) or a PIR stuck off (5 %),
// clear of the blocks and of the other faults.
func (g *simGen) stuckFaults(r *rand.Rand, start int64, days int, free func(a, b int64) bool, other []block, out *[]Period) []stuckFault {
	var what string
	switch x := g.ps.stuckCandidate; {
	case x < 0.05:
		what = FaultPIRStuckOn
	case x < 0.10:
		what = FaultDoorStuckOpen
	case x < 0.15:
		what = FaultPIRStuckOff
	default:
		return nil
	}
	if days < 10 {
		return nil
	}
	for try := 0; try < 30; try++ {
		f := start + int64(1+r.IntN(max(1, days-8)))*msDay + uniR(r, 0, msDay)
		t := f + uniR(r, 2*msDay, 6*msDay)
		if !free(f, t) {
			continue
		}
		clash := false
		for _, x := range other {
			if f < x.to+msDay && t > x.from-msDay {
				clash = true
			}
		}
		if clash {
			continue
		}
		*out = append(*out, Period{Household: g.house, What: what, From: msUTC(f), To: msUTC(t)})
		return []stuckFault{{what: what, from: f, to: t}}
	}
	return nil
}

// applyStuck rewrites the routine as the stuck sensor reports it.
func (g *simGen) applyStuck(faults []stuckFault) {
	for _, f := range faults {
		in := func(rec Record) bool { return rec.T >= f.from && rec.T <= f.to }
		switch f.what {
		case FaultPIRStuckOn:
			for t := f.from; t < f.to; t += uniR(g.r, 2*msMin, 6*msMin) {
				g.add(t, kMotion)
			}
		case FaultPIRStuckOff:
			g.out = slices.DeleteFunc(g.out, func(rec Record) bool { return rec.Kind == kMotion && in(rec) })
		case FaultDoorStuckOpen:
			g.out = slices.DeleteFunc(g.out, func(rec Record) bool { return (rec.Kind == kOpen || rec.Kind == kClose) && in(rec) })
			g.add(f.from, kOpen)
			g.add(f.to, kClose)
		}
	}
}

// keptEpisodes returns the episodes the final log still shows: not
// replaced by a block, not altered by a fault, within the simulation.
func (g *simGen) keptEpisodes(blocks []block, stuck []stuckFault, faults []block, start, end int64) []Period {
	var out []Period
	for _, e := range g.episodes {
		a, b := e.From.UnixMilli()-2*msMin, e.To.UnixMilli()+msMin
		ok := a >= start && b < end
		for _, x := range blocks {
			if a <= x.to && b >= x.from {
				ok = false
			}
		}
		for _, x := range stuck {
			if a <= x.to && b >= x.from {
				ok = false
			}
		}
		for _, x := range faults {
			if a <= x.to && b >= x.from {
				ok = false
			}
		}
		if ok {
			out = append(out, e)
		}
	}
	return out
}

// collapseAfterDoor builds a collapse right after a door cycle: the elder
// comes home (door open + close), or takes the rubbish out and comes
// back, or opens and closes the door without leaving (a delivery) — and
// falls at once, in the hallway. Half the time the PIR by the door sees
// them within the first minute after the close; then nothing until they
// are found.
func (g *simGen) collapseAfterDoor(sub *simGen, ds int64, eng *Engine, inc Incident, mode func(int64, string, int64) Record) (Incident, block) {
	var c, from int64
	closeAfter := func(o int64) int64 {
		sub.add(o, kOpen)
		cl := o + g.uni(10_000, 40_000)
		sub.add(cl, kClose)
		return cl
	}
	switch g.r.IntN(3) {
	case 0: // coming home, by day or late in the evening
		ret := ds + g.uni(10*msHour, 23*msHour+30*msMin)
		l := ret - g.uni(msHour, 4*msHour)
		sub.add(l-msHour, kMotion)
		sub.active(l-msHour, l-3*msMin, 0, 0)
		sub.leave(l)
		from = l - msHour - msMin
		c = closeAfter(ret)
	case 1: // the rubbish: out and back a few minutes later
		o := ds + g.uni(8*msHour, 20*msHour+30*msMin)
		sub.add(o-2*msHour, kMotion)
		sub.active(o-2*msHour, o-3*msMin, 0, 0)
		sub.leave(o)
		from = o - 2*msHour - msMin
		c = closeAfter(o + g.uni(2*msMin, 6*msMin))
	default: // a delivery taken in at the door
		o := ds + g.uni(8*msHour, 20*msHour+30*msMin)
		sub.add(o-2*msHour, kMotion)
		sub.active(o-2*msHour, o-3*msMin, 0, 0)
		sub.add(o-g.uni(10_000, 60_000), kMotion)
		sub.add(o, kOpen)
		c = o + g.uni(10_000, 3*msMin)
		sub.add(c, kClose)
		from = o - 2*msHour - msMin
	}
	if g.r.IntN(2) == 0 {
		c += g.uni(5_000, 45_000)
		sub.add(c, kMotion)
	}
	T := eng.InactivityThreshold(inc.Household, time.UnixMilli(c))
	found := c + T.Milliseconds() + sub.uni(20*msMin, 2*msHour)
	sub.add(found, kOpen) // rescuers
	sub.add(found+30_000, kClose)
	sub.active(found, found+30*msMin, 0, 0)
	sub.add(found+40*msMin, kOpen) // to hospital
	sub.add(found+41*msMin, kClose)
	back := found + sub.uni(3*msDay, 7*msDay)
	sub.out = append(sub.out, mode(found+90*msMin, ModeHospital, back+12*msHour))
	sub.back(back)
	inc.Rule, inc.Start, inc.End, inc.Threshold = RuleInactivity, time.UnixMilli(c), time.UnixMilli(found), T
	inc.Deadline = inc.Start.Add(T + 5*time.Minute)
	return inc, block{from: from, to: back + 5*msMin}
}

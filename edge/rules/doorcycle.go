package rules

import (
	"fmt"
	"math"
	"time"
)

// Door-cycle truth (issue 12). A door cycle says someone used the door,
// not who went which way. The engine keeps two hypotheses after a cycle
// from home with nothing seen since, "went out" and "stayed in and went
// quiet", and settles them from what follows:
//
//   - motion inside: stayed in (the door use was a delivery, the bins);
//   - the door again, nothing seen in between: the first cycle was a
//     departure and this one is the return — presence is home at once,
//     on the door's word, and it stays home until the door is used again
//     (the elder who falls in the hallway right after coming in is at
//     home, not "not back");
//   - silence: at away_after, the elder's own history of door cycles at
//     that hour decides which hypothesis is watched (away, or uncertain
//     with the inactivity rule still armed), and an inferred departure
//     keeps a fall check at the time the elder is normally back.
//
// What each door cycle turned out to be teaches the habits (learn.go).
// With Settings.Legacy none of this runs.

// doorReuse: the door opened again this soon after it closed is the same
// door use (back for the keys, checking the lock — real recordings show
// two cycles 3–61 s apart at most departures and arrivals), not a return.
const doorReuse = 2 * time.Minute

// doorOpening records where the elder was when the door opened (before
// the open changes anything) and settles a pending door use.
func (e *Engine) doorOpening(el *elder, t time.Time, dev string) {
	if e.set.Legacy {
		return
	}
	s := el.st
	s.DoorCycles++
	s.DoorFrom, s.DoorDev = s.Presence.State, dev
	if !s.ReturnedAt.IsZero() && s.ReturnedAt.Equal(s.DoorClosedAt) && t.Sub(s.DoorClosedAt) < doorReuse {
		// The second cycle of an arrival (the door shut again, locked):
		// still the return.
		s.DoorFrom = doorReturn
		e.dirty[el] = true
		return
	}
	if p := s.PendingDoorUse; !p.IsZero() && t.Sub(p) >= doorReuse {
		// The door again with nothing seen since the last cycle from
		// home: that one was a departure, this is the return.
		s.PendingDoorUse = time.Time{}
		if t.Sub(p) >= el.cfg.T.AwayAfter.Std() {
			e.learnDoorUse(el, p, true)
		}
		if s.Mode.Name == ModeNormal {
			e.learnOuting(el, p, t.Sub(p))
		}
		s.DoorFrom = PresenceAway
	}
	e.dirty[el] = true
}

// doorReturn marks a door cycle that continues an arrival.
const doorReturn = "return"

// doorClosed ends a door cycle: a return when it began away (or
// uncertain, or after an unseen departure), a door use to be settled when
// it began at home.
func (e *Engine) doorClosed(el *elder, t time.Time) {
	if e.set.Legacy {
		return
	}
	s := el.st
	switch s.DoorFrom {
	case doorReturn:
		s.ReturnedAt = t
	case PresenceAway, PresenceUncertain:
		s.ReturnedAt = t
		out := fmtEn(t.Sub(later(s.Presence.Since, s.LeftAt)))
		en := fmt.Sprintf("came back through the door at %s (door cycle while away, after %s); nobody seen inside yet", e.clockText(t), out)
		zh := fmt.Sprintf("%s 外出后开关门，判断已回家（尚未检测到室内活动）", e.clockText(t))
		if !s.VisitLast.IsZero() && t.Sub(s.VisitLast) <= answerWindow && s.SeenIn.Before(s.VisitLast.Add(-peepholeMatch)) {
			// Someone the peephole did not know was at the door just
			// before it opened: a visitor with a key is as likely.
			en += "; the peephole saw someone at the door just before: it may be a visitor with a key"
			zh += "；开门前猫眼看到门外有人，也可能是持钥匙的访客"
		}
		if s.Presence.State == PresenceHome && s.Presence.Basis == BasisSeen {
			// Already seen coming in (the peephole): that says more.
		} else if s.Presence.State == PresenceHome {
			s.Presence.Reason, s.Presence.ReasonZh, s.Presence.Basis = en, zh, BasisDoor
			e.dirty[el] = true
		} else {
			e.setPresence(el, t, PresenceHome, BasisDoor, en, zh)
		}
	case PresenceHome:
		s.PendingDoorUse = t
	default:
		// Unknown before: nothing to learn, and presence() judges the
		// silence that follows as it always did.
	}
}

// motionAfterDoor settles a pending door use: motion inside after it
// means the elder stayed in.
func (e *Engine) motionAfterDoor(el *elder, t time.Time) {
	s := el.st
	p := s.PendingDoorUse
	if p.IsZero() || s.DoorOpen || t.Sub(p) <= motionGrace {
		return
	}
	s.PendingDoorUse = time.Time{}
	if t.Sub(p) >= el.cfg.T.AwayAfter.Std() {
		// Only door uses followed by as long a silence as away_after
		// teach the choice made at away_after.
		e.learnDoorUse(el, p, false)
	}
}

// Stuck sensors.

const (
	// stuckOnHours: a motion sensor with at least stuckOnMin events in
	// every one of this many hours fires through the night: no one moves
	// all day and all night.
	stuckOnHours = 24
	stuckOnMin   = 3
	// chatter: far above its own norm (after normMinHours of history).
	chatterPerHour = 60
	chatterFactor  = 8.0
	normMinHours   = 72
	normHours      = 168 // the norm's moving-average span
	// stuckOffCycles / stuckOffAfter: a motion sensor that saw nothing
	// while the door cycled this often, for this long, is blind.
	stuckOffCycles = 3
	stuckOffAfter  = 12 * time.Hour
	// stuckOffExpected: the events its own norm expects in the silence.
	stuckOffExpected = 20.0
)

// roll closes the sensor's counting hours up to the local hour hi.
func (sn *sensorState) roll(hi int64) {
	if sn.Hour == 0 {
		sn.Hour = hi
		return
	}
	for n := 0; sn.Hour < hi && n < stuckOnHours+1; n++ {
		copy(sn.Last[1:], sn.Last[:len(sn.Last)-1])
		sn.Last[0] = sn.Count
		sn.Norm += (float64(sn.Count) - sn.Norm) / normHours
		sn.NormHours++
		sn.Count = 0
		sn.Hour++
	}
	if sn.Hour < hi {
		// A long silence: the counts are all zero.
		gap := hi - sn.Hour
		sn.Last = [stuckOnHours]int{}
		sn.Norm *= math.Pow(1-1.0/normHours, float64(min(gap, 4*normHours)))
		sn.NormHours += int(gap)
		sn.Hour = hi
	}
}

// checkOn judges a motion sensor's last complete hours.
func (sn *sensorState) checkOn() (stuck, recovered bool) {
	if sn.Stuck == "on" {
		return false, sn.Last[0] < stuckOnMin
	}
	if sn.Stuck != "" || sn.NormHours < stuckOnHours {
		return false, false
	}
	all := true
	sum6 := 0
	for i, c := range sn.Last {
		if c < stuckOnMin {
			all = false
		}
		if i < 6 {
			sum6 += c
		}
	}
	if all {
		return true, false
	}
	if sn.NormHours >= normMinHours && sum6 >= 6*chatterPerHour && float64(sum6)/6 >= chatterFactor*sn.Norm {
		return true, false
	}
	return false, false
}

// countMotion counts a motion event for the stuck checks and reports
// whether the sensor is stuck "on" (its events are not believed).
func (e *Engine) countMotion(el *elder, sn *sensorState, t time.Time) bool {
	hi := hourIndex(t, e.set.Offset)
	if hi != sn.Hour {
		sn.roll(hi)
		e.judgeOn(el, sn, t)
	}
	sn.Count++
	if sn.Stuck == "off" {
		sn.Stuck, sn.StuckAt, el.problems = "", time.Time{}, true
	}
	sn.LastMotion, sn.Cycles = t, el.st.DoorCycles
	return sn.Stuck == "on"
}

func (e *Engine) judgeOn(el *elder, sn *sensorState, t time.Time) {
	stuck, rec := sn.checkOn()
	switch {
	case stuck:
		sn.Stuck, sn.StuckAt, el.problems = "on", t, true
		el.st.Baseline.Learn = false
		e.dirty[el] = true
	case rec:
		sn.Stuck, sn.StuckAt, el.problems = "", time.Time{}, true
		el.st.ArmFrom[RuleInactivity] = t
		e.dirty[el] = true
	}
}

// ruleStuck runs the hourly stuck checks (a stuck "on" sensor that fell
// quiet, a blind motion sensor) and the stuck door contact.
func (e *Engine) ruleStuck(el *elder, now time.Time, n *nextT) {
	if e.set.Legacy {
		return
	}
	s := el.st
	hi := hourIndex(now, e.set.Offset)
	if el.stuckHour != hi {
		el.stuckHour = hi
		for _, sn := range s.Sensors {
			if sn.Role != "motion" || sn.Silent {
				continue
			}
			if sn.Hour != 0 && sn.Hour < hi {
				sn.roll(hi)
				e.judgeOn(el, sn, now)
			}
			since := sn.LastMotion
			if since.IsZero() {
				since = s.FirstSeen
			}
			// Blind only if the silence is improbable for this sensor: a
			// cupboard contact used twice a day is quiet for days.
			quiet := now.Sub(since)
			if sn.Stuck == "" && !since.IsZero() && s.DoorCycles-sn.Cycles >= stuckOffCycles && quiet >= stuckOffAfter &&
				sn.NormHours >= normMinHours && sn.Norm*quiet.Hours() >= stuckOffExpected {
				sn.Stuck, sn.StuckAt, el.problems = "off", now, true
				e.dirty[el] = true
			}
		}
	}
	// A door contact reading open for stuck_after while life goes on
	// inside is a moved magnet, not an open door: close it virtually.
	if s.DoorOpen {
		due := s.DoorOpenedAt.Add(el.cfg.T.StuckAfter.Std())
		if now.Before(due) {
			n.at(due)
			return
		}
		if s.LastMotion.After(s.DoorOpenedAt.Add(motionGrace)) && now.Sub(s.LastMotion) < 6*time.Hour {
			for id, sn := range s.Sensors {
				if sn.Role == "door" && id == s.DoorDev {
					sn.Stuck, sn.StuckAt = "open", now
				}
			}
			el.problems = true
			s.DoorOpen, s.DoorClosedAt = false, s.DoorOpenedAt
			s.DoorFrom, s.PendingDoorUse = "", time.Time{}
			e.dirty[el] = true
		} else {
			n.at(now.Add(time.Hour))
		}
	}
}

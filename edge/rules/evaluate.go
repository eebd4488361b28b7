package rules

import (
	"fmt"
	"sort"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// nextT collects the earliest future time an elder needs looking at.
type nextT struct {
	now, t time.Time
}

func (n *nextT) at(t time.Time) {
	if t.After(n.now) && (n.t.IsZero() || t.Before(n.t)) {
		n.t = t
	}
}

// modeSuppressed are the rules an away, hospital or visitor mode pauses.
// SOS, door left open, visitor loitering and sensor health stay on: they
// mean something whoever is (or is not) at home.
func modeSuppressed(r Rule) bool {
	switch r {
	case RuleInactivity, RuleNoExit, RuleNotReturned, RuleNightWandering, RuleBaseline:
		return true
	}
	return false
}

func (e *Engine) active(el *elder, r Rule) bool {
	if el.cfg.Disabled[r] {
		return false
	}
	return el.st.Mode.Name == ModeNormal || !modeSuppressed(r)
}

func (e *Engine) hasRole(el *elder, role string) bool {
	switch role {
	case "door":
		if el.hasDoor {
			return true
		}
	case "motion":
		if el.hasMotion {
			return true
		}
	}
	for _, s := range el.st.Sensors {
		if s.Role == role {
			switch role {
			case "door":
				el.hasDoor = true
			case "motion":
				el.hasMotion = true
			}
			return true
		}
	}
	return false
}

// evaluate checks every rule of an elder at now and returns when it must
// be looked at again.
func (e *Engine) evaluate(el *elder, now time.Time) time.Time {
	n := nextT{now: now}
	e.expireMode(el, now, &n)
	e.presence(el, now, &n)
	e.baselineTick(el, now, &n)
	e.ruleInactivity(el, now, &n)
	e.ruleNoExit(el, now, &n)
	e.ruleNotReturned(el, now, &n)
	e.ruleDoorOpen(el, now, &n)
	e.ruleNight(el, now, &n)
	e.ruleVisitorClear(el, now, &n)
	e.ruleStuck(el, now, &n)
	e.ruleSensorHealth(el, now, &n)
	e.escalate(el, now, &n)
	return n.t
}

func (e *Engine) expireMode(el *elder, now time.Time, n *nextT) {
	s := el.st
	if s.Mode.Name == ModeNormal || s.Mode.Until.IsZero() {
		return
	}
	if now.Before(s.Mode.Until) {
		n.at(s.Mode.Until)
		return
	}
	prev := s.Mode
	at := s.Mode.Until
	if at.Before(now) && e.now.After(at) {
		at = now
	}
	s.Mode = Mode{Name: ModeNormal, Since: at, Actor: "system"}
	s.ResumedAt = at
	e.dirty[el], e.urgent = true, true
	e.emit(event.ElderModeChanged, el, at, "", map[string]any{
		"household": el.cfg.Household, "mode": ModeNormal, "previous": prev.Name, "actor": "system",
		"reason": "expired", "reason_zh": "到期自动恢复正常模式",
	})
}

func (e *Engine) presence(el *elder, now time.Time, n *nextT) {
	s := el.st
	if s.Presence.State == PresenceAway || s.DoorOpen || s.DoorClosedAt.IsZero() {
		return
	}
	if cut := s.DoorClosedAt.Add(motionGrace); s.LastMotion.After(cut) || s.SeenIn.After(cut) {
		// Seen inside (or coming in, by the peephole) since the door
		// closed.
		return
	}
	// The peephole's report of the resident, where the camera gives it,
	// decides the door cycle it falls in.
	if inCycle := func(t time.Time) bool {
		return !t.IsZero() && !t.Before(s.DoorOpenedAt.Add(-peepholeMatch)) && !t.After(s.DoorClosedAt.Add(peepholeMatch))
	}; inCycle(s.SeenOut) {
		at := later(s.DoorClosedAt, s.SeenOut)
		e.setPresence(el, at, PresenceAway, BasisSeen,
			fmt.Sprintf("the peephole (%s) saw the elder leave at %s; door closed at %s", s.SeenOutDev, e.clockText(s.SeenOut), e.clockText(s.DoorClosedAt)),
			fmt.Sprintf("%s 猫眼（%s）看到老人出门，%s 关门，判断外出", e.clockText(s.SeenOut), s.SeenOutDev, e.clockText(s.DoorClosedAt)))
		s.LeftAt = s.DoorClosedAt
		s.LeftAtNight = e.inNight(el.cfg, s.DoorOpenedAt) || e.inNight(el.cfg, s.DoorClosedAt)
		return
	} else if inCycle(s.SeenIn) || (!s.Answered.IsZero() && !s.Answered.Before(s.DoorOpenedAt)) {
		// An arrival or an answered visit: nobody left.
		return
	}
	if !e.set.Legacy && (s.ReturnedAt.Equal(s.DoorClosedAt) || s.Presence.State == PresenceUncertain) {
		// The last cycle was a return (or is already judged): home,
		// on the door's word, until the door is used again.
		return
	}
	if !e.hasRole(el, "motion") {
		return
	}
	if e.allRoleSilent(el, "motion") {
		// No motion because the sensor is silent proves nothing: the
		// elder may be in or out.
		if s.Presence.State == PresenceHome && s.DoorClosedAt.After(s.Presence.Since) {
			e.setPresence(el, s.DoorClosedAt, PresenceUnknown, BasisSensors,
				"door used at "+e.clockText(s.DoorClosedAt)+" while the motion sensor is silent",
				e.clockText(s.DoorClosedAt)+" 有开关门，但人体感应器失联，无法判断是否在家")
		}
		return
	}
	due := s.DoorClosedAt.Add(el.cfg.T.AwayAfter.Std())
	if now.Before(due) {
		n.at(due)
		return
	}
	if s.Presence.State == PresenceUnknown && s.LastMotion.IsZero() {
		return
	}
	left := s.DoorClosedAt
	aa := el.cfg.T.AwayAfter.Std()
	if p, ok := e.departureShare(el, left); ok && p < 0.5 && !e.set.Legacy {
		// Her own door uses at this hour are mostly not departures: keep
		// watching her at home, say why.
		e.setPresence(el, due, PresenceUncertain, BasisDoor,
			fmt.Sprintf("door used at %s and nobody seen since; at this hour a door use is usually not a departure for her (%.0f%% were): she may be in", e.clockText(left), p*100),
			fmt.Sprintf("%s 开关门后室内无活动；她在这个时段开门多半并未外出（外出占 %.0f%%），可能仍在家", e.clockText(left), p*100))
		return
	}
	e.setPresence(el, due, PresenceAway, BasisInferred,
		fmt.Sprintf("door closed at %s and no motion inside for %s since", e.clockText(left), fmtEn(aa)),
		fmt.Sprintf("%s 关门后 %s 室内无活动，判断外出", e.clockText(left), fmtZh(aa)))
	s.LeftAt = left
	s.LeftAtNight = e.inNight(el.cfg, s.DoorOpenedAt) || e.inNight(el.cfg, left)
}

// decide applies data health to a rule whose deadline has passed: it
// returns the health to attach to the alert, or nil after saying "no
// data" (once per window) when the gateway was down for too much of the
// window or every sensor the rule relies on is silent.
func (e *Engine) decide(el *elder, r Rule, start, now time.Time, window time.Duration, roles []string, n *nextT) *health {
	h := e.health(el, roles, start, now)
	frac := e.set.MaxGapFraction
	gapBad := window > 0 && float64(h.gap) > frac*float64(window)
	if !gapBad && !h.allSilent {
		return h
	}
	s := el.st
	if s.NoData[r] != start {
		s.NoData[r] = start
		zh, en := "相关传感器全部失联，无法判断", "every sensor this rule relies on is silent: cannot tell"
		if gapBad {
			zh = fmt.Sprintf("网关在窗口内停机 %s，无法判断是否有活动", fmtZh(h.gap))
			en = fmt.Sprintf("the gateway was down for %s of the window: cannot tell whether there was activity", fmtEn(h.gap))
		}
		e.emit(event.ElderNoData, el, now, "", map[string]any{
			"rule": r, "household": el.cfg.Household, "window_from": start, "window_to": now,
			"reason_zh": zh, "reason_en": en, "data_health": h.view(), "last_seen": h.lastSeen,
			"audience": "staff",
		})
	}
	if gapBad && !h.gapEnd.IsZero() && h.gapEnd.After(s.ArmFrom[r]) {
		// Start the window again from the end of the outage: silence
		// observed from then on is evidence again.
		s.ArmFrom[r] = h.gapEnd
		e.dirty[el] = true
		n.at(h.gapEnd.Add(window))
	}
	return nil
}

func (e *Engine) ruleInactivity(el *elder, now time.Time, n *nextT) {
	s := el.st
	if a := s.Alerts[RuleInactivity]; a != nil {
		if s.LastActivity.After(a.Since) && !a.Acked {
			e.autoResolve(el, a, now, "activity at "+e.clockText(s.LastActivity)+" ("+s.LastActBy+")",
				e.clockText(s.LastActivity)+" 重新检测到活动（"+s.LastActBy+"）")
		}
		return
	}
	if !e.active(el, RuleInactivity) {
		return
	}
	if !e.set.Legacy {
		switch s.Presence.State {
		case PresenceHome, PresenceUncertain:
			e.inactivityAtHome(el, now, n)
		case PresenceAway:
			e.fallAfterDoor(el, now, n)
		}
		return
	}
	if s.Presence.State != PresenceHome {
		return
	}
	start := latest(s.LastActivity, s.ArmFrom[RuleInactivity], s.ResumedAt)
	if start.IsZero() {
		return
	}
	T := e.inactivityThreshold(el.cfg, start)
	due := start.Add(T)
	if now.Before(due) {
		n.at(due)
		return
	}
	// Only a motion sensor sees activity inside: with every one silent
	// the rule cannot decide, whatever the door says.
	h := e.decide(el, RuleInactivity, start, now, T, []string{"motion"}, n)
	if h == nil {
		return
	}
	win := "白天"
	winEn := "day"
	if T != el.cfg.T.InactivityDay.Std() {
		win, winEn = "跨夜间", "night"
	}
	e.raise(el, RuleInactivity, start, now, h,
		fmt.Sprintf("老人在家，已 %s 无任何活动（%s阈值 %s；最后活动 %s，%s）", fmtZh(now.Sub(start)), win, fmtZh(T), e.clockText(s.LastActivity), s.LastActBy),
		fmt.Sprintf("at home and no activity for %s (%s limit %s; last activity %s, %s)", fmtEn(now.Sub(start)), winEn, fmtEn(T), e.clockText(s.LastActivity), s.LastActBy),
		map[string]any{"inactivity_day": el.cfg.T.InactivityDay.String(), "inactivity_night": el.cfg.T.InactivityNight.String(), "applied": T.String()})
}

func (e *Engine) ruleNoExit(el *elder, now time.Time, n *nextT) {
	s := el.st
	if a := s.Alerts[RuleNoExit]; a != nil {
		if s.LastDoor.After(a.Since) && !a.Acked {
			e.autoResolve(el, a, now, "door used at "+e.clockText(s.LastDoor), e.clockText(s.LastDoor)+" 门已开启")
		}
		return
	}
	if !e.active(el, RuleNoExit) || s.Presence.State == PresenceAway || !e.hasRole(el, "door") {
		return
	}
	start := latest(s.LastDoor, s.FirstSeen, s.ArmFrom[RuleNoExit], s.ResumedAt)
	T := el.cfg.T.NoExit.Std()
	due := start.Add(T)
	if now.Before(due) {
		n.at(due)
		return
	}
	// A day indoors while a motion sensor shows the elder moving about
	// (within the night inactivity limit, so a night's sleep does not
	// count as stillness) is not alarming on its own — inactivity covers
	// a fall: the longer limit applies then (Hong Kong's 48 h).
	moving := false
	if act := el.cfg.T.NoExitActive.Std(); act > T && now.Sub(s.LastMotion) < el.cfg.T.InactivityNight.Std() && !e.allRoleSilent(el, "motion") {
		T, moving = act, true
		if due = start.Add(T); now.Before(due) {
			n.at(due)
			return
		}
	}
	if moving && !e.set.Legacy && e.inNight(el.cfg, now) {
		// Days indoors while she moves about is a welfare check for
		// staff by day, not a night page (a fall is inactivity's).
		n.at(e.nextAt(now, el.cfg.DayStart))
		return
	}
	h := e.decide(el, RuleNoExit, start, now, T, []string{"door"}, n)
	if h == nil {
		return
	}
	last := "never seen"
	lastZh := "从未检测到"
	if !s.LastDoor.IsZero() {
		last, lastZh = e.clockText(s.LastDoor), e.clockText(s.LastDoor)
	}
	zh := fmt.Sprintf("已 %s 未开门外出（阈值 %s；最后一次开关门 %s）", fmtZh(now.Sub(start)), fmtZh(T), lastZh)
	en := fmt.Sprintf("no door activity for %s (limit %s; last door event %s)", fmtEn(now.Sub(start)), fmtEn(T), last)
	thr := map[string]any{"no_exit": el.cfg.T.NoExit.String(), "no_exit_active": el.cfg.T.NoExitActive.String(), "applied": T.String()}
	if moving && !e.set.Legacy {
		thr["variant"] = "indoors_active_notice"
		e.raiseAs(el, RuleNoExit, event.Warning, AudienceStaff, start, now, h,
			"提醒物业（关怀走访）："+zh+"；室内活动正常，请白天上门或电话问候",
			"notice to staff (welfare check): "+en+"; she is moving about inside: call or visit by day", thr)
		return
	}
	e.raise(el, RuleNoExit, start, now, h, zh, en, thr)
}

func (e *Engine) ruleNotReturned(el *elder, now time.Time, n *nextT) {
	s := el.st
	if !e.set.Legacy && s.Presence.State == PresenceAway && e.active(el, RuleNotReturned) {
		e.proposeAway(el, now, n)
	}
	if a := s.Alerts[RuleNotReturned]; a != nil {
		if s.Presence.State == PresenceHome && !a.Acked {
			e.autoResolve(el, a, now, "back home: "+s.Presence.Reason, "已回家："+s.Presence.ReasonZh)
		}
		return
	}
	if !e.active(el, RuleNotReturned) || s.Presence.State != PresenceAway {
		return
	}
	start := latest(s.LeftAt, s.ArmFrom[RuleNotReturned], s.ResumedAt)
	if start.IsZero() {
		return
	}
	if !e.set.Legacy {
		e.notReturned(el, start, now, n)
		return
	}
	T := el.cfg.T.NotReturned.Std()
	variant, zh, en := "day", "外出", "left"
	if s.LeftAtNight {
		T, variant, zh, en = el.cfg.T.NotReturnedNight.Std(), "night", "夜间外出", "left during the night"
	}
	due := start.Add(T)
	if now.Before(due) {
		n.at(due)
		return
	}
	h := e.decide(el, RuleNotReturned, start, now, T, []string{"door", "motion"}, n)
	if h == nil {
		return
	}
	e.raise(el, RuleNotReturned, start, now, h,
		fmt.Sprintf("%s %s 后 %s 未回家（阈值 %s）", e.clockText(s.LeftAt), zh, fmtZh(now.Sub(s.LeftAt)), fmtZh(T)),
		fmt.Sprintf("%s at %s and not back for %s (limit %s)", en, e.clockText(s.LeftAt), fmtEn(now.Sub(s.LeftAt)), fmtEn(T)),
		map[string]any{"not_returned": el.cfg.T.NotReturned.String(), "not_returned_night": el.cfg.T.NotReturnedNight.String(), "variant": variant})
}

func (e *Engine) ruleDoorOpen(el *elder, now time.Time, n *nextT) {
	s := el.st
	if a := s.Alerts[RuleDoorLeftOpen]; a != nil {
		if !s.DoorOpen && !a.Acked {
			e.autoResolve(el, a, now, "door closed at "+e.clockText(s.DoorClosedAt), e.clockText(s.DoorClosedAt)+" 门已关闭")
		}
		return
	}
	if !e.active(el, RuleDoorLeftOpen) || !s.DoorOpen {
		return
	}
	start := latest(s.DoorOpenedAt, s.ArmFrom[RuleDoorLeftOpen])
	T := el.cfg.T.DoorLeftOpen.Std()
	due := start.Add(T)
	if now.Before(due) {
		n.at(due)
		return
	}
	h := e.decide(el, RuleDoorLeftOpen, start, now, T, []string{"door"}, n)
	if h == nil {
		return
	}
	e.raise(el, RuleDoorLeftOpen, start, now, h,
		fmt.Sprintf("入户门自 %s 起已敞开 %s（阈值 %s）", e.clockText(s.DoorOpenedAt), fmtZh(now.Sub(s.DoorOpenedAt)), fmtZh(T)),
		fmt.Sprintf("entrance door open since %s, %s (limit %s)", e.clockText(s.DoorOpenedAt), fmtEn(now.Sub(s.DoorOpenedAt)), fmtEn(T)),
		map[string]any{"door_left_open": el.cfg.T.DoorLeftOpen.String()})
}

func (e *Engine) ruleNight(el *elder, now time.Time, n *nextT) {
	s := el.st
	c := el.cfg
	night := e.inNight(c, now)
	key := e.nightKey(c, now)
	if a := s.Alerts[RuleNightWandering]; a != nil {
		if !a.Acked && (!night || key != s.NightKey) && s.Presence.State == PresenceHome {
			e.autoResolve(el, a, now, "night over and at home", "夜间已过，老人在家")
		} else if night {
			n.at(e.nextAt(now, c.DayStart))
		}
		return
	}
	if !e.active(el, RuleNightWandering) || !night || key != s.NightKey || s.NightOpens <= c.T.NightOpenings {
		return
	}
	h := e.health(el, []string{"door"}, now.Add(-time.Minute), now)
	e.raise(el, RuleNightWandering, now, now, h,
		fmt.Sprintf("夜间（%s–%s）已开门 %d 次，超过 %d 次", hhmm(c.NightStart), hhmm(c.DayStart), s.NightOpens, c.T.NightOpenings),
		fmt.Sprintf("door opened %d times in the night window (%s–%s), more than %d", s.NightOpens, hhmm(c.NightStart), hhmm(c.DayStart), c.T.NightOpenings),
		map[string]any{"night_openings": c.T.NightOpenings, "night_window": hhmm(c.NightStart) + "-" + hhmm(c.DayStart)})
	n.at(e.nextAt(now, c.DayStart))
}

func (e *Engine) sos(el *elder, t time.Time, dev string) {
	s := el.st
	if a := s.Alerts[RuleSOS]; a != nil {
		a.Count++
		e.dirty[el], e.urgent = true, true
		return
	}
	if el.cfg.Disabled[RuleSOS] {
		return
	}
	h := e.health(el, []string{"sos"}, t, t)
	e.raise(el, RuleSOS, t, t, h,
		fmt.Sprintf("%s 按下紧急呼叫按钮（%s）", e.clockText(t), dev),
		fmt.Sprintf("SOS button pressed at %s (%s)", e.clockText(t), dev), nil)
}

func (e *Engine) visitor(el *elder, ev *event.Event, t time.Time) {
	s := el.st
	c := el.cfg
	if !e.active(el, RuleVisitorLoitering) || s.Alerts[RuleVisitorLoitering] != nil {
		return
	}
	if ev.Kind == event.PeepholeDoorbell && e.inNight(c, t) {
		win := c.T.DoorbellWindow.Std()
		keep := s.Doorbells[:0]
		for _, b := range s.Doorbells {
			if t.Sub(b) < win {
				keep = append(keep, b)
			}
		}
		s.Doorbells = append(keep, t)
		if len(s.Doorbells) >= c.T.NightDoorbells {
			h := e.health(el, []string{"peephole"}, s.Doorbells[0], t)
			e.raise(el, RuleVisitorLoitering, s.Doorbells[0], t, h,
				fmt.Sprintf("夜间 %s 内门铃被按 %d 次，门未开启（防诈骗提醒）", fmtZh(t.Sub(s.Doorbells[0])), len(s.Doorbells)),
				fmt.Sprintf("doorbell rung %d times at night within %s, door not opened (anti-fraud)", len(s.Doorbells), fmtEn(t.Sub(s.Doorbells[0]))),
				map[string]any{"night_doorbells": c.T.NightDoorbells, "doorbell_window": c.T.DoorbellWindow.String()})
			s.Doorbells = nil
			return
		}
	}
	stay := t.Sub(s.VisitStart)
	if ev.Kind == event.PeepholeLoitering {
		var d struct {
			DurationS float64 `json:"duration_s"`
		}
		if len(ev.Data) > 0 && jsonUnmarshal(ev.Data, &d) == nil {
			if x := time.Duration(d.DurationS * float64(time.Second)); x > stay {
				stay = x
			}
		}
	}
	if T := c.T.Loitering.Std(); stay >= T {
		h := e.health(el, []string{"peephole"}, s.VisitStart, t)
		e.raise(el, RuleVisitorLoitering, s.VisitStart, t, h,
			fmt.Sprintf("门外有人逗留 %s 且未开门（阈值 %s，防诈骗提醒）", fmtZh(stay), fmtZh(T)),
			fmt.Sprintf("someone has lingered at the door for %s without it opening (limit %s; anti-fraud)", fmtEn(stay), fmtEn(T)),
			map[string]any{"loitering": c.T.Loitering.String()})
	}
}

func (e *Engine) ruleVisitorClear(el *elder, now time.Time, n *nextT) {
	s := el.st
	a := s.Alerts[RuleVisitorLoitering]
	if a == nil || a.Acked {
		return
	}
	end := s.VisitLast.Add(2 * visitGap)
	if now.Before(end) {
		n.at(end)
		return
	}
	e.autoResolve(el, a, now, "nobody at the door since "+e.clockText(s.VisitLast), e.clockText(s.VisitLast)+" 后门外无人")
}

func (e *Engine) ruleSensorHealth(el *elder, now time.Time, n *nextT) {
	s := el.st
	if !el.problems && s.Alerts[RuleSensorHealth] == nil {
		return
	}
	var bad []string
	for id, sn := range s.Sensors {
		if sn.problem() {
			bad = append(bad, id)
		}
	}
	el.problems = len(bad) > 0
	a := s.Alerts[RuleSensorHealth]
	if a != nil {
		if len(bad) == 0 {
			e.autoResolve(el, a, now, "all sensors report again", "传感器均已恢复")
		}
		return
	}
	if len(bad) == 0 || !e.active(el, RuleSensorHealth) {
		return
	}
	if e.inQuiet(el.cfg, now) {
		// Maintenance can wait for the morning.
		n.at(e.nextAt(now, el.cfg.QuietEnd))
		return
	}
	sort.Strings(bad)
	var zh, en []string
	for _, id := range bad {
		sn := s.Sensors[id]
		switch {
		case sn.Silent:
			zh = append(zh, id+" 失联（自 "+e.clockText(sn.SilentAt)+"）")
			en = append(en, id+" silent since "+e.clockText(sn.SilentAt))
		case sn.Tamper:
			zh = append(zh, id+" 外壳被打开")
			en = append(en, id+" tampered")
		case sn.BatteryLow:
			zh = append(zh, id+" 电量低")
			en = append(en, id+" battery low")
		case sn.Stuck == "on":
			zh = append(zh, id+" 疑似卡死：自 "+e.clockText(sn.StuckAt)+" 起昼夜不停触发，远超平时，暂不用于判断在家")
			en = append(en, id+" stuck on: firing day and night far above its norm since "+e.clockText(sn.StuckAt)+"; left out of presence until it recovers")
		case sn.Stuck == "open":
			zh = append(zh, id+" 门磁疑似移位：显示开门已超过 "+fmtZh(el.cfg.T.StuckAfter.Std())+"，室内仍有活动，按关门处理")
			en = append(en, id+" door contact reads open for over "+fmtEn(el.cfg.T.StuckAfter.Std())+" while there is activity inside: magnet moved? taken as closed")
		case sn.Stuck == "off":
			zh = append(zh, id+" 疑似失效：入户门多次开关，但自 "+e.clockText(later(sn.LastMotion, s.FirstSeen))+" 起未检测到任何活动，暂不用于判断")
			en = append(en, id+" blind: the door was used several times but it has seen nothing since "+e.clockText(later(sn.LastMotion, s.FirstSeen))+"; left out until it sees motion again")
		}
	}
	h := e.health(el, nil, now, now)
	e.raise(el, RuleSensorHealth, now, now, h,
		"设备维护："+joinZh(zh), "maintenance: "+joinEn(en), nil)
}

// baselineTick rolls the hourly activity count at each local hour and
// checks the last three hours against the learned profile.
func (e *Engine) baselineTick(el *elder, now time.Time, n *nextT) {
	s := el.st
	b := &s.Baseline
	hi := hourIndex(now, e.set.Offset)
	n.at(time.Unix((hi+1)*3600-int64(e.set.Offset), 0))
	learnable := s.Mode.Name == ModeNormal && s.Presence.State == PresenceHome && !e.anySilent(el)
	if b.Hour == 0 {
		b.Hour, b.Count, b.Learn = hi, 0, learnable
		return
	}
	if hi <= b.Hour {
		return
	}
	ok := b.Learn && hi == b.Hour+1 && learnable
	if ok && !el.cfg.Disabled[RuleBaseline] {
		dt, h := hourOf(b.Hour)
		b.learn(dt, h, b.Count)
	}
	if hi == b.Hour+1 {
		b.Recent[2], b.Recent[1], b.Recent[0] = b.Recent[1], b.Recent[0], b.Count
		b.RecentOK[2], b.RecentOK[1], b.RecentOK[0] = b.RecentOK[1], b.RecentOK[0], ok
		b.RecentH[2], b.RecentH[1], b.RecentH[0] = b.RecentH[1], b.RecentH[0], b.Hour
	} else {
		b.RecentOK = [3]bool{}
	}
	b.Hour, b.Count, b.Learn = hi, 0, learnable
	e.dirty[el] = true
	if !e.active(el, RuleBaseline) || s.Presence.State != PresenceHome || e.inQuiet(el.cfg, now) {
		return
	}
	if !s.LastHint.IsZero() && now.Sub(s.LastHint) < 12*time.Hour {
		return
	}
	if s.Alerts[RuleInactivity] != nil {
		return // the threshold rule already speaks
	}
	obs, mean, sd, dev := b.deviation(el.cfg.T.BaselineDays, el.cfg.T.BaselineK)
	if !dev {
		return
	}
	s.LastHint = now
	e.emit(event.ElderHint, el, now, "", map[string]any{
		"rule": RuleBaseline, "household": el.cfg.Household, "advisory": true, "audience": "staff",
		"observed": obs, "expected": round1(mean), "sd": round1(sd), "hours": 3, "k": el.cfg.T.BaselineK,
		"reason_zh": fmt.Sprintf("建议关注：近3小时活动 %d 次，平时约 %.0f±%.0f 次（仅供参考，不是告警）", obs, mean, sd),
		"reason_en": fmt.Sprintf("check recommended: %d activity events in the last 3 h, usually %.0f±%.0f (advisory, not an alarm)", obs, mean, sd),
		"presence":  s.Presence,
	})
}

func (e *Engine) allRoleSilent(el *elder, role string) bool {
	n := 0
	for _, sn := range el.st.Sensors {
		if sn.Role == role {
			if !sn.unusable() {
				return false
			}
			n++
		}
	}
	return n > 0
}

func (e *Engine) anySilent(el *elder) bool {
	if !el.problems {
		return false
	}
	for _, sn := range el.st.Sensors {
		if sn.unusable() {
			return true
		}
	}
	return false
}

func round1(f float64) float64 { return float64(int(f*10+0.5)) / 10 }

func hhmm(m int) string { return fmt.Sprintf("%02d:%02d", m/60, m%60) }

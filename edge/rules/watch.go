package rules

import (
	"fmt"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// The inactivity and not-returned rules with learned limits, door-cycle
// hypotheses and risk-matched severity (Settings.Legacy off).

// inactivityAtHome watches an elder at home, or possibly at home after a
// door use, against the limit in force for the hour the silence began.
func (e *Engine) inactivityAtHome(el *elder, now time.Time, n *nextT) {
	s := el.st
	start := latest(s.LastActivity, s.ArmFrom[RuleInactivity], s.ResumedAt)
	if start.IsZero() {
		return
	}
	lim := e.inactivityLimit(el, start)
	T := lim.Applied
	due := start.Add(T)
	if now.Before(due) {
		n.at(due)
		return
	}
	h := e.decide(el, RuleInactivity, start, now, T, []string{"motion"}, n)
	if h == nil {
		return
	}
	lim = lim.explained()
	variant, win, winEn := "day", "白天", "day"
	if lim.Configured != el.cfg.T.InactivityDay.Std() {
		variant, win, winEn = "night", "跨夜间", "night"
	}
	quiet := now.Sub(start)
	last := e.clockText(s.LastActivity)
	var zh, en string
	switch {
	case s.Presence.State == PresenceUncertain:
		variant = "after_door"
		zh = fmt.Sprintf("%s 开关门后已 %s 无任何活动；她在这个时段开门通常并未外出，疑似在家（门口附近）跌倒：请先入户查看，再到外面寻找（阈值 %s：%s）",
			last, fmtZh(quiet), fmtZh(T), lim.WhyZh)
		en = fmt.Sprintf("door used at %s and no activity for %s since; at this hour she usually stays in after using the door: possibly fell at home near the door — check the flat first, then look outside (limit %s: %s)",
			last, fmtEn(quiet), fmtEn(T), lim.WhyEn)
	case s.Presence.Basis == BasisDoor && s.ReturnedAt.Equal(s.DoorClosedAt) && !s.LastActivity.After(s.ReturnedAt):
		variant = "after_return"
		zh = fmt.Sprintf("%s 开门回家后已 %s 无任何活动，疑似在门口附近跌倒：请先入户查看（阈值 %s：%s）", last, fmtZh(quiet), fmtZh(T), lim.WhyZh)
		en = fmt.Sprintf("came in through the door at %s and no activity for %s since: possibly fell near the door — check the flat first (limit %s: %s)", last, fmtEn(quiet), fmtEn(T), lim.WhyEn)
	default:
		zh = fmt.Sprintf("老人在家，已 %s 无任何活动（%s阈值 %s：%s；最后活动 %s，%s）", fmtZh(quiet), win, fmtZh(T), lim.WhyZh, last, s.LastActBy)
		en = fmt.Sprintf("at home and no activity for %s (%s limit %s: %s; last activity %s, %s)", fmtEn(quiet), winEn, fmtEn(T), lim.WhyEn, last, s.LastActBy)
	}
	e.raise(el, RuleInactivity, start, now, h, zh, en, map[string]any{
		"inactivity_day": el.cfg.T.InactivityDay.String(), "inactivity_night": el.cfg.T.InactivityNight.String(),
		"inactivity_floor": el.cfg.T.InactivityFloor.String(), "applied": T.String(), "limit": lim.view(), "variant": variant,
	})
}

// Variants of the fall check after an unseen departure
// (thresholds.variant of its inactivity alert).
const (
	VariantAfterDoorUnseen = "after_door_unseen" // care alert: fallen at home, or not back
	VariantAfterDoorNotice = "after_door_notice" // staff notice: often out this long, phone her
)

// fallAfterDoor keeps the other hypothesis of an unseen departure alive:
// the elder who used the door and fell right after it. When she is not
// back by the time she normally is (learned by departure hour), and that
// comes before the not-returned limit, a possible fall at home is raised,
// worded so that responders check the flat first.
func (e *Engine) fallAfterDoor(el *elder, now time.Time, n *nextT) {
	s := el.st
	if s.Presence.Basis != BasisInferred || s.LeftAt.IsZero() || s.Mode.Name != ModeNormal {
		return
	}
	left := s.LeftAt
	// Motion within the grace after the close is the person at the door,
	// whichever way they went.
	if s.LastActivity.After(left.Add(motionGrace)) || s.ArmFrom[RuleInactivity].After(left) || s.ResumedAt.After(left) {
		return
	}
	since := later(left, s.LastActivity)
	ur, ok := e.usualReturn(el, left)
	lim := e.inactivityLimit(el, left)
	ceil := lim.Configured
	if !ok {
		if !e.learned(el) {
			return // cold start: the not-returned rule speaks, as before
		}
		// A week of her days and no outings around this hour: the door
		// cycle is watched against the fixed inactivity limit.
		ur = ceil
	}
	D := max(lim.Applied, ur)
	if !ok && D >= ceil {
		D = ceil - time.Millisecond // at the fixed limit, not after it
	}
	if D >= ceil {
		// She is often out longer than the fixed limit from this hour:
		// a fall check would page for her habit (measured: ~3 staff
		// notices per elder-month on long outers); the absence rule,
		// whose reason names the fall too, speaks instead.
		return
	}
	if D >= e.outingLimit(el, left, s.LeftAtNight).Applied {
		return // the absence limit comes first (a night departure)
	}
	// For an elder who often stays out long, or has been away for days
	// lately, "not back by now" says little: the fall check goes to staff.
	notice := e.longOuter(el) || e.awayTaker(el, left)
	due := left.Add(D)
	if now.Before(due) {
		n.at(due)
		return
	}
	h := e.decide(el, RuleInactivity, left, now, D, []string{"motion"}, n)
	if h == nil {
		return
	}
	quiet := now.Sub(left)
	usual, usualZh := "she is normally back within "+fmtEn(ur), "她通常 "+fmtZh(ur)+" 内回来"
	if !ok {
		usual, usualZh = "she does not usually go out around this hour", "她平时这个时段很少外出"
	}
	thr := map[string]any{
		"inactivity_day": el.cfg.T.InactivityDay.String(), "inactivity_night": el.cfg.T.InactivityNight.String(),
		"applied": D.String(), "usual_return": ur.Round(time.Minute).String(), "limit": lim.explained().view(), "variant": VariantAfterDoorUnseen,
	}
	if notice {
		thr["variant"] = VariantAfterDoorNotice
		e.raiseAs(el, RuleInactivity, event.Warning, AudienceStaff, since, now, h,
			fmt.Sprintf("提醒物业：%s 开关门后已 %s 无任何活动，未看到出门；她常有长时间外出或外宿，多半仍在外面，但不能排除在家跌倒——请电话联系，联系不上请入户查看",
				e.clockText(left), fmtZh(quiet)),
			fmt.Sprintf("notice to staff: door used at %s and nothing since for %s, not seen leaving; she often stays out long or away for days, so most likely still out — but a fall at home is not excluded: phone her, and check the flat if she does not answer",
				e.clockText(left), fmtEn(quiet)), thr)
		return
	}
	e.raise(el, RuleInactivity, since, now, h,
		fmt.Sprintf("%s 开关门后已 %s 无任何活动，未看到出门；%s：可能在家（门口附近）跌倒，也可能外出未归——请先入户查看，再到外面寻找",
			e.clockText(left), fmtZh(quiet), usualZh),
		fmt.Sprintf("door used at %s and nothing since for %s, not seen leaving; %s: she may have fallen at home right after the door, or not be back — check the flat first, then look outside",
			e.clockText(left), fmtEn(quiet), usual),
		thr)
}

// notReturned raises an absence at the limit in force for the departure
// hour: a care alert, or a staff notice by day for an elder who often
// stays out long (unless a risk such as dementia says otherwise).
func (e *Engine) notReturned(el *elder, start, now time.Time, n *nextT) {
	s := el.st
	if a := s.Alerts[RuleInactivity]; a != nil && !a.Acked && !a.Since.Before(s.LeftAt) {
		// The fall check for this departure already said "fallen at
		// home, or not back" and is escalating: one alert per absence.
		// Once someone acknowledges it (the flat checked), the absence
		// is raised on its own at its limit.
		return
	}
	lim := e.outingLimit(el, s.LeftAt, s.LeftAtNight)
	T := lim.Applied
	variant, zh, en := "day", "外出", "left"
	if s.LeftAtNight {
		variant, zh, en = "night", "夜间外出", "left during the night"
	}
	due := start.Add(T)
	if now.Before(due) {
		n.at(due)
		return
	}
	// For an elder who is often out this long, or away for days lately,
	// a notice for staff: shown on the page when due, never escalated,
	// nobody dispatched at night; staff phone her by day.
	staff := !s.LeftAtNight && (e.longOuter(el) || e.awayTaker(el, now))
	h := e.decide(el, RuleNotReturned, start, now, T, []string{"door", "motion"}, n)
	if h == nil {
		return
	}
	lim = lim.explained()
	out := now.Sub(s.LeftAt)
	zhR := fmt.Sprintf("%s %s 后 %s 未回家（阈值 %s：%s）", e.clockText(s.LeftAt), zh, fmtZh(out), fmtZh(T), lim.WhyZh)
	enR := fmt.Sprintf("%s at %s and not back for %s (limit %s: %s)", en, e.clockText(s.LeftAt), fmtEn(out), fmtEn(T), lim.WhyEn)
	if s.Presence.Basis == BasisInferred {
		zhR += "；未看到出门，也可能开门后在家跌倒：请一并入户查看"
		enR += "; not seen leaving: she may also have fallen at home right after the door — check the flat too"
	}
	thr := map[string]any{"not_returned": el.cfg.T.NotReturned.String(), "not_returned_night": el.cfg.T.NotReturnedNight.String(),
		"variant": variant, "applied": T.String(), "limit": lim.view()}
	if staff {
		thr["variant"] = "long_outing_notice"
		zhR = "提醒物业（不派人上门）：" + zhR + "；她经常长时间外出，请白天电话确认"
		enR = "notice to staff (no dispatch): " + enR + "; she is often out this long: phone her by day"
		e.raiseAs(el, RuleNotReturned, event.Warning, AudienceStaff, start, now, h, zhR, enR, thr)
		return
	}
	e.raise(el, RuleNotReturned, start, now, h, zhR, enR, thr)
}

// proposeAway suggests away mode to staff, once a day and by day, when an
// elder has been away for a day or more with the door shut (a trip
// nobody registered): staff set it, and the elder is not paged for.
func (e *Engine) proposeAway(el *elder, now time.Time, n *nextT) {
	s := el.st
	if s.DoorOpen || s.LeftAt.IsZero() || s.Mode.Name != ModeNormal || el.cfg.Disabled[RuleNotReturned] {
		return
	}
	due := s.LeftAt.Add(24 * time.Hour)
	if now.Before(due) {
		n.at(due)
		return
	}
	if e.inNight(el.cfg, now) {
		n.at(e.nextAt(now, el.cfg.DayStart))
		return
	}
	day := e.localDay(now)
	if s.ProposedAway == day {
		return
	}
	s.ProposedAway = day
	e.dirty[el] = true
	out := now.Sub(s.LeftAt)
	e.emit(event.ElderHint, el, now, "", map[string]any{
		"rule": RuleNotReturned, "household": el.cfg.Household, "advisory": true, "audience": AudienceStaff,
		"propose_mode": ModeAway, "left_at": s.LeftAt,
		"reason_zh": fmt.Sprintf("建议设为外出模式：%s 出门后已 %s 未回家，门一直关着；如确认外出（探亲、住院），请设置外出模式以免夜间误报", e.clockText(s.LeftAt), fmtZh(out)),
		"reason_en": fmt.Sprintf("propose away mode: left at %s and away for %s with the door shut; if she is on a trip or in hospital, set the mode so nobody is paged at night", e.clockText(s.LeftAt), fmtEn(out)),
		"presence":  s.Presence,
	})
}

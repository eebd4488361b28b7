package rules

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// Outcomes of a resolved alert: what the visit (智能走访) found. "cleared"
// is the engine's own: the condition ended before anyone acknowledged.
const (
	OutcomeSafe       = "safe"
	OutcomeFalseAlarm = "false_alarm"
	OutcomeNeededHelp = "needed_help"
	OutcomeEmergency  = "emergency"
	OutcomeCleared    = "cleared"
)

// Audiences of derived events (data.audience).
const (
	AudienceCare  = "care"  // property staff, grid worker and the elder's contacts
	AudienceStaff = "staff" // property/maintenance staff only, never family
)

// Errors returned by the command preparations.
var (
	ErrUnknownAlert = errors.New("unknown or already resolved alert")
	ErrUnknownElder = errors.New("household is not a monitored elder")
	ErrBadArgument  = errors.New("bad argument")
	ErrAlreadyAcked = errors.New("alert already acknowledged")
)

// notify lists who the platform should tell at each escalation level.
func notify(level int, audience string) []string {
	if audience == AudienceStaff {
		return []string{"property_staff"}
	}
	switch level {
	case 1:
		return []string{"property_staff", "grid_worker", "contacts"}
	case 2:
		return []string{"property_staff", "grid_worker", "contacts", "community_duty"}
	}
	return []string{"property_staff", "grid_worker", "contacts", "community_duty", "visit_dispatch"}
}

// SensorView is one sensor as alerts and the snapshot show it.
type SensorView struct {
	Role         string     `json:"role"`
	LastSeen     *time.Time `json:"last_seen"`
	State        string     `json:"state"` // ok, silent, unsupervised, never_seen, tamper, battery_low
	Unsupervised bool       `json:"unsupervised,omitempty"`
}

// health is the data health of one decision.
type health struct {
	gap       time.Duration
	gapEnd    time.Time
	gaps      []gap
	allSilent bool
	silent    []string
	unsup     []string
	lastSeen  map[string]SensorView
}

func (e *Engine) health(el *elder, roles []string, from, to time.Time) *health {
	h := &health{lastSeen: map[string]SensorView{}}
	h.gap, h.gapEnd, h.gaps = e.gapOverlap(from, to)
	relevant, silent := 0, 0
	for id, sn := range el.st.Sensors {
		v := SensorView{Role: sn.Role, State: "ok", Unsupervised: sn.Unsupervised}
		if !sn.LastSeen.IsZero() {
			t := sn.LastSeen
			v.LastSeen = &t
		} else {
			v.State = "never_seen"
		}
		switch {
		case sn.Silent:
			v.State = "silent"
		case sn.Tamper:
			v.State = "tamper"
		case sn.BatteryLow:
			v.State = "battery_low"
		case sn.Stuck != "":
			v.State = "stuck_" + sn.Stuck
		case sn.Unsupervised && v.State == "ok":
			v.State = "unsupervised"
		}
		h.lastSeen[id] = v
		rel := roles == nil
		for _, r := range roles {
			if sn.Role == r {
				rel = true
			}
		}
		if !rel {
			continue
		}
		relevant++
		if sn.unusable() {
			silent++
			h.silent = append(h.silent, id)
		}
		if sn.Unsupervised {
			h.unsup = append(h.unsup, id)
		}
	}
	sort.Strings(h.silent)
	sort.Strings(h.unsup)
	h.allSilent = roles != nil && relevant > 0 && silent == relevant
	return h
}

func (h *health) view() map[string]any {
	status := "ok"
	var zh, en []string
	if h.gap > 0 {
		status = "degraded"
		zh = append(zh, "网关停机 "+fmtZh(h.gap))
		en = append(en, "gateway down "+fmtEn(h.gap))
	}
	if len(h.silent) > 0 {
		status = "degraded"
		zh = append(zh, "失联传感器 "+strings.Join(h.silent, "、"))
		en = append(en, "silent sensors "+strings.Join(h.silent, ", "))
	}
	if len(h.unsup) > 0 {
		if status == "ok" {
			status = "unverified"
		}
		zh = append(zh, strings.Join(h.unsup, "、")+" 无心跳，静默不代表无活动")
		en = append(en, strings.Join(h.unsup, ", ")+" send no heartbeat: their silence proves nothing")
	}
	if h.allSilent {
		status = "nodata"
	}
	m := map[string]any{"status": status}
	if len(h.gaps) > 0 {
		m["gateway_down"] = h.gaps
		m["gateway_down_total"] = h.gap.String()
	}
	if len(h.silent) > 0 {
		m["silent"] = h.silent
	}
	if len(h.unsup) > 0 {
		m["unsupervised"] = h.unsup
	}
	if len(zh) > 0 {
		m["note_zh"] = strings.Join(zh, "；")
		m["note_en"] = strings.Join(en, "; ")
	}
	return m
}

func alertID(household string, r Rule, t time.Time) string {
	return "al-" + household + "-" + string(r) + "-" + strconv.FormatInt(t.UnixMilli(), 36)
}

func (e *Engine) raise(el *elder, r Rule, since, now time.Time, h *health, zh, en string, thresholds map[string]any) {
	sev, audience := event.Alert, AudienceCare
	switch r {
	case RuleSOS:
		sev = event.Critical
	case RuleSensorHealth:
		sev, audience = event.Warning, AudienceStaff
	}
	e.raiseAs(el, r, sev, audience, since, now, h, zh, en, thresholds)
}

// raiseAs raises an alert for an audience: a staff notice (warning) is
// shown and kept open but never escalates to family or a visit.
func (e *Engine) raiseAs(el *elder, r Rule, sev event.Severity, audience string, since, now time.Time, h *health, zh, en string, thresholds map[string]any) {
	s := el.st
	now = now.UTC().Truncate(time.Millisecond)
	a := &Alert{ID: alertID(el.cfg.Household, r, now), Rule: r, Level: 1, Raised: now, Since: since,
		ReasonZh: zh, ReasonEn: en, Severity: string(sev), Audience: audience, Count: 1}
	if audience == AudienceCare {
		l2 := e.set.Escalation.L2.Std()
		if r == RuleSOS {
			l2 = e.set.Escalation.SOSL2.Std()
		}
		a.NextEsc = now.Add(l2)
	}
	data := map[string]any{
		"alert_id": a.ID, "rule": r, "household": el.cfg.Household, "level": 1,
		"audience": audience, "notify": notify(1, audience),
		"reason_zh": zh, "reason_en": en, "since": since,
		"presence": s.Presence, "mode": s.Mode.Name,
	}
	if thresholds != nil {
		data["thresholds"] = thresholds
	}
	if h != nil {
		data["last_seen"] = h.lastSeen
		data["data_health"] = h.view()
	}
	if audience == AudienceCare && len(el.cfg.Contacts) > 0 {
		data["contacts"] = el.cfg.Contacts
	}
	if !a.NextEsc.IsZero() {
		data["next_escalation"] = a.NextEsc
	}
	a.Explanation = data
	s.Alerts[r] = a
	delete(s.ArmFrom, r)
	e.urgent = true
	e.emit(event.ElderAlertRaised, el, now, sev, data)
}

func (e *Engine) autoResolve(el *elder, a *Alert, now time.Time, en, zh string) {
	delete(el.st.Alerts, a.Rule)
	e.urgent = true
	e.emit(event.ElderAlertResolved, el, now, "", map[string]any{
		"alert_id": a.ID, "rule": a.Rule, "household": el.cfg.Household, "outcome": OutcomeCleared,
		"actor": "system", "reason_en": en, "reason_zh": zh, "level": a.Level, "raised": a.Raised,
	})
}

func (e *Engine) escalate(el *elder, now time.Time, n *nextT) {
	s := el.st
	for _, r := range AllRules {
		a := s.Alerts[r]
		if a == nil || a.Acked || a.NextEsc.IsZero() {
			continue
		}
		if now.Before(a.NextEsc) {
			n.at(a.NextEsc)
			continue
		}
		due := a.NextEsc
		a.Level++
		l3 := e.set.Escalation.L3.Std()
		if r == RuleSOS {
			l3 = e.set.Escalation.SOSL3.Std()
		}
		a.NextEsc = time.Time{}
		if a.Level == 2 {
			a.NextEsc = a.Raised.Add(l3)
			n.at(a.NextEsc)
		}
		zh := fmt.Sprintf("告警 %s 未确认，升级到第 %d 级", fmtZh(now.Sub(a.Raised)), a.Level)
		en := fmt.Sprintf("not acknowledged for %s: escalated to level %d", fmtEn(now.Sub(a.Raised)), a.Level)
		if a.Level == 3 {
			zh += "：请派人上门走访"
			en += ": dispatch a visit"
		}
		data := map[string]any{
			"alert_id": a.ID, "rule": a.Rule, "household": el.cfg.Household, "level": a.Level,
			"audience": a.Audience, "notify": notify(a.Level, a.Audience), "raised": a.Raised,
			"reason_zh": zh, "reason_en": en, "alert_reason_zh": a.ReasonZh, "alert_reason_en": a.ReasonEn,
		}
		if now.Sub(due) > time.Minute {
			data["delayed_from"] = due
			data["delay_reason"] = "gateway down when due"
		}
		if len(el.cfg.Contacts) > 0 {
			data["contacts"] = el.cfg.Contacts
		}
		sev := event.Alert
		if r == RuleSOS {
			sev = event.Critical
		}
		e.urgent = true
		e.emit(event.ElderAlertEscalated, el, now, sev, data)
	}
}

type lifecycleData struct {
	AlertID string    `json:"alert_id"`
	Actor   string    `json:"actor"`
	Outcome string    `json:"outcome"`
	Mode    string    `json:"mode"`
	Until   time.Time `json:"until"`
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func (e *Engine) findAlert(el *elder, id string) *Alert {
	for _, a := range el.st.Alerts {
		if a.ID == id {
			return a
		}
	}
	return nil
}

func (e *Engine) applyAck(el *elder, ev *event.Event, t time.Time) {
	var d lifecycleData
	if jsonUnmarshal(ev.Data, &d) != nil {
		return
	}
	a := e.findAlert(el, d.AlertID)
	if a == nil || a.Acked {
		return
	}
	a.Acked, a.AckedBy, a.AckedAt, a.NextEsc = true, d.Actor, t, time.Time{}
	var n struct {
		Note  string `json:"note"`
		Where string `json:"where"`
	}
	_ = jsonUnmarshal(ev.Data, &n)
	a.AckNote, a.AckWhere = n.Note, n.Where
	e.dirty[el], e.urgent = true, true
}

func (e *Engine) applyResolve(el *elder, ev *event.Event, t time.Time) {
	var d lifecycleData
	if jsonUnmarshal(ev.Data, &d) != nil {
		return
	}
	a := e.findAlert(el, d.AlertID)
	if a == nil {
		return
	}
	delete(el.st.Alerts, a.Rule)
	e.cnt.count(event.ElderAlertResolved, map[string]any{"rule": a.Rule, "outcome": d.Outcome})
	// The condition may still hold (the elder was fine, just still):
	// the rule's window starts again from the visit.
	el.st.ArmFrom[a.Rule] = t
	if a.Rule == RuleSensorHealth {
		for _, sn := range el.st.Sensors {
			sn.Tamper, sn.BatteryLow = false, false
		}
	}
	e.dirty[el], e.urgent = true, true
}

func (e *Engine) applyMode(el *elder, ev *event.Event, t time.Time) {
	var d lifecycleData
	if jsonUnmarshal(ev.Data, &d) != nil {
		return
	}
	s := el.st
	if !validMode(d.Mode) || (s.Mode.Name == d.Mode && s.Mode.Until.Equal(d.Until)) {
		return
	}
	if d.Mode == ModeNormal {
		if s.Mode.Name != ModeNormal {
			s.ResumedAt = t
		}
		s.Mode = Mode{Name: ModeNormal, Since: t, Actor: d.Actor}
	} else {
		s.Mode = Mode{Name: d.Mode, Until: d.Until.UTC(), Since: t, Actor: d.Actor}
	}
	s.Baseline.Learn = false
	e.dirty[el], e.urgent = true, true
}

func validMode(m string) bool {
	switch m {
	case ModeNormal, ModeAway, ModeHospital, ModeVisitor:
		return true
	}
	return false
}

func (e *Engine) cmdTime() time.Time {
	return later(e.clock.Now().UTC(), e.now).Truncate(time.Millisecond)
}

func (e *Engine) alertByID(id string) (*elder, *Alert) {
	for _, el := range e.list {
		if a := e.findAlert(el, id); a != nil {
			return el, a
		}
	}
	return nil, nil
}

// PrepareAck validates an acknowledgement and returns the event that
// records it. Nothing changes until that event is processed (the engine
// applies people's actions only from the log, so a replay sees them too).
func (e *Engine) PrepareAck(alertID, actor, where, note string) (*event.Event, error) {
	el, a := e.alertByID(alertID)
	if a == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownAlert, alertID)
	}
	if a.Acked {
		return nil, fmt.Errorf("%w by %s", ErrAlreadyAcked, a.AckedBy)
	}
	if len(note) > 500 || len(where) > 200 {
		return nil, fmt.Errorf("%w: note longer than 500 or where longer than 200 bytes", ErrBadArgument)
	}
	d := map[string]any{
		"alert_id": a.ID, "rule": a.Rule, "household": el.cfg.Household, "level": a.Level,
		"actor": actor, "note": note,
	}
	if where != "" {
		d["where"] = where // e.g. "on site", "by phone", "status page"
	}
	ev := event.New(event.ElderAlertAcknowledged).WithData(d)
	ev.Time, ev.Household = e.cmdTime(), el.cfg.Household
	return ev, nil
}

// PrepareResolve validates a resolution (the outcome of the visit) and
// returns the event that records it. A false alarm needs a reason: it is
// what tuning learns from.
func (e *Engine) PrepareResolve(alertID, actor, outcome, reason, note string) (*event.Event, error) {
	el, a := e.alertByID(alertID)
	if a == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownAlert, alertID)
	}
	switch outcome {
	case OutcomeSafe, OutcomeNeededHelp, OutcomeEmergency:
	case OutcomeFalseAlarm:
		if strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%w: a false alarm needs a reason (e.g. away at family, sensor fault)", ErrBadArgument)
		}
	default:
		return nil, fmt.Errorf("%w: outcome %q: want safe, false_alarm, needed_help or emergency", ErrBadArgument, outcome)
	}
	if len(note) > 1000 || len(reason) > 500 {
		return nil, fmt.Errorf("%w: reason or note too long", ErrBadArgument)
	}
	ev := event.New(event.ElderAlertResolved).WithData(map[string]any{
		"alert_id": a.ID, "rule": a.Rule, "household": el.cfg.Household, "level": a.Level,
		"outcome": outcome, "reason": reason, "note": note, "actor": actor,
		"raised": a.Raised, "acked_by": a.AckedBy,
	})
	ev.Time, ev.Household = e.cmdTime(), el.cfg.Household
	return ev, nil
}

// MaxModeSpan bounds away and hospital modes: a forgotten mode must not
// switch an elder's protection off for good.
const MaxModeSpan = 90 * 24 * time.Hour

// PrepareMode validates a mode change and returns the event that records
// it. until is required for away, hospital and visitor.
func (e *Engine) PrepareMode(household, mode string, until time.Time, actor, note string) (*event.Event, error) {
	el := e.elders[household]
	if el == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownElder, household)
	}
	if !validMode(mode) {
		return nil, fmt.Errorf("%w: mode %q: want normal, away, hospital or visitor", ErrBadArgument, mode)
	}
	now := e.cmdTime()
	if mode == ModeNormal {
		until = time.Time{}
	} else {
		if until.IsZero() {
			return nil, fmt.Errorf("%w: mode %s needs until (RFC 3339) or hours", ErrBadArgument, mode)
		}
		if !until.After(now) {
			return nil, fmt.Errorf("%w: until %s is in the past", ErrBadArgument, until.Format(time.RFC3339))
		}
		if until.Sub(now) > MaxModeSpan {
			return nil, fmt.Errorf("%w: until is more than 90 days ahead", ErrBadArgument)
		}
	}
	data := map[string]any{"household": household, "mode": mode, "previous": el.st.Mode.Name, "actor": actor, "note": note}
	if !until.IsZero() {
		data["until"] = until.UTC().Truncate(time.Millisecond)
	}
	ev := event.New(event.ElderModeChanged).WithData(data)
	ev.Time, ev.Household = now, household
	return ev, nil
}

// Snapshot is the status page's view of the elders.
type Snapshot struct {
	Time       time.Time       `json:"time"`
	Households []HouseholdView `json:"households"`
}

// HouseholdView is one elder's state: presence with its reasoning, mode,
// last activity, sensors and open alerts with their explanation.
type HouseholdView struct {
	Household      string                `json:"household"`
	Presence       Presence              `json:"presence"`
	Mode           Mode                  `json:"mode"`
	LastActivity   time.Time             `json:"last_activity,omitzero"`
	LastActivityBy string                `json:"last_activity_by,omitempty"`
	Sensors        map[string]SensorView `json:"sensors"`
	Alerts         []Alert               `json:"alerts"`
	// Limits are the limits in force now and why: inactivity for the
	// current silence, not_returned for the current (or a departure now).
	Limits []RuleLimit `json:"limits,omitempty"`
}

// RuleLimit is a limit in force for one rule.
type RuleLimit struct {
	Rule Rule `json:"rule"`
	Limit
}

// Snapshot returns a copy of every elder's state.
func (e *Engine) Snapshot() Snapshot {
	out := Snapshot{Time: e.now}
	for _, el := range e.list {
		s := el.st
		h := e.health(el, nil, e.now, e.now)
		v := HouseholdView{Household: el.cfg.Household, Presence: s.Presence, Mode: s.Mode,
			LastActivity: s.LastActivity, LastActivityBy: s.LastActBy, Sensors: h.lastSeen, Alerts: []Alert{}}
		if !e.set.Legacy {
			quiet := s.LastActivity
			if quiet.IsZero() {
				quiet = e.now
			}
			left, night := e.now, e.inNight(el.cfg, e.now)
			if s.Presence.State == PresenceAway && !s.LeftAt.IsZero() {
				left, night = s.LeftAt, s.LeftAtNight
			}
			v.Limits = []RuleLimit{{RuleInactivity, e.inactivityLimit(el, quiet).explained()}, {RuleNotReturned, e.outingLimit(el, left, night).explained()}}
		}
		for _, r := range AllRules {
			if a := s.Alerts[r]; a != nil {
				c := *a
				v.Alerts = append(v.Alerts, c)
			}
		}
		out.Households = append(out.Households, v)
	}
	return out
}

// OpenAlerts counts the open alerts of every elder.
func (e *Engine) OpenAlerts() int {
	n := 0
	for _, el := range e.list {
		n += len(el.st.Alerts)
	}
	return n
}

// text helpers

// fmtEn renders a duration for people: "6h", "1h30m", "45m", "20s".
func fmtEn(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0 && m > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case h > 0:
		return fmt.Sprintf("%dh", h)
	case m > 0:
		return fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("%ds", s)
}

// fmtZh renders a duration in Chinese: "6小时", "1小时30分钟", "45分钟".
func fmtZh(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	switch {
	case h > 0 && m > 0:
		return fmt.Sprintf("%d小时%d分钟", h, m)
	case h > 0:
		return fmt.Sprintf("%d小时", h)
	case m > 0:
		return fmt.Sprintf("%d分钟", m)
	}
	return fmt.Sprintf("%d秒", s)
}

func joinZh(s []string) string { return strings.Join(s, "；") }
func joinEn(s []string) string { return strings.Join(s, "; ") }

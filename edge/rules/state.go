package rules

import (
	"time"
)

// stateVersion is the version of the JSON values persisted in the store's
// state bucket; a value of another version is ignored (the engine starts
// that elder afresh) rather than misread.
const stateVersion = 1

// Presence states.
const (
	PresenceHome    = "home"
	PresenceAway    = "away"
	PresenceUnknown = "unknown"
	// PresenceUncertain: the door was used and nothing has been seen
	// since, and the elder's habits favour "stayed in and went quiet" over
	// "went out": the inactivity rule keeps watching, worded so that a
	// responder checks the flat first.
	PresenceUncertain = "uncertain"
)

// Presence bases: what the state rests on.
const (
	BasisSeen     = "seen"     // motion inside (or the peephole saw the elder)
	BasisDoor     = "door"     // a door cycle: came back, or used the door; nobody seen since
	BasisInferred = "inferred" // out because of the silence after the door, not seen leaving
	BasisSensors  = "sensors"  // the motion sensors are silent: cannot tell
)

// Modes an elder can be put in.
const (
	ModeNormal   = "normal"
	ModeAway     = "away"
	ModeHospital = "hospital"
	ModeVisitor  = "visitor"
)

// Presence is the inferred whereabouts of an elder and why.
type Presence struct {
	State  string    `json:"state"`
	Since  time.Time `json:"since"`
	Reason string    `json:"reason"`
	// ReasonZh is the same reasoning in Chinese, for the status page.
	ReasonZh string `json:"reason_zh"`
	// Basis is what the state rests on (seen, door, inferred, sensors).
	Basis string `json:"basis,omitempty"`
}

// Mode is an elder's current mode: normal, or away/hospital/visitor until a
// time.
type Mode struct {
	Name  string    `json:"name"`
	Until time.Time `json:"until,omitzero"`
	Since time.Time `json:"since,omitzero"`
	Actor string    `json:"actor,omitempty"`
}

// sensorState is what the engine knows of one bound sensor.
type sensorState struct {
	Role       string    `json:"role"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	Silent     bool      `json:"silent,omitempty"` // sensor.silent or device.offline, not yet heard again
	SilentAt   time.Time `json:"silent_at,omitzero"`
	Tamper     bool      `json:"tamper,omitempty"`
	BatteryLow bool      `json:"battery_low,omitempty"`
	// Unsupervised sensors send nothing between events, so their
	// silence proves nothing either way.
	Unsupervised bool `json:"unsupervised,omitempty"`
	// Stuck is a sensor alive but not to be believed: "on" (a motion
	// sensor firing day and night far above its own rate), "open" (a door
	// contact reading open for a day while life goes on inside), "off" (a
	// motion sensor that has seen nothing for days while the door shows
	// the elder coming and going). It is left out of presence until it
	// recovers.
	Stuck   string    `json:"stuck,omitempty"`
	StuckAt time.Time `json:"stuck_at,omitzero"`
	// Activity statistics for the stuck checks (motion sensors).
	LastMotion time.Time `json:"last_motion,omitzero"`
	Hour       int64     `json:"hour,omitempty"`  // local hour being counted
	Count      int       `json:"count,omitempty"` // its events so far
	// Last holds the last complete hours' counts, newest first.
	Last      [stuckOnHours]int `json:"last,omitzero"`
	Norm      float64           `json:"norm,omitempty"` // events per hour, a week's moving average
	NormHours int               `json:"norm_hours,omitempty"`
	Cycles    int               `json:"cycles,omitempty"` // the elder's door cycles when this sensor last saw motion
}

func (s *sensorState) problem() bool { return s.Silent || s.Tamper || s.BatteryLow || s.Stuck != "" }

// unusable is a sensor whose readings say nothing now: silent, or stuck.
func (s *sensorState) unusable() bool { return s.Silent || s.Stuck != "" }

// Alert is one open alert of an elder.
type Alert struct {
	ID       string    `json:"id"`
	Rule     Rule      `json:"rule"`
	Level    int       `json:"level"`
	Raised   time.Time `json:"raised"`
	Since    time.Time `json:"since"` // start of the condition (last activity, departure…)
	NextEsc  time.Time `json:"next_esc,omitzero"`
	Acked    bool      `json:"acked,omitempty"`
	AckedBy  string    `json:"acked_by,omitempty"`
	AckedAt  time.Time `json:"acked_at,omitzero"`
	AckNote  string    `json:"ack_note,omitempty"`
	AckWhere string    `json:"ack_where,omitempty"`
	Count    int       `json:"count,omitempty"` // repeated triggers while open (SOS presses)
	ReasonZh string    `json:"reason_zh"`
	ReasonEn string    `json:"reason_en"`
	Severity string    `json:"severity"`
	Audience string    `json:"audience"` // "care" (staff, grid worker, family) or "staff"
	// Explanation is the data of the raised event, kept for the status
	// page (thresholds, last-seen per sensor, data health, presence).
	Explanation map[string]any `json:"explanation,omitempty"`
}

// elderState is everything the engine keeps per elder; it is persisted
// as one small JSON value.
type elderState struct {
	V            int         `json:"v"`
	Seq          uint64      `json:"seq"`
	FirstSeen    time.Time   `json:"first_seen,omitzero"`
	LastActivity time.Time   `json:"last_activity,omitzero"`
	LastActBy    string      `json:"last_activity_by,omitempty"`
	LastDoor     time.Time   `json:"last_door,omitzero"`
	LastMotion   time.Time   `json:"last_motion,omitzero"`
	DoorOpen     bool        `json:"door_open,omitempty"`
	DoorOpenedAt time.Time   `json:"door_opened_at,omitzero"`
	DoorClosedAt time.Time   `json:"door_closed_at,omitzero"`
	Presence     Presence    `json:"presence"`
	LeftAt       time.Time   `json:"left_at,omitzero"`
	LeftAtNight  bool        `json:"left_at_night,omitempty"`
	NightKey     int64       `json:"night_key,omitempty"`
	NightOpens   int         `json:"night_opens,omitempty"`
	VisitStart   time.Time   `json:"visit_start,omitzero"`
	VisitLast    time.Time   `json:"visit_last,omitzero"`
	Doorbells    []time.Time `json:"doorbells,omitempty"`
	// Answered is when a door opening was judged an answered visit (a
	// peephole visitor just before, motion inside): that door cycle is
	// not a departure.
	Answered time.Time `json:"answered,omitzero"`
	// SeenOut is when the peephole reported the resident walking away
	// from the door (data.resident and data.direction "out").
	SeenOut    time.Time `json:"seen_out,omitzero"`
	SeenOutDev string    `json:"seen_out_dev,omitempty"`
	// SeenIn is when the peephole reported the resident arriving: the
	// door cycle around it is an arrival, not a departure.
	SeenIn time.Time `json:"seen_in,omitzero"`
	// DoorFrom is the presence when the door last opened: a cycle from
	// home may be a departure, one while away or uncertain is a return.
	DoorFrom string `json:"door_from,omitempty"`
	// DoorDev is the contact that reported the last opening.
	DoorDev string `json:"door_dev,omitempty"`
	// ReturnedAt is the close of the last door cycle judged a return.
	ReturnedAt time.Time `json:"returned_at,omitzero"`
	// PendingDoorUse is a door cycle from home (its close) whose outcome
	// is not yet seen: motion inside next (stayed in) or the door again
	// (went out and came back); it teaches the departure habit.
	PendingDoorUse time.Time `json:"pending_door_use,omitzero"`
	// DoorCycles counts door cycles (the stuck-off check).
	DoorCycles int `json:"door_cycles,omitempty"`
	// ProposedAway is the local day away mode was last proposed.
	ProposedAway int64                   `json:"proposed_away,omitempty"`
	Mode         Mode                    `json:"mode"`
	ResumedAt    time.Time               `json:"resumed_at,omitzero"` // last time a mode ended
	Sensors      map[string]*sensorState `json:"sensors"`
	Alerts       map[Rule]*Alert         `json:"alerts"`
	// ArmFrom restarts a rule's window after a data gap made its
	// previous window undecidable.
	ArmFrom map[Rule]time.Time `json:"arm_from,omitempty"`
	// NoData remembers the window start for which "no data" was said, so
	// it is said once per window.
	NoData   map[Rule]time.Time `json:"nodata,omitempty"`
	Baseline baseline           `json:"baseline"`
	LastHint time.Time          `json:"last_hint,omitzero"`
}

func newElderState() *elderState {
	return &elderState{V: stateVersion, Presence: Presence{State: PresenceUnknown, Reason: "no sensor data yet", ReasonZh: "尚无传感器数据"},
		Mode: Mode{Name: ModeNormal}, Sensors: map[string]*sensorState{}, Alerts: map[Rule]*Alert{},
		ArmFrom: map[Rule]time.Time{}, NoData: map[Rule]time.Time{}}
}

// fixMaps makes maps decoded from older or partial JSON usable.
func (s *elderState) fixMaps() {
	if s.Sensors == nil {
		s.Sensors = map[string]*sensorState{}
	}
	if s.Alerts == nil {
		s.Alerts = map[Rule]*Alert{}
	}
	if s.ArmFrom == nil {
		s.ArmFrom = map[Rule]time.Time{}
	}
	if s.NoData == nil {
		s.NoData = map[Rule]time.Time{}
	}
	if s.Mode.Name == "" {
		s.Mode.Name = ModeNormal
	}
}

// gap is an interval in which the gateway recorded nothing.
type gap struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// metaState is the engine-wide persisted state.
type metaState struct {
	V        int       `json:"v"`
	Seq      uint64    `json:"seq"`
	Now      time.Time `json:"now"`
	Down     bool      `json:"down,omitempty"`
	DownFrom time.Time `json:"down_from,omitzero"`
	Gaps     []gap     `json:"gaps,omitempty"`
}

package status

import (
	"context"
	"encoding/json"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// EventLog is what the page reads of the durable event log; *store.Store
// satisfies it.
type EventLog interface {
	// ReadRange returns up to max events with seq > after, in order.
	ReadRange(after uint64, max int) ([]*event.Event, error)
	LastSeq() uint64
	// Subscribe delivers events once durable; lossy for slow readers (the
	// page only uses it as a wake-up and reads the log itself).
	Subscribe(buf int) (<-chan *event.Event, func())
	// Cursor is the last seq a sink acknowledged.
	Cursor(sink string) uint64
}

// Dispatcher applies commands and records the command.applied audit
// event; *edge.Commands satisfies it.
type Dispatcher interface {
	Dispatch(ctx context.Context, name string, args json.RawMessage, actor, via string) (any, error)
	Names() []string
}

// Alert is one elder alert as the page shows it.
type Alert struct {
	ID            string         `json:"id"`
	Seq           uint64         `json:"seq"` // the raising event
	Type          string         `json:"type,omitempty"`
	Severity      event.Severity `json:"severity"`
	Household     string         `json:"household,omitempty"`
	Device        string         `json:"device,omitempty"`
	Place         string         `json:"place,omitempty"`
	Raised        time.Time      `json:"raised"`
	State         string         `json:"state"` // open, acknowledged, resolved
	AckBy         string         `json:"ack_by,omitempty"`
	AckAt         time.Time      `json:"ack_at,omitzero"`
	Resolved      time.Time      `json:"resolved,omitzero"`
	Outcome       string         `json:"outcome,omitempty"`
	ResolvedBy    string         `json:"resolved_by,omitempty"`
	ResolveReason string         `json:"resolve_reason,omitempty"`
	Note          string         `json:"note,omitempty"`
	Escalated     int            `json:"escalated,omitempty"`
	// ReasonZh and ReasonEn say in one sentence why the alert was raised.
	ReasonZh string `json:"reason_zh,omitempty"`
	ReasonEn string `json:"reason_en,omitempty"`
	// Why explains the alert: rule, thresholds, last-seen per sensor,
	// data health, as label/value pairs from the rules engine.
	Why      []Fact           `json:"why,omitempty"`
	Evidence []event.Evidence `json:"evidence,omitempty"`
	// Data is the raising event's data, for the page's sentence (Story)
	// and its language-aware raw facts.
	Data map[string]any `json:"-"`
}

// Fact is one label/value line of an explanation.
type Fact struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

// Household is a dwelling's state: presence, activity and mode.
type Household struct {
	ID       string `json:"id"`
	Label    string `json:"label"`
	Place    string `json:"place,omitempty"`
	Presence string `json:"presence"` // home, away, unknown
	// PresenceReason explains the presence guess (English, Chinese).
	PresenceReason   string    `json:"presence_reason,omitempty"`
	PresenceReasonZh string    `json:"presence_reason_zh,omitempty"`
	LastActivity     time.Time `json:"last_activity,omitzero"`
	Mode             string    `json:"mode"` // normal, away, hospital, visitor
	ModeUntil        time.Time `json:"mode_until,omitzero"`
	OpenAlerts       int       `json:"open_alerts"`
	// Limits are the rules' limits in force for this elder and why
	// (learned from her own days, or the configured ones).
	Limits []Limit `json:"limits,omitempty"`
}

// Limit is one limit in force: which rule, how long, and why (Chinese,
// English).
type Limit struct {
	Rule    string        `json:"rule"`
	Applied time.Duration `json:"applied_ns"`
	Basis   string        `json:"basis"` // configured, learned, floor, ceiling
	WhyZh   string        `json:"why_zh"`
	WhyEn   string        `json:"why_en"`
}

// AlertSource is the rules engine's view of open alerts. When none is
// given the page derives alerts from elder.alert.* events in the log
// (which also keeps recently resolved ones for the page).
type AlertSource interface {
	OpenAlerts() []Alert
}

// HouseholdSource is the rules engine's view of each elder's household:
// presence with its reasoning, mode, last activity. Without one the page
// derives them from elder.presence, elder.mode.changed and activity
// events.
type HouseholdSource interface {
	Households() []Household
}

// Device is one configured device's health.
type Device struct {
	ID         string    `json:"id"`
	Kind       string    `json:"kind"`
	Driver     string    `json:"driver"`
	Address    string    `json:"address"` // credentials redacted
	Building   string    `json:"building,omitempty"`
	Unit       string    `json:"unit,omitempty"`
	Place      string    `json:"place,omitempty"`
	Household  string    `json:"household,omitempty"`
	Disabled   bool      `json:"disabled,omitempty"`
	Online     string    `json:"online"` // online, offline, unknown
	LastSeen   time.Time `json:"last_seen,omitzero"`
	LastEvent  string    `json:"last_event,omitempty"`
	Battery    int       `json:"battery"` // percent; -1 unknown
	BatteryLow bool      `json:"battery_low,omitempty"`
	Tamper     bool      `json:"tamper,omitempty"`
	// Detail holds driver-specific health (stream bitrate, error counts).
	Detail map[string]string `json:"detail,omitempty"`
}

// DeviceSource is the drivers' view of device health; its fields win over
// what the page derives from events.
type DeviceSource interface {
	Devices() []Device
}

// Bus is the health of one shared link: a Modbus bus, a serial receiver,
// a camera stream.
type Bus struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"` // modbus, serial, camera
	OK          bool      `json:"ok"`
	Utilisation float64   `json:"utilisation"` // 0..1
	Requests    uint64    `json:"requests"`
	Timeouts    uint64    `json:"timeouts"`
	CRCErrors   uint64    `json:"crc_errors"`
	LastError   string    `json:"last_error,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	// Detail holds figures that fit no field above: Modbus exceptions,
	// a receiver's frame counts, a camera stream's fps and bitrate.
	Detail map[string]string `json:"detail,omitempty"`
}

// BusSource reports per-bus and per-camera health.
type BusSource interface {
	Buses() []Bus
}

// Sink is one uplink's sync state.
type Sink struct {
	Name        string        `json:"name"`
	Connected   bool          `json:"connected"`
	Backlog     uint64        `json:"backlog"`
	OldestAge   time.Duration `json:"oldest_age_ns"`
	LastSuccess time.Time     `json:"last_success,omitzero"`
	LastError   string        `json:"last_error,omitempty"`
	Known       bool          `json:"known"` // false: derived from the log cursor only
}

// SinkSource is the sinks' own view of their state. Without one the page
// shows each configured sink's backlog from its log cursor.
type SinkSource interface {
	Sinks() []Sink
}

// Storage is the event log's disk as the overview shows it.
type Storage struct {
	// Full: the data disk is full; the log drops telemetry first and
	// keeps alerts from its reserve.
	Full       bool      `json:"full"`
	FullSince  time.Time `json:"full_since,omitzero"`
	FreeBytes  int64     `json:"free_bytes"`
	TotalBytes int64     `json:"total_bytes"`
	QuotaBytes int64     `json:"quota_bytes"`
	// Lost counts events lost to storage damage found at the last start
	// (at most); Quarantined says a damaged file was moved aside then.
	Lost        uint64 `json:"lost,omitempty"`
	Quarantined bool   `json:"quarantined,omitempty"`
}

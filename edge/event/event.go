// Package event defines Lintel's Event v1: the one record every driver,
// rule and sink exchanges, and its JSON encoding (the wire and disk format).
//
// The schema is a contract with the city platform: docs/events.md describes
// it, docs/event.schema.json checks it, and the golden files in testdata pin
// its bytes. Add fields; never rename or retype one within v1.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SchemaVersion is the value of the envelope "schema" field for Event v1.
const SchemaVersion = "lintel.event/v1"

// TimeLayout is the on-wire time format: RFC 3339, UTC, milliseconds.
const TimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Severity ranks how urgently a person must look at an event.
type Severity string

// Severities, lowest first.
const (
	Info     Severity = "info"
	Warning  Severity = "warning"
	Alert    Severity = "alert"
	Critical Severity = "critical"
)

// Rank orders severities: info 1 … critical 4; unknown values rank 0.
func (s Severity) Rank() int {
	switch s {
	case Info:
		return 1
	case Warning:
		return 2
	case Alert:
		return 3
	case Critical:
		return 4
	}
	return 0
}

// Valid reports whether s is one of the four severities.
func (s Severity) Valid() bool { return s.Rank() > 0 }

// Urgent reports whether events of this severity take the alert lane.
func (s Severity) Urgent() bool { return s.Rank() >= Alert.Rank() }

// TimeQuality says whether the gateway clock was synchronised when an event
// was stamped. A box without an RTC boots in 1970 until NTP answers.
type TimeQuality string

// Clock qualities.
const (
	Synced   TimeQuality = "synced"
	Unsynced TimeQuality = "unsynced"
)

// Place locates an event in the compound: a dwelling (building/unit/room)
// or, for cameras and gates, a named position.
type Place struct {
	Building string `json:"building,omitempty"`
	Unit     string `json:"unit,omitempty"`
	Room     string `json:"room,omitempty"`
	Position string `json:"position,omitempty"`
}

// IsZero reports whether no field of p is set.
func (p Place) IsZero() bool { return p == Place{} }

// String renders p as "3栋/1单元/301" style path segments joined by "/".
func (p Place) String() string {
	var parts []string
	for _, s := range []string{p.Building, p.Unit, p.Room, p.Position} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "/")
}

// Evidence types.
const (
	EvidenceClip     = "clip"
	EvidenceSnapshot = "snapshot"
)

// Evidence references a file kept by the gateway (a clip or a snapshot).
// SHA256 and Size let any receiver prove the file it fetched is the one the
// event describes.
type Evidence struct {
	Type      string `json:"type"`
	Ref       string `json:"ref"`
	MediaType string `json:"media_type,omitempty"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
}

// Event is one Event v1 record.
//
// Drivers and rules fill Kind, Severity, Device, Place, Household, Data and
// Evidence (and Time if they know it better than the runtime); the store
// assigns Seq and ID; the runtime stamps Gateway, Compound, Time and
// TimeQuality.
type Event struct {
	ID          string          `json:"id"`
	Seq         uint64          `json:"seq"`
	Gateway     string          `json:"gateway"`
	Compound    string          `json:"compound"`
	Time        time.Time       `json:"time"`
	TimeQuality TimeQuality     `json:"time_quality"`
	Kind        Kind            `json:"kind"`
	Severity    Severity        `json:"severity"`
	Device      string          `json:"device,omitempty"`
	Place       *Place          `json:"place,omitempty"`
	Household   string          `json:"household,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Evidence    []Evidence      `json:"evidence,omitempty"`
}

// New returns an event of kind k with the kind's default severity.
func New(k Kind) *Event { return &Event{Kind: k, Severity: k.DefaultSeverity()} }

// WithData sets e.Data to the JSON encoding of v and returns e. v must be
// encodable (a map or struct of plain values); a failure is a programming
// error and panics.
func (e *Event) WithData(v any) *Event {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("event: data for %s: %v", e.Kind, err))
	}
	e.Data = b
	return e
}

// DataMap decodes Data into a map, numbers as json.Number.
func (e *Event) DataMap() (map[string]any, error) {
	if len(e.Data) == 0 {
		return map[string]any{}, nil
	}
	d := json.NewDecoder(bytes.NewReader(e.Data))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// FormatID builds the globally unique event id from the gateway id, the
// store's epoch and the sequence number: "gw-01:3f9a0c1b2d4e5f60:42".
func FormatID(gateway, epoch string, seq uint64) string {
	return gateway + ":" + epoch + ":" + strconv.FormatUint(seq, 10)
}

// ParseID splits an id made by FormatID.
func ParseID(id string) (gateway, epoch string, seq uint64, err error) {
	i := strings.LastIndexByte(id, ':')
	if i <= 0 {
		return "", "", 0, fmt.Errorf("event id %q: want gateway:epoch:seq", id)
	}
	j := strings.LastIndexByte(id[:i], ':')
	if j <= 0 {
		return "", "", 0, fmt.Errorf("event id %q: want gateway:epoch:seq", id)
	}
	seq, err = strconv.ParseUint(id[i+1:], 10, 64)
	if err != nil {
		return "", "", 0, fmt.Errorf("event id %q: bad seq", id)
	}
	return id[:j], id[j+1 : i], seq, nil
}

// wire mirrors Event with the time as a string so the encoding is exactly
// RFC 3339 UTC with milliseconds, whatever zone Time carries.
type wire struct {
	ID          string          `json:"id"`
	Seq         uint64          `json:"seq"`
	Gateway     string          `json:"gateway"`
	Compound    string          `json:"compound"`
	Time        string          `json:"time"`
	TimeQuality TimeQuality     `json:"time_quality"`
	Kind        Kind            `json:"kind"`
	Severity    Severity        `json:"severity"`
	Device      string          `json:"device,omitempty"`
	Place       *Place          `json:"place,omitempty"`
	Household   string          `json:"household,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	Evidence    []Evidence      `json:"evidence,omitempty"`
}

// MarshalJSON encodes e as Event v1.
func (e Event) MarshalJSON() ([]byte, error) { return e.AppendJSON(make([]byte, 0, 512)) }

// marshalReflect is the reference encoding AppendJSON must match.
func (e Event) marshalReflect() ([]byte, error) {
	w := wire{
		ID: e.ID, Seq: e.Seq, Gateway: e.Gateway, Compound: e.Compound,
		Time: e.Time.UTC().Format(TimeLayout), TimeQuality: e.TimeQuality,
		Kind: e.Kind, Severity: e.Severity, Device: e.Device, Household: e.Household,
		Data: e.Data, Evidence: e.Evidence,
	}
	if e.Place != nil && !e.Place.IsZero() {
		w.Place = e.Place
	}
	if len(w.Data) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, w.Data); err != nil {
			return nil, fmt.Errorf("event %s: data: %w", e.Kind, err)
		}
		w.Data = buf.Bytes()
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes Event v1 strictly: unknown fields are rejected
// so a renamed field is caught, not silently dropped.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w wire
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&w); err != nil {
		return err
	}
	if d.More() {
		return errors.New("event: trailing data after object")
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return fmt.Errorf("event: time %q: want RFC 3339", w.Time)
	}
	*e = Event{
		ID: w.ID, Seq: w.Seq, Gateway: w.Gateway, Compound: w.Compound,
		Time: t.UTC(), TimeQuality: w.TimeQuality, Kind: w.Kind, Severity: w.Severity,
		Device: w.Device, Place: w.Place, Household: w.Household, Data: w.Data, Evidence: w.Evidence,
	}
	return nil
}

// Decode parses and validates one Event v1 JSON document.
func Decode(b []byte) (*Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return &e, nil
}

// Validate checks the fields a driver or rule is responsible for, plus the
// stamped ones when they are present. It reports every problem at once.
func (e *Event) Validate() error {
	var errs []error
	if !e.Kind.Valid() {
		errs = append(errs, fmt.Errorf("kind %q: want lower-case dotted words like door.opened", e.Kind))
	}
	if !e.Severity.Valid() {
		errs = append(errs, fmt.Errorf("severity %q: want info, warning, alert or critical", e.Severity))
	}
	if e.TimeQuality != "" && e.TimeQuality != Synced && e.TimeQuality != Unsynced {
		errs = append(errs, fmt.Errorf("time_quality %q: want synced or unsynced", e.TimeQuality))
	}
	if len(e.Data) > 0 {
		if !json.Valid(e.Data) || bytes.TrimSpace(e.Data)[0] != '{' {
			errs = append(errs, errors.New("data: want a JSON object"))
		}
	}
	for i, ev := range e.Evidence {
		if ev.Type != EvidenceClip && ev.Type != EvidenceSnapshot {
			errs = append(errs, fmt.Errorf("evidence[%d].type %q: want clip or snapshot", i, ev.Type))
		}
		if ev.Ref == "" {
			errs = append(errs, fmt.Errorf("evidence[%d].ref: empty", i))
		}
		if !isHex(ev.SHA256, 64) {
			errs = append(errs, fmt.Errorf("evidence[%d].sha256: want 64 lower-case hex digits", i))
		}
		if ev.Size < 0 {
			errs = append(errs, fmt.Errorf("evidence[%d].size: negative", i))
		}
	}
	if len(e.Household) > 64 || len(e.Device) > 128 {
		errs = append(errs, errors.New("device or household id too long"))
	}
	return errors.Join(errs...)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

package police

import (
	"sort"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// Top-level fields an allow-list may name, beside "data.<key>".
const (
	FieldSeverity      = "severity"
	FieldTimeQuality   = "time_quality"
	FieldDevice        = "device"
	FieldPlaceBuilding = "place.building"
	FieldPlacePosition = "place.position"
	FieldEvidence      = "evidence"
)

var topFields = map[string]bool{
	FieldSeverity: true, FieldTimeQuality: true, FieldDevice: true,
	FieldPlaceBuilding: true, FieldPlacePosition: true, FieldEvidence: true,
}

// neverFields can never be allowed: they identify a dwelling or a person.
var neverFields = map[string]string{
	"household":   "a household id is household data",
	"place.unit":  "a unit and room locate a dwelling (household data)",
	"place.room":  "a unit and room locate a dwelling (household data)",
	"data.name":   "personal data",
	"data.phone":  "personal data",
	"data.elder":  "elder data",
	"data.person": "personal data",
}

// neverKindPrefixes are the guardian net's kinds: events about elders and
// the sensors inside their homes. They never go to the police, whatever
// the config says (PIPL Art. 28: whereabouts and health are sensitive).
var neverKindPrefixes = []string{"elder.", "door.", "motion.", "sos.", "peephole.", "sensor.", "smoke.", "water."}

// Forbidden says why kind k may never be sent, or "" when it may be.
func Forbidden(k event.Kind) string {
	for _, p := range neverKindPrefixes {
		if strings.HasPrefix(string(k), p) {
			return "elder and household events never go to the police feed"
		}
	}
	return ""
}

// faceField reports whether an allow-list field carries face data.
func faceField(f string) bool {
	return strings.HasPrefix(f, "data.face") || strings.HasPrefix(f, "data.person")
}

// DefaultAllow is the allow-list used when the config gives none: the
// security net's incidents with where and what, never who.
func DefaultAllow() map[string][]string {
	return map[string][]string{
		string(event.CameraFallingObject): {FieldSeverity, FieldTimeQuality, FieldDevice, FieldPlaceBuilding, FieldPlacePosition, FieldEvidence,
			"data.rule", "data.start_floor", "data.start_floor_source", "data.start_point", "data.objects", "data.clip_truncated"},
		string(event.CameraTamper):    {FieldSeverity, FieldTimeQuality, FieldDevice, FieldPlacePosition, FieldEvidence, "data.rule"},
		string(event.CameraVideoLost): {FieldSeverity, FieldTimeQuality, FieldDevice, FieldPlacePosition},
		string(event.GateForcedOpen):  {FieldSeverity, FieldTimeQuality, FieldDevice, FieldPlaceBuilding, FieldPlacePosition},
	}
}

// Policy decides what of an event may leave for the police.
type Policy struct {
	allow map[event.Kind]map[string]bool
	faces bool
}

// NewPolicy builds a policy from a validated allow-list. Forbidden kinds
// and fields are dropped here too: validation is not the only guard.
func NewPolicy(allow map[string][]string, faces bool) *Policy {
	p := &Policy{allow: map[event.Kind]map[string]bool{}, faces: faces}
	for k, fs := range allow {
		if Forbidden(event.Kind(k)) != "" {
			continue
		}
		set := map[string]bool{}
		for _, f := range fs {
			if _, never := neverFields[f]; never || (faceField(f) && !faces) {
				continue
			}
			set[f] = true
		}
		p.allow[event.Kind(k)] = set
	}
	return p
}

// Kinds lists the kinds the policy lets through.
func (p *Policy) Kinds() []string {
	out := make([]string, 0, len(p.allow))
	for k := range p.allow {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}

// Filtered is what of an event the police may see.
type Filtered struct {
	Seq         uint64
	ID          string
	Kind        event.Kind
	Time        time.Time
	Severity    event.Severity    `json:",omitempty"`
	TimeQuality event.TimeQuality `json:",omitempty"`
	Device      string            `json:",omitempty"`
	Building    string            `json:",omitempty"`
	Position    string            `json:",omitempty"`
	Data        map[string]any    `json:",omitempty"`
	Evidence    []event.Evidence  `json:",omitempty"`
}

// Fields lists the allow-list names of the fields f carries.
func (f *Filtered) Fields() []string {
	var out []string
	add := func(ok bool, n string) {
		if ok {
			out = append(out, n)
		}
	}
	add(f.Severity != "", FieldSeverity)
	add(f.TimeQuality != "", FieldTimeQuality)
	add(f.Device != "", FieldDevice)
	add(f.Building != "", FieldPlaceBuilding)
	add(f.Position != "", FieldPlacePosition)
	add(len(f.Evidence) > 0, FieldEvidence)
	for k := range f.Data {
		out = append(out, "data."+k)
	}
	sort.Strings(out)
	return out
}

// Apply returns the allowed view of e, or false when e must not be sent.
// An event naming a household is never sent: it is about a home.
func (p *Policy) Apply(e *event.Event) (*Filtered, bool) {
	set, ok := p.allow[e.Kind]
	if !ok || e.Household != "" || Forbidden(e.Kind) != "" {
		return nil, false
	}
	f := &Filtered{Seq: e.Seq, ID: e.ID, Kind: e.Kind, Time: e.Time}
	if set[FieldSeverity] {
		f.Severity = e.Severity
	}
	if set[FieldTimeQuality] {
		f.TimeQuality = e.TimeQuality
	}
	if set[FieldDevice] {
		f.Device = e.Device
	}
	if e.Place != nil {
		if set[FieldPlaceBuilding] {
			f.Building = e.Place.Building
		}
		if set[FieldPlacePosition] {
			f.Position = e.Place.Position
		}
	}
	if set[FieldEvidence] && len(e.Evidence) > 0 {
		f.Evidence = append([]event.Evidence(nil), e.Evidence...)
	}
	if len(e.Data) > 0 {
		if m, err := e.DataMap(); err == nil {
			for k, v := range m {
				if set["data."+k] {
					if f.Data == nil {
						f.Data = map[string]any{}
					}
					f.Data[k] = v
				}
			}
		}
	}
	return f, true
}

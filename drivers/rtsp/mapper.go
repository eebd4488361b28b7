package rtsp

import (
	"sort"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// FloorBand says which storey a horizontal band of the image shows, for
// the start-floor estimate of a falling object. Y runs from 0 (top of the
// image) to 1 (bottom); a point with YMin <= y < YMax is on Floor.
type FloorBand struct {
	Floor int     `yaml:"floor" json:"floor"`
	YMin  float64 `yaml:"y_min" json:"y_min"`
	YMax  float64 `yaml:"y_max" json:"y_max"`
}

// Incident is an event derived from metadata, and whether it wants a clip.
type Incident struct {
	Event *event.Event
	Clip  bool
	At    time.Time // gateway time the metadata arrived
}

// Limits of what an incident carries, so one event stays small.
const (
	maxTrackObjects = 8
	maxTrackPoints  = 64
	maxFrames       = 512
)

// Mapper turns metadata documents of one camera into incidents according
// to its profile. It keeps the recent analytics frames (to build object
// tracks) and the cooldown clocks; it is not safe for concurrent use.
type Mapper struct {
	Profile *Profile
	Device  string
	Bands   []FloorBand

	frames []timedFrame
	last   map[string]time.Time
}

type timedFrame struct {
	at time.Time
	Frame
}

// NewMapper returns a mapper for one device.
func NewMapper(p *Profile, device string, bands []FloorBand) *Mapper {
	return &Mapper{Profile: p, Device: device, Bands: bands, last: map[string]time.Time{}}
}

// Handle maps one document that arrived at gateway time at.
func (m *Mapper) Handle(md *Metadata, at time.Time) []Incident {
	for _, f := range md.Frames {
		if m.Profile.Coordinates == "image" {
			f = imageCoords(f)
		}
		m.frames = append(m.frames, timedFrame{at, f})
	}
	// Keep the track window, and never more than maxFrames.
	cut := 0
	for cut < len(m.frames) && (at.Sub(m.frames[cut].at) > m.Profile.trackWindow || len(m.frames)-cut > maxFrames) {
		cut++
	}
	if cut > 0 {
		m.frames = append(m.frames[:0], m.frames[cut:]...)
	}

	var out []Incident
	for i := range md.Events {
		if inc, ok := m.notification(&md.Events[i], at); ok {
			out = append(out, inc)
		}
	}
	return out
}

// imageCoords undoes the ONVIF → image conversion the parser applied, for
// cameras that already write 0..1 image coordinates.
func imageCoords(f Frame) Frame {
	objs := make([]Object, len(f.Objects))
	for i, o := range f.Objects {
		if o.Box != nil {
			b := *o.Box
			// The parser mapped v to (v+1)/2 for x and (1-v)/2 for y.
			b = Box{Left: round4(2*b.Left - 1), Right: round4(2*b.Right - 1), Top: round4(1 - 2*b.Bottom), Bottom: round4(1 - 2*b.Top)}
			o.Box = &Box{Left: min(b.Left, b.Right), Right: max(b.Left, b.Right), Top: min(b.Top, b.Bottom), Bottom: max(b.Top, b.Bottom)}
		}
		if o.Center != nil {
			o.Center = &Point{X: round4(2*o.Center.X - 1), Y: round4(1 - 2*o.Center.Y)}
		}
		objs[i] = o
	}
	f.Objects = objs
	return f
}

func (m *Mapper) notification(n *Notification, at time.Time) (Incident, bool) {
	if n.Topic == "" || strings.EqualFold(n.Operation, "Deleted") {
		return Incident{}, false
	}
	rule, ignored := m.Profile.Rule(n.Topic)
	if ignored {
		return Incident{}, false
	}
	initialized := strings.EqualFold(n.Operation, "Initialized")
	data := map[string]any{"topic": n.Topic}
	if n.Operation != "" {
		data["operation"] = n.Operation
	}
	if n.UtcTimeRaw != "" {
		data["camera_time"] = n.UtcTimeRaw
	}
	for name, items := range map[string][]Item{"source": n.Source, "key": n.Key, "data": n.Data} {
		if len(items) > 0 {
			mm := make(map[string]string, len(items))
			for _, it := range items {
				mm[it.Name] = it.Value
			}
			data[name] = mm
		}
	}

	if rule == nil {
		// Unknown topic: kept raw, rate-limited per topic, and not for the
		// state dump at session start (it would repeat on each reconnect).
		if initialized || !m.cool("topic:"+n.Topic, at, m.Profile.unmappedCooldown) {
			return Incident{}, false
		}
		if active, known := activeState(n, ""); known {
			data["active"] = active
		}
		ev := event.New(event.CameraEvent).WithData(data)
		ev.Device = m.Device
		return Incident{Event: ev, At: at}, true
	}
	if initialized && !rule.Initialized {
		return Incident{}, false
	}
	if active, known := activeState(n, rule.State); known && !active {
		return Incident{}, false
	}
	if !m.cool("rule:"+rule.Topic+">"+rule.Kind, at, rule.cooldown) {
		return Incident{}, false
	}
	data["rule"] = rule.Topic
	kind := event.Kind(rule.Kind)
	if kind == event.CameraFallingObject {
		m.fallingObject(n, data)
	} else if objs := m.tracks(n); len(objs) > 0 {
		data["objects"] = objs
	}
	ev := event.New(kind).WithData(data)
	ev.Device = m.Device
	if rule.Severity != "" {
		ev.Severity = event.Severity(rule.Severity)
	}
	return Incident{Event: ev, Clip: rule.Clip, At: at}, true
}

// cool reports whether key may fire now, and starts its cooldown.
func (m *Mapper) cool(key string, at time.Time, d time.Duration) bool {
	if d > 0 {
		if t, ok := m.last[key]; ok && at.Sub(t) < d {
			return false
		}
	}
	m.last[key] = at
	if len(m.last) > 1024 {
		// Bounded: cameras with ever-new topics must not grow this map.
		for k, t := range m.last {
			if at.Sub(t) > time.Hour {
				delete(m.last, k)
			}
		}
	}
	return true
}

// TrackPoint is one observation of an object.
type TrackPoint struct {
	Time   string `json:"t,omitempty"`
	Box    *Box   `json:"box,omitempty"`
	Center *Point `json:"center,omitempty"`
}

// TrackedObject is an object with its track over the recent frames.
type TrackedObject struct {
	ID         string       `json:"id,omitempty"`
	Class      string       `json:"class,omitempty"`
	Likelihood float64      `json:"likelihood,omitempty"`
	Track      []TrackPoint `json:"track"`
}

// tracks groups the recent frames' objects by id. When the notification
// names an object (ObjectId in Source, Key or Data) only that one is kept.
func (m *Mapper) tracks(n *Notification) []TrackedObject {
	want := ""
	for _, items := range [][]Item{n.Data, n.Key, n.Source} {
		if v, ok := Lookup(items, "ObjectId"); ok {
			want = v
			break
		}
	}
	byID := map[string]*TrackedObject{}
	var order []string
	for _, f := range m.frames {
		ts := ""
		if !f.UtcTime.IsZero() {
			ts = f.UtcTime.Format(event.TimeLayout)
		}
		for _, o := range f.Objects {
			if want != "" && o.ID != want {
				continue
			}
			if o.Box == nil && o.Center == nil {
				continue
			}
			t := byID[o.ID]
			if t == nil {
				if len(order) >= maxTrackObjects {
					continue
				}
				t = &TrackedObject{ID: o.ID}
				byID[o.ID] = t
				order = append(order, o.ID)
			}
			if o.Class != "" {
				t.Class, t.Likelihood = o.Class, o.Likelihood
			}
			if len(t.Track) < maxTrackPoints {
				t.Track = append(t.Track, TrackPoint{Time: ts, Box: o.Box, Center: o.Center})
			}
		}
	}
	out := make([]TrackedObject, 0, len(order))
	for _, id := range order {
		out = append(out, *byID[id])
	}
	return out
}

// fallingObject adds the objects' tracks and the start-floor estimate:
// the floor band holding the first point of the track that starts highest
// in the image (a falling object starts at the top of its track).
func (m *Mapper) fallingObject(n *Notification, data map[string]any) {
	objs := m.tracks(n)
	if len(objs) == 0 {
		return
	}
	data["objects"] = objs
	var start *Point
	for _, o := range objs {
		p := pointOf(o.Track[0])
		if p != nil && (start == nil || p.Y < start.Y) {
			start = p
		}
	}
	if start == nil {
		return
	}
	data["start_point"] = start
	if floor, ok := FloorAt(m.Bands, start.Y); ok {
		data["start_floor"] = floor
		data["start_floor_source"] = "floor_bands"
	}
}

func pointOf(tp TrackPoint) *Point {
	if tp.Center != nil {
		return tp.Center
	}
	if tp.Box != nil {
		return &Point{X: round4((tp.Box.Left + tp.Box.Right) / 2), Y: round4((tp.Box.Top + tp.Box.Bottom) / 2)}
	}
	return nil
}

// FloorAt returns the floor of the band holding image height y. When bands
// overlap, the narrowest wins.
func FloorAt(bands []FloorBand, y float64) (int, bool) {
	cands := make([]FloorBand, 0, 2)
	for _, b := range bands {
		if b.YMin <= y && y < b.YMax {
			cands = append(cands, b)
		}
	}
	if len(cands) == 0 {
		return 0, false
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].YMax-cands[i].YMin < cands[j].YMax-cands[j].YMin })
	return cands[0].Floor, true
}

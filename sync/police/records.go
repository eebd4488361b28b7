package police

import (
	"encoding/json"

	"github.com/lintel-edge/lintel/edge/event"
)

// Resource paths of the write endpoints.
const (
	PathImages      = "/VIID/Images"
	PathVideoSlices = "/VIID/VideoSlices"
	PathScenes      = "/VIID/Scenes"
)

// record is one VIID object built from an event, with the state of its
// delivery: the info (a list-envelope entry) and, for images and video
// slices, the data uploaded to …/{id}/Data afterwards.
type record struct {
	seq      uint64
	resource string // PathImages, PathVideoSlices, PathScenes
	id       string
	info     map[string]any
	ev       *event.Evidence // the file to upload; nil for scenes or when missing
	infoOK   bool
	dataOK   bool
	attempts int
	lastErr  string
}

func (r *record) done() bool { return r.infoOK && (r.ev == nil || r.dataOK) }

// builder turns filtered events into records.
type builder struct {
	ids      IDs
	gateway  string
	evidence func(ev event.Evidence) (ok bool, why string) // checks the file exists with its sha256
}

// eventSort is the EventSort code we give each kind. GA/T 1400 leaves the
// catalogue to the platform; 99 is "other". The values are documented in
// docs/police-feed.md and overridable only in code for now.
var eventSort = map[event.Kind]int{
	event.CameraFallingObject: 1, // 高空抛物
	event.CameraTamper:        2,
	event.CameraVideoLost:     3,
	event.GateForcedOpen:      4,
}

func sortOf(k event.Kind) int {
	if v, ok := eventSort[k]; ok {
		return v
	}
	return 99
}

// description is the allowed payload of an event, as compact JSON: the
// only place event data goes, so the allow-list bounds it exactly.
func description(f *Filtered) string {
	m := map[string]any{"lintel_id": f.ID, "kind": string(f.Kind)}
	if f.Severity != "" {
		m["severity"] = f.Severity
	}
	if f.TimeQuality != "" {
		m["time_quality"] = f.TimeQuality
	}
	if f.Device != "" {
		m["device"] = f.Device
	}
	if len(f.Data) > 0 {
		m["data"] = f.Data
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func place(f *Filtered) string {
	switch {
	case f.Building != "" && f.Position != "":
		return f.Building + "/" + f.Position
	case f.Building != "":
		return f.Building
	}
	return f.Position
}

// build makes the records of one filtered event. Ids depend only on the
// event (device, time, seq, evidence index), so a resend after a crash or
// a retry carries the same ids.
func (b *builder) build(f *Filtered) []*record {
	dev := b.ids.Device(f.Device)
	if f.Device == "" {
		dev = b.ids.Device(b.gateway)
	}
	shot := f.Time.In(b.ids.Loc).Format(VIIDTime)
	desc := description(f)
	var out []*record
	var videoID string
	for i, e := range f.Evidence {
		if e.Type == event.EvidenceClip && videoID == "" {
			videoID = b.ids.Record(dev, TypeVideoSlice, f.Time, f.Seq, i)
		}
	}
	var imageIDs []string
	for i, e := range f.Evidence {
		r := &record{seq: f.Seq}
		ok, why := b.evidence(e)
		if ok {
			r.ev = &e
		}
		common := map[string]any{
			"InfoKind": 1, "DeviceID": dev, "EventSort": sortOf(f.Kind),
			"Title": string(f.Kind), "ContentDescription": desc, "ShotPlaceFullAdress": place(f),
			"FileHash": e.SHA256, "FileSize": e.Size,
		}
		if !ok {
			common["ContentDescription"] = desc + " evidence_unavailable: " + why
		}
		switch e.Type {
		case event.EvidenceClip:
			r.resource = PathVideoSlices
			r.id = b.ids.Record(dev, TypeVideoSlice, f.Time, f.Seq, i)
			common["VideoID"] = r.id
			common["VideoSource"] = "99"
			common["IsAbstractVideo"] = 0
			common["FileFormat"] = "MP4"
			common["BeginTime"] = shot
			r.info = map[string]any{"VideoSliceInfo": common}
		case event.EvidenceSnapshot:
			r.resource = PathImages
			r.id = b.ids.Record(dev, TypeImage, f.Time, f.Seq, i)
			imageIDs = append(imageIDs, r.id)
			common["ImageID"] = r.id
			common["ImageSource"] = "99"
			common["FileFormat"] = "Jpeg"
			common["ShotTime"] = shot
			common["Type"] = "14" // scene image
			if videoID != "" {
				common["SourceVideoID"] = videoID
			}
			r.info = map[string]any{"ImageInfo": common}
		default:
			continue
		}
		out = append(out, r)
	}
	if len(imageIDs) > 0 {
		for _, r := range out {
			if vi, ok := r.info["VideoSliceInfo"].(map[string]any); ok && r.id == videoID {
				vi["RelatedImageIDs"] = imageIDs
			}
		}
	}
	if len(out) == 0 {
		src := b.ids.Record(dev, TypeScene, f.Time, f.Seq, 0)
		id := b.ids.Object(src, TypeScene, 1)
		out = append(out, &record{seq: f.Seq, resource: PathScenes, id: id, info: map[string]any{
			"SceneID": id, "InfoKind": 1, "SourceID": src, "DeviceID": dev, "BeginTime": shot,
			"EventSort": sortOf(f.Kind), "Title": string(f.Kind), "ContentDescription": desc,
			"ShotPlaceFullAdress": place(f),
		}})
	}
	return out
}

// envelope wraps records of one resource in its list object.
func envelope(resource string, rs []*record) any {
	items := make([]any, len(rs))
	for i, r := range rs {
		items[i] = r.info
	}
	switch resource {
	case PathImages:
		return map[string]any{"ImageListObject": map[string]any{"Image": items}}
	case PathVideoSlices:
		return map[string]any{"VideoSliceListObject": map[string]any{"VideoSlice": items}}
	}
	return map[string]any{"SceneListObject": map[string]any{"SceneObject": items}}
}

// dataPath is where a record's file goes.
func dataPath(r *record) string { return r.resource + "/" + r.id + "/Data" }

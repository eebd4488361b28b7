package rtsp

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/bluenviron/mediacommon/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/pkg/formats/fmp4/seekablebuffer"

	"github.com/lintel-edge/lintel/edge/event"
)

// ClipMediaType is the media type of evidence clips.
const ClipMediaType = "video/mp4"

// Clip is a finished evidence clip and what its JSON sidecar says.
type Clip struct {
	Ref       string    `json:"ref"` // "clips/<device>/<day>/<name>.mp4", see clipStore
	Device    string    `json:"device"`
	Kind      string    `json:"kind"`
	Incident  time.Time `json:"incident"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Duration  float64   `json:"duration_s"`
	Frames    int       `json:"frames"`
	Keyframes int       `json:"keyframes"`
	PreRoll   float64   `json:"pre_roll_s"`  // seconds of video before the incident
	PostRoll  float64   `json:"post_roll_s"` // seconds after it
	Codec     string    `json:"codec"`
	Width     int       `json:"width,omitempty"`
	Height    int       `json:"height,omitempty"`
	Truncated bool      `json:"truncated,omitempty"`
	SHA256    string    `json:"sha256"`
	Size      int64     `json:"size"`
}

// Evidence is the clip as an event's evidence reference.
func (c *Clip) Evidence() event.Evidence {
	return event.Evidence{Type: event.EvidenceClip, Ref: c.Ref, MediaType: ClipMediaType, SHA256: c.SHA256, Size: c.Size}
}

// clipStore owns one camera's clip folder: <root>/<device>/<YYYY-MM-DD>/.
// Refs are "clips/" + the path under root, so with the default root
// (<data_dir>/clips) a ref is relative to the data directory.
type clipStore struct {
	root      string
	device    string
	quota     int64
	retention time.Duration
}

func (s *clipStore) dir() string { return filepath.Join(s.root, s.device) }

// writeClip writes a capture as fragmented MP4 (an init segment, then one
// fragment per group of pictures), computing its sha256 on the way, then
// the JSON sidecar. The file appears under its final name only when
// complete.
func (s *clipStore) writeClip(c *capture, kind string, incident time.Time, deadline <-chan time.Time) (*Clip, error) {
	frames := c.pre
	c.pre = nil // the ring may trim: the capture owns these frames now
	day := incident.UTC().Format("2006-01-02")
	name := incident.UTC().Format("150405.000Z") + "-" + strings.ReplaceAll(kind, ".", "_") + ".mp4"
	rel := filepath.ToSlash(filepath.Join(s.device, day, name))
	path := filepath.Join(s.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create clip folder: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, fmt.Errorf("create clip: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	h := sha256.New()
	w := &clipWriter{out: io.MultiWriter(f, h)}

	// Skip to the first keyframe (the ring starts on one, but a capture
	// made while the ring was empty gets the stream's next frames). Frames
	// are then held one GOP at a time: each GOP is written as a fragment
	// as soon as the next keyframe arrives.
	for len(frames) > 0 && !frames[0].key {
		frames = frames[1:]
	}
	pending := frames
	flushGOPs := func(final bool) error {
		// Write every complete GOP held in pending (all of it when final).
		for {
			end := -1
			for i := 1; i < len(pending); i++ {
				if pending[i].key {
					end = i
					break
				}
			}
			if end < 0 {
				if final && len(pending) > 0 {
					end = len(pending)
				} else {
					return nil
				}
			}
			var next *accessUnit
			if end < len(pending) {
				next = pending[end]
			}
			if err := w.gop(pending[:end], next); err != nil {
				return err
			}
			pending = pending[end:]
		}
	}
	if err := flushGOPs(false); err != nil {
		return nil, err
	}
	truncated := false
collect:
	for {
		select {
		case a, more := <-c.ch:
			if !more {
				truncated = c.truncated
				break collect
			}
			if len(pending) == 0 && !a.key && w.frames == 0 {
				continue
			}
			pending = append(pending, a)
			if a.key {
				if err := flushGOPs(false); err != nil {
					return nil, err
				}
			}
		case <-deadline:
			// No video for a while (camera gone): keep what we have.
			truncated = true
			break collect
		}
	}
	if err := flushGOPs(true); err != nil {
		return nil, err
	}
	if w.frames == 0 {
		return nil, errors.New("no video to cut a clip from")
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("write clip: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write clip: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write clip: %w", err)
	}
	ok = true
	clip := &Clip{
		Ref: "clips/" + rel, Device: s.device, Kind: kind, Incident: incident.UTC(),
		Start: w.first.UTC(), End: w.last.UTC(), Duration: float64(w.dur) / 90000,
		Frames: w.frames, Keyframes: w.keys,
		PreRoll: incident.Sub(w.first).Seconds(), PostRoll: w.last.Sub(incident).Seconds(),
		Codec: w.params.codec, Width: w.params.width, Height: w.params.height,
		Truncated: truncated, SHA256: hex.EncodeToString(h.Sum(nil)), Size: w.size,
	}
	side, _ := json.MarshalIndent(clip, "", "  ")
	if err := os.WriteFile(strings.TrimSuffix(path, ".mp4")+".json", append(side, '\n'), 0o640); err != nil {
		return clip, fmt.Errorf("write clip sidecar: %w", err)
	}
	return clip, nil
}

// clipWriter serialises GOPs as fMP4 fragments.
type clipWriter struct {
	out    io.Writer
	params *paramSets
	seq    uint32
	base   int64 // DTS of the first frame
	frames int
	keys   int
	dur    int64
	size   int64
	first  time.Time
	last   time.Time
	lastD  int64                 // duration of the last sample written, for the final one
	buf    seekablebuffer.Buffer // reused: one fragment at a time
}

func (w *clipWriter) write(b []byte) error {
	n, err := w.out.Write(b)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("write clip: %w", err)
	}
	return nil
}

// gop writes one group of pictures; next is the frame after it (nil at
// the end), which gives the last sample its duration.
func (w *clipWriter) gop(aus []*accessUnit, next *accessUnit) error {
	if len(aus) == 0 {
		return nil
	}
	if w.params == nil {
		w.params = aus[0].params
		w.base = aus[0].dts
		w.first = aus[0].at
		init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: 90000, Codec: codecOf(w.params)}}}
		w.buf.Reset()
		if err := init.Marshal(&w.buf); err != nil {
			return fmt.Errorf("write clip header: %w", err)
		}
		if err := w.write(w.buf.Bytes()); err != nil {
			return err
		}
	}
	samples := make([]*fmp4.PartSample, len(aus))
	for i, a := range aus {
		var d int64
		switch {
		case i+1 < len(aus):
			d = aus[i+1].dts - a.dts
		case next != nil:
			d = next.dts - a.dts
		default:
			d = w.lastD
		}
		if d <= 0 || d > 10*90000 {
			d = 3600 // 25 fps; timestamps that jump are not worth a broken clip
		}
		w.lastD = d
		samples[i] = &fmp4.PartSample{
			Duration: uint32(d), PTSOffset: int32(a.pts - a.dts), IsNonSyncSample: !a.key, Payload: a.data,
		}
		w.dur += d
		w.frames++
		if a.key {
			w.keys++
		}
		w.last = a.at
	}
	w.seq++
	part := fmp4.Part{SequenceNumber: w.seq, Tracks: []*fmp4.PartTrack{{ID: 1, BaseTime: uint64(aus[0].dts - w.base), Samples: samples}}}
	w.buf.Reset()
	if err := part.Marshal(&w.buf); err != nil {
		return fmt.Errorf("write clip fragment: %w", err)
	}
	return w.write(w.buf.Bytes())
}

func codecOf(p *paramSets) fmp4.Codec {
	if p.codec == "h265" {
		return &fmp4.CodecH265{VPS: p.vps, SPS: p.sps, PPS: p.pps}
	}
	return &fmp4.CodecH264{SPS: p.sps, PPS: p.pps}
}

// sweep deletes clips past retention, then the oldest until the camera's
// folder is within quota. Clips being written (.tmp) are left alone.
func (s *clipStore) sweep(now time.Time) (deleted int, err error) {
	type file struct {
		path string
		size int64
		mod  time.Time
	}
	var files []file
	var total int64
	walkErr := filepath.WalkDir(s.dir(), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".mp4") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		files = append(files, file{p, info.Size(), info.ModTime()})
		total += info.Size()
		return nil
	})
	sort.Slice(files, func(i, j int) bool { return files[i].mod.Before(files[j].mod) })
	for _, f := range files {
		if now.Sub(f.mod) <= s.retention && total <= s.quota {
			break
		}
		if err := os.Remove(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return deleted, fmt.Errorf("delete old clip: %w", err)
		}
		os.Remove(strings.TrimSuffix(f.path, ".mp4") + ".json")
		total -= f.size
		deleted++
	}
	// Empty day folders go too.
	days, _ := os.ReadDir(s.dir())
	for _, d := range days {
		if d.IsDir() {
			os.Remove(filepath.Join(s.dir(), d.Name())) // fails unless empty
		}
	}
	if walkErr != nil {
		return deleted, fmt.Errorf("list clips: %w", walkErr)
	}
	return deleted, nil
}

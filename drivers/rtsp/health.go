package rtsp

import (
	"sync/atomic"
	"time"
)

// Session states shown in Health.
const (
	StateConnecting = "connecting"
	StateOnline     = "online"
	StateOffline    = "offline"
)

// Health is a snapshot of one camera's stream, for the status page and
// the probe. URL is redacted; LastError is scrubbed of credentials.
type Health struct {
	Device        string    `json:"device"`
	Kind          string    `json:"kind"`
	URL           string    `json:"url"`
	State         string    `json:"state"`
	Since         time.Time `json:"since,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	Reconnects    uint64    `json:"reconnects"`
	Transport     string    `json:"transport,omitempty"`
	Codec         string    `json:"codec,omitempty"`
	Width         int       `json:"width,omitempty"`
	Height        int       `json:"height,omitempty"`
	Metadata      bool      `json:"metadata"`
	PacketsPerSec float64   `json:"packets_per_s"`
	BitrateBps    float64   `json:"bitrate_bps"`
	FPS           float64   `json:"fps"`
	LastKeyframe  time.Time `json:"last_keyframe,omitzero"`
	VideoLost     bool      `json:"video_lost"`
	RTPLost       uint64    `json:"rtp_lost"`
	// Metadata documents parsed, and dropped (lost packets, overflow).
	MetadataDocs    uint64   `json:"metadata_docs"`
	MetadataDropped uint64   `json:"metadata_dropped"`
	Topics          []string `json:"topics,omitempty"`
	// Ring buffer (pre-roll) held in memory.
	BufferFrames  int     `json:"buffer_frames"`
	BufferBytes   int64   `json:"buffer_bytes"`
	BufferSeconds float64 `json:"buffer_s"`
	Clips         uint64  `json:"clips"`
	ClipErrors    uint64  `json:"clip_errors"`
}

// SinceKeyframe is how long ago the last keyframe arrived (0 if none).
func (h Health) SinceKeyframe(now time.Time) time.Duration {
	if h.LastKeyframe.IsZero() {
		return 0
	}
	return now.Sub(h.LastKeyframe)
}

// Health returns the camera's current health snapshot. It is safe to call
// from any goroutine.
func (c *Camera) Health() Health {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	h := c.snap
	h.Topics = append([]string(nil), h.Topics...)
	h.Clips, h.ClipErrors = c.h.clips.Load(), c.h.clipErrors.Load()
	return h
}

func (c *Camera) setHealth(f func(*Health)) {
	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	f(&c.snap)
}

// healthCounters are updated by the RTSP reader goroutine.
type healthCounters struct {
	videoPackets, videoBytes, frames atomic.Uint64
	metaPackets, metaDocs            atomic.Uint64
	metaDropped, metaOverflow        atomic.Uint64
	metaErrors                       atomic.Uint64
	lost, decodeErrors               atomic.Uint64
	attempts                         atomic.Uint64
	clips, clipErrors                atomic.Uint64
	lastVideo, lastKey               atomic.Int64 // unix ns
}

// rateWindow turns counters into per-second rates over the last window.
type rateWindow struct {
	at                   time.Time
	packets, bytes, frms uint64
	pps, bps, fps        float64
}

func (r *rateWindow) update(now time.Time, h *healthCounters) {
	p, b, f := h.videoPackets.Load()+h.metaPackets.Load(), h.videoBytes.Load(), h.frames.Load()
	if !r.at.IsZero() {
		if dt := now.Sub(r.at).Seconds(); dt >= 0.9 {
			r.pps = round1(float64(p-r.packets) / dt)
			r.bps = float64(int64(float64(b-r.bytes) * 8 / dt))
			r.fps = round1(float64(f-r.frms) / dt)
		} else {
			return // keep the window about a second long
		}
	}
	r.at, r.packets, r.bytes, r.frms = now, p, b, f
}

package rtsp

import (
	"sync"
	"sync/atomic"
	"time"
)

// accessUnit is one encoded video frame as kept in memory: its NAL units
// in AVCC form (4-byte lengths), without parameter sets, delimiters and
// filler, which a clip carries in its header instead.
type accessUnit struct {
	pts, dts int64 // 90 kHz, from the session start
	at       time.Time
	key      bool // IDR (H.264) or IRAP (H.265)
	data     []byte
	params   *paramSets // parameter sets in force for this frame
}

// auOverhead approximates the bookkeeping bytes of one access unit (the
// struct, its pointer in the ring, the slice header) for the memory caps.
const auOverhead = 96

func (a *accessUnit) cost() int64 { return int64(len(a.data)) + auOverhead }

// paramSets are a stream's VPS/SPS/PPS. They are replaced, never mutated,
// so access units can share them.
type paramSets struct {
	codec         string // "h264" or "h265"
	vps, sps, pps []byte
	width, height int
}

// Budget is the memory shared by the ring buffers of all cameras. It is
// safe for concurrent use.
type Budget struct {
	Limit int64
	used  atomic.Int64
}

// Used is the number of bytes the rings hold.
func (b *Budget) Used() int64 { return b.used.Load() }

// ring holds the last pre-roll of a camera's video, always starting at a
// keyframe, within a memory cap. It feeds the captures of clips being cut.
//
// Trimming drops whole groups of pictures from the front: a clip must
// start on a keyframe or a player shows garbage until the next one.
type ring struct {
	preRoll time.Duration
	max     int64
	budget  *Budget

	mu       sync.Mutex
	aus      []*accessUnit
	bytes    int64
	captures map[*capture]struct{}
	// overflow counts frames dropped because one GOP alone exceeded the cap
	// (the ring then waits for the next keyframe).
	overflow uint64
}

func newRing(preRoll time.Duration, max int64, budget *Budget) *ring {
	return &ring{preRoll: preRoll, max: max, budget: budget, captures: map[*capture]struct{}{}}
}

// push adds a frame. A frame that is not a keyframe is dropped while the
// ring is empty, since it could not be decoded.
func (r *ring) push(a *accessUnit) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.captures {
		if !c.offer(a) {
			delete(r.captures, c)
		}
	}
	if len(r.aus) == 0 && !a.key {
		r.overflow++
		return
	}
	r.aus = append(r.aus, a)
	r.bytes += a.cost()
	r.budget.used.Add(a.cost())
	// Time: drop the oldest GOP while the next one still covers the pre-roll.
	for {
		next := r.nextKey()
		if next < 0 || a.at.Sub(r.aus[next].at) < r.preRoll {
			break
		}
		r.dropFront(next)
	}
	// Memory: drop GOPs from the front while over this camera's cap or the
	// shared one; the camera that adds pays, which keeps the shares fair.
	for r.bytes > r.max || (r.budget.Limit > 0 && r.budget.used.Load() > r.budget.Limit) {
		next := r.nextKey()
		if next < 0 {
			// One GOP larger than the cap: give it up and wait for a
			// keyframe rather than keep an undecodable tail.
			r.overflow += uint64(len(r.aus))
			r.dropFront(len(r.aus))
			break
		}
		r.dropFront(next)
	}
}

// nextKey returns the index of the second keyframe, or -1.
func (r *ring) nextKey() int {
	for i := 1; i < len(r.aus); i++ {
		if r.aus[i].key {
			return i
		}
	}
	return -1
}

func (r *ring) dropFront(n int) {
	var freed int64
	for _, a := range r.aus[:n] {
		freed += a.cost()
	}
	clear(r.aus[:n])
	r.aus = r.aus[n:]
	if cap(r.aus) > 4*len(r.aus)+64 {
		r.aus = append([]*accessUnit(nil), r.aus...)
	}
	r.bytes -= freed
	r.budget.used.Add(-freed)
}

// reset empties the ring because a new session restarts timestamps. Clips
// being cut end here (truncated): frames of two sessions cannot share one
// timeline.
func (r *ring) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropFront(len(r.aus))
	for c := range r.captures {
		c.truncated = true
		close(c.ch)
		delete(r.captures, c)
	}
}

// stats reports the frames, bytes and seconds held.
func (r *ring) stats() (frames int, bytes int64, span time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.aus) > 0 {
		span = r.aus[len(r.aus)-1].at.Sub(r.aus[0].at)
	}
	return len(r.aus), r.bytes, span
}

// capture starts cutting a clip: it gets the pre-roll now and every new
// frame until it returns false from offer.
func (r *ring) capture(until time.Time, queue int) *capture {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := &capture{until: until, ch: make(chan *accessUnit, queue), pre: append([]*accessUnit(nil), r.aus...)}
	r.captures[c] = struct{}{}
	return c
}

// cancel detaches a capture (its writer gave up or finished).
func (r *ring) cancel(c *capture) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.captures[c]; ok {
		delete(r.captures, c)
		close(c.ch)
	}
}

// capture is a clip being cut: the pre-roll, then frames up to until.
type capture struct {
	until     time.Time
	pre       []*accessUnit
	ch        chan *accessUnit // closed when the post-roll is complete
	truncated bool             // frames were lost: the clip ends early
}

// offer hands a frame to the capture; false means it is complete (the
// channel is closed). Called with the ring locked.
func (c *capture) offer(a *accessUnit) bool {
	if !a.at.Before(c.until) {
		close(c.ch)
		return false
	}
	select {
	case c.ch <- a:
		return true
	default:
		// The writer cannot keep up (slow disk): end the clip here rather
		// than leave a hole that breaks decoding.
		c.truncated = true
		close(c.ch)
		return false
	}
}

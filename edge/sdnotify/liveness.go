package sdnotify

import (
	"sort"
	"sync"
	"time"
)

// Liveness records when each critical loop last made progress. It is safe
// for concurrent use; Beat is cheap enough to call on every iteration.
//
// A loop's contract: Register once before its first iteration, Beat on
// every iteration (failed ones too: an offline device is not a hung loop,
// so beat while backing off as well), Unregister when it returns. The
// deadline must exceed the longest wait the loop can legitimately make
// between two beats (poll interval + I/O timeout + backoff cap).
type Liveness struct {
	mu    sync.Mutex
	loops map[string]*loop
	now   func() time.Time // time.Now; tests replace it
}

type loop struct {
	deadline time.Duration
	last     time.Time
}

// NewLiveness returns an empty registry.
func NewLiveness() *Liveness {
	return &Liveness{loops: map[string]*loop{}, now: time.Now}
}

// Register starts watching the loop name with the given deadline, or
// changes the deadline of one already watched. It counts as a beat, so a
// loop is not stale before its first iteration. Names are per instance:
// "poll/bus-1", not "poll".
func (l *Liveness) Register(name string, deadline time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.loops[name] = &loop{deadline: deadline, last: l.now()}
}

// Beat records progress of the loop name. A name never registered is
// ignored: only registered loops are watched, and a stray Beat must not
// grow the registry.
func (l *Liveness) Beat(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lp, ok := l.loops[name]; ok {
		lp.last = l.now()
	}
}

// Unregister stops watching name, for a loop that ended normally, so a
// clean stop is not mistaken for a hang.
func (l *Liveness) Unregister(name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.loops, name)
}

// Names lists the watched loops, sorted.
func (l *Liveness) Names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.loops))
	for n := range l.loops {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// StaleLoop is a loop that missed its deadline.
type StaleLoop struct {
	Name     string
	Silent   time.Duration // since its last beat
	Deadline time.Duration
}

// Stale returns the loops whose last beat is older than their deadline,
// sorted by name; empty means the daemon is alive. Ages use the monotonic
// clock, so a wall-clock step (no RTC, NTP arriving late) changes nothing.
func (l *Liveness) Stale() []StaleLoop {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var out []StaleLoop
	for n, lp := range l.loops {
		if age := now.Sub(lp.last); age > lp.deadline {
			out = append(out, StaleLoop{Name: n, Silent: age, Deadline: lp.deadline})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Default is the process's registry. The loops that matter (device polls,
// the store writer, the uplink) live in packages that share no handle
// with the daemon's wiring, so they beat here through the package-level
// functions; tests wanting isolation use NewLiveness.
var Default = NewLiveness()

// Register watches a loop in [Default]; see [Liveness.Register].
func Register(name string, deadline time.Duration) { Default.Register(name, deadline) }

// Beat records progress of a loop in [Default]; see [Liveness.Beat].
func Beat(name string) { Default.Beat(name) }

// Unregister stops watching a loop in [Default]; see [Liveness.Unregister].
func Unregister(name string) { Default.Unregister(name) }

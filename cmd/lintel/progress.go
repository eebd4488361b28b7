package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/store"
)

// Long operations show progress (issue 9). This file holds the daemon's
// backlog-drain log and the small terminal helpers the CLI's long
// commands (probe modbus, probe serial, receive) share.

func init() {
	services = append(services, serviceFactory{name: "progress", order: 50, new: newBacklogProgress})
}

// Backlog logging: a sink's backlog is worth a line once it is big enough
// that draining it takes a while (after an uplink outage), and not more
// than once per backlogLogEvery so a long drain does not flood journald.
const (
	backlogSample   = 5 * time.Second
	backlogLogEvery = 15 * time.Second
	backlogMin      = 1000 // events: below this a sink is simply keeping up
)

// backlogProgress logs, while a sink drains a backlog, how many events
// are left, the rate it acks them and when it should be done.
type backlogProgress struct {
	st       interface{ Stats() store.Stats }
	sinks    []string
	log      *slog.Logger
	sample   time.Duration
	logEvery time.Duration
	min      uint64
	now      func() time.Time
}

func newBacklogProgress(env edge.Env, gw *gateway) (edge.Component, error) {
	if len(env.Config.Sinks) == 0 {
		return nil, nil
	}
	sinks := make([]string, 0, len(env.Config.Sinks))
	for name := range env.Config.Sinks {
		sinks = append(sinks, name)
	}
	sort.Strings(sinks)
	return &backlogProgress{st: gw.store, sinks: sinks, log: env.Logger.With("component", "progress"),
		sample: backlogSample, logEvery: backlogLogEvery, min: backlogMin, now: time.Now}, nil
}

type sinkDrain struct {
	draining  bool // a backlog ≥ min was seen and not yet drained
	startAt   time.Time
	startLeft uint64
	// peakLeft and peakAt: the largest backlog seen in this drain and
	// when. A backlog that grew through an outage drains from its peak.
	peakLeft uint64
	peakAt   time.Time
	prevAt   time.Time
	prevCur  uint64
	rate     float64 // acked events/s, smoothed
	loggedAt time.Time
}

func (p *backlogProgress) Run(ctx context.Context) error {
	t := time.NewTicker(p.sample)
	defer t.Stop()
	state := make(map[string]*sinkDrain, len(p.sinks))
	for _, s := range p.sinks {
		state[s] = &sinkDrain{}
	}
	for {
		p.step(state)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// step samples the store once and logs what changed.
func (p *backlogProgress) step(state map[string]*sinkDrain) {
	now := p.now()
	st := p.st.Stats()
	for _, name := range p.sinks {
		ss, ok := st.Sinks[name]
		if !ok {
			continue
		}
		d := state[name]
		left := ss.Backlog
		if !d.prevAt.IsZero() && now.After(d.prevAt) && ss.Cursor >= d.prevCur {
			r := float64(ss.Cursor-d.prevCur) / now.Sub(d.prevAt).Seconds()
			if d.rate == 0 {
				d.rate = r
			} else {
				d.rate = 0.5*d.rate + 0.5*r
			}
		}
		if d.draining && left >= d.peakLeft {
			d.peakLeft, d.peakAt = left, now
		}
		switch {
		case !d.draining && left >= p.min:
			d.draining, d.startAt, d.startLeft, d.loggedAt = true, now, left, now
			d.peakLeft, d.peakAt = left, now
			p.log.Info("sink backlog to drain", "sink", name, "events_left", left,
				"oldest_age", ss.OldestUnackedAge.Round(time.Second).String())
		case d.draining && left < p.min:
			d.draining = false
			p.log.Info("sink backlog drained", "sink", name, "events_left", left,
				"took", now.Sub(d.startAt).Round(time.Second).String())
		case d.draining && now.Sub(d.loggedAt) >= p.logEvery:
			d.loggedAt = now
			args := []any{"sink", name, "events_left", left, "acked_per_s", int64(d.rate + 0.5)}
			// Net drain since the backlog's peak: acks minus what arrived
			// meanwhile, so the ETA holds while producers go on, and a
			// backlog that grew through an outage is judged from its top.
			elapsed := now.Sub(d.peakAt).Seconds()
			if net := (float64(d.peakLeft) - float64(left)) / elapsed; elapsed > 0 && net > 0 {
				args = append(args, "eta", (time.Duration(float64(left)/net) * time.Second).Round(time.Second).String())
			} else {
				args = append(args, "eta", "unknown: not shrinking")
			}
			p.log.Info("sink backlog draining", args...)
		}
		d.prevAt, d.prevCur = now, ss.Cursor
	}
}

// isTerminal reports whether w is a character device (a person watching):
// progress is then one line rewritten in place, else periodic lines.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressLine prints a long operation's progress: rewritten in place on
// a terminal, at most once per every otherwise (logs, pipes, tests).
type progressLine struct {
	mu    sync.Mutex
	w     io.Writer
	live  bool
	every time.Duration
	last  time.Time
	shown bool
}

func newProgressLine(w io.Writer, every time.Duration) *progressLine {
	return &progressLine{w: w, live: isTerminal(w), every: every, last: time.Now()}
}

// update shows text now on a terminal, or when every has passed since the
// last periodic line.
func (p *progressLine) update(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.live {
		fmt.Fprintf(p.w, "\r%s\033[K", text)
		p.shown = true
		return
	}
	if now.Sub(p.last) >= p.every {
		p.last = now
		fmt.Fprintln(p.w, text)
	}
}

// clear removes the live line before other output.
func (p *progressLine) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live && p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// eta estimates the time left from the work done so far.
func eta(elapsed time.Duration, done, total int) string {
	if done <= 0 || total <= done {
		return "—"
	}
	left := time.Duration(float64(elapsed) / float64(done) * float64(total-done))
	return left.Round(time.Second).String()
}

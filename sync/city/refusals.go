package city

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
)

// refusalAudit turns refused commands into command.refused events, at
// most Burst at once and one per Every after that for each reason, so a
// flood of junk on the command topic cannot fill the log, and a flood of
// one kind (malformed, busy) cannot hide a refusal of another (a replay). What the bucket suppresses is
// counted by reason and reported by one summary event (data.reason
// "suppressed") per Summary interval. Recording never blocks the command
// path: events wait in a small queue, and a full queue counts as
// suppressed too.
type refusalAudit struct {
	emit    edge.Emitter
	log     *slog.Logger
	topic   string
	burst   float64
	every   time.Duration
	summary time.Duration

	mu         sync.Mutex
	buckets    map[string]*bucket
	suppressed map[string]uint64
	since      time.Time

	q chan *event.Event

	Recorded   atomic.Uint64 // events queued
	Suppressed atomic.Uint64 // refusals only counted
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRefusalAudit(emit edge.Emitter, log *slog.Logger, topic string, o RefusalOptions) *refusalAudit {
	return &refusalAudit{
		emit: emit, log: log, topic: topic,
		burst: float64(o.Burst), every: o.Every.Std(), summary: o.Summary.Std(),
		buckets: map[string]*bucket{}, suppressed: map[string]uint64{},
		q: make(chan *event.Event, 64),
	}
}

// refuse records one refusal; safe from any goroutine, never blocks.
func (a *refusalAudit) refuse(r *Refusal, retained bool) {
	now := time.Now()
	a.mu.Lock()
	b := a.buckets[r.Reason]
	if b == nil {
		if len(a.buckets) >= 64 { // reasons are a fixed set; this is a guard
			clear(a.buckets)
		}
		b = &bucket{tokens: a.burst, last: now}
		a.buckets[r.Reason] = b
	}
	b.tokens = min(a.burst, b.tokens+float64(now.Sub(b.last))/float64(a.every))
	b.last = now
	take := b.tokens >= 1
	if take {
		b.tokens--
	}
	a.mu.Unlock()
	if !take || a.emit == nil {
		a.count(r.Reason, now)
		return
	}
	data := map[string]any{"reason": r.Reason, "topic": a.topic, "via": "mqtt"}
	if r.Detail != "" {
		data["detail"] = trim(r.Detail)
	}
	for k, v := range map[string]string{"id": r.ID, "command": r.Command, "claimed_actor": r.Actor, "key_id": r.KeyID} {
		if v != "" {
			data[k] = v
		}
	}
	if retained {
		data["retained"] = true
	}
	ev := event.New(event.CommandRefused).WithData(data)
	select {
	case a.q <- ev:
		a.Recorded.Add(1)
		a.log.Warn("downlink command refused", "reason", r.Reason, "detail", r.Detail, "id", r.ID, "command", r.Command, "key_id", r.KeyID)
	default:
		a.count(r.Reason, now)
	}
}

func (a *refusalAudit) count(reason string, now time.Time) {
	a.Suppressed.Add(1)
	a.mu.Lock()
	if len(a.suppressed) == 0 {
		a.since = now
	}
	a.suppressed[reason]++
	a.mu.Unlock()
}

// run writes the queued events and the summaries until ctx ends; the last
// summary is written on the way out.
func (a *refusalAudit) run(ctx context.Context) {
	t := time.NewTicker(a.summary)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		drain:
			for {
				select {
				case ev := <-a.q:
					a.write(fctx, ev)
				default:
					break drain
				}
			}
			a.flushSummary(fctx)
			cancel()
			return
		case ev := <-a.q:
			a.write(ctx, ev)
		case <-t.C:
			a.flushSummary(ctx)
		}
	}
}

func (a *refusalAudit) write(ctx context.Context, ev *event.Event) {
	if a.emit == nil {
		return
	}
	if err := a.emit.Emit(ctx, ev); err != nil && ctx.Err() == nil {
		a.log.Error("command.refused audit event not recorded", "err", err)
	}
}

func (a *refusalAudit) flushSummary(ctx context.Context) {
	a.mu.Lock()
	if len(a.suppressed) == 0 {
		a.mu.Unlock()
		return
	}
	by := maps.Clone(a.suppressed)
	since := a.since
	clear(a.suppressed)
	a.mu.Unlock()
	var n uint64
	counts := map[string]any{}
	for k, v := range by {
		n += v
		counts[k] = v
	}
	a.log.Warn("downlink commands refused without an event each (rate limit)", "count", n, "by_reason", by)
	if a.emit == nil {
		return
	}
	ev := event.New(event.CommandRefused).WithData(map[string]any{
		"reason": "suppressed", "topic": a.topic, "via": "mqtt", "count": n, "by_reason": counts,
		"window_s": int64(time.Since(since).Seconds()) + 1,
	})
	a.write(ctx, ev)
}

package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
)

// State namespaces in the store.
const (
	nsMeta  = "rules"
	keyMeta = "meta"
	nsElder = "rules.elder"
	// nsHabits holds each elder's learned habits (learn.go), written
	// hourly and at shutdown: they change slowly, and losing an hour of
	// learning at a crash costs nothing.
	nsHabits    = "rules.habits"
	habitsEvery = time.Hour
)

// CheckpointHabits returns the learned habits changed since the last
// call, by household.
func (e *Engine) CheckpointHabits() (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, el := range e.list {
		if !el.hb.dirty {
			continue
		}
		b, err := json.Marshal(el.hb)
		if err != nil {
			return nil, fmt.Errorf("encode habits of %s: %w", el.cfg.Household, err)
		}
		out[el.cfg.Household] = b
		el.hb.dirty = false
	}
	return out, nil
}

// RestoreHabits loads persisted habits; unreadable ones are reported and
// the elder learns afresh (the configured limits apply meanwhile).
func (e *Engine) RestoreHabits(vals map[string][]byte) []string {
	var warn []string
	keys := make([]string, 0, len(vals))
	for k := range vals {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, h := range keys {
		el := e.elders[h]
		if el == nil {
			continue
		}
		hb := &habits{}
		if err := json.Unmarshal(vals[h], hb); err != nil {
			warn = append(warn, "habits of household "+h+" ignored: "+err.Error())
			continue
		}
		el.hb = hb
	}
	return warn
}

// Checkpoint returns the state to persist: the engine-wide value and the
// value of every elder changed since the last checkpoint. It clears the
// change marks; call it only when you will store the result.
func (e *Engine) Checkpoint() (meta []byte, elders map[string][]byte, err error) {
	elders = map[string][]byte{}
	for el := range e.dirty {
		b, err := json.Marshal(el.st)
		if err != nil {
			return nil, nil, fmt.Errorf("encode state of %s: %w", el.cfg.Household, err)
		}
		elders[el.cfg.Household] = b
	}
	m := e.meta
	m.Now = e.now
	meta, err = json.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encode rules state: %w", err)
	}
	clear(e.dirty)
	e.urgent, e.metaDirty = false, false
	return meta, elders, nil
}

// Restore loads persisted state. Values of another version, or of elders
// no longer configured, are skipped and reported; a skipped elder starts
// afresh.
func (e *Engine) Restore(meta []byte, elders map[string][]byte) []string {
	var warn []string
	if len(meta) > 0 {
		var m metaState
		if err := json.Unmarshal(meta, &m); err != nil || m.V != stateVersion {
			warn = append(warn, "rules state ignored: unreadable or another version")
		} else {
			e.meta = m
			if m.Now.After(e.now) {
				e.now = m.Now
			}
		}
	}
	keys := make([]string, 0, len(elders))
	for k := range elders {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, h := range keys {
		el := e.elders[h]
		if el == nil {
			warn = append(warn, "state of unmonitored household "+h+" ignored")
			continue
		}
		st := newElderState()
		if err := json.Unmarshal(elders[h], st); err != nil || st.V != stateVersion {
			warn = append(warn, "state of household "+h+" ignored: unreadable or another version")
			continue
		}
		st.fixMaps()
		for _, d := range el.cfg.Sensors {
			if st.Sensors[d] == nil {
				st.Sensors[d] = &sensorState{Role: el.cfg.Roles[d]}
			}
		}
		el.st = st
		el.problems = true // recomputed at the first evaluation
	}
	if e.now.IsZero() {
		// Nothing restored: start from the clock, not from year 1 (every
		// hourly timer since then would fire).
		e.now = e.clock.Now().UTC()
	}
	for _, el := range e.list {
		e.schedule(el, e.now)
	}
	e.out = nil // evaluating at restore time re-derives nothing new
	return warn
}

// Log is what the service needs of the event log (edge/store.Store).
type Log interface {
	ReadRange(after uint64, max int) ([]*event.Event, error)
	LastSeq() uint64
	Subscribe(buf int) (<-chan *event.Event, func())
}

// StateStore is what the service needs of the store's state buckets.
type StateStore interface {
	PutState(ctx context.Context, ns, key string, version uint32, val []byte) error
	GetState(ns, key string) (version uint32, val []byte, ok bool, err error)
	ListState(ns string) (map[string][]byte, error)
}

// ServiceOptions configures a [Service].
type ServiceOptions struct {
	Settings *Settings
	Log      Log
	State    StateStore
	Emit     edge.Emitter
	Logger   *slog.Logger
	Clock    Clock // default: the system clock
	// Cursor, when set and the log can Ack (edge/store), is the sink
	// name under which the engine acknowledges what it has checkpointed,
	// so the store keeps events until the rules have seen them. The store
	// must list it among its sinks; if it does not, acking is dropped
	// after one warning.
	Cursor string
	// CheckpointEvery bounds how stale the persisted state may be when
	// nothing urgent happened (default 10s). Alert lifecycle changes are
	// persisted at once.
	CheckpointEvery time.Duration
}

// Service runs the engine inside the gateway: it catches up with the log
// from its last checkpoint, follows the live log, fires timers on the
// clock, appends derived events, persists state and serves commands.
type Service struct {
	o      ServiceOptions
	log    *slog.Logger
	mu     sync.Mutex
	e      *Engine
	lastCP time.Time
	// lastHabits is when learned habits were last written.
	lastHabits time.Time
	acked      uint64
	noAck      bool
}

type acker interface {
	Ack(ctx context.Context, sink string, seq uint64) error
}

// NewService returns a service; Run starts it.
func NewService(o ServiceOptions) (*Service, error) {
	if o.Settings == nil || o.Log == nil || o.State == nil || o.Emit == nil || o.Logger == nil {
		return nil, errors.New("rules service: settings, log, state, emitter and logger are required")
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = 10 * time.Second
	}
	return &Service{o: o, log: o.Logger, e: NewEngine(o.Settings, o.Clock)}, nil
}

const readPage = 1000

// Run implements edge.Component.
func (s *Service) Run(ctx context.Context) error {
	_, meta, fresh, err := s.o.State.GetState(nsMeta, keyMeta)
	if err != nil {
		return fmt.Errorf("read rules state: %w", err)
	}
	fresh = !fresh
	elders, err := s.o.State.ListState(nsElder)
	if err != nil {
		return fmt.Errorf("read rules state: %w", err)
	}
	habitVals, err := s.o.State.ListState(nsHabits)
	if err != nil {
		return fmt.Errorf("read rules state: %w", err)
	}
	sub, cancel := s.o.Log.Subscribe(4096)
	defer cancel()

	s.mu.Lock()
	for _, w := range s.e.RestoreHabits(habitVals) {
		s.log.Warn("rules state", "problem", w)
	}
	for _, w := range s.e.Restore(meta, elders) {
		s.log.Warn("rules state", "problem", w)
	}
	if fresh {
		// Nothing to resume: start from now rather than raise alerts
		// about the past.
		s.e.meta.Seq = s.o.Log.LastSeq()
		s.e.Advance(s.o.Clock.Now())
	}
	s.mu.Unlock()
	if err := s.catchUp(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	s.log.Info("rules running", "elders", len(s.o.Settings.Elders), "seq", s.e.Seq(), "fresh", fresh)
	if err := s.flush(ctx, true); err != nil {
		if ctx.Err() != nil {
			s.final(ctx)
			return nil
		}
		return err
	}

	for {
		s.mu.Lock()
		wait := 5 * time.Minute
		if d := s.e.NextDue(); !d.IsZero() {
			wait = min(wait, max(d.Sub(s.o.Clock.Now()), 50*time.Millisecond))
		}
		s.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			s.final(ctx)
			return nil
		case ev, ok := <-sub:
			t.Stop()
			if !ok {
				return nil // the store closed
			}
			if err := s.take(ctx, ev); err != nil {
				if ctx.Err() != nil { // cancellation is not an error
					s.final(ctx)
					return nil
				}
				return err
			}
			// Take what else is queued before writing anything.
			for more := true; more; {
				select {
				case ev, ok := <-sub:
					if !ok {
						return nil
					}
					if err := s.take(ctx, ev); err != nil {
						if ctx.Err() != nil {
							s.final(ctx)
							return nil
						}
						return err
					}
				default:
					more = false
				}
			}
			s.mu.Lock()
			s.e.Tick()
			s.mu.Unlock()
		case <-t.C:
			s.mu.Lock()
			s.e.Tick()
			s.mu.Unlock()
		}
		if err := s.flush(ctx, false); err != nil {
			if ctx.Err() != nil {
				s.final(ctx)
				return nil
			}
			return err
		}
	}
}

// final writes the last derived events and checkpoint at shutdown, on a
// short budget of its own (ctx is already cancelled).
func (s *Service) final(ctx context.Context) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.flush(fctx, true); err != nil {
		s.log.Warn("final rules checkpoint", "err", err)
	}
}

// take processes one live event, reading the log for any it missed (the
// subscription drops events for a slow reader).
func (s *Service) take(ctx context.Context, ev *event.Event) error {
	s.mu.Lock()
	seq := s.e.Seq()
	s.mu.Unlock()
	switch {
	case ev.Seq <= seq:
		return nil
	case ev.Seq > seq+1:
		return s.catchUp(ctx)
	}
	s.mu.Lock()
	s.e.Process(ev)
	s.mu.Unlock()
	return nil
}

// catchUp reads the log from the engine's position to its end. Derived
// events already in that stretch (emitted before a crash, after the last
// checkpoint) are not emitted again when re-derived.
func (s *Service) catchUp(ctx context.Context) error {
	s.mu.Lock()
	from := s.e.Seq()
	s.mu.Unlock()
	end := s.o.Log.LastSeq()
	if end <= from {
		return nil
	}
	seen := map[string]bool{}
	var evs []*event.Event
	for after := from; after < end; {
		page, err := s.o.Log.ReadRange(after, readPage)
		if err != nil {
			return fmt.Errorf("read event log after %d: %w", after, err)
		}
		if len(page) == 0 {
			break
		}
		for _, ev := range page {
			if isDerived(ev.Kind) {
				var d struct {
					AlertID string `json:"alert_id"`
				}
				_ = json.Unmarshal(ev.Data, &d)
				seen[dedupKey(ev.Kind, ev.Household, ev.Time.UTC().Truncate(time.Millisecond), d.AlertID)] = true
			}
		}
		evs = append(evs, page...)
		after = page[len(page)-1].Seq
		if err := ctx.Err(); err != nil {
			return nil
		}
	}
	s.mu.Lock()
	s.e.suppress = seen
	for _, ev := range evs {
		s.e.Process(ev)
	}
	s.e.suppress = nil
	s.e.Tick()
	s.mu.Unlock()
	return nil
}

func isDerived(k event.Kind) bool {
	switch k {
	case event.ElderAlertRaised, event.ElderAlertEscalated, event.ElderAlertResolved, event.ElderNoData,
		event.ElderHint, event.ElderModeChanged, event.ElderPresence:
		return true
	}
	return false
}

// flush appends derived events and persists state when due.
func (s *Service) flush(ctx context.Context, force bool) error {
	s.mu.Lock()
	out := s.e.Drain()
	s.mu.Unlock()
	if len(out) > 0 {
		if err := s.o.Emit.Emit(ctx, out...); err != nil {
			return fmt.Errorf("record derived events: %w", err)
		}
		for _, ev := range out {
			if ev.Kind == event.ElderAlertRaised || ev.Kind == event.ElderAlertEscalated {
				s.log.Info("elder alert", "kind", string(ev.Kind), "household", ev.Household, "seq", ev.Seq)
			}
		}
	}
	s.mu.Lock()
	due := force || s.e.urgent || (len(s.e.dirty) > 0 || s.e.metaDirty) && time.Since(s.lastCP) >= s.o.CheckpointEvery ||
		time.Since(s.lastCP) >= time.Minute
	if !due {
		s.mu.Unlock()
		return nil
	}
	meta, elders, err := s.e.Checkpoint()
	var habits map[string][]byte
	if err == nil && (force || time.Since(s.lastHabits) >= habitsEvery) {
		habits, err = s.e.CheckpointHabits()
		s.lastHabits = time.Now()
	}
	s.lastCP = time.Now()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	for h, b := range habits {
		if err := s.o.State.PutState(ctx, nsHabits, h, habitsVersion, b); err != nil {
			return fmt.Errorf("save learned habits: %w", err)
		}
	}
	return s.persist(ctx, meta, elders)
}

func (s *Service) persist(ctx context.Context, meta []byte, elders map[string][]byte) error {
	// Each put waits for a group commit; putting them concurrently lets
	// the store write them in one transaction.
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for h, b := range elders {
		wg.Go(func() {
			if err := s.o.State.PutState(ctx, nsElder, h, stateVersion, b); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("save rules state: %w", first)
	}
	// The engine-wide position goes last: elders carry their own
	// position, so a crash in between replays nothing twice.
	if err := s.o.State.PutState(ctx, nsMeta, keyMeta, stateVersion, meta); err != nil {
		return fmt.Errorf("save rules state: %w", err)
	}
	s.ack(ctx)
	return nil
}

// ack moves the engine's cursor in the store to the checkpointed
// position.
func (s *Service) ack(ctx context.Context) {
	a, ok := s.o.Log.(acker)
	if !ok || s.o.Cursor == "" || s.noAck {
		return
	}
	s.mu.Lock()
	seq := s.e.meta.Seq
	s.mu.Unlock()
	if seq <= s.acked {
		return
	}
	if err := a.Ack(ctx, s.o.Cursor, seq); err != nil {
		s.noAck = true
		s.log.Warn("rules cursor not kept by the store: events may be deleted before the rules see them after a restart",
			"sink", s.o.Cursor, "err", err)
		return
	}
	s.acked = seq
}

// Snapshot returns the elders' state for the status page.
func (s *Service) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.e.Snapshot()
}

// Ack acknowledges an alert: it records elder.alert.acknowledged, which
// stops escalation once the engine reads it back from the log.
func (s *Service) Ack(ctx context.Context, alertID, actor, where, note string) (*event.Event, error) {
	s.mu.Lock()
	ev, err := s.e.PrepareAck(alertID, actor, where, note)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return ev, s.o.Emit.Emit(ctx, ev)
}

// Resolve closes an alert with the outcome of the visit.
func (s *Service) Resolve(ctx context.Context, alertID, actor, outcome, reason, note string) (*event.Event, error) {
	s.mu.Lock()
	ev, err := s.e.PrepareResolve(alertID, actor, outcome, reason, note)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return ev, s.o.Emit.Emit(ctx, ev)
}

// SetMode puts an elder in a mode until a time (normal clears it).
func (s *Service) SetMode(ctx context.Context, household, mode string, until time.Time, actor, note string) (*event.Event, error) {
	s.mu.Lock()
	ev, err := s.e.PrepareMode(household, mode, until, actor, note)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return ev, s.o.Emit.Emit(ctx, ev)
}

// Now is the engine's current time.
func (s *Service) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return later(s.e.now, s.o.Clock.Now())
}

// ParseUntil reads a mode's end: an RFC 3339 time, or a number of hours
// from now ("4" or "4h").
func ParseUntil(now time.Time, until string, hours float64) (time.Time, error) {
	if until != "" {
		t, err := time.Parse(time.RFC3339, until)
		if err == nil {
			return t, nil
		}
		if d, derr := time.ParseDuration(until); derr == nil {
			return now.Add(d), nil
		}
		if h, herr := strconv.ParseFloat(until, 64); herr == nil {
			return now.Add(time.Duration(h * float64(time.Hour))), nil
		}
		return time.Time{}, fmt.Errorf("%w: until %q: want RFC 3339 (2026-12-01T18:00:00+08:00) or hours", ErrBadArgument, until)
	}
	if hours > 0 {
		return now.Add(time.Duration(hours * float64(time.Hour))), nil
	}
	return time.Time{}, nil
}

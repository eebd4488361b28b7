package status

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// tracker follows the event log and keeps what the pages derive from it:
// open alerts, device last-seen, household activity and modes, recent
// problems. It reads the log itself and uses the store subscription only
// as a wake-up, so a lossy subscription never loses state.
type tracker struct {
	logger *slog.Logger
	log    EventLog
	cfg    *config.Config
	onNew  func(evs []*event.Event, alertsChanged bool)

	mu          sync.RWMutex
	next        uint64 // last seq applied
	caughtUp    bool
	alerts      map[string]*Alert
	devices     map[string]*devState
	households  map[string]*hhState
	problems    []*event.Event // recent warnings and worse, newest last
	lastQuality event.TimeQuality
	lastTime    time.Time
	applied     uint64
	// quiet holds the seqs of alert.resolved events the default events
	// view leaves out: an alert that ended by itself (outcome cleared,
	// actor system) before anyone acknowledged it, or one whose raise
	// the page never saw. selfEnded maps such an alert's raising seq to
	// when it ended, for its one row.
	quiet     map[uint64]bool
	selfEnded map[uint64]time.Time
}

type devState struct {
	online    string
	lastSeen  time.Time
	lastEvent string
	batLow    bool
	tamper    bool
}

type hhState struct {
	presence     string
	lastActivity time.Time
	mode         string
	until        time.Time
}

const (
	maxProblems = 50
	maxQuiet    = 100000
)

func newTracker(log EventLog, cfg *config.Config, logger *slog.Logger) *tracker {
	return &tracker{log: log, logger: logger, cfg: cfg, alerts: map[string]*Alert{}, devices: map[string]*devState{}, households: map[string]*hhState{},
		quiet: map[uint64]bool{}, selfEnded: map[uint64]time.Time{}}
}

// run follows the log until ctx ends.
func (t *tracker) run(ctx context.Context) error {
	sub, cancel := t.log.Subscribe(256)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	failing := false
	for {
		// A read error is transient (store busy, closing): the page
		// retries on the next tick rather than stopping; it logs the
		// first failure and the recovery, not every tick.
		err := t.catchUp(ctx)
		switch {
		case err != nil && ctx.Err() == nil && !failing:
			failing = true
			t.logger.Error("status page cannot read the event log, retrying", "err", err)
		case err == nil && failing:
			failing = false
			t.logger.Info("status page reads the event log again")
		}
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-sub:
			if !ok {
				sub = nil
			}
			// Drain what is queued: one read covers them all.
			for drained := false; !drained && sub != nil; {
				select {
				case _, ok := <-sub:
					if !ok {
						sub = nil
					}
				default:
					drained = true
				}
			}
		case <-tick.C:
		}
	}
}

// catchUp applies every event after the last one applied.
func (t *tracker) catchUp(ctx context.Context) error {
	for ctx.Err() == nil {
		t.mu.RLock()
		after := t.next
		t.mu.RUnlock()
		evs, err := t.log.ReadRange(after, 512)
		if err != nil {
			return fmt.Errorf("read event log: %w", err)
		}
		if len(evs) == 0 {
			t.mu.Lock()
			t.caughtUp = true
			t.mu.Unlock()
			return nil
		}
		changed := t.apply(evs)
		if t.onNew != nil {
			t.onNew(evs, changed)
		}
	}
	return nil
}

func (t *tracker) ready() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.caughtUp
}

func dataString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			switch x := v.(type) {
			case string:
				return x
			default:
				return fmt.Sprint(x)
			}
		}
	}
	return ""
}

// apply folds events into the state and reports whether alerts changed.
func (t *tracker) apply(evs []*event.Event) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	changed := false
	for _, e := range evs {
		if e.Seq <= t.next && t.applied > 0 {
			continue
		}
		t.next = e.Seq
		t.applied++
		t.lastQuality, t.lastTime = e.TimeQuality, e.Time
		if e.Device != "" {
			d := t.devices[e.Device]
			if d == nil {
				d = &devState{online: "unknown"}
				t.devices[e.Device] = d
			}
			d.lastSeen, d.lastEvent = e.Time, string(e.Kind)
			switch e.Kind {
			case event.DeviceOffline, event.CameraOffline:
				d.online = "offline"
			case event.DeviceTamper, event.SensorTamper, event.CameraTamper:
				d.tamper = true
				d.online = "online"
			case event.SensorBatteryLow:
				d.batLow = true
				d.online = "online"
			default:
				// Any other event from a device proves it is reachable.
				d.online = "online"
			}
		}
		if e.Household != "" {
			h := t.hh(e.Household)
			if e.Kind != event.ElderModeChanged && !strings.HasPrefix(string(e.Kind), "elder.alert.") && e.Kind != event.CommandApplied {
				h.lastActivity = e.Time
			}
		}
		m, _ := e.DataMap()
		switch e.Kind {
		case event.ElderAlertRaised:
			id := dataString(m, "alert_id", "alert")
			if id == "" {
				id = e.ID
			}
			a := &Alert{ID: id, Seq: e.Seq, Type: dataString(m, "rule", "type", "alert_type"), Severity: e.Severity,
				ReasonZh: dataString(m, "reason_zh"), ReasonEn: dataString(m, "reason_en"),
				Household: e.Household, Device: e.Device, Raised: e.Time, State: "open", Evidence: e.Evidence}
			if e.Place != nil {
				a.Place = e.Place.String()
			}
			a.Why, a.Data = factsOf(m), m
			t.alerts[id] = a
			changed = true
		case event.ElderAlertEscalated:
			if a := t.alerts[dataString(m, "alert_id", "alert")]; a != nil {
				a.Escalated++
				changed = true
			}
		case event.ElderAlertAcknowledged:
			if a := t.alerts[dataString(m, "alert_id", "alert")]; a != nil {
				a.State, a.AckBy, a.AckAt = "acknowledged", dataString(m, "actor", "by"), e.Time
				changed = true
			}
		case event.ElderAlertResolved:
			a := t.alerts[dataString(m, "alert_id", "alert")]
			if dataString(m, "outcome") == "cleared" && dataString(m, "actor", "by") == "system" {
				switch {
				case a == nil:
					t.quiet[e.Seq] = true
				case a.State == "open" && a.AckBy == "":
					t.quiet[e.Seq] = true
					t.selfEnded[a.Seq] = e.Time
				}
			}
			if a != nil {
				a.State, a.Resolved = "resolved", e.Time
				a.Outcome, a.Note, a.ResolveReason = dataString(m, "outcome"), dataString(m, "note"), dataString(m, "reason")
				a.ResolvedBy = dataString(m, "actor", "by")
				changed = true
			}
		case event.ElderModeChanged:
			if e.Household != "" {
				h := t.hh(e.Household)
				h.mode = dataString(m, "mode")
				h.until = time.Time{}
				if u := dataString(m, "until"); u != "" {
					if tu, err := time.Parse(time.RFC3339, u); err == nil {
						h.until = tu
					}
				}
			}
		case event.ElderPresence:
			if e.Household != "" {
				t.hh(e.Household).presence = dataString(m, "presence", "state")
			}
		}
		if e.Severity.Rank() >= event.Warning.Rank() && !strings.HasPrefix(string(e.Kind), "elder.alert.") {
			t.problems = append(t.problems, e)
			if len(t.problems) > maxProblems {
				t.problems = append([]*event.Event(nil), t.problems[len(t.problems)-maxProblems:]...)
			}
		}
	}
	// The quiet sets are bounded like the alerts: the oldest half goes.
	if len(t.quiet)+len(t.selfEnded) > maxQuiet {
		cut := t.next - min(t.next, uint64(maxQuiet))
		for seq := range t.quiet {
			if seq < cut {
				delete(t.quiet, seq)
			}
		}
		for seq := range t.selfEnded {
			if seq < cut {
				delete(t.selfEnded, seq)
			}
		}
	}
	// Resolved alerts are kept a while for the page, but bounded.
	if len(t.alerts) > 2000 {
		var old []*Alert
		for _, a := range t.alerts {
			if a.State == "resolved" {
				old = append(old, a)
			}
		}
		sort.Slice(old, func(i, j int) bool { return old[i].Seq < old[j].Seq })
		for _, a := range old[:len(old)/2] {
			delete(t.alerts, a.ID)
		}
	}
	return changed
}

func (t *tracker) hh(id string) *hhState {
	h := t.households[id]
	if h == nil {
		h = &hhState{presence: "unknown", mode: "normal"}
		t.households[id] = h
	}
	return h
}

// factsOf turns an alert's data into explanation lines, skipping ids.
func factsOf(m map[string]any) []Fact {
	var keys []string
	for k := range m {
		switch k {
		// Shown elsewhere on the card, or not for the page: contacts are
		// personal data the escalation uses, not the manager's screen.
		case "alert_id", "alert", "type", "rule", "household", "reason_zh", "reason_en", "audience", "notify", "contacts":
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Fact, 0, len(keys))
	for _, k := range keys {
		out = append(out, Fact{Label: k, Value: factValue(m[k])})
	}
	return out
}

func factValue(v any) string {
	switch x := v.(type) {
	case string:
		return config.RedactURL(x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			if k != "reason_zh" { // the English reason is kept; both would repeat
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+"="+factValue(x[k]))
		}
		return strings.Join(parts, ", ")
	case []any:
		parts := make([]string, 0, len(x))
		for _, e := range x {
			parts = append(parts, factValue(e))
		}
		return strings.Join(parts, "; ")
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// alertList returns alerts, open first (critical first, then oldest),
// then acknowledged, then the most recent resolved ones.
func (t *tracker) alertList(includeResolved int) []Alert {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var open, resolved []Alert
	for _, a := range t.alerts {
		cp := *a
		if a.State == "resolved" {
			resolved = append(resolved, cp)
		} else {
			open = append(open, cp)
		}
	}
	sortAlerts(open)
	sort.Slice(resolved, func(i, j int) bool { return resolved[i].Resolved.After(resolved[j].Resolved) })
	if len(resolved) > includeResolved {
		resolved = resolved[:includeResolved]
	}
	return append(open, resolved...)
}

func sortAlerts(a []Alert) {
	stateRank := func(s string) int {
		if s == "open" {
			return 0
		}
		return 1
	}
	sort.SliceStable(a, func(i, j int) bool {
		if ri, rj := stateRank(a[i].State), stateRank(a[j].State); ri != rj {
			return ri < rj
		}
		if si, sj := a[i].Severity.Rank(), a[j].Severity.Rank(); si != sj {
			return si > sj
		}
		return a[i].Seq < a[j].Seq
	})
}

func (t *tracker) alert(id string) (Alert, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	a, ok := t.alerts[id]
	if !ok {
		return Alert{}, false
	}
	return *a, true
}

func (t *tracker) device(id string) (devState, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	d, ok := t.devices[id]
	if !ok {
		return devState{online: "unknown"}, false
	}
	return *d, true
}

func (t *tracker) household(id string) hhState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if h, ok := t.households[id]; ok {
		return *h
	}
	return hhState{presence: "unknown", mode: "normal"}
}

func (t *tracker) recentProblems() []*event.Event {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]*event.Event, len(t.problems))
	for i, e := range t.problems {
		out[len(out)-1-i] = e
	}
	return out
}

func (t *tracker) clock() (event.TimeQuality, time.Time, uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.lastQuality, t.lastTime, t.applied
}

// isQuiet reports whether the default events view leaves seq out.
func (t *tracker) isQuiet(seq uint64) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.quiet[seq]
}

// endedBySelf says when the alert raised at seq ended by itself, unseen.
func (t *tracker) endedBySelf(seq uint64) (time.Time, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	at, ok := t.selfEnded[seq]
	return at, ok
}

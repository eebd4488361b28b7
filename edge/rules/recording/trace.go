package recording

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/rules"
)

// IncCollapseAfterDoor is an injected collapse right after a door cycle
// (the resident came back, or took the rubbish out: door open and close,
// then nothing). The rules must read it as a possible fall at home
// (rule inactivity), not as "left and not back".
const IncCollapseAfterDoor = "collapse_after_door"

// Gateway and compound ids of a converted trace.
const (
	Gateway  = "rec-gw"
	Compound = "rec"
	epoch    = "0000000000000000"
)

// Absence labels in the truth (rules.Period.What).
const (
	WhatAbsence         = "absence"          // annotated by the resident ("leave house")
	WhatAbsenceInferred = "absence_inferred" // a door cycle, no in-home firing, the next door cycle
	WhatMonitored       = "monitored"        // the span a household's log covers
	WhatHospital        = "hospital"         // after an injected collapse: found, taken to hospital (mode set by staff)
)

// BuildOptions place a recording in time and choose the injections.
type BuildOptions struct {
	// Zone the resident lives in; the recording's wall clock is read in
	// it. Required.
	Zone *time.Location
	// Year the recording is shifted to, by whole weeks (weekdays and
	// times of day are kept); default 2025.
	Year int
	// Collapses at home and right after a door cycle to inject, each in
	// its own copy of the household.
	Collapses, DoorCollapses int
	Seed                     uint64
	// Elder gives the windows and the configured (fixed) inactivity
	// limits the truth's deadlines use; nil = the defaults.
	Elder *rules.Elder
}

// Truth is the ground truth of a converted recording: the fields of
// `lintel sim elders`' truth.json (so `lintel replay --truth` reads it)
// plus the resident's absences and each household's monitored span.
type Truth struct {
	Elders    int              `json:"elders"`
	Days      int              `json:"days"`
	Seed      uint64           `json:"seed"`
	Incidents []rules.Incident `json:"incidents"`
	Aways     []rules.Period   `json:"aways"`
	Faults    []rules.Period   `json:"faults"`
	Outages   []rules.Period   `json:"outages"`
	Absences  []rules.Period   `json:"absences"`
	Monitored []rules.Period   `json:"monitored"`
	Recording RecordingInfo    `json:"recording"`
}

// RecordingInfo says where a trace comes from and how it was placed.
type RecordingInfo struct {
	Name      string `json:"name"`
	Format    string `json:"format"`
	Source    string `json:"source"`
	Zone      string `json:"zone"`
	UTCOffset string `json:"utc_offset"`
	OffsetS   int    `json:"offset_s"`
	ShiftDays int    `json:"shift_days"`
	// Base is the household replaying the recording as recorded; the
	// others are copies with one injected incident each.
	Base    string            `json:"base"`
	Door    string            `json:"door_sensor"`
	Devices map[string]string `json:"devices"` // device suffix ("door", "s5") → sensor object
	Skipped []string          `json:"skipped,omitempty"`
}

// Trace is a converted recording: the event log and its truth.
type Trace struct {
	Truth      Truth
	Households []string
	Events     []*event.Event
}

type rev struct {
	t      time.Time
	kind   event.Kind
	sensor string // "" for a mode change
	data   map[string]any
}

type builder struct {
	rec   *Recording
	zone  *time.Location
	shift int
	off   int
	elder rules.Elder
}

// at maps a wall-clock time of the recording to the real instant.
func (b *builder) at(c time.Time) time.Time {
	y, m, d := c.Date()
	h, mi, s := c.Clock()
	return time.Date(y, m, d+b.shift, h, mi, s, c.Nanosecond(), b.zone)
}

func formatOffset(off int) string {
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	return fmt.Sprintf("%c%02d:%02d", sign, off/3600, off/60%60)
}

// Build converts rec into an event log with injected collapses and truth.
func Build(rec *Recording, o BuildOptions) (*Trace, error) {
	if o.Zone == nil {
		return nil, fmt.Errorf("build %s: no time zone", rec.Name)
	}
	if len(rec.Firings) == 0 {
		return nil, fmt.Errorf("build %s: no sensor firings", rec.Name)
	}
	if o.Year == 0 {
		o.Year = 2025
	}
	if o.Collapses < 0 || o.DoorCollapses < 0 || o.Collapses+o.DoorCollapses > 500 {
		return nil, fmt.Errorf("build %s: inject 0–500 collapses", rec.Name)
	}
	b := &builder{rec: rec, zone: o.Zone}
	if o.Elder != nil {
		b.elder = *o.Elder
	} else {
		b.elder = rules.DefaultElder("")
	}
	first, _ := rec.Span()
	d0 := first.Truncate(24 * time.Hour)
	target := time.Date(o.Year, d0.Month(), d0.Day(), 0, 0, 0, 0, time.UTC)
	b.shift = int(math.Round(target.Sub(d0).Hours()/24/7)) * 7
	_, b.off = b.at(first).Zone()

	base, err := b.baseEvents()
	if err != nil {
		return nil, err
	}
	t0, tEnd := base[0].t, base[len(base)-1].t
	hh := "h-" + rec.Name
	tr := &Trace{Households: []string{hh}}
	devices := map[string]string{"door": rec.Sensors[rec.Door].Object}
	for id, s := range rec.Sensors {
		if id != rec.Door {
			devices["s"+id] = strings.TrimSpace(s.Room + " " + s.Object)
		}
	}
	var skipped []string
	for _, p := range rec.Problems {
		skipped = append(skipped, p.Error())
	}
	tr.Truth = Truth{
		Seed: o.Seed, Incidents: []rules.Incident{}, Aways: []rules.Period{}, Faults: []rules.Period{}, Outages: []rules.Period{},
		Recording: RecordingInfo{Name: rec.Name, Format: rec.Format, Source: rec.Source, Zone: o.Zone.String(),
			UTCOffset: formatOffset(b.off), OffsetS: b.off, ShiftDays: b.shift, Base: hh, Door: rec.Door, Devices: devices, Skipped: skipped},
	}
	var absences []rules.Period
	for _, a := range rec.Absences {
		w := WhatAbsenceInferred
		if a.Labelled {
			w = WhatAbsence
		}
		absences = append(absences, rules.Period{What: w, From: b.at(a.From).UTC(), To: b.at(a.To).UTC()})
	}
	perHH := [][]rev{base}
	addTruth := func(h string, until time.Time) {
		for _, a := range absences {
			if !a.From.Before(until) {
				continue
			}
			a.Household = h
			if a.To.After(until) {
				a.To = until
			}
			tr.Truth.Absences = append(tr.Truth.Absences, a)
		}
		tr.Truth.Monitored = append(tr.Truth.Monitored, rules.Period{Household: h, What: WhatMonitored, From: t0.UTC(), To: until.UTC()})
	}
	addTruth(hh, tEnd)

	// Injections: one copy of the household each.
	r := rand.New(rand.NewPCG(o.Seed, 0x1e57a11))
	busiest := b.busiestSensor()
	injs := b.pick(r, base, absences, t0, tEnd, o.Collapses, false)
	injs = append(injs, b.pick(r, base, absences, t0, tEnd, o.DoorCollapses, true)...)
	for i, in := range injs {
		h := fmt.Sprintf("%s-c%02d", hh, i+1)
		tr.Households = append(tr.Households, h)
		evs := slices.Clone(base[:in.keep])
		evs = append(evs, rescue(h, in.found, busiest)...)
		perHH = append(perHH, evs)
		T := fixedLimit(&b.elder, b.off, in.fall)
		kind := rules.IncCollapse
		if in.door {
			kind = IncCollapseAfterDoor
		}
		tr.Truth.Incidents = append(tr.Truth.Incidents, rules.Incident{Household: h, Kind: kind, Rule: rules.RuleInactivity,
			Start: in.fall.UTC(), End: in.found.UTC(), Deadline: in.fall.Add(T + 5*time.Minute).UTC(), Threshold: T})
		hosp := in.found.Add(90 * time.Minute)
		tr.Truth.Aways = append(tr.Truth.Aways, rules.Period{Household: h, What: WhatHospital, From: hosp.UTC(), To: hosp.Add(30 * 24 * time.Hour).UTC()})
		addTruth(h, hosp)
	}
	tr.Truth.Elders = len(tr.Households)
	tr.Truth.Days = int(math.Ceil(tEnd.Sub(t0).Hours() / 24))
	if tr.Truth.Absences == nil {
		tr.Truth.Absences = []rules.Period{}
	}
	tr.Events = materialize(tr.Households, perHH)
	return tr, nil
}

// baseEvents converts the firings: the entrance door gives door.opened at
// its start and door.closed at its end (overlapping firings merged);
// every other sensor motion.detected at its start, and at its end too when
// it stayed on a minute or more (closing the cupboard is someone there).
func (b *builder) baseEvents() ([]rev, error) {
	var out []rev
	var doorOpen, doorClose time.Time
	flush := func() {
		if !doorOpen.IsZero() {
			out = append(out, rev{t: b.at(doorOpen), kind: event.DoorOpened, sensor: "door"},
				rev{t: b.at(doorClose), kind: event.DoorClosed, sensor: "door"})
		}
	}
	for _, f := range b.rec.Firings {
		if f.Sensor == b.rec.Door {
			end := f.End
			if !end.After(f.Start) {
				end = f.Start.Add(time.Second)
			}
			if !doorOpen.IsZero() && !f.Start.After(doorClose) {
				if end.After(doorClose) {
					doorClose = end
				}
				continue
			}
			flush()
			doorOpen, doorClose = f.Start, end
			continue
		}
		out = append(out, rev{t: b.at(f.Start), kind: event.MotionDetected, sensor: f.Sensor})
		if f.End.Sub(f.Start) >= time.Minute {
			out = append(out, rev{t: b.at(f.End), kind: event.MotionDetected, sensor: f.Sensor})
		}
	}
	flush()
	slices.SortStableFunc(out, func(x, y rev) int { return x.t.Compare(y.t) })
	for _, e := range out {
		if _, off := e.t.Zone(); off != b.off {
			return nil, fmt.Errorf("build %s: shifted to %d the recording crosses a daylight-saving change in %s (%s to %s at %s); the rules take one fixed utc_offset: choose another year or a fixed zone like %s",
				b.rec.Name, e.t.Year(), b.zone, formatOffset(b.off), formatOffset(off), e.t.Format("2006-01-02 15:04"), formatOffset(b.off))
		}
	}
	return out, nil
}

func (b *builder) busiestSensor() string {
	n := map[string]int{}
	best := ""
	for _, f := range b.rec.Firings {
		if f.Sensor == b.rec.Door {
			continue
		}
		n[f.Sensor]++
		if best == "" || n[f.Sensor] > n[best] || (n[f.Sensor] == n[best] && f.Sensor < best) {
			best = f.Sensor
		}
	}
	return best
}

type injection struct {
	keep        int // events of the base log kept (up to the fall)
	fall, found time.Time
	door        bool
}

const (
	minHistory = 24 * time.Hour   // no fall in the first day of the log
	afterFound = 2 * time.Hour    // the log must go on this long after the resident is found
	departGap  = 10 * time.Minute // a door cycle this close to an absence's start is a departure
)

// pick chooses n distinct falls: at home (after a motion event while the
// resident is in, not within 30 min of a door cycle) or right after a door
// cycle the resident stays in after (a return, the bins, a caller).
func (b *builder) pick(r *rand.Rand, base []rev, absences []rules.Period, t0, tEnd time.Time, n int, door bool) []injection {
	if n == 0 {
		return nil
	}
	away := func(t time.Time) bool {
		for _, a := range absences {
			if !t.Before(a.From.Add(-doorSlack)) && !t.After(a.To.Add(doorSlack)) {
				return true
			}
		}
		return false
	}
	inside := func(t time.Time) bool { // well inside an absence
		for _, a := range absences {
			if t.After(a.From.Add(departGap)) && t.Before(a.To.Add(-doorSlack)) {
				return true
			}
		}
		return false
	}
	departs := func(t time.Time) bool {
		for _, a := range absences {
			if d := a.From.Sub(t); d > -departGap && d < departGap {
				return true
			}
		}
		return false
	}
	var cand []int
	lastDoor := time.Time{}
	for k, e := range base {
		if e.kind == event.DoorOpened || e.kind == event.DoorClosed {
			lastDoor = e.t
		}
		if e.t.Before(t0.Add(minHistory)) || e.t.After(tEnd.Add(-afterFound)) {
			continue
		}
		switch {
		case door && e.kind == event.DoorClosed && !departs(e.t) && !inside(e.t):
			cand = append(cand, k)
		case !door && e.kind == event.MotionDetected && !away(e.t) && (lastDoor.IsZero() || e.t.Sub(lastDoor) > 30*time.Minute):
			cand = append(cand, k)
		}
	}
	r.Shuffle(len(cand), func(i, j int) { cand[i], cand[j] = cand[j], cand[i] })
	var out []injection
	for _, k := range cand {
		if len(out) == n {
			break
		}
		fall := base[k].t
		if door {
			fall = fall.Add(time.Duration(5+r.IntN(56)) * time.Second)
		}
		// Found the next morning or evening: 12–24 h after the fall, and
		// never before the configured limit + 30 min (a detection must be
		// possible before help arrives).
		T := fixedLimit(&b.elder, b.off, fall)
		found := fall.Add(12*time.Hour + time.Duration(r.Int64N(int64(12*time.Hour))))
		if earliest := fall.Add(T + 30*time.Minute); found.Before(earliest) {
			found = earliest.Add(time.Duration(r.Int64N(int64(30 * time.Minute))))
		}
		if found.Add(afterFound).After(tEnd) {
			continue
		}
		found = found.Truncate(time.Second)
		out = append(out, injection{keep: k + 1, fall: fall, found: found, door: door})
	}
	slices.SortFunc(out, func(x, y injection) int { return x.fall.Compare(y.fall) })
	return out
}

// rescue is what follows an injected collapse: helpers open the door, move
// about, take the resident to hospital; staff set hospital mode. The copy's
// log ends there.
func rescue(h string, found time.Time, sensor string) []rev {
	out := []rev{
		{t: found, kind: event.DoorOpened, sensor: "door"},
		{t: found.Add(30 * time.Second), kind: event.DoorClosed, sensor: "door"},
	}
	for _, m := range []time.Duration{1, 10, 20, 30} {
		out = append(out, rev{t: found.Add(m * time.Minute), kind: event.MotionDetected, sensor: sensor})
	}
	hosp := found.Add(90 * time.Minute)
	out = append(out,
		rev{t: found.Add(40 * time.Minute), kind: event.DoorOpened, sensor: "door"},
		rev{t: found.Add(41 * time.Minute), kind: event.DoorClosed, sensor: "door"},
		rev{t: hosp, kind: event.ElderModeChanged, data: map[string]any{"household": h, "mode": rules.ModeHospital,
			"until": hosp.Add(30 * 24 * time.Hour).UTC(), "actor": "staff-sim", "note": "injected collapse: found, taken to hospital"}})
	return out
}

// fixedLimit is the configured inactivity limit for a silence starting at
// t, as the engine chooses it without learning: the day limit when the
// whole of it fits before the night window, else the night limit.
func fixedLimit(el *rules.Elder, offset int, t time.Time) time.Duration {
	m := minuteOfDay(t, offset)
	day, night := el.T.InactivityDay.Std(), el.T.InactivityNight.Std()
	if m >= el.NightStart || m < el.DayStart {
		return night
	}
	delta := el.NightStart - m
	if delta <= 0 {
		delta += 24 * 60
	}
	next := t.Truncate(time.Minute).Add(time.Duration(delta) * time.Minute)
	if !t.Add(day).After(next) {
		return day
	}
	return night
}

func minuteOfDay(t time.Time, offset int) int {
	s := (t.Unix() + int64(offset)) % 86400
	if s < 0 {
		s += 86400
	}
	return int(s / 60)
}

// materialize merges the households' logs by time and numbers them.
func materialize(hhs []string, per [][]rev) []*event.Event {
	type item struct {
		h int
		e rev
	}
	var all []item
	for i, evs := range per {
		for _, e := range evs {
			all = append(all, item{i, e})
		}
	}
	slices.SortStableFunc(all, func(x, y item) int {
		if c := x.e.t.Compare(y.e.t); c != 0 {
			return c
		}
		return x.h - y.h
	})
	out := make([]*event.Event, 0, len(all))
	for i, it := range all {
		h := hhs[it.h]
		seq := uint64(i) + 1
		ev := &event.Event{ID: event.FormatID(Gateway, epoch, seq), Seq: seq, Gateway: Gateway, Compound: Compound,
			Time: it.e.t.UTC().Truncate(time.Millisecond), TimeQuality: event.Synced, Kind: it.e.kind, Severity: it.e.kind.DefaultSeverity(),
			Household: h}
		switch {
		case it.e.sensor == "door":
			ev.Device = h + "-door"
		case it.e.sensor != "":
			ev.Device = h + "-s" + it.e.sensor
		}
		if it.e.data != nil {
			ev.WithData(it.e.data)
		}
		out = append(out, ev)
	}
	return out
}

// Settings are the default rule settings for the trace's households in
// its zone's offset.
func (t *Trace) Settings() *rules.Settings {
	s := rules.NewSettings(t.Households...)
	s.Offset = t.Truth.Recording.OffsetS
	return s
}

// ConfigYAML is a configuration `lintel replay -c` runs the trace with:
// the households, their enrolment and the zone's offset, default rules.
func (t *Trace) ConfigYAML() string {
	var y strings.Builder
	ri := t.Truth.Recording
	fmt.Fprintf(&y, "# Generated by `lintel sim recording` from the %s recording (%s).\n", ri.Name, ri.Format)
	fmt.Fprintf(&y, "# Zone %s, shifted by %d days; %s is the recording as recorded, the -cNN households are\n", ri.Zone, ri.ShiftDays, ri.Base)
	y.WriteString("# copies of it with one injected collapse each (see the truth file).\n")
	fmt.Fprintf(&y, "gateway: {id: %s, compound: %s}\ncompound:\n  households:\n", Gateway, Compound)
	for _, h := range t.Households {
		fmt.Fprintf(&y, "    - {id: %s, label: %q}\n", h, "recording "+ri.Name)
	}
	fmt.Fprintf(&y, "rules:\n  utc_offset: %q\n  elders:\n", ri.UTCOffset)
	for _, h := range t.Households {
		fmt.Fprintf(&y, "    - household: %s\n", h)
	}
	return y.String()
}

// WriteEvents writes the log as JSON lines (Event v1), the input of
// `lintel replay --events`.
func (t *Trace) WriteEvents(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	for _, ev := range t.Events {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		bw.Write(b)
		bw.WriteByte('\n')
	}
	return bw.Flush()
}

// Replay runs the rules over the trace with s (nil: t.Settings()) and
// returns the derived events.
func (t *Trace) Replay(s *rules.Settings) ([]*event.Event, rules.ReplayStats, error) {
	if s == nil {
		s = t.Settings()
	}
	var out []*event.Event
	i := 0
	st, err := rules.Replay(s, func(ev *event.Event) (bool, error) {
		if i >= len(t.Events) {
			return false, nil
		}
		*ev = *t.Events[i]
		i++
		return true, nil
	}, func(ev *event.Event) error {
		out = append(out, ev)
		return nil
	})
	return out, st, err
}

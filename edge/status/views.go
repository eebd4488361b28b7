package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// Overview is the first page: is the gateway healthy, is anything wrong.
type Overview struct {
	Gateway        string            `json:"gateway"`
	Compound       string            `json:"compound"`
	CompoundName   string            `json:"compound_name,omitempty"`
	Version        string            `json:"version"`
	Started        time.Time         `json:"started"`
	UptimeSeconds  int64             `json:"uptime_s"`
	Clock          time.Time         `json:"clock"`
	ClockQuality   event.TimeQuality `json:"clock_quality"`
	LastSeq        uint64            `json:"last_seq"`
	LastEvent      time.Time         `json:"last_event,omitzero"`
	OpenAlerts     int               `json:"open_alerts"`
	CriticalAlerts int               `json:"critical_alerts"`
	DevicesTotal   int               `json:"devices_total"`
	DevicesOffline int               `json:"devices_offline"`
	DevicesUnknown int               `json:"devices_unknown"`
	Sinks          []Sink            `json:"sinks"`
	Storage        *Storage          `json:"storage,omitempty"`
	// HistoryLoaded is false while the page still reads the log's history
	// after a start; lists may be incomplete until then.
	HistoryLoaded bool `json:"history_loaded"`
}

func (s *Server) overview() Overview {
	o := Overview{
		Gateway: s.opts.Config.Gateway.ID, Compound: s.opts.Config.Gateway.Compound, CompoundName: s.opts.Config.Compound.Name,
		Version: s.opts.Version, Started: s.opts.Started, LastSeq: s.opts.Log.LastSeq(), HistoryLoaded: s.tr.ready(),
	}
	o.UptimeSeconds = int64(s.now().Sub(s.opts.Started).Seconds())
	q, last, _ := s.tr.clock()
	o.LastEvent = last
	if s.opts.Clock != nil {
		o.Clock, o.ClockQuality = s.opts.Clock()
	} else {
		o.Clock, o.ClockQuality = s.now(), q
	}
	o.OpenAlerts, o.CriticalAlerts = s.alertCounts()
	for _, d := range s.devices() {
		if d.Disabled {
			continue
		}
		o.DevicesTotal++
		switch d.Online {
		case "offline":
			o.DevicesOffline++
		case "unknown":
			o.DevicesUnknown++
		}
	}
	o.Sinks = s.sinks()
	if s.opts.Storage != nil {
		st := s.opts.Storage()
		o.Storage = &st
	}
	return o
}

func (s *Server) alertCounts() (open, critical int) {
	for _, a := range s.alerts(0) {
		if a.State == "resolved" {
			continue
		}
		open++
		if a.Severity == event.Critical {
			critical++
		}
	}
	return open, critical
}

// alerts lists alerts, open first; keepResolved recent resolved ones
// follow (the derived list only).
func (s *Server) alerts(keepResolved int) []Alert {
	var out []Alert
	if s.opts.Alerts != nil {
		out = append(out, s.opts.Alerts.OpenAlerts()...)
		sortAlerts(out)
	} else {
		out = s.tr.alertList(keepResolved)
	}
	for i := range out {
		if out[i].Place == "" && out[i].Household != "" {
			if h, ok := s.opts.Config.Household(out[i].Household); ok {
				out[i].Place = placeString(h.Place)
			}
		}
	}
	return out
}

func (s *Server) alertByID(id string) (Alert, bool) {
	for _, a := range s.alerts(1 << 30) {
		if a.ID == id {
			return a, true
		}
	}
	return Alert{}, false
}

func placeString(p config.Place) string {
	return event.Place{Building: p.Building, Unit: p.Unit, Room: p.Room, Position: p.Position}.String()
}

// households merges the configured labels with the derived or given
// state.
func (s *Server) households() []Household {
	open := map[string]int{}
	for _, a := range s.alerts(0) {
		if a.State != "resolved" && a.Household != "" {
			open[a.Household]++
		}
	}
	given := map[string]Household{}
	if s.opts.Households != nil {
		for _, h := range s.opts.Households.Households() {
			given[h.ID] = h
		}
	}
	var out []Household
	for _, h := range s.opts.Config.Compound.Households {
		hv, ok := given[h.ID]
		if !ok {
			st := s.tr.household(h.ID)
			hv = Household{ID: h.ID, Presence: st.presence, LastActivity: st.lastActivity, Mode: st.mode, ModeUntil: st.until}
		}
		hv.ID = h.ID
		if hv.Label == "" {
			hv.Label = h.Label
		}
		if hv.Label == "" {
			hv.Label = h.ID
		}
		hv.Place = placeString(h.Place)
		if hv.Mode == "" {
			hv.Mode = "normal"
		}
		if hv.Presence == "" {
			hv.Presence = "unknown"
		}
		hv.OpenAlerts = open[h.ID]
		out = append(out, hv)
	}
	return out
}

// devices lists configured devices with what the log and the drivers say.
func (s *Server) devices() []Device {
	given := map[string]Device{}
	if s.opts.Devices != nil {
		for _, d := range s.opts.Devices.Devices() {
			given[d.ID] = d
		}
	}
	out := make([]Device, 0, len(s.opts.Config.Devices))
	for _, c := range s.opts.Config.Devices {
		p := c.Place
		if p.Building == "" && c.Household != "" {
			if h, ok := s.opts.Config.Household(c.Household); ok {
				p = h.Place
			}
		}
		d := Device{ID: c.ID, Kind: c.Kind, Driver: c.Driver, Address: config.RedactURL(c.Address),
			Building: p.Building, Unit: p.Unit, Place: placeString(p), Household: c.Household, Disabled: c.Disabled, Battery: -1}
		st, _ := s.tr.device(c.ID)
		d.Online, d.LastSeen, d.LastEvent, d.BatteryLow, d.Tamper = st.online, st.lastSeen, st.lastEvent, st.batLow, st.tamper
		if g, ok := given[c.ID]; ok {
			if g.Online != "" {
				d.Online = g.Online
			}
			if g.LastSeen.After(d.LastSeen) {
				d.LastSeen = g.LastSeen
			}
			if g.Battery >= 0 {
				d.Battery = g.Battery
			}
			d.BatteryLow = d.BatteryLow || g.BatteryLow
			d.Tamper = d.Tamper || g.Tamper
			if len(g.Detail) > 0 {
				d.Detail = map[string]string{}
				for k, v := range g.Detail {
					d.Detail[k] = config.RedactURL(v)
				}
			}
		}
		if d.Disabled {
			d.Online = "disabled"
		}
		out = append(out, d)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Building != out[j].Building {
			return out[i].Building < out[j].Building
		}
		if out[i].Unit != out[j].Unit {
			return out[i].Unit < out[j].Unit
		}
		return out[i].ID < out[j].ID
	})
	return out
}

func (s *Server) buses() []Bus {
	if s.opts.Buses == nil {
		return nil
	}
	out := s.opts.Buses.Buses()
	for i := range out {
		out[i].LastError = config.RedactURL(out[i].LastError)
		if len(out[i].Detail) > 0 {
			d := make(map[string]string, len(out[i].Detail))
			for k, v := range out[i].Detail {
				d[k] = config.RedactURL(v)
			}
			out[i].Detail = d
		}
	}
	return out
}

// sinks reports each configured sink: its own view when a SinkSource is
// given, else the backlog behind its log cursor.
func (s *Server) sinks() []Sink {
	given := map[string]Sink{}
	if s.opts.Sinks != nil {
		for _, k := range s.opts.Sinks.Sinks() {
			k.Known = true
			k.LastError = config.RedactURL(k.LastError)
			given[k.Name] = k
		}
	}
	names := make([]string, 0, len(s.opts.Config.Sinks))
	for n := range s.opts.Config.Sinks {
		names = append(names, n)
	}
	for n := range given {
		if _, ok := s.opts.Config.Sinks[n]; !ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	last := s.opts.Log.LastSeq()
	out := make([]Sink, 0, len(names))
	for _, n := range names {
		k, ok := given[n]
		if !ok {
			k = Sink{Name: n}
			cur := s.opts.Log.Cursor(n)
			if last > cur {
				k.Backlog = last - cur
				if evs, err := s.opts.Log.ReadRange(cur, 1); err == nil && len(evs) == 1 && !evs[0].Time.IsZero() {
					k.OldestAge = s.now().Sub(evs[0].Time)
				}
			}
		}
		out = append(out, k)
	}
	return out
}

// eventQuery is the events page's filter, parsed from the URL.
type eventQuery struct {
	Kind     string         // exact kind, or a prefix ending in "." ("elder.")
	Device   string         // exact device id
	Place    string         // substring of the place or household id
	Severity event.Severity // minimum
	From, To time.Time      // inclusive bounds on event time (zero: open)
	Before   uint64         // paging: only seq < Before (0: newest)
	Limit    int
	// All shows every event; without it the page leaves out the resolve
	// rows of alerts that ended by themselves unseen (tracker.quiet).
	All bool
	// Quiet is set by the page (not the API): honour All.
	Quiet bool
}

const (
	defaultEventLimit = 50
	maxEventLimit     = 500
	maxEventScan      = 20000 // events examined per request, bounds CPU
)

var errBadQuery = errors.New("bad query")

// parseEventQuery parses and bounds the filter; loc is the zone that
// datetime-local inputs (no offset) are read in.
func parseEventQuery(v url.Values, loc *time.Location) (eventQuery, error) {
	q := eventQuery{Limit: defaultEventLimit}
	for k, vals := range v {
		if len(vals) > 1 {
			return q, fmt.Errorf("%w: %s given twice", errBadQuery, k)
		}
		switch k {
		case "kind", "device", "place", "severity", "from", "to", "before", "limit", "lang", "fragment", "all":
		default:
			return q, fmt.Errorf("%w: unknown parameter %q", errBadQuery, k)
		}
	}
	clean := func(s string, max int) (string, error) {
		s = strings.TrimSpace(s)
		if len(s) > max {
			return "", fmt.Errorf("%w: value too long", errBadQuery)
		}
		for _, r := range s {
			if r < 0x20 || r == 0x7f {
				return "", fmt.Errorf("%w: control character", errBadQuery)
			}
		}
		return s, nil
	}
	var err error
	if q.Kind, err = clean(v.Get("kind"), 64); err != nil {
		return q, err
	}
	if q.Kind != "" && !event.Kind(strings.TrimSuffix(q.Kind, ".")).Valid() {
		return q, fmt.Errorf("%w: kind %q", errBadQuery, q.Kind)
	}
	if q.Device, err = clean(v.Get("device"), 128); err != nil {
		return q, err
	}
	if q.Place, err = clean(v.Get("place"), 64); err != nil {
		return q, err
	}
	if sv := v.Get("severity"); sv != "" {
		q.Severity = event.Severity(sv)
		if !q.Severity.Valid() {
			return q, fmt.Errorf("%w: severity %q", errBadQuery, sv)
		}
	}
	parseT := func(s string) (time.Time, error) {
		s = strings.TrimSpace(s)
		if s == "" {
			return time.Time{}, nil
		}
		if len(s) > 40 {
			return time.Time{}, fmt.Errorf("%w: time too long", errBadQuery)
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04", "2006-01-02"} {
			var t time.Time
			var err error
			if layout == time.RFC3339Nano {
				t, err = time.Parse(layout, s)
			} else {
				t, err = time.ParseInLocation(layout, s, loc)
			}
			if err == nil {
				return t, nil
			}
		}
		return time.Time{}, fmt.Errorf("%w: time %q: want 2006-01-02T15:04 or RFC 3339", errBadQuery, s)
	}
	if q.From, err = parseT(v.Get("from")); err != nil {
		return q, err
	}
	if q.To, err = parseT(v.Get("to")); err != nil {
		return q, err
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return q, fmt.Errorf("%w: to is before from", errBadQuery)
	}
	if b := v.Get("before"); b != "" {
		if q.Before, err = strconv.ParseUint(b, 10, 64); err != nil {
			return q, fmt.Errorf("%w: before %q", errBadQuery, b)
		}
	}
	switch v.Get("all") {
	case "", "0":
	case "1":
		q.All = true
	default:
		return q, fmt.Errorf("%w: all: want 1", errBadQuery)
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxEventLimit {
			return q, fmt.Errorf("%w: limit: want 1–%d", errBadQuery, maxEventLimit)
		}
		q.Limit = n
	}
	return q, nil
}

func (q eventQuery) match(e *event.Event) bool {
	if q.Kind != "" {
		if strings.HasSuffix(q.Kind, ".") {
			if !strings.HasPrefix(string(e.Kind), q.Kind) {
				return false
			}
		} else if string(e.Kind) != q.Kind {
			return false
		}
	}
	if q.Device != "" && e.Device != q.Device {
		return false
	}
	if q.Place != "" {
		p := ""
		if e.Place != nil {
			p = e.Place.String()
		}
		if !strings.Contains(p, q.Place) && !strings.Contains(e.Household, q.Place) {
			return false
		}
	}
	if q.Severity != "" && e.Severity.Rank() < q.Severity.Rank() {
		return false
	}
	if !q.From.IsZero() && e.Time.Before(q.From) {
		return false
	}
	if !q.To.IsZero() && e.Time.After(q.To) {
		return false
	}
	return true
}

// findEvents scans the log backwards from q.Before in windows of seq
// numbers and returns matches newest first, and the Before of the next
// page (0 when the log's start was reached).
func (s *Server) findEvents(q eventQuery) ([]*event.Event, uint64, error) {
	// The window starts near the page size (an unfiltered page reads only
	// what it shows) and doubles while filters reject, up to 512.
	window := uint64(max(64, q.Limit+1))
	hi := q.Before
	if last := s.opts.Log.LastSeq(); hi == 0 || hi > last+1 {
		hi = last + 1
	}
	var out []*event.Event
	scanned := 0
	for hi > 1 && scanned < maxEventScan {
		lo := uint64(0)
		if hi-1 > window {
			lo = hi - 1 - window
		}
		evs, err := s.opts.Log.ReadRange(lo, int(window))
		if err != nil {
			return nil, 0, fmt.Errorf("read event log: %w", err)
		}
		scanned += int(window)
		for i := len(evs) - 1; i >= 0; i-- {
			e := evs[i]
			if e.Seq >= hi || e.Seq <= lo {
				continue
			}
			if q.match(e) && (!q.Quiet || q.All || !s.tr.isQuiet(e.Seq)) {
				out = append(out, e)
				if len(out) == q.Limit {
					return out, e.Seq, nil
				}
			}
		}
		hi = lo + 1
		window = min(window*2, 512)
	}
	if hi > 1 {
		return out, hi, nil
	}
	return out, 0, nil
}

// getEvent returns one event by seq.
func (s *Server) getEvent(seq uint64) (*event.Event, bool, error) {
	if seq == 0 {
		return nil, false, nil
	}
	evs, err := s.opts.Log.ReadRange(seq-1, 1)
	if err != nil {
		return nil, false, fmt.Errorf("read event log: %w", err)
	}
	if len(evs) != 1 || evs[0].Seq != seq {
		return nil, false, nil
	}
	return evs[0], true, nil
}

// Diagnostics is the installer's page.
type Diagnostics struct {
	Config   string            `json:"config"` // YAML, secrets redacted
	Store    any               `json:"store,omitempty"`
	Counters map[string]uint64 `json:"counters,omitempty"`
	Problems []*event.Event    `json:"problems"`
	Errors   []LogLine         `json:"recent_log"`
	Commands []string          `json:"commands"`
	Sessions int               `json:"sessions"`
	Accounts []Account         `json:"accounts"`
	Buses    []Bus             `json:"buses"`
	LastSeq  uint64            `json:"last_seq"`
	Applied  uint64            `json:"events_applied"`
}

func (s *Server) diagnostics() Diagnostics {
	d := Diagnostics{Config: string(s.opts.Config.Dump()), Problems: s.tr.recentProblems(), Sessions: s.sess.count(),
		Accounts: s.accounts.List(), Buses: s.buses(), LastSeq: s.opts.Log.LastSeq()}
	_, _, d.Applied = s.tr.clock()
	if s.opts.StoreStats != nil {
		// Round-trip through JSON so the page shows the same view the API
		// returns, whatever type the store uses.
		if b, err := json.Marshal(s.opts.StoreStats()); err == nil {
			var m any
			if json.Unmarshal(b, &m) == nil {
				d.Store = m
			}
		}
	}
	if s.opts.Counters != nil {
		d.Counters = s.opts.Counters()
	}
	if s.opts.Recent != nil {
		d.Errors = s.opts.Recent.Lines()
	}
	if s.opts.Commands != nil {
		d.Commands = s.opts.Commands.Names()
	}
	for i := range d.Accounts {
		d.Accounts[i].Tokens = nil
	}
	return d
}

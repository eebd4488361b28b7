package rules

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Learned limits (Cuddihy et al. 2007: inactivity learned per home by
// time of day; research/domain.md §1.6).
//
// Each elder's own history teaches the engine three things, by local
// hour and weekday/weekend, exponentially forgotten with a two-week
// half-life:
//
//   - quiet gaps at home: how long the elder goes without any activity,
//     by the hour the silence began (a nap after lunch, sleep from 21:30);
//   - outings: how long the elder stays out, by the hour of departure;
//   - door cycles from home: how often one at this hour is a departure
//     (the next thing seen is the door again: the elder came back) rather
//     than a door use without leaving (the next thing seen is motion).
//
// The inactivity limit in force is the learned high quantile of quiet
// gaps starting around that hour, times a margin, never above the
// configured limit (6 h by day, 12 h into the night: learning can only
// make detection faster) and never below the configured floor. The
// not-returned limit is the learned outing length from that hour, times a
// margin, never below the configured limit (it can only make an absence
// alert later) and at most three times it. With too little history (a new
// elder, a long stay away) the configured limits apply: today's
// behaviour. Learning is frozen in away, hospital and visitor modes, while
// a sensor is silent or stuck, across gateway outages, and for any silence
// or absence that raised an alert someone acted on, so none of those
// teach the engine that they are normal.

const (
	habitsVersion = 1
	// habitHalfLife is how fast old days are forgotten.
	habitHalfLife = 14 * 24 * time.Hour
	// habitMinDays is how much (decayed) history learned limits need.
	habitMinDays = 7.0
	// habitMinDaysOut is the history learned outing lengths need.
	habitMinDaysOut = 3.0
	// habitMinWeight is how many (decayed) samples around an hour a
	// learned limit needs.
	habitMinWeight = 4.0

	// Outing limit for not_returned (floor: the configured limit).
	outQuantile = 0.95
	outFactor   = 1.25
	outAdd      = 30 * time.Minute
	outCap      = 3 // times the configured limit
	// The fall check after an unseen departure: she is not back by the
	// time she nearly always is from that hour.
	returnQuantile = 0.99
	returnFactor   = 1.25
	returnAdd      = 30 * time.Minute
	// longOutShare: an elder with at least this share of outings longer
	// than the configured not-returned limit "often goes out for long".
	longOutShare = 0.04

	// Histogram bins: lengths from 10 min up, each bin 1.2 times the last;
	// 34 bins reach 72 h.
	binBase  = 10 * time.Minute
	binRatio = 1.2
	nBins    = 34
)

var binLogRatio = math.Log(binRatio)

// Quiet-gap limit: quantile and margin (limit = q × factor + add). The
// quantiles are cached per slot and habits version (habits.quietQ), so
// these are constants.
const (
	quietQuantile   = 0.99
	quietFactor     = 1.6
	quietAdd        = 30 * time.Minute
	habitMinWeightQ = 20.0
	// habitMinWeightAfter: quiet spells after the door closed needed for
	// their own limit.
	habitMinWeightAfter = 10.0
)

// binOf returns the histogram bin of a length (lengths below binBase are
// not recorded; those above the last bin go to it).
func binOf(d time.Duration) int {
	if d < binBase {
		return -1
	}
	i := int(math.Log(float64(d)/float64(binBase)) / binLogRatio)
	return min(i, nBins-1)
}

// binTops[i+1] is the upper edge of bin i (binTops[0] the lower edge of
// bin 0): a quantile read from the histogram is rounded up to it
// (conservative: limits come out a little long).
var binTops = func() (t [nBins + 1]time.Duration) {
	for i := range t {
		t[i] = time.Duration(float64(binBase) * math.Pow(binRatio, float64(i)))
	}
	return t
}()

func binTop(i int) time.Duration { return binTops[i+1] }

// binMids[i] is the geometric middle of bin i.
var binMids = func() (t [nBins]time.Duration) {
	for i := range t {
		t[i] = time.Duration(float64(binTop(i-1)) * math.Sqrt(binRatio))
	}
	return t
}()

func binMid(i int) time.Duration { return binMids[i] }

// hourHist is a decayed histogram per day type and local hour.
type hourHist [2][24][nBins]float64

// habits is what the engine has learned of one elder. It is persisted
// apart from the elder's state (rules.habits/<household>) and less often:
// losing an hour of learning at a crash costs nothing.
type habits struct {
	V     int      `json:"v"`
	Day   int64    `json:"day"`  // local day of the last decay
	Days  float64  `json:"days"` // decayed count of days learned from
	Quiet hourHist `json:"-"`
	Out   hourHist `json:"-"`
	// After holds the quiet spells that began with the door closing while
	// she was in (come home, took a parcel in): usually minutes.
	After hourHist          `json:"-"`
	Dep   [2][24][2]float64 `json:"-"` // door cycles from home: [stayed in, went out]
	// Long counts absences longer than the configured not-returned limit
	// that ended with the elder back, forgotten far more slowly (a trip to
	// family every month or two is a habit too).
	Long    float64 `json:"-"`
	LongDay int64   `json:"-"`
	dirty   bool
	// ver counts changes, for what is derived from the habits and cached.
	ver          uint64
	longOuterVer uint64
	longOuter    bool
	qcache       [2][2][24]qEntry // [after door][day type][hour]
}

// qEntry is a cached quiet-spell quantile of one slot.
type qEntry struct {
	ver uint64 // habits version + 1 (0: empty)
	q   time.Duration
	ok  bool
}

// quietQ is the quiet-spell quantile of a slot (cached per habits
// version: the engine asks at every event).
func (h *habits) quietQ(hist *hourHist, after bool, s slot, minW float64) (time.Duration, bool) {
	a := 0
	if after {
		a = 1
	}
	c := &h.qcache[a][s.dt][s.hr]
	if c.ver == h.ver+1 {
		return c.q, c.ok
	}
	sum, w := widened(hist, s, minW)
	c.ver, c.ok = h.ver+1, w >= minW
	c.q = 0
	if c.ok {
		c.q = quantile(sum, w, quietQuantile)
	}
	return c.q, c.ok
}

// habitsJSON is the persisted form: only the bins that hold weight, as
// [day type, hour, bin, weight×1000] rows, so a new elder's habits are a
// few bytes and a learned one a few KB.
type habitsJSON struct {
	V       int        `json:"v"`
	Day     int64      `json:"day"`
	Days    float64    `json:"days"`
	Quiet   [][4]int64 `json:"quiet,omitempty"`
	Out     [][4]int64 `json:"out,omitempty"`
	After   [][4]int64 `json:"after,omitempty"`
	Dep     [][4]int64 `json:"dep,omitempty"` // [day type, hour, went out (0/1), count×1000]
	Long    float64    `json:"long,omitempty"`
	LongDay int64      `json:"long_day,omitempty"`
}

const weightScale = 1000

func (h *habits) MarshalJSON() ([]byte, error) {
	j := habitsJSON{V: habitsVersion, Day: h.Day, Days: math.Round(h.Days*1000) / 1000, Long: math.Round(h.Long*1000) / 1000, LongDay: h.LongDay}
	pack := func(hh *hourHist) [][4]int64 {
		var out [][4]int64
		for dt := range 2 {
			for hr := range 24 {
				for b := range nBins {
					if w := int64(math.Round(hh[dt][hr][b] * weightScale)); w > 0 {
						out = append(out, [4]int64{int64(dt), int64(hr), int64(b), w})
					}
				}
			}
		}
		return out
	}
	j.Quiet, j.Out, j.After = pack(&h.Quiet), pack(&h.Out), pack(&h.After)
	for dt := range 2 {
		for hr := range 24 {
			for k := range 2 {
				if w := int64(math.Round(h.Dep[dt][hr][k] * weightScale)); w > 0 {
					j.Dep = append(j.Dep, [4]int64{int64(dt), int64(hr), int64(k), w})
				}
			}
		}
	}
	return json.Marshal(j)
}

func (h *habits) UnmarshalJSON(b []byte) error {
	var j habitsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.V != habitsVersion {
		return fmt.Errorf("habits version %d", j.V)
	}
	if j.Long < 0 || j.Days < 0 {
		return fmt.Errorf("habits: negative count")
	}
	*h = habits{V: j.V, Day: j.Day, Days: j.Days, Long: j.Long, LongDay: j.LongDay}
	unpack := func(rows [][4]int64, hh *hourHist) error {
		for _, r := range rows {
			if r[0] < 0 || r[0] > 1 || r[1] < 0 || r[1] > 23 || r[2] < 0 || r[2] >= nBins || r[3] < 0 {
				return fmt.Errorf("habits: bad row %v", r)
			}
			hh[r[0]][r[1]][r[2]] = float64(r[3]) / weightScale
		}
		return nil
	}
	if err := unpack(j.Quiet, &h.Quiet); err != nil {
		return err
	}
	if err := unpack(j.Out, &h.Out); err != nil {
		return err
	}
	if err := unpack(j.After, &h.After); err != nil {
		return err
	}
	for _, r := range j.Dep {
		if r[0] < 0 || r[0] > 1 || r[1] < 0 || r[1] > 23 || r[2] < 0 || r[2] > 1 || r[3] < 0 {
			return fmt.Errorf("habits: bad row %v", r)
		}
		h.Dep[r[0]][r[1]][r[2]] = float64(r[3]) / weightScale
	}
	return nil
}

// decayTo forgets old days up to the local day d.
func (h *habits) decayTo(d int64) {
	if h.Day == 0 {
		h.Day = d
		return
	}
	if d <= h.Day {
		return
	}
	f := math.Pow(0.5, float64(d-h.Day)*24*float64(time.Hour)/float64(habitHalfLife))
	for dt := range 2 {
		for hr := range 24 {
			for b := range nBins {
				h.Quiet[dt][hr][b] *= f
				h.Out[dt][hr][b] *= f
				h.After[dt][hr][b] *= f
			}
			h.Dep[dt][hr][0] *= f
			h.Dep[dt][hr][1] *= f
		}
	}
	h.Days = h.Days*f + float64(d-h.Day)
	h.Day = d
	h.dirty = true
	h.ver++
}

// slot is where a time falls: day type (0 weekday, 1 weekend) and local
// hour.
type slot struct{ dt, hr int }

func (e *Engine) slotOf(t time.Time) slot {
	l := t.In(e.zone)
	dt := 0
	if wd := l.Weekday(); wd == time.Saturday || wd == time.Sunday {
		dt = 1
	}
	return slot{dt, l.Hour()}
}

func (e *Engine) localDay(t time.Time) int64 {
	return floorDiv(t.Unix()+int64(e.set.Offset), 86400)
}

// learnQuiet records a quiet gap at home that began at start.
func (e *Engine) learnQuiet(el *elder, start time.Time, d time.Duration) {
	b := binOf(d)
	after := afterDoor(el.st, start)
	if b < 0 && !after || e.set.Legacy || !el.cfg.Learn {
		return
	}
	h := el.hb
	h.decayTo(e.localDay(start.Add(d)))
	s := e.slotOf(start)
	if b >= 0 {
		h.Quiet[s.dt][s.hr][b]++
	}
	if after {
		// The short ones are most of them (she walks in): they count.
		h.After[s.dt][s.hr][max(b, 0)]++
	}
	h.dirty = true
	h.ver++
}

// learnOuting records an outing that began at left.
func (e *Engine) learnOuting(el *elder, left time.Time, d time.Duration) {
	b := binOf(d)
	if b < 0 || e.set.Legacy || !el.cfg.Learn {
		return
	}
	h := el.hb
	h.decayTo(e.localDay(left.Add(d)))
	s := e.slotOf(left)
	h.Out[s.dt][s.hr][b]++
	if d >= el.cfg.T.NotReturned.Std() {
		day := e.localDay(left.Add(d))
		h.Long = h.longAt(day) + 1
		h.LongDay = day
	}
	h.dirty = true
	h.ver++
}

// longHalfLife is how fast long absences are forgotten.
const longHalfLife = 60

// longAt is the decayed count of long absences on local day d.
func (h *habits) longAt(d int64) float64 {
	if h.Long == 0 || d <= h.LongDay {
		return h.Long
	}
	return h.Long * math.Pow(0.5, float64(d-h.LongDay)/longHalfLife)
}

// awayTaker reports whether the elder came back from an absence longer
// than the not-returned limit in the last months (a trip to family):
// her next long absence is most likely another one.
func (e *Engine) awayTaker(el *elder, now time.Time) bool {
	return e.learnedOut(el) && !el.cfg.Risk[RiskDementia] && el.hb.longAt(e.localDay(now)) >= 0.5
}

// learnDoorUse records what a door cycle from home at t turned out to be.
func (e *Engine) learnDoorUse(el *elder, t time.Time, wentOut bool) {
	if e.set.Legacy || !el.cfg.Learn {
		return
	}
	h := el.hb
	h.decayTo(e.localDay(t))
	s := e.slotOf(t)
	k := 0
	if wentOut {
		k = 1
	}
	h.Dep[s.dt][s.hr][k]++
	h.dirty = true
	h.ver++
}

// widened pools the hours around s, widening the window (to four hours
// either side, then both day types) until it holds minW samples: a new
// elder's few weeks give a limit from nearby hours rather than none.
func widened(hh *hourHist, s slot, minW float64) (sum [nBins]float64, w float64) {
	add := func(dt, hr int) {
		hr = (hr + 24) % 24
		for b := range nBins {
			x := hh[dt][hr][b]
			sum[b] += x
			w += x
		}
	}
	add(s.dt, s.hr)
	for r := 1; r <= 4; r++ {
		add(s.dt, s.hr-r)
		add(s.dt, s.hr+r)
		if w >= minW {
			return sum, w
		}
	}
	for r := -4; r <= 4; r++ {
		add(1-s.dt, s.hr+r)
	}
	return sum, w
}

func quantile(sum [nBins]float64, w, q float64) time.Duration {
	acc := 0.0
	for b := range nBins {
		acc += sum[b]
		if acc >= q*w {
			return binTop(b)
		}
	}
	return binTop(nBins - 1)
}

// learnedOut reports whether the elder has enough history for learned
// outing lengths: a few days of her own outings suffice to lengthen an
// absence limit (which the configured one bounds from below).
func (e *Engine) learnedOut(el *elder) bool {
	return !e.set.Legacy && el.cfg.Learn && el.hb.Days >= habitMinDaysOut
}

// learned reports whether the elder has enough history for learned limits.
func (e *Engine) learned(el *elder) bool {
	return !e.set.Legacy && el.cfg.Learn && el.hb.Days >= habitMinDays
}

// Limit is a limit in force and why, as alerts and the household page
// show it. The engine computes limits on every evaluation and words them
// only when someone reads them ([Limit.explained]).
type Limit struct {
	Applied    time.Duration `json:"applied"`
	Configured time.Duration `json:"configured"`
	// Learned is the limit the elder's own history gives before the
	// configured bounds (0: not enough history).
	Learned time.Duration `json:"learned,omitempty"`
	Basis   string        `json:"basis"` // configured, learned, floor, ceiling
	WhyZh   string        `json:"why_zh"`
	WhyEn   string        `json:"why_en"`

	outing   bool          // a not-returned limit (else inactivity)
	dementia bool          // configured because of the risk
	q        time.Duration // the learned quantile
	hr       int           // local hour the limit is for
	floor    time.Duration
	// afterDoor: learned from her quiet spells after the door closed.
	afterDoor bool
}

func (l Limit) view() map[string]any {
	m := map[string]any{"applied": l.Applied.String(), "configured": l.Configured.String(), "basis": l.Basis,
		"why_zh": l.WhyZh, "why_en": l.WhyEn}
	if l.Learned > 0 {
		m["learned"] = l.Learned.String()
	}
	return m
}

// explained returns the limit with its reasons worded.
func (l Limit) explained() Limit {
	at := hhmm(l.hr * 60)
	switch {
	case l.outing && l.dementia:
		l.WhyZh, l.WhyEn = "认知障碍风险：使用配置阈值，不按习惯放宽", "dementia risk: the configured limit, never lengthened by habit"
	case l.outing && l.Learned == 0:
		l.WhyZh, l.WhyEn = "使用配置阈值", "the configured limit"
	case l.outing && l.Basis == "configured":
		l.WhyZh = fmt.Sprintf("个人外出通常 %s 内返回，使用配置阈值 %s", fmtZh(l.q), fmtZh(l.Configured))
		l.WhyEn = fmt.Sprintf("the elder is usually back within %s: the configured %s applies", fmtEn(l.q), fmtEn(l.Configured))
	case l.outing:
		l.WhyZh = fmt.Sprintf("按近几周个人习惯：%s 前后出门，95%% 在 %s 内返回（再留余量）；不短于配置的 %s", at, fmtZh(l.q), fmtZh(l.Configured))
		l.WhyEn = fmt.Sprintf("from the elder's last weeks: 95%% of outings leaving around %s are back within %s (plus a margin); never shorter than the configured %s",
			at, fmtEn(l.q), fmtEn(l.Configured))
	case l.Basis == "configured":
		l.WhyZh, l.WhyEn = "使用配置阈值（尚无足够的个人作息数据）", "the configured limit (not enough of the elder's own history yet)"
	case l.Basis == "ceiling":
		l.WhyZh = fmt.Sprintf("按个人作息应为 %s，不超过配置上限 %s", fmtZh(l.Learned), fmtZh(l.Configured))
		l.WhyEn = fmt.Sprintf("the elder's own days give %s; never above the configured %s", fmtEn(l.Learned), fmtEn(l.Configured))
	case l.Basis == "floor":
		l.WhyZh = fmt.Sprintf("个人作息安静时段很短，使用下限 %s", fmtZh(l.floor))
		l.WhyEn = fmt.Sprintf("the elder's quiet spells are short: the floor of %s applies", fmtEn(l.floor))
	case l.afterDoor:
		l.WhyZh = fmt.Sprintf("按近几周个人作息：%s 前后进门（关门）后，99%% 在 %s 内就有室内活动（再留余量）；配置上限 %s", at, fmtZh(l.q), fmtZh(l.Configured))
		l.WhyEn = fmt.Sprintf("from the elder's last weeks: after the door closes behind her around %s, 99%% of the time she is seen moving within %s (plus a margin); configured ceiling %s",
			at, fmtEn(l.q), fmtEn(l.Configured))
	default:
		l.WhyZh = fmt.Sprintf("按近几周个人作息：%s 前后开始的安静时段，99%% 不超过 %s（再留余量）；配置上限 %s", at, fmtZh(l.q), fmtZh(l.Configured))
		l.WhyEn = fmt.Sprintf("from the elder's last weeks: 99%% of quiet spells beginning around %s end within %s (plus a margin); configured ceiling %s",
			at, fmtEn(l.q), fmtEn(l.Configured))
	}
	return l
}

// inactivityLimit is the inactivity limit for a silence that began at
// start: the learned one, bounded by the configured limit that applies
// (ceiling) and the configured floor.
func (e *Engine) inactivityLimit(el *elder, start time.Time) Limit {
	// Evaluated at every event; the answer changes only with the start
	// of the silence and the habits.
	k := limKey{start.UnixMilli(), el.hb.ver, useAfterDoor(el.st, start), el.hb.Days >= habitMinDays}
	if el.limOK && el.limKey == k {
		return el.lim
	}
	l := e.computeInactivityLimit(el, start)
	el.lim, el.limKey, el.limOK = l, k, true
	return l
}

// limKey is what an inactivity limit depends on.
type limKey struct {
	start  int64
	ver    uint64
	after  bool
	enough bool
}

func (e *Engine) computeInactivityLimit(el *elder, start time.Time) Limit {
	c := el.cfg
	ceil := e.inactivityThreshold(c, start)
	s := e.slotOf(start)
	l := Limit{Applied: ceil, Configured: ceil, Basis: "configured", hr: s.hr, floor: c.T.InactivityFloor.Std()}
	if !e.learned(el) {
		return l
	}
	hist, minW := &el.hb.Quiet, habitMinWeightQ
	if useAfterDoor(el.st, start) {
		// A silence that began with the door closing: her quiet spells
		// after coming in (or taking something in at the door).
		hist, minW, l.afterDoor = &el.hb.After, habitMinWeightAfter, true
	}
	q, ok := el.hb.quietQ(hist, l.afterDoor, s, minW)
	if !ok && l.afterDoor {
		q, ok = el.hb.quietQ(&el.hb.Quiet, false, s, habitMinWeightQ)
		l.afterDoor = false
	}
	if !ok {
		return l
	}
	l.q = q
	learned := time.Duration(float64(l.q)*quietFactor) + quietAdd
	l.Learned = learned.Round(time.Minute)
	switch {
	case learned >= ceil:
		l.Basis = "ceiling"
	case learned <= l.floor:
		l.Applied, l.Basis = l.floor, "floor"
	default:
		l.Applied, l.Basis = l.Learned, "learned"
	}
	return l
}

// outingLimit is the not-returned limit for an absence that began at
// left: the configured one (the floor), or the elder's learned outing
// length from that hour when it is longer, at most outCap times it.
func (e *Engine) outingLimit(el *elder, left time.Time, night bool) Limit {
	c := el.cfg
	T := c.T.NotReturned.Std()
	if night {
		T = c.T.NotReturnedNight.Std()
	}
	s := e.slotOf(left)
	l := Limit{Applied: T, Configured: T, Basis: "configured", outing: true, hr: s.hr, dementia: c.Risk[RiskDementia]}
	if l.dementia || !e.learnedOut(el) {
		return l
	}
	sum, w := widened(&el.hb.Out, s, habitMinWeight)
	if w < habitMinWeight {
		return l
	}
	l.q = quantile(sum, w, outQuantile)
	learned := time.Duration(float64(l.q)*outFactor) + outAdd
	l.Learned = learned.Round(time.Minute)
	if learned > T {
		l.Applied, l.Basis = min(learned, time.Duration(outCap)*T), "learned"
	}
	return l
}

// longOuter reports whether the elder often stays out longer than the
// configured not-returned limit (a job, a family they visit): their long
// absences are notices to staff by day, not care alerts at night.
func (e *Engine) longOuter(el *elder) bool {
	if !e.learnedOut(el) || el.cfg.Risk[RiskDementia] {
		return false
	}
	if h := el.hb; h.longOuterVer == h.ver+1 {
		return h.longOuter
	}
	v := e.computeLongOuter(el)
	el.hb.longOuter, el.hb.longOuterVer = v, el.hb.ver+1
	return v
}

func (e *Engine) computeLongOuter(el *elder) bool {
	T := el.cfg.T.NotReturned.Std()
	var total, long float64
	for dt := range 2 {
		for hr := range 24 {
			for b := range nBins {
				x := el.hb.Out[dt][hr][b]
				total += x
				if binMid(b) >= T {
					long += x
				}
			}
		}
	}
	return total >= habitMinWeight && long >= 1 && long/total >= longOutShare
}

// departureShare is how often a door cycle from home around t has been a
// departure; ok is false without enough history.
func (e *Engine) departureShare(el *elder, t time.Time) (p float64, ok bool) {
	if !e.learned(el) {
		return 0, false
	}
	s := e.slotOf(t)
	var in, out float64
	for _, d := range []int{-1, 0, 1} {
		hr := (s.hr + d + 24) % 24
		in += el.hb.Dep[s.dt][hr][0]
		out += el.hb.Dep[s.dt][hr][1]
	}
	if in+out < 2 {
		return 0, false
	}
	return (out + 0.5) / (in + out + 1), true
}

// usualReturn is the time by which the elder is normally back from an
// outing that began at left (a very high quantile with a wide margin),
// and whether history gives one.
func (e *Engine) usualReturn(el *elder, left time.Time) (time.Duration, bool) {
	if !e.learnedOut(el) {
		return 0, false
	}
	sum, w := widened(&el.hb.Out, e.slotOf(left), habitMinWeight)
	if w < habitMinWeight {
		return 0, false
	}
	q := quantile(sum, w, returnQuantile)
	return time.Duration(float64(q)*returnFactor) + returnAdd, true
}

// learnGap learns the quiet gap from prev to t that activity by dev just
// ended, if it was a quiet spell at home observed in full: normal mode,
// at home (or uncertain and ended by motion inside), every sensor
// believable, no gateway outage, no alert raised over it.
func (e *Engine) learnGap(el *elder, prev, t time.Time, dev string) {
	s := el.st
	d := t.Sub(prev)
	if d < binBase && !afterDoor(s, prev) || s.Mode.Name != ModeNormal || s.ResumedAt.After(prev) || s.ArmFrom[RuleInactivity].After(prev) {
		return
	}
	switch s.Presence.State {
	case PresenceHome:
		if s.Presence.Since.After(prev) {
			return
		}
	case PresenceUncertain:
		if sn := s.Sensors[dev]; sn == nil || sn.Role != "motion" {
			return
		}
	default:
		return
	}
	if a := s.Alerts[RuleInactivity]; a != nil || e.anySilent(el) {
		return
	}
	if g, _, _ := e.gapOverlap(prev, t); g > 0 {
		return
	}
	e.learnQuiet(el, prev, d)
}

// useAfterDoor reports whether the after-door spells apply: a silence
// that began at the door, unless she is already "uncertain" (quiet for
// away_after since: the short spells after a door use say nothing more).
func useAfterDoor(s *elderState, start time.Time) bool {
	return afterDoor(s, start) && s.Presence.State != PresenceUncertain
}

// afterDoor reports whether a silence that began at start began with the
// door closing (or with the motion of the person at the door just after).
func afterDoor(s *elderState, start time.Time) bool {
	c := s.DoorClosedAt
	return !c.IsZero() && !start.Before(c) && start.Sub(c) <= motionGrace
}

package rules

import (
	"math"
	"time"
)

// baseline is an elder's learned activity profile: for weekdays and
// weekends, the mean and variance of the number of activity events in
// each local hour. It is an exponentially weighted estimate (the weight
// of a new day floors at 1/maxWeight, about eight weeks of weekdays) so it
// follows slow changes of routine. Learning is frozen in away, hospital
// and visitor modes, while the elder is away, and in hours with a data gap
// or a silent sensor, so none of those contaminate it (behaviour-monitor's
// holiday and visitor modes; research/domain.md §1.6).
type baseline struct {
	N    [2][24]int     `json:"n"`
	Mean [2][24]float64 `json:"mean"`
	Var  [2][24]float64 `json:"var"`
	// The hour being counted and its count so far.
	Hour     int64    `json:"hour"` // local hours since the epoch
	Count    int      `json:"count"`
	Learn    bool     `json:"learn"`  // the current hour is fit to learn from
	Recent   [3]int   `json:"recent"` // counts of the last three complete hours, newest first
	RecentOK [3]bool  `json:"recent_ok"`
	RecentH  [3]int64 `json:"recent_h"`
}

const maxWeight = 40

func (b *baseline) learn(dayType, hour, count int) {
	b.N[dayType][hour]++
	n := b.N[dayType][hour]
	a := 1 / float64(min(n, maxWeight))
	x := float64(count)
	d := x - b.Mean[dayType][hour]
	b.Mean[dayType][hour] += a * d
	b.Var[dayType][hour] = (1 - a) * (b.Var[dayType][hour] + a*d*d)
}

// expect returns the expected count and variance of a local hour, and how
// many days back that estimate rests on.
func (b *baseline) expect(dayType, hour int) (mean, variance float64, n int) {
	return b.Mean[dayType][hour], b.Var[dayType][hour], b.N[dayType][hour]
}

// hourIndex returns local hours since the epoch for t.
func hourIndex(t time.Time, offset int) int64 {
	return floorDiv(t.Unix()+int64(offset), 3600)
}

// hourOf returns (day type, hour of day) of a local hour index: day type 1
// is Saturday or Sunday.
func hourOf(h int64) (dayType, hour int) {
	day := floorDiv(h, 24)
	hour = int(h - day*24)
	wd := (day + 4) % 7 // 1970-01-01 was a Thursday
	if wd < 0 {
		wd += 7
	}
	if wd == 0 || wd == 6 {
		dayType = 1
	}
	return dayType, hour
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// deviation compares the last three complete hours with the profile. It
// returns observed and expected counts and the threshold, and ok when
// the comparison is meaningful (all three hours learnable and well
// trained, and enough activity expected that a shortfall means something).
func (b *baseline) deviation(minDays int, k float64) (obs int, mean, sd float64, ok bool) {
	var v float64
	for i := 0; i < 3; i++ {
		if !b.RecentOK[i] || b.RecentH[i] == 0 {
			return 0, 0, 0, false
		}
		dt, h := hourOf(b.RecentH[i])
		m, vv, n := b.expect(dt, h)
		need := minDays * 5 / 7
		if dt == 1 {
			need = minDays * 2 / 7
		}
		if n < max(need, 2) {
			return 0, 0, 0, false
		}
		obs += b.Recent[i]
		mean += m
		v += vv
	}
	sd = math.Sqrt(v)
	// Fewer than six events expected in three hours is too little to
	// call a shortfall; a floor on the spread keeps a very regular
	// profile from flagging a quiet afternoon.
	if mean < 6 {
		return obs, mean, sd, false
	}
	sd = math.Max(sd, math.Sqrt(mean))
	return obs, mean, sd, float64(obs) < mean-k*sd
}

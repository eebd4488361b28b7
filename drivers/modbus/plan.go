package modbus

import (
	"sort"
)

// span is the part of a table one point needs: count registers (or bits,
// for coils and discrete inputs) from addr. id indexes the caller's points.
type span struct {
	table Table
	addr  int
	n     int
	id    int
}

// request is one read on the wire and the points it serves.
type request struct {
	table Table
	start int
	count int
	ids   []int
}

func (r request) end() int { return r.start + r.count }

// planLimits bound the planner.
type planLimits struct {
	maxRegs int // ≤ 125
	maxBits int // ≤ 2000
	// maxGap is the widest hole (unused addresses) bridged to save a
	// request; it counts registers, or bits for bit tables × 16.
	maxGap      int
	onePerPoint bool
	never       []Range
	// breaks[t] holds addresses no request may straddle: learned when a
	// merged read earned an "illegal data address" exception.
	breaks map[Table]map[int]bool
}

func (l planLimits) max(t Table) int {
	if t.bits() {
		return l.maxBits
	}
	return l.maxRegs
}

func (l planLimits) gap(t Table) int {
	if t.bits() {
		// A hole of g registers costs 2g bytes; 16 bits cost 2 bytes.
		return l.maxGap * 16
	}
	return l.maxGap
}

// neverIn reports whether any never-read address of t lies in [from, to).
func (l planLimits) neverIn(t Table, from, to int) bool {
	for _, r := range l.never {
		if r.table == t && r.From < to && r.To >= from {
			return true
		}
	}
	return false
}

func (l planLimits) breakIn(t Table, from, to int) bool {
	for b := range l.breaks[t] {
		if from < b && b <= to {
			return true
		}
	}
	return false
}

// plan merges the reads of spans into as few requests as the limits
// allow (Telegraf's max_insert, linear): walking each table in address
// order, the next span joins the current request when the hole before it
// is at most the gap, holds no never-read address and no learned break,
// and the request stays within the device's limit. Every span lands in
// exactly one request.
func plan(spans []span, l planLimits) []request {
	s := append([]span(nil), spans...)
	sort.Slice(s, func(i, j int) bool {
		if s[i].table != s[j].table {
			return s[i].table < s[j].table
		}
		if s[i].addr != s[j].addr {
			return s[i].addr < s[j].addr
		}
		if s[i].n != s[j].n {
			return s[i].n > s[j].n
		}
		return s[i].id < s[j].id
	})
	var out []request
	var cur *request
	for _, sp := range s {
		if cur != nil && cur.table == sp.table && !l.onePerPoint {
			newEnd := max(cur.end(), sp.addr+sp.n)
			fits := newEnd-cur.start <= l.max(sp.table)
			ok := fits && !l.breakIn(sp.table, cur.start, sp.addr)
			if ok && sp.addr > cur.end() {
				hole := sp.addr - cur.end()
				ok = hole <= l.gap(sp.table) && !l.neverIn(sp.table, cur.end(), sp.addr)
			}
			if ok {
				cur.count = newEnd - cur.start
				cur.ids = append(cur.ids, sp.id)
				continue
			}
		}
		out = append(out, request{table: sp.table, start: sp.addr, count: sp.n, ids: []int{sp.id}})
		cur = &out[len(out)-1]
	}
	return out
}

// splitPoint chooses where to break a request that earned an illegal
// address exception: after its widest hole (the likeliest unmapped
// addresses), else between its middle points. ok is false for a request
// serving one address range that cannot be split further.
func splitPoint(r request, spans map[int]span) (addr int, ok bool) {
	ss := make([]span, 0, len(r.ids))
	for _, id := range r.ids {
		ss = append(ss, spans[id])
	}
	sort.Slice(ss, func(i, j int) bool { return ss[i].addr < ss[j].addr })
	best, bestHole := -1, -1
	end := ss[0].addr + ss[0].n
	var starts []int
	for _, s := range ss[1:] {
		if s.addr >= end {
			starts = append(starts, s.addr)
			if h := s.addr - end; h > bestHole {
				best, bestHole = s.addr, h
			}
		}
		end = max(end, s.addr+s.n)
	}
	if len(starts) == 0 {
		return 0, false
	}
	if bestHole > 0 {
		return best, true
	}
	return starts[len(starts)/2], true
}

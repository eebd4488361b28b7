package city

import (
	"math"
	"sort"
)

// span is the closed seq range [lo, hi].
type span struct{ lo, hi uint64 }

// seqSet is a set of seqs kept as sorted, disjoint, non-adjacent closed
// ranges: a stream received in order is one span, and a declared gap of
// thousands of seqs costs one entry, not one per seq.
type seqSet struct {
	s []span
	n uint64 // seqs in the set
}

// add inserts [lo, hi] and returns how many seqs were new. The top seq
// (MaxUint64) is never stored, so hi+1 cannot wrap.
func (m *seqSet) add(lo, hi uint64) uint64 {
	hi = min(hi, math.MaxUint64-1)
	if lo > hi {
		return 0
	}
	// Spans i..j-1 overlap or touch [lo, hi]; they become one.
	i := sort.Search(len(m.s), func(i int) bool { return m.s[i].hi+1 >= lo })
	j := i
	nlo, nhi := lo, hi
	var had uint64
	for ; j < len(m.s) && m.s[j].lo <= hi+1; j++ {
		nlo, nhi = min(nlo, m.s[j].lo), max(nhi, m.s[j].hi)
		had += m.s[j].hi - m.s[j].lo + 1
	}
	if i == j {
		m.s = append(m.s, span{})
		copy(m.s[i+1:], m.s[i:])
	} else {
		m.s = append(m.s[:i+1], m.s[j:]...)
	}
	m.s[i] = span{nlo, nhi}
	added := nhi - nlo + 1 - had
	m.n += added
	return added
}

// has reports whether seq is in the set.
func (m *seqSet) has(seq uint64) bool {
	i := sort.Search(len(m.s), func(i int) bool { return m.s[i].hi >= seq })
	return i < len(m.s) && m.s[i].lo <= seq
}

// len is the number of seqs in the set.
func (m *seqSet) len() uint64 { return m.n }

// bounds returns the lowest and highest seq; ok is false when empty.
func (m *seqSet) bounds() (lo, hi uint64, ok bool) {
	if len(m.s) == 0 {
		return 0, 0, false
	}
	return m.s[0].lo, m.s[len(m.s)-1].hi, true
}

// countIn returns how many seqs of [lo, hi] are in the set.
func (m *seqSet) countIn(lo, hi uint64) uint64 {
	var n uint64
	i := sort.Search(len(m.s), func(i int) bool { return m.s[i].hi >= lo })
	for ; i < len(m.s) && m.s[i].lo <= hi; i++ {
		n += min(hi, m.s[i].hi) - max(lo, m.s[i].lo) + 1
	}
	return n
}

// minus returns how many seqs of m are not in o.
func (m *seqSet) minus(o *seqSet) uint64 {
	var n uint64
	for _, sp := range m.s {
		n += (sp.hi - sp.lo + 1) - o.countIn(sp.lo, sp.hi)
	}
	return n
}

// missing returns how many seqs of [lo, hi] are in neither a nor b.
func missing(lo, hi uint64, a, b *seqSet) uint64 {
	if lo > hi {
		return 0
	}
	// |[lo,hi]| − |a∩[lo,hi]| − |b∩[lo,hi]| + |a∩b∩[lo,hi]|, the last by
	// walking a's spans inside the window against b.
	total := hi - lo + 1
	inA := a.countIn(lo, hi)
	inB := b.countIn(lo, hi)
	var both uint64
	i := sort.Search(len(a.s), func(i int) bool { return a.s[i].hi >= lo })
	for ; i < len(a.s) && a.s[i].lo <= hi; i++ {
		both += b.countIn(max(lo, a.s[i].lo), min(hi, a.s[i].hi))
	}
	return total - inA - inB + both
}

// holeRanges lists up to limit ranges of [lo, hi] in neither a nor b, and
// whether there are more.
func holeRanges(lo, hi uint64, a, b *seqSet, limit int) (out [][2]uint64, capped bool) {
	var u seqSet
	for _, sp := range a.s {
		u.add(sp.lo, sp.hi)
	}
	for _, sp := range b.s {
		u.add(sp.lo, sp.hi)
	}
	next := lo
	for _, sp := range u.s {
		if sp.hi < next {
			continue
		}
		if sp.lo > hi {
			break
		}
		if sp.lo > next {
			if len(out) == limit {
				return out, true
			}
			out = append(out, [2]uint64{next, sp.lo - 1})
		}
		next = sp.hi + 1
	}
	if next <= hi {
		if len(out) == limit {
			return out, true
		}
		out = append(out, [2]uint64{next, hi})
	}
	return out, false
}

package city

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSeqSetModel checks the interval set against a plain map of seqs
// over random adds: membership, size, counts in a window, set difference
// and the two-set hole count, and that spans stay sorted, disjoint and
// non-adjacent (one span per run, whatever the order of the adds).
func TestSeqSetModel(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var a, b seqSet
		ma, mb := map[uint64]bool{}, map[uint64]bool{}
		for i := 0; i < 1+rnd.IntN(30); i++ {
			set, m := &a, ma
			if rnd.IntN(3) == 0 {
				set, m = &b, mb
			}
			lo := 1 + rnd.Uint64N(200)
			hi := lo + rnd.Uint64N(uint64(1+rnd.IntN(20)))
			want := uint64(0)
			for s := lo; s <= hi; s++ {
				if !m[s] {
					want++
				}
				m[s] = true
			}
			if got := set.add(lo, hi); got != want {
				t.Fatalf("round %d: add(%d,%d) = %d new, want %d", round, lo, hi, got, want)
			}
		}
		for _, c := range []struct {
			set *seqSet
			m   map[uint64]bool
		}{{&a, ma}, {&b, mb}} {
			if c.set.len() != uint64(len(c.m)) {
				t.Fatalf("round %d: len %d, want %d", round, c.set.len(), len(c.m))
			}
			for i, sp := range c.set.s {
				if sp.lo > sp.hi || i > 0 && c.set.s[i-1].hi+1 >= sp.lo {
					t.Fatalf("round %d: spans not sorted, disjoint and apart: %v", round, c.set.s)
				}
			}
			for s := uint64(0); s < 260; s++ {
				if c.set.has(s) != c.m[s] {
					t.Fatalf("round %d: has(%d) = %v", round, s, c.set.has(s))
				}
			}
		}
		lo := rnd.Uint64N(250)
		hi := lo + rnd.Uint64N(60)
		var inA, diff, miss uint64
		for s := lo; s <= hi; s++ {
			if ma[s] {
				inA++
			}
			if !ma[s] && !mb[s] {
				miss++
			}
		}
		for s := range ma {
			if !mb[s] {
				diff++
			}
		}
		if got := a.countIn(lo, hi); got != inA {
			t.Fatalf("round %d: countIn(%d,%d) = %d, want %d", round, lo, hi, got, inA)
		}
		if got := a.minus(&b); got != diff {
			t.Fatalf("round %d: minus = %d, want %d", round, got, diff)
		}
		if got := missing(lo, hi, &a, &b); got != miss {
			t.Fatalf("round %d: missing(%d,%d) = %d, want %d", round, lo, hi, got, miss)
		}
		var listed uint64
		hr, capped := holeRanges(lo, hi, &a, &b, 1000)
		for _, h := range hr {
			for s := h[0]; s <= h[1]; s++ {
				if ma[s] || mb[s] || s < lo || s > hi {
					t.Fatalf("round %d: hole range %v holds %d", round, h, s)
				}
				listed++
			}
		}
		if capped || listed != miss {
			t.Fatalf("round %d: hole ranges %v list %d seqs, want %d", round, hr, listed, miss)
		}
	}
}

func TestSeqSetWideAndTop(t *testing.T) {
	var s seqSet
	s.add(1, 3)
	s.add(10_000_000, 10_000_000)
	if n := s.add(4, 9_999_999); n != 9_999_996 || len(s.s) != 1 || s.len() != 10_000_000 {
		t.Fatalf("a wide range: added %d, spans %v", n, s.s)
	}
	// The top seq is never stored, so hi+1 never wraps.
	if n := s.add(math.MaxUint64-1, math.MaxUint64); n != 1 || s.has(math.MaxUint64) {
		t.Fatalf("top: added %d, spans %v", n, s.s)
	}
	if n := s.add(5, 4); n != 0 {
		t.Fatalf("empty range added %d", n)
	}
	if got, _ := holeRanges(1, 10, &seqSet{}, &seqSet{}, 0); len(got) != 0 {
		t.Fatalf("limit 0 listed %v", got)
	}
}

package modbus

import (
	"testing"

	"pgregory.net/rapid"
)

func TestPlanTable(t *testing.T) {
	sp := func(t Table, a, n, id int) span { return span{table: t, addr: a, n: n, id: id} }
	tests := []struct {
		name  string
		spans []span
		lim   planLimits
		want  []request
	}{
		{"contiguous merge", []span{sp(Holding, 0, 1, 0), sp(Holding, 1, 2, 1)}, planLimits{maxRegs: 125, maxBits: 2000, maxGap: 0},
			[]request{{Holding, 0, 3, []int{0, 1}}}},
		{"hole bridged", []span{sp(Holding, 0, 1, 0), sp(Holding, 5, 1, 1)}, planLimits{maxRegs: 125, maxBits: 2000, maxGap: 4},
			[]request{{Holding, 0, 6, []int{0, 1}}}},
		{"hole too wide", []span{sp(Holding, 0, 1, 0), sp(Holding, 6, 1, 1)}, planLimits{maxRegs: 125, maxBits: 2000, maxGap: 4},
			[]request{{Holding, 0, 1, []int{0}}, {Holding, 6, 1, []int{1}}}},
		{"limit", []span{sp(Input, 0, 2, 0), sp(Input, 2, 2, 1)}, planLimits{maxRegs: 3, maxBits: 2000, maxGap: 10},
			[]request{{Input, 0, 2, []int{0}}, {Input, 2, 2, []int{1}}}},
		{"never read", []span{sp(Holding, 0, 1, 0), sp(Holding, 5, 1, 1)}, planLimits{maxRegs: 125, maxBits: 2000, maxGap: 10, never: []Range{{table: Holding, From: 3, To: 3}}},
			[]request{{Holding, 0, 1, []int{0}}, {Holding, 5, 1, []int{1}}}},
		{"tables apart", []span{sp(Coil, 0, 1, 0), sp(Discrete, 1, 1, 1)}, planLimits{maxRegs: 125, maxBits: 2000, maxGap: 10},
			[]request{{Coil, 0, 1, []int{0}}, {Discrete, 1, 1, []int{1}}}},
		{"one per point", []span{sp(Holding, 0, 1, 0), sp(Holding, 1, 1, 1)}, planLimits{maxRegs: 125, maxBits: 2000, onePerPoint: true},
			[]request{{Holding, 0, 1, []int{0}}, {Holding, 1, 1, []int{1}}}},
		{"break", []span{sp(Holding, 0, 1, 0), sp(Holding, 1, 1, 1)}, planLimits{maxRegs: 125, maxBits: 2000, breaks: map[Table]map[int]bool{Holding: {1: true}}},
			[]request{{Holding, 0, 1, []int{0}}, {Holding, 1, 1, []int{1}}}},
		{"same register bits", []span{sp(Holding, 4, 1, 0), sp(Holding, 4, 1, 1)}, planLimits{maxRegs: 125, maxBits: 2000},
			[]request{{Holding, 4, 1, []int{0, 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := plan(tt.spans, tt.lim)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d requests %+v, want %+v", len(got), got, tt.want)
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.table != w.table || g.start != w.start || g.count != w.count || len(g.ids) != len(w.ids) {
					t.Fatalf("request %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestSplitPoint(t *testing.T) {
	spans := map[int]span{0: {Holding, 0, 1, 0}, 1: {Holding, 2, 1, 1}, 2: {Holding, 10, 2, 2}}
	a, ok := splitPoint(request{Holding, 0, 12, []int{0, 1, 2}}, spans)
	if !ok || a != 10 {
		t.Fatalf("split at %d %v, want 10 (after the widest hole)", a, ok)
	}
	if _, ok := splitPoint(request{Holding, 0, 1, []int{0}}, spans); ok {
		t.Fatal("a one-point request cannot be split")
	}
}

// TestPlanProperties checks the planner's invariants on random maps:
// every point is read by exactly one request that covers it, no request
// exceeds the limit, no hole inside a request is wider than the gap, no
// request touches a never-read address, and no learned break is
// straddled by two points of one request.
func TestPlanProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		lim := planLimits{
			maxRegs:     rapid.IntRange(4, 125).Draw(t, "maxRegs"),
			maxBits:     rapid.IntRange(1, 2000).Draw(t, "maxBits"),
			maxGap:      rapid.IntRange(0, 60).Draw(t, "maxGap"),
			onePerPoint: rapid.Bool().Draw(t, "onePerPoint"),
			breaks:      map[Table]map[int]bool{},
		}
		nNever := rapid.IntRange(0, 4).Draw(t, "nNever")
		for i := 0; i < nNever; i++ {
			from := rapid.IntRange(0, 400).Draw(t, "neverFrom")
			lim.never = append(lim.never, Range{table: Table(rapid.IntRange(0, 3).Draw(t, "neverTable")), From: from, To: from + rapid.IntRange(0, 20).Draw(t, "neverLen")})
		}
		for i, n := 0, rapid.IntRange(0, 3).Draw(t, "nBreaks"); i < n; i++ {
			tb := Table(rapid.IntRange(0, 3).Draw(t, "breakTable"))
			if lim.breaks[tb] == nil {
				lim.breaks[tb] = map[int]bool{}
			}
			lim.breaks[tb][rapid.IntRange(0, 450).Draw(t, "breakAddr")] = true
		}
		var spans []span
		for i, n := 0, rapid.IntRange(1, 80).Draw(t, "nPoints"); i < n; i++ {
			tb := Table(rapid.IntRange(0, 3).Draw(t, "table"))
			w := 1
			if !tb.bits() {
				w = rapid.SampledFrom([]int{1, 2}).Draw(t, "width")
			}
			a := rapid.IntRange(0, 440).Draw(t, "addr")
			if lim.neverIn(tb, a, a+w) {
				continue // the profile check refuses such points
			}
			spans = append(spans, span{table: tb, addr: a, n: w, id: len(spans)})
		}
		reqs := plan(spans, lim)
		seen := make([]int, len(spans))
		for _, r := range reqs {
			if r.count < 1 || r.count > lim.max(r.table) {
				t.Fatalf("request %+v exceeds the limit %d", r, lim.max(r.table))
			}
			if lim.neverIn(r.table, r.start, r.end()) {
				t.Fatalf("request %+v reads a never-read address %+v", r, lim.never)
			}
			covered := make([]bool, r.count)
			for _, id := range r.ids {
				s := spans[id]
				seen[id]++
				if s.table != r.table || s.addr < r.start || s.addr+s.n > r.end() {
					t.Fatalf("request %+v does not cover point %+v", r, s)
				}
				for a := s.addr; a < s.addr+s.n; a++ {
					covered[a-r.start] = true
				}
				for _, id2 := range r.ids {
					s2 := spans[id2]
					for b := range lim.breaks[r.table] {
						if s.addr < b && b <= s2.addr {
							t.Fatalf("request %+v straddles break %d with points at %d and %d", r, b, s.addr, s2.addr)
						}
					}
				}
			}
			hole := 0
			for _, c := range covered {
				if c {
					hole = 0
					continue
				}
				hole++
				if hole > lim.gap(r.table) {
					t.Fatalf("request %+v has a hole wider than %d", r, lim.gap(r.table))
				}
			}
			if lim.onePerPoint && len(r.ids) != 1 {
				t.Fatalf("one-per-point request serves %d points", len(r.ids))
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("point %+v read %d times", spans[id], n)
			}
		}
	})
}

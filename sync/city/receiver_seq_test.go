package city

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lintel-edge/lintel/edge/event"
)

// tev is one event of a test batch: a plain door event, or a declaration
// of the range first..last with a reason.
type tev struct {
	seq         uint64
	kind        event.Kind
	first, last uint64
	reason      string
	ranges      [][2]uint64
}

func ev(seq uint64) tev { return tev{seq: seq} }

func decl(seq uint64, kind event.Kind, first, last uint64, reason string) tev {
	return tev{seq: seq, kind: kind, first: first, last: last, reason: reason}
}

func evs(lo, hi uint64) []tev {
	var out []tev
	for s := lo; s <= hi; s++ {
		out = append(out, ev(s))
	}
	return out
}

// tmsg is one test batch on a lane.
type tmsg struct {
	lane  string
	epoch string
	prev  uint64
	evs   []tev
}

func on(lane string, prev uint64, e ...tev) tmsg { return tmsg{lane: lane, prev: prev, evs: e} }

func onEvents(prev uint64, groups ...[]tev) tmsg {
	var all []tev
	for _, g := range groups {
		all = append(all, g...)
	}
	return tmsg{lane: LaneEvents, prev: prev, evs: all}
}

func (m tmsg) fake(t *testing.T) fakeMsg {
	t.Helper()
	epoch := m.epoch
	if epoch == "" {
		epoch = testEpoch
	}
	var enc [][]byte
	for _, te := range m.evs {
		e := event.New(event.DoorOpened)
		if te.kind != "" {
			e = event.New(te.kind)
			d := map[string]any{"first_seq": te.first, "last_seq": te.last, "reason": te.reason}
			if te.kind != event.StoreSeqSkipped {
				d["count"] = te.last - te.first + 1
			}
			if te.ranges != nil {
				d["ranges"] = te.ranges
			}
			e.WithData(d)
		}
		e.ID, e.Seq, e.Gateway, e.Compound = event.FormatID("gw-01", epoch, te.seq), te.seq, "gw-01", "c-01"
		e.Time, e.TimeQuality = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), event.Synced
		js, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		enc = append(enc, js)
	}
	h := header{lane: m.lane, gateway: "gw-01", compound: "c-01", epoch: epoch}
	p, err := encodeBatch(h, m.prev, m.evs[0].seq, m.evs[len(m.evs)-1].seq, enc, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	return fakeMsg{topic: "lintel/v1/c-01/gw-01/" + m.lane + "/json", payload: p}
}

type seqWant struct {
	received, declared, holes uint64
	byReason                  map[string]uint64
	holeRanges                [][2]uint64
	bad                       uint64
}

// TestReceiverSeqAccounting feeds batches to a receiver (no gap check, so
// every batch is taken) and checks what it says of the stream: seqs
// received, seqs declared missing by reason, and undeclared holes.
func TestReceiverSeqAccounting(t *testing.T) {
	const (
		dropped = event.StoreDropped
		lost    = event.StoreLost
		skipped = event.StoreSeqSkipped
	)
	cases := []struct {
		name string
		msgs []tmsg
		want seqWant
	}{
		{"contiguous", []tmsg{onEvents(0, evs(1, 5))},
			seqWant{received: 5}},
		{"undeclared hole inside a batch", []tmsg{onEvents(0, evs(1, 2), evs(5, 6))},
			seqWant{received: 4, holes: 2, holeRanges: [][2]uint64{{3, 4}}}},
		{"hole before its declaration, then declared", []tmsg{
			onEvents(0, evs(1, 2), evs(5, 6)),
			onEvents(6, []tev{decl(7, dropped, 3, 4, "quota")}),
		}, seqWant{received: 5, declared: 2, byReason: map[string]uint64{"dropped/quota": 2}}},
		{"declared range holding kept records", []tmsg{
			// A quota drop deletes telemetry and keeps alerts inside its range.
			onEvents(0, []tev{ev(1), ev(3), ev(5), decl(6, dropped, 2, 4, "quota")}),
		}, seqWant{received: 4, declared: 2, byReason: map[string]uint64{"dropped/quota": 2}}},
		{"hole after a declaration", []tmsg{
			onEvents(0, evs(1, 2), []tev{decl(5, dropped, 3, 4, "retention"), ev(6), ev(8)}),
		}, seqWant{received: 5, declared: 2, holes: 1, byReason: map[string]uint64{"dropped/retention": 2}, holeRanges: [][2]uint64{{7, 7}}}},
		{"hole before a declared range stays a hole", []tmsg{
			onEvents(0, []tev{ev(1), ev(4), ev(5), ev(8), decl(9, dropped, 6, 7, "quota")}),
		}, seqWant{received: 5, declared: 2, holes: 2, byReason: map[string]uint64{"dropped/quota": 2}, holeRanges: [][2]uint64{{2, 3}}}},
		{"overlapping declarations of two reasons", []tmsg{
			onEvents(0, []tev{ev(1), ev(10), decl(11, dropped, 2, 6, "quota"), decl(12, lost, 5, 9, "torn_page")}),
		}, seqWant{received: 4, declared: 8, byReason: map[string]uint64{"dropped/quota": 5, "lost/torn_page": 5}}},
		{"the same range declared twice", []tmsg{
			onEvents(0, []tev{ev(1), decl(4, dropped, 2, 3, "quota"), decl(5, dropped, 2, 3, "quota")}),
		}, seqWant{received: 3, declared: 2, byReason: map[string]uint64{"dropped/quota": 2}}},
		{"a skipped range thousands wide", []tmsg{
			onEvents(0, evs(1, 3)),
			onEvents(100_002, []tev{decl(100_003, skipped, 4, 100_002, "unclean_stop"), ev(100_004)}),
		}, seqWant{received: 5, declared: 99_999, byReason: map[string]uint64{"skipped/unclean_stop": 99_999}}},
		{"alerts lane ahead of the events lane", []tmsg{
			onEvents(0, evs(1, 3)),
			on(LaneAlerts, 9, ev(10)), // not a hole: the events lane is still at 3
			onEvents(3, evs(4, 12)),   // 10 again: a duplicate
		}, seqWant{received: 12}},
		{"alerts lane ahead, events lane skips what it should carry", []tmsg{
			onEvents(0, evs(1, 3)),
			on(LaneAlerts, 9, ev(10)),
			onEvents(10, evs(11, 12)),
		}, seqWant{received: 6, holes: 6, holeRanges: [][2]uint64{{4, 9}}}},
		{"a declaration on the alerts lane first", []tmsg{
			onEvents(0, evs(1, 2)),
			on(LaneAlerts, 4, decl(5, lost, 3, 4, "crc")), // store.lost is an alert
			onEvents(2, []tev{decl(5, lost, 3, 4, "crc"), ev(6)}),
		}, seqWant{received: 4, declared: 2, byReason: map[string]uint64{"lost/crc": 2}}},
		{"duplicates change nothing", []tmsg{
			onEvents(0, evs(1, 3), []tev{decl(6, dropped, 4, 5, "quota")}),
			onEvents(0, evs(1, 3), []tev{decl(6, dropped, 4, 5, "quota")}),
			onEvents(6, evs(7, 7)),
			onEvents(6, evs(7, 7)),
		}, seqWant{received: 5, declared: 2, byReason: map[string]uint64{"dropped/quota": 2}}},
		{"a declared seq that arrives after all", []tmsg{
			onEvents(0, []tev{ev(1), decl(4, dropped, 2, 3, "quota")}),
			on(LaneAlerts, 1, ev(2)), // e.g. an alert copy the platform got before the drop
		}, seqWant{received: 3, declared: 1, byReason: map[string]uint64{"dropped/quota": 1}}},
		{"a malformed declaration is ignored", []tmsg{
			onEvents(0, []tev{ev(1), decl(3, dropped, 2, 7, "quota"), decl(4, dropped, 0, 0, "quota"), ev(6)}),
		}, seqWant{received: 4, holes: 2, bad: 2, holeRanges: [][2]uint64{{2, 2}, {5, 5}}}},
		{"store.lost with exact runs inside its range", []tmsg{
			onEvents(0, []tev{ev(1), ev(4), ev(5), ev(8),
				{seq: 9, kind: lost, first: 2, last: 7, reason: "journal_damage", ranges: [][2]uint64{{2, 3}, {7, 7}}}}),
		}, seqWant{received: 5, declared: 3, holes: 1, byReason: map[string]uint64{"lost/journal_damage": 3}, holeRanges: [][2]uint64{{6, 6}}}},
		{"store.lost with a run outside its range is ignored", []tmsg{
			onEvents(0, []tev{ev(1), {seq: 4, kind: lost, first: 2, last: 3, reason: "x", ranges: [][2]uint64{{2, 9}}}}),
		}, seqWant{received: 2, holes: 2, bad: 1, holeRanges: [][2]uint64{{2, 3}}}},
		{"a reason that is not a word", []tmsg{
			onEvents(0, []tev{ev(1), decl(4, lost, 2, 3, "Disk Error!\n"), decl(6, lost, 5, 5, "")}),
		}, seqWant{received: 3, declared: 3, byReason: map[string]uint64{"lost/other": 2, "lost/unspecified": 1}}},
		{"seqs before the first received are not holes", []tmsg{
			onEvents(500, evs(501, 503)),
		}, seqWant{received: 3}},
		{"two epochs are two streams", []tmsg{
			onEvents(0, evs(1, 3)),
			{lane: LaneEvents, epoch: "fedcba9876543210", prev: 0, evs: []tev{ev(1), ev(3)}},
		}, seqWant{received: 5, holes: 1, holeRanges: [][2]uint64{{2, 2}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			r, err := NewReceiver(ReceiverOptions{Broker: "tcp://x:1", Filter: "lintel/v1/+/+", Out: &out, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			for i, m := range tc.msgs {
				before := r.BadBatches.Load()
				r.handle(m.fake(t))
				if r.BadBatches.Load() != before {
					t.Fatalf("message %d refused as bad", i)
				}
			}
			checkSeqs(t, r, tc.want)
			// A restarted receiver that reads the output knows the same.
			r2, _ := NewReceiver(ReceiverOptions{Broker: "tcp://x:1", Filter: "x", Logger: testLogger(t)})
			if err := r2.LoadSeen(strings.NewReader(out.String())); err != nil {
				t.Fatal(err)
			}
			if tc.name != "alerts lane ahead, events lane skips what it should carry" {
				// (LoadSeen cannot tell the lanes apart: it takes the
				// highest seq written as the events lane's.)
				t.Run("LoadSeen", func(t *testing.T) { checkSeqs(t, r2, tc.want) })
			}
		})
	}
}

func checkSeqs(t *testing.T, r *Receiver, w seqWant) {
	t.Helper()
	got := fmt.Sprintf("received %d declared %d holes %d bad %d", r.Received.Load(), r.Declared.Load(), r.Holes.Load(), r.BadDeclarations.Load())
	want := fmt.Sprintf("received %d declared %d holes %d bad %d", w.received, w.declared, w.holes, w.bad)
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if w.byReason == nil {
		w.byReason = map[string]uint64{}
	}
	if d := cmp.Diff(w.byReason, r.DeclaredByReason()); d != "" {
		t.Errorf("declared by reason (-want +got):\n%s", d)
	}
	var ranges [][2]uint64
	var holes uint64
	for _, st := range r.Streams() {
		ranges = append(ranges, st.HoleRanges...)
		holes += st.Holes
	}
	if d := cmp.Diff(w.holeRanges, ranges); d != "" || holes != r.Holes.Load() {
		t.Errorf("hole ranges (-want +got):\n%s(streams' holes %d, total %d)", d, holes, r.Holes.Load())
	}
}

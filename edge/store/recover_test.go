package store

import (
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// declaredRanges collects the seq ranges that store.seq_skipped and
// store.lost events among evs declare, checking that each declaration
// comes after the range it declares.
func declaredRanges(t tb, evs []*event.Event) []SeqRange {
	t.Helper()
	var out []SeqRange
	for _, ev := range evs {
		if !declares(ev.Kind) {
			continue
		}
		var d struct {
			First uint64 `json:"first_seq"`
			Last  uint64 `json:"last_seq"`
			Count uint64 `json:"count"`
		}
		if err := json.Unmarshal(ev.Data, &d); err != nil || d.First == 0 || d.Last < d.First || d.Count == 0 || d.Count > d.Last-d.First+1 {
			t.Fatalf("%s at seq %d: bad data %s (%v)", ev.Kind, ev.Seq, ev.Data, err)
		}
		if d.Last >= ev.Seq {
			t.Fatalf("%s at seq %d declares %d..%d: a declaration must follow its range", ev.Kind, ev.Seq, d.First, d.Last)
		}
		out = append(out, SeqRange{First: d.First, Last: d.Last, Certain: ev.Kind == event.StoreLost})
	}
	return out
}

// covered reports whether every seq of first..last lies in a declared range.
func covered(ranges []SeqRange, first, last uint64) bool {
	for seq := first; seq <= last; {
		next := seq
		for _, r := range ranges {
			if r.First <= seq && seq <= r.Last {
				next = r.Last + 1
				break
			}
		}
		if next == seq {
			return false
		}
		seq = next
	}
	return true
}

// splitLog reads every stored event: the JSON of those the store did not
// raise itself, the ranges declared missing, and the store's own events.
func splitLog(t *testing.T, s *Store) (user []string, decl []SeqRange, own []*event.Event) {
	t.Helper()
	evs, err := s.ReadRange(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if strings.HasPrefix(string(ev.Kind), "store.") || strings.HasPrefix(string(ev.Kind), "storage.") {
			own = append(own, ev)
			continue
		}
		user = append(user, mustJSON(t, ev))
	}
	return user, declaredRanges(t, evs), own
}

// checkNoReuse proves the property that matters after any damage: every
// stored event that was appended before has the content it was appended
// with, no seq carries other content, and every appended event that is
// gone lies in a range the store declared.
func checkNoReuse(t *testing.T, s *Store, appended map[uint64]string) (kept, lost int) {
	t.Helper()
	evs, err := s.ReadRange(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	decl := declaredRanges(t, evs)
	have := map[uint64]bool{}
	for _, ev := range evs {
		have[ev.Seq] = true
		js := mustJSON(t, ev)
		want, ok := appended[ev.Seq]
		switch {
		case ok && js != want:
			t.Fatalf("seq %d holds %s\nbut was appended as %s", ev.Seq, js, want)
		case ok:
			kept++
		case !strings.HasPrefix(string(ev.Kind), "store.") && !strings.HasPrefix(string(ev.Kind), "storage."):
			t.Fatalf("seq %d holds an event nobody appended: %s", ev.Seq, js)
		}
	}
	for seq := range appended {
		if !have[seq] {
			if !covered(decl, seq, seq) {
				t.Fatalf("seq %d is gone without a declaration (declared %v)", seq, decl)
			}
			lost++
		}
	}
	return kept, lost
}

// Clock steps (T7 of the reliability research): the box boots in 1970,
// NTP jumps the wall clock a decade ahead, then steps it back an hour and
// bumps it by ±262 s, with kill -9 between the steps. Seqs only grow, no
// id is reused, nothing young expires, and the events the store raises
// say their clock is not to be trusted when it is not.
func TestClockStepsAcrossCrashes(t *testing.T) {
	o := testOptions(t, "city")
	o.MaxAge = time.Hour
	clk := &fakeClock{}
	o.Elapsed = clk.Elapsed
	var wall atomic.Int64
	o.Now = func() time.Time { return time.Unix(0, wall.Load()) }
	o.TimeQuality = func() event.TimeQuality {
		if time.Unix(0, wall.Load()).Year() < 2026 {
			return event.Unsynced
		}
		return event.Synced
	}
	boot := time.Date(1970, 1, 1, 0, 0, 3, 0, time.UTC)
	steps := []time.Time{
		boot,
		boot.Add(10 * 365 * 24 * time.Hour),
		time.Date(2026, 12, 7, 23, 0, 0, 0, time.UTC),
		time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC),  // −1 h
		time.Date(2026, 12, 7, 22, 4, 22, 0, time.UTC), // +262 s
		time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC),  // −262 s
	}
	appended := map[uint64]string{}
	var last uint64
	for i, w := range steps {
		wall.Store(w.UnixNano())
		s := mustOpen(t, o)
		for j := range 5 {
			ev := telemetryEvent(i*10 + j)
			ev.Time = time.Time{} // stamped by the store from its wall clock
			if err := s.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if ev.Seq <= last {
				t.Fatalf("step %d: seq %d after %d", i, ev.Seq, last)
			}
			last = ev.Seq
			appended[ev.Seq] = mustJSON(t, ev)
			clk.Advance(time.Second)
		}
		_, _, own := splitLog(t, s)
		for _, ev := range own {
			if ev.TimeQuality == "" || ev.Time.Year() < 2026 && ev.TimeQuality != event.Unsynced {
				t.Fatalf("step %d: %s stamped %s %q", i, ev.Kind, ev.Time, ev.TimeQuality)
			}
		}
		if i%2 == 0 {
			crashClose(t, s)
		} else if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s := mustOpen(t, o)
	kept, lost := checkNoReuse(t, s, appended)
	if kept != len(appended) || lost != 0 || s.Stats().Dropped[ReasonRetention] != 0 {
		t.Fatalf("kept %d lost %d of %d, retention dropped %d", kept, lost, len(appended), s.Stats().Dropped[ReasonRetention])
	}
}

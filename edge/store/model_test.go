package store

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"

	"github.com/lintel-edge/lintel/edge/event"
)

// logModel is the in-memory model of the log: what must be stored.
type logModel struct {
	present    map[uint64]string // seq -> event JSON
	class      map[uint64]byte
	lastSeq    uint64
	cursors    map[string]uint64
	state      map[string]stateVal // "ns/key"
	dropped    uint64              // records accounted by store.dropped events
	epoch      string
	boots      uint64
	droppedImp uint64
}

type stateVal struct {
	ver uint32
	val string
}

var modelSinks = []string{"a", "b"}

// TestModel drives the store with random operations against logModel.
// Invariants: seqs are contiguous (every seq up to LastSeq is stored,
// acked by all sinks, or accounted by a store.dropped event), reads match
// the model, cursors never move back, important records are not dropped
// while telemetry exists, every drop is accounted.
func TestModel(t *testing.T) {
	t.Parallel()
	var drops, important, replayed, folds atomic.Uint64
	defer func() {
		t.Logf("records dropped across runs: %d (important %d); journal frames replayed %d; folds %d",
			drops.Load(), important.Load(), replayed.Load(), folds.Load())
	}()
	rapid.Check(t, func(rt *rapid.T) {
		dir := t.TempDir()
		o := Options{
			Path: filepath.Join(dir, "m.db"), Gateway: "gw-m", Compound: "c", Sinks: modelSinks,
			MaxBytes:    rapid.SampledFrom([]int64{1500, 4000, 1 << 20}).Draw(rt, "max_bytes"),
			FlushWindow: time.Millisecond, Logger: slog.New(slog.DiscardHandler),
			// A small journal that folds often: folds, a full journal and
			// replay after a crash all happen within a run.
			walSize:      rapid.SampledFrom([]int64{16 << 10, 64 << 10}).Draw(rt, "wal_size"),
			walFoldBytes: rapid.SampledFrom([]int{2 << 10, 1 << 20}).Draw(rt, "wal_fold_bytes"),
		}
		s, err := Open(o)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { folds.Add(s.folds.Load()); _ = s.Close() }()
		m := &logModel{present: map[uint64]string{}, class: map[uint64]byte{}, cursors: map[string]uint64{},
			state: map[string]stateVal{}, epoch: s.Epoch(), boots: 1}
		n := 0
		defer func() { drops.Add(m.dropped); important.Add(m.droppedImp) }()
		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				k := rapid.IntRange(1, 4).Draw(rt, "n")
				evs := make([]*event.Event, k)
				for i := range evs {
					n++
					pad := strings.Repeat("p", rapid.IntRange(0, 300).Draw(rt, "pad"))
					evs[i] = &event.Event{Time: evTime, Kind: event.Telemetry, Severity: event.Info, Device: fmt.Sprintf("d%d", n),
						Data: json.RawMessage(fmt.Sprintf(`{"pad":%q}`, pad))}
					if rapid.IntRange(0, 3).Draw(rt, "important") == 0 {
						evs[i].Kind, evs[i].Severity = event.WaterLeak, event.Alert
					}
				}
				if err := s.Append(ctx, evs...); err != nil {
					rt.Fatal(err)
				}
				for i, ev := range evs {
					if ev.Seq != m.lastSeq+1+uint64(i) {
						rt.Fatalf("append %d got seq %d, want %d", i, ev.Seq, m.lastSeq+1+uint64(i))
					}
					m.present[ev.Seq] = mustJSON(rt, ev)
					m.class[ev.Seq] = classOf(ev)
				}
				m.lastSeq += uint64(k)
				m.reconcile(rt, s)
			},
			"read": func(rt *rapid.T) {
				after := rapid.Uint64Range(0, m.lastSeq+2).Draw(rt, "after")
				max := rapid.IntRange(1, 20).Draw(rt, "max")
				got, err := s.Read(modelSinks[0], after, max)
				if err != nil {
					rt.Fatal(err)
				}
				var want []string
				for _, seq := range slices.Sorted(maps.Keys(m.present)) {
					if seq > after && len(want) < max {
						want = append(want, m.present[seq])
					}
				}
				var gotJS []string
				for _, ev := range got {
					gotJS = append(gotJS, mustJSON(rt, ev))
				}
				if diff := cmp.Diff(want, gotJS); diff != "" {
					rt.Fatalf("read after %d max %d (-model +store):\n%s", after, max, diff)
				}
			},
			"ack": func(rt *rapid.T) {
				sink := rapid.SampledFrom(modelSinks).Draw(rt, "sink")
				seq := rapid.Uint64Range(0, m.lastSeq).Draw(rt, "seq")
				if err := s.Ack(ctx, sink, seq); err != nil {
					rt.Fatal(err)
				}
				m.cursors[sink] = max(m.cursors[sink], seq)
				m.reconcile(rt, s)
			},
			"reopen": func(rt *rapid.T) {
				if err := s.Close(); err != nil {
					rt.Fatal(err)
				}
				s, err = Open(o)
				if err != nil {
					rt.Fatal(err)
				}
				m.boots++
				if s.Epoch() != m.epoch || s.BootCount() != m.boots || s.Quarantined() != "" {
					rt.Fatalf("reopen: epoch %s boots %d quarantined %q", s.Epoch(), s.BootCount(), s.Quarantined())
				}
				m.reconcile(rt, s)
			},
			"fold": func(rt *rapid.T) {
				// Flush folds the journal into bbolt and starts a new generation.
				if err := s.Flush(ctx); err != nil {
					rt.Fatal(err)
				}
				if s.ov.frames != 0 {
					rt.Fatalf("journal holds %d frames after Flush", s.ov.frames)
				}
				m.reconcile(rt, s)
			},
			"crash_reopen": func(rt *rapid.T) {
				// As after kill -9 between requests: no final fold, the
				// journal frames must be replayed.
				frames := s.ov.frames
				s.abandon.Store(true)
				if err := s.Close(); err != nil {
					rt.Fatal(err)
				}
				s, err = Open(o)
				if err != nil {
					rt.Fatal(err)
				}
				m.boots++
				if s.Epoch() != m.epoch || s.BootCount() != m.boots || s.Quarantined() != "" {
					rt.Fatalf("crash reopen: epoch %s boots %d quarantined %q", s.Epoch(), s.BootCount(), s.Quarantined())
				}
				replayed.Add(uint64(s.walReplayed))
				if s.walReplayed != frames {
					rt.Fatalf("replayed %d journal frames, %d were written since the last fold", s.walReplayed, frames)
				}
				m.reconcile(rt, s)
			},
			"put_state": func(rt *rapid.T) {
				key := rapid.SampledFrom([]string{"k1", "k2", "k3"}).Draw(rt, "key")
				v := stateVal{rapid.Uint32().Draw(rt, "ver"), rapid.String().Draw(rt, "val")}
				if err := s.PutState(ctx, "ns", key, v.ver, []byte(v.val)); err != nil {
					rt.Fatal(err)
				}
				m.state[key] = v
				m.reconcile(rt, s)
			},
			"delete_state": func(rt *rapid.T) {
				key := rapid.SampledFrom([]string{"k1", "k2", "k3"}).Draw(rt, "key")
				if err := s.DeleteState(ctx, "ns", key); err != nil {
					rt.Fatal(err)
				}
				delete(m.state, key)
				m.reconcile(rt, s)
			},
			"get_state": func(rt *rapid.T) {
				key := rapid.SampledFrom([]string{"k1", "k2", "k3"}).Draw(rt, "key")
				ver, val, ok, err := s.GetState("ns", key)
				if err != nil {
					rt.Fatal(err)
				}
				want, wok := m.state[key]
				if ok != wok || ok && (ver != want.ver || string(val) != want.val) {
					rt.Fatalf("state %s: %d %q %v, model %+v %v", key, ver, val, ok, want, wok)
				}
			},
			"": func(rt *rapid.T) { m.check(rt, s) },
		})
	})
}

// reconcile takes in the events the store raised itself (store.dropped)
// and removes from the model what acks and drops removed, checking that
// every drop is accounted and that the drop order was right.
func (m *logModel) reconcile(rt *rapid.T, s *Store) {
	// Cursors never move backwards, and equal the model.
	for _, sink := range modelSinks {
		if got := s.Cursor(sink); got != m.cursors[sink] {
			rt.Fatalf("cursor %s = %d, model %d", sink, got, m.cursors[sink])
		}
	}
	// Seqs above the model's are the store's own: drops, and after a
	// crash a declared skip (never a loss: nothing was damaged).
	var drops []dropInfo
	raised, err := s.ReadRange(m.lastSeq, 1<<30)
	if err != nil {
		rt.Fatal(err)
	}
	declared := declaredRanges(rt, raised)
	prev := m.lastSeq
	for _, ev := range raised {
		if ev.Seq != prev+1 && !covered(declared, prev+1, ev.Seq-1) {
			rt.Fatalf("store-raised seq %d after %d: undeclared hole", ev.Seq, prev)
		}
		prev = ev.Seq
		switch ev.Kind {
		case event.StoreDropped:
			drops = append(drops, dropData(rt, ev))
		case event.StoreSeqSkipped:
		default:
			rt.Fatalf("store-raised seq %d: %s %s", ev.Seq, ev.Kind, ev.Data)
		}
		m.present[ev.Seq] = mustJSON(rt, ev)
		m.class[ev.Seq] = classOf(ev)
	}
	if prev != s.LastSeq() {
		rt.Fatalf("store-raised events end at %d, last seq %d", prev, s.LastSeq())
	}
	newLast := s.LastSeq()
	low := min(m.cursors["a"], m.cursors["b"])
	for seq := range m.present {
		if seq <= low {
			delete(m.present, seq)
		}
	}
	all, err := s.ReadRange(0, 1<<30)
	if err != nil {
		rt.Fatal(err)
	}
	stored := map[uint64]bool{}
	for _, ev := range all {
		stored[ev.Seq] = true
	}
	var missing []uint64
	var missingCount [3]uint64
	for seq := range m.present {
		if !stored[seq] {
			missing = append(missing, seq)
			missingCount[m.class[seq]]++
		}
	}
	var want dropInfo
	for _, d := range drops {
		want.Count += d.Count
		want.Telemetry += d.Telemetry
		want.Important += d.Important
	}
	if want.Count != uint64(len(missing)) || want.Telemetry != missingCount[classTelemetry] || want.Important != missingCount[classImportant] {
		rt.Fatalf("store.dropped accounts for %+v, missing %d (%v)", want, len(missing), missingCount)
	}
	slices.Sort(missing)
	for _, seq := range missing {
		delete(m.present, seq)
	}
	// Oldest first, telemetry before important.
	for _, seq := range missing {
		for kept := range m.present {
			if kept < seq && m.class[kept] == m.class[seq] && kept <= m.lastSeq {
				rt.Fatalf("dropped %d but kept older %d of the same class", seq, kept)
			}
			if missingCount[classImportant] > 0 && m.class[kept] == classTelemetry && kept <= m.lastSeq {
				rt.Fatalf("important dropped while telemetry %d was kept", kept)
			}
		}
	}
	m.dropped += want.Count
	m.droppedImp += want.Important
	m.lastSeq = newLast
	m.check(rt, s)
}

func (m *logModel) check(rt *rapid.T, s *Store) {
	if s.LastSeq() != m.lastSeq {
		rt.Fatalf("last seq %d, model %d", s.LastSeq(), m.lastSeq)
	}
	all, err := s.ReadRange(0, 1<<30)
	if err != nil {
		rt.Fatal(err)
	}
	got := map[uint64]string{}
	for _, ev := range all {
		got[ev.Seq] = mustJSON(rt, ev)
	}
	if diff := cmp.Diff(m.present, got); diff != "" {
		rt.Fatalf("stored events (-model +store):\n%s", diff)
	}
	st := s.Stats()
	if st.Records != uint64(len(m.present)) {
		rt.Fatalf("stats records %d, model %d", st.Records, len(m.present))
	}
	if st.StoredBytes > s.opts.MaxBytes*11/10+400 {
		rt.Fatalf("stored bytes %d far above quota %d", st.StoredBytes, s.opts.MaxBytes)
	}
}

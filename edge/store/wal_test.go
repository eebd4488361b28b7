package store

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/lintel-edge/lintel/edge/event"
)

// crashClose closes s as kill -9 would leave it: no final fold.
func crashClose(t *testing.T, s *Store) {
	t.Helper()
	s.abandon.Store(true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// journalFixture appends n events one at a time (one journal frame each),
// then crash-closes. It returns the events' JSON and the offset and end of
// the last frame.
func journalFixture(t *testing.T, o Options, n int) (want []string, lastOff, end int64) {
	t.Helper()
	s := mustOpen(t, o)
	for i := range n {
		ev := telemetryEvent(i)
		if err := s.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, mustJSON(t, ev))
	}
	if got := s.walFrames.Load(); got != uint64(n) || s.folds.Load() != 0 {
		t.Fatalf("%d journal frames and %d folds for %d sequential appends", got, s.folds.Load(), n)
	}
	lastOff, end = s.j.lastOff, s.j.off
	crashClose(t, s)
	return want, lastOff, end
}

func readAllJSON(t *testing.T, s *Store) []string {
	t.Helper()
	evs, err := s.ReadRange(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		out = append(out, mustJSON(t, ev))
	}
	return out
}

func TestJournalReplayAfterCrash(t *testing.T) {
	o := testOptions(t, "city")
	want, _, _ := journalFixture(t, o, 6)
	s := mustOpen(t, o)
	if s.walReplayed != 6 || s.Quarantined() != "" || s.walQuarantined != "" {
		t.Fatalf("replayed %d quarantined %q/%q", s.walReplayed, s.Quarantined(), s.walQuarantined)
	}
	user, decl, own := splitLog(t, s)
	if diff := cmp.Diff(want, user); diff != "" {
		t.Fatalf("after replay (-want +got):\n%s", diff)
	}
	// The rest of the reservation is skipped, and says so, after it.
	rec := s.Recovery()
	skip := SeqRange{First: 7, Last: seqReserve}
	if !rec.Unclean || len(rec.Lost) != 0 || len(rec.Damage) != 0 || rec.Skipped != skip ||
		len(own) != 1 || own[0].Kind != event.StoreSeqSkipped || own[0].Seq != seqReserve+1 ||
		len(decl) != 1 || decl[0].First != skip.First || decl[0].Last != skip.Last || s.LastSeq() != seqReserve+1 {
		t.Fatalf("recovery %+v, declared %v, own %d, last seq %d", rec, decl, len(own), s.LastSeq())
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// A clean stop needs no skip.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, o)
	if rec := s.Recovery(); rec.Unclean || rec.Skipped.Len() != 0 || s.LastSeq() != seqReserve+1 {
		t.Fatalf("after a clean stop: recovery %+v last seq %d", rec, s.LastSeq())
	}
}

// A torn or damaged last frame ends in-order replay; every earlier frame
// survives, the damaged frame's event is kept if its own record still
// checks out, and the seqs that may have been used are declared lost, so
// none is handed out again. Nothing is quarantined.
func TestJournalTornTail(t *testing.T) {
	tests := []struct {
		name   string
		damage func(b []byte, lastOff, end int64) []byte
	}{
		{"truncated inside the last frame", func(b []byte, lastOff, end int64) []byte { return b[:lastOff+30] }},
		{"truncated after its header", func(b []byte, lastOff, end int64) []byte { return b[:lastOff+walFrameHeader] }},
		{"payload byte flipped", func(b []byte, lastOff, end int64) []byte { b[end-5] ^= 0x40; return b }},
		{"length flipped", func(b []byte, lastOff, end int64) []byte { b[lastOff+1] ^= 0x7f; return b }},
		{"crc flipped", func(b []byte, lastOff, end int64) []byte { b[lastOff+6] ^= 1; return b }},
		{"tail zeroed", func(b []byte, lastOff, end int64) []byte { clear(b[lastOff+100 : end]); return b }},
		{"generation flipped", func(b []byte, lastOff, end int64) []byte { b[lastOff+15] ^= 1; return b }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t, "city")
			want, lastOff, end := journalFixture(t, o, 5)
			appended := map[uint64]string{}
			for i, js := range want {
				appended[uint64(i+1)] = js
			}
			rewrite(t, journalPath(o.Path), func(b []byte) []byte { return tt.damage(b, lastOff, end) })
			s := mustOpen(t, o)
			if s.Quarantined() != "" || s.walQuarantined != "" {
				t.Fatalf("quarantined %q / journal %q", s.Quarantined(), s.walReason)
			}
			if s.walReplayed != 4 {
				t.Fatalf("replayed %d frames, want 4", s.walReplayed)
			}
			kept, lost := checkNoReuse(t, s, appended)
			rec := s.Recovery()
			if kept < 4 || kept+lost != 5 || len(rec.Lost) == 0 || len(rec.Damage) == 0 ||
				rec.Lost[len(rec.Lost)-1].Last != seqReserve || s.LastSeq() != seqReserve+1 {
				t.Fatalf("kept %d lost %d, recovery %+v, last seq %d", kept, lost, rec, s.LastSeq())
			}
			t.Logf("kept %d of 5 (salvaged %d), declared lost %v: %v", kept, rec.Salvaged, rec.Lost, rec.Damage)
			// The store goes on normally, journal restored to full size.
			ev := telemetryEvent(99)
			if err := s.Append(ctx, ev); err != nil || ev.Seq != seqReserve+2 {
				t.Fatalf("append after torn tail: seq %d err %v", ev.Seq, err)
			}
			appended[ev.Seq] = mustJSON(t, ev)
			crashClose(t, s)
			if fi, err := os.Stat(journalPath(o.Path)); err != nil || fi.Size() != o.walSize {
				t.Fatalf("journal size after reopen: %v %v, want %d", fi.Size(), err, o.walSize)
			}
			s2 := mustOpen(t, o)
			if s2.walReplayed != 1 || len(s2.Recovery().Lost) != 0 || s2.Recovery().Skipped.Len() == 0 {
				t.Fatalf("second reopen: replayed %d, recovery %+v", s2.walReplayed, s2.Recovery())
			}
			if k2, _ := checkNoReuse(t, s2, appended); k2 != kept+1 {
				t.Fatalf("second reopen kept %d, want %d", k2, kept+1)
			}
			if err := s2.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A fold moves the journal to the next generation: frames of the old one
// are never replayed, even when they are still in the file, and a crash
// between the fold's commit and the header rewrite replays nothing twice.
func TestJournalGenerationRollover(t *testing.T) {
	o := testOptions(t, "city")
	s := mustOpen(t, o)
	for i := range 3 {
		if err := s.Append(ctx, telemetryEvent(i)); err != nil {
			t.Fatal(err)
		}
	}
	gen := s.j.gen
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s.j.gen != gen+1 || s.walFolded != gen || s.ov.frames != 0 || s.folds.Load() != 1 {
		t.Fatalf("after fold: generation %d folded %d frames %d folds %d; was %d", s.j.gen, s.walFolded, s.ov.frames, s.folds.Load(), gen)
	}
	for i := range 2 {
		if err := s.Append(ctx, telemetryEvent(10+i)); err != nil {
			t.Fatal(err)
		}
	}
	crashClose(t, s)
	s = mustOpen(t, o)
	if user, _, _ := splitLog(t, s); s.walReplayed != 2 || len(user) != 5 {
		t.Fatalf("replayed %d records %d; want 2 5", s.walReplayed, len(user))
	}

	// State frames of generation g, folded; a later commit changes the
	// value; then the header is put back to g, as if the process died
	// after the fold's commit and before the header rewrite. Replaying
	// those frames would bring the old value back.
	for v := range uint32(2) {
		if err := s.PutState(ctx, "ns", "k", v+1, []byte("old")); err != nil {
			t.Fatal(err)
		}
	}
	g := s.j.gen
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	crashClose(t, s)
	db, err := bolt.Open(o.Path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketState).Bucket([]byte("ns")).Put([]byte("k"), append(binary.BigEndian.AppendUint32(nil, 9), "new"...))
	}); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	epoch := s.Epoch()
	rewrite(t, journalPath(o.Path), func(b []byte) []byte {
		copy(b, encodeWALHeader(walHeader{gen: g, size: o.walSize, epoch: epoch}))
		return b
	})
	s = mustOpen(t, o)
	ver, val, ok, err := s.GetState("ns", "k")
	if err != nil || !ok || ver != 9 || string(val) != "new" || s.walReplayed != 0 {
		t.Fatalf("state %d %q %v %v, replayed %d: a folded generation was replayed", ver, val, ok, err, s.walReplayed)
	}
	if s.j.gen <= g {
		t.Fatalf("generation %d after reopen, want > %d", s.j.gen, g)
	}
}

// The journal serves reads exactly like bbolt: events, acks that delete,
// state puts and deletes, before and after a fold.
func TestJournalReadsMatchBolt(t *testing.T) {
	o := testOptions(t, "city", "police")
	s := mustOpen(t, o)
	if err := s.PutState(ctx, "ns", "gone", 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		if err := s.Append(ctx, telemetryEvent(i)); err != nil {
			t.Fatal(err)
		}
		if i == 3 {
			if err := s.Flush(ctx); err != nil { // seqs 1..4 in bbolt, 5..8 in the journal
				t.Fatal(err)
			}
		}
	}
	for _, op := range []func() error{
		func() error { return s.Ack(ctx, "city", 6) },
		func() error { return s.Ack(ctx, "police", 5) },
		func() error { return s.PutState(ctx, "ns", "k", 7, []byte("v")) },
		func() error { return s.DeleteState(ctx, "ns", "gone") },
	} {
		if err := op(); err != nil {
			t.Fatal(err)
		}
	}
	if s.ov.frames == 0 || s.folds.Load() != 2 {
		t.Fatalf("journal frames %d folds %d: the test does not exercise the journal", s.ov.frames, s.folds.Load())
	}
	type snapshot struct {
		All          []string
		After6       []string
		Get5, Get6   bool
		State        map[string][]byte
		Ver          uint32
		Records      uint64
		First        uint64
		Bytes        int64
		CityBacklog  uint64
		CityAgeKnown bool
	}
	take := func() snapshot {
		var sn snapshot
		sn.All = readAllJSON(t, s)
		evs, err := s.Read("city", 6, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			sn.After6 = append(sn.After6, mustJSON(t, ev))
		}
		_, sn.Get5, _ = s.Get(5)
		_, sn.Get6, _ = s.Get(6)
		if sn.State, err = s.ListState("ns"); err != nil {
			t.Fatal(err)
		}
		sn.Ver, _, _, _ = s.GetState("ns", "k")
		st := s.Stats()
		sn.Records, sn.First, sn.Bytes = st.Records, st.FirstSeq, st.StoredBytes
		sn.CityBacklog = st.Sinks["city"].Backlog
		return sn
	}
	before := take()
	if before.Records != 3 || before.First != 6 || before.Get5 || !before.Get6 || len(before.All) != 3 || before.Ver != 7 {
		t.Fatalf("journal view %+v", before)
	}
	if _, ok := before.State["gone"]; ok {
		t.Fatal("deleted state still listed")
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	after := take()
	if diff := cmp.Diff(before, after); diff != "" {
		t.Fatalf("reads changed by the fold (-journal +bbolt):\n%s", diff)
	}
	_ = s.Close()
	s = mustOpen(t, o)
	if diff := cmp.Diff(before, take()); diff != "" {
		t.Fatalf("reads changed by reopen (-journal +reopened):\n%s", diff)
	}
}

// A journal whose header is garbage is moved aside like a corrupt store,
// with a store.quarantined alert; the store itself is intact.
func TestJournalGarbageHeaderMovedAside(t *testing.T) {
	o, epoch := corruptFixture(t)
	jp := journalPath(o.Path)
	rewrite(t, jp, func(b []byte) []byte { flip(b, 0, 40); return b })
	before, _ := os.ReadFile(jp)
	s := mustOpen(t, o)
	if s.Quarantined() != "" || s.Epoch() != epoch {
		t.Fatalf("store quarantined %q epoch %s/%s", s.Quarantined(), s.Epoch(), epoch)
	}
	if s.walQuarantined == "" {
		t.Fatal("journal not moved aside")
	}
	kept, err := os.ReadFile(s.walQuarantined)
	if err != nil || !bytes.Equal(kept, before) {
		t.Fatalf("moved journal differs or is missing: %v", err)
	}
	if s.LastSeq() != 301 {
		t.Fatalf("last seq %d, want 300 events and the alert", s.LastSeq())
	}
	ev, ok, err := s.Get(301)
	if err != nil || !ok || ev.Kind != event.StoreQuarantined || !strings.Contains(string(ev.Data), "journal") {
		t.Fatalf("alert: %v %v %+v", ok, err, ev)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// A store moved aside as corrupt takes its journal with it.
func TestCorruptStoreTakesItsJournal(t *testing.T) {
	o, _ := corruptFixture(t)
	if err := os.Truncate(o.Path, 0); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, o)
	if s.Quarantined() == "" {
		t.Fatal("not quarantined")
	}
	if _, err := os.Stat(s.Quarantined() + ".wal"); err != nil {
		t.Fatalf("journal not moved with the store: %v", err)
	}
	if s.walQuarantined != "" || s.LastSeq() != 1 {
		t.Fatalf("journal quarantined %q, last seq %d", s.walQuarantined, s.LastSeq())
	}
}

func walSeedFrames() [][]byte {
	var out [][]byte
	for _, ev := range recordSeedEvents() {
		js, _ := ev.MarshalJSON()
		v := encodeRecord(ev.Seq, header{class: classOf(ev), monoMS: 5, wallMS: 6}, js)
		p := appendWALOp(nil, walOp{kind: walOpEvent, seq: ev.Seq, val: v})
		p = appendWALOp(p, walOp{kind: walOpAck, sink: "city", seq: ev.Seq})
		out = append(out, encodeWALFrame(3, ev.Seq, p))
	}
	p := appendWALOp(nil, walOp{kind: walOpPut, ns: "elder", key: "h-1", version: 4, val: []byte(`{"a":1}`)})
	p = appendWALOp(p, walOp{kind: walOpDelete, ns: "elder", key: "h-2"})
	return append(out, encodeWALFrame(3, 9, p))
}

func TestWALFrameRoundTripAndDamage(t *testing.T) {
	for _, f := range walSeedFrames() {
		index := binary.BigEndian.Uint64(f[16:])
		ops, n, err := decodeWALFrame(append(f, 0, 0, 0), 3, index)
		if err != nil || n != len(f) {
			t.Fatalf("decode: %d ops, n %d of %d, %v", len(ops), n, len(f), err)
		}
		if _, _, err := decodeWALFrame(f, 4, index); err == nil {
			t.Fatal("frame accepted under another generation")
		}
		if _, _, err := decodeWALFrame(f, 3, index+1); err == nil {
			t.Fatal("frame accepted under another index")
		}
		for i := range f {
			bad := append([]byte(nil), f...)
			bad[i] ^= 0x08
			if _, _, err := decodeWALFrame(bad, 3, index); err == nil {
				t.Fatalf("flip at byte %d not detected", i)
			}
		}
		if _, _, err := decodeWALFrame(f[:len(f)-1], 3, index); err == nil {
			t.Fatal("truncated frame accepted")
		}
	}
}

// FuzzDecodeWALFrame feeds damaged frames to the journal decoder: it must
// return an error, never panic, and whatever it accepts must re-encode to
// the same bytes.
func FuzzDecodeWALFrame(f *testing.F) {
	for _, fr := range walSeedFrames() {
		f.Add(uint64(3), binary.BigEndian.Uint64(fr[16:]), fr)
	}
	f.Add(uint64(1), uint64(1), []byte{})
	f.Add(uint64(1), uint64(1), make([]byte, walPage))
	f.Fuzz(func(t *testing.T, gen, index uint64, b []byte) {
		ops, n, err := decodeWALFrame(b, gen, index)
		if err != nil {
			return
		}
		var p []byte
		for _, op := range ops {
			p = appendWALOp(p, op)
		}
		if re := encodeWALFrame(gen, index, p); !bytes.Equal(re, b[:n]) {
			t.Fatalf("accepted frame does not re-encode to itself")
		}
	})
}

// The elapsed counter is saved at most once a minute, so after a crash it
// is recovered from the newest record's stamp (journal frames included):
// store-monotonic time never goes backwards across a crash.
func TestElapsedMonotonicAcrossCrash(t *testing.T) {
	o := testOptions(t)
	clk := &fakeClock{}
	o.Elapsed = clk.Elapsed
	s := mustOpen(t, o)
	if err := s.Append(ctx, telemetryEvent(1)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(10 * time.Minute)
	if err := s.Append(ctx, telemetryEvent(2)); err != nil { // a journal frame stamped at 10 min
		t.Fatal(err)
	}
	if s.savedElapsed >= uint64((10 * time.Minute).Milliseconds()) {
		t.Fatalf("elapsed counter saved (%d ms): the test needs it stale", s.savedElapsed)
	}
	crashClose(t, s)
	clk2 := &fakeClock{} // the new process starts its clock at zero
	o.Elapsed = clk2.Elapsed
	s = mustOpen(t, o)
	if got := s.elapsedMS(); got < uint64((10 * time.Minute).Milliseconds()) {
		t.Fatalf("store time %d ms after the crash, before the newest record (600000)", got)
	}
	ev := telemetryEvent(3)
	if err := s.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var stamps []uint64
	if err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			h, err := decodeHeader(keySeq(k), v)
			stamps = append(stamps, h.monoMS)
			return err
		})
	}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(stamps); i++ {
		if stamps[i] < stamps[i-1] {
			t.Fatalf("record stamps go backwards: %v", stamps)
		}
	}
	if len(stamps) != 4 { // the three events and the skip declared at the reopen
		t.Fatalf("%d records", len(stamps))
	}
}

// Acks in the journal that cover everything, in a bucket of many pages:
// the fold at the next Open (after a crash) or at Flush empties it in one
// transaction. (bbolt's Cursor.Last loops forever on such a bucket; the
// store must not call it.)
func TestJournalAckEverythingThenFold(t *testing.T) {
	for _, crash := range []bool{true, false} {
		o := testOptions(t, "city")
		s := mustOpen(t, o)
		for i := 0; i < 3000; i += 100 {
			var evs []*event.Event
			for j := i; j < i+100; j++ {
				evs = append(evs, telemetryEvent(j))
			}
			if err := s.Append(ctx, evs...); err != nil { // > 64 events: straight to bbolt
				t.Fatal(err)
			}
		}
		for _, ev := range []*event.Event{nil, telemetryEvent(9)} {
			if ev != nil {
				if err := s.Append(ctx, ev); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Ack(ctx, "city", s.LastSeq()); err != nil {
				t.Fatal(err)
			}
		}
		if s.ov.frames == 0 || s.Stats().Records != 0 {
			t.Fatalf("journal frames %d records %d", s.ov.frames, s.Stats().Records)
		}
		done := make(chan *Store, 1)
		go func() {
			if crash {
				crashClose(t, s)
				s = mustOpen(t, o)
			} else if err := s.Flush(ctx); err != nil {
				t.Error(err)
			}
			done <- s
		}()
		select {
		case s = <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("crash=%v: fold of an all-acked journal did not finish", crash)
		}
		// After the crash, the skip declared at the reopen is the one
		// record left.
		records, last := uint64(0), uint64(3001)
		if crash {
			records, last = 1, s.Recovery().Skipped.Last+1
		}
		if st := s.Stats(); st.Records != records || s.LastSeq() != last || s.Cursor("city") != 3001 {
			t.Fatalf("crash=%v: records %d last %d cursor %d", crash, st.Records, s.LastSeq(), s.Cursor("city"))
		}
		ev := telemetryEvent(1)
		if err := s.Append(ctx, ev); err != nil || ev.Seq != last+1 {
			t.Fatalf("crash=%v: next seq %d, %v", crash, ev.Seq, err)
		}
	}
}

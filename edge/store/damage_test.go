package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/lintel-edge/lintel/edge/event"
)

// dumpIndependent reads the store file with bbolt alone and a record
// parser of its own, written from the layout documented in record.go (not
// the store's code): seq → the event JSON, for every record whose checksum
// holds. It is the oracle of the damage tests.
func dumpIndependent(t *testing.T, path string) map[uint64]string {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("independent dump: %v", err)
	}
	defer db.Close()
	table := crc32.MakeTable(crc32.Castagnoli)
	out := map[uint64]string{}
	err = db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("events"))
		if b == nil {
			return fmt.Errorf("no events bucket")
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != 8 || len(v) < 24 || (v[0] != 1 && v[0] != 2) {
				return fmt.Errorf("record %x: bad shape", k)
			}
			body := 22 // version 1: the JSON follows the CRC
			if v[0] == 2 {
				// version 2: severity rank, kind length, kind, then JSON
				body = 24 + int(v[23])
				if len(v) < body+2 {
					return fmt.Errorf("record %x: bad shape", k)
				}
			}
			c := crc32.Update(0, table, k)
			c = crc32.Update(c, table, v[:18])
			c = crc32.Update(c, table, v[22:])
			if c != binary.BigEndian.Uint32(v[18:22]) {
				return fmt.Errorf("record %d: checksum", binary.BigEndian.Uint64(k))
			}
			out[binary.BigEndian.Uint64(k)] = string(v[body:])
			return nil
		})
	})
	if err != nil {
		t.Fatalf("independent dump: %v", err)
	}
	return out
}

// auditDump checks a dump against what was appended: no seq holds other
// content than it was appended with, nothing unappended appears but the
// store's own events, and every appended seq that is gone lies in a range
// a declaration in the dump names. It returns how many were kept, lost,
// and the highest seq in the dump.
func auditDump(t *testing.T, dump, appended map[uint64]string) (kept, lost int, last uint64) {
	t.Helper()
	var decl []SeqRange
	for seq, js := range dump {
		last = max(last, seq)
		if want, ok := appended[seq]; ok {
			if js != want {
				t.Fatalf("seq %d holds\n%s\nbut was appended as\n%s", seq, js, want)
			}
			kept++
			continue
		}
		var ev struct {
			Seq  uint64     `json:"seq"`
			Kind event.Kind `json:"kind"`
			Data struct {
				First uint64 `json:"first_seq"`
				Last  uint64 `json:"last_seq"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(js), &ev); err != nil || ev.Seq != seq {
			t.Fatalf("seq %d: %v %s", seq, err, js)
		}
		if !strings.HasPrefix(string(ev.Kind), "store.") {
			t.Fatalf("seq %d holds an event nobody appended: %s", seq, js)
		}
		if ev.Kind == event.StoreLost || ev.Kind == event.StoreSeqSkipped || ev.Kind == event.StoreDropped {
			if ev.Data.Last >= seq || ev.Data.First == 0 {
				t.Fatalf("declaration at %d of %d..%d", seq, ev.Data.First, ev.Data.Last)
			}
			decl = append(decl, SeqRange{First: ev.Data.First, Last: ev.Data.Last})
		}
	}
	for seq := range appended {
		if _, ok := dump[seq]; !ok {
			if !covered(decl, seq, seq) {
				t.Fatalf("appended seq %d is gone without a declaration (declared %v)", seq, decl)
			}
			lost++
		}
	}
	return kept, lost, last
}

// damageTemplate writes a store whose journal holds frames of 1 to 3
// events, never folded, as kill -9 leaves it; it returns the folder with
// the files and what was appended.
func damageTemplate(t *testing.T, frames int) (dir string, appended map[uint64]string, o Options) {
	t.Helper()
	o = testOptions(t, "city")
	o.walSize = 64 << 10
	s := mustOpen(t, o)
	appended = map[uint64]string{}
	n := 0
	for f := range frames {
		var evs []*event.Event
		for range 1 + f%3 {
			ev := telemetryEvent(n)
			if n%7 == 3 {
				ev = alertEvent(n)
			}
			evs = append(evs, ev)
			n++
		}
		if err := s.Append(ctx, evs...); err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			appended[ev.Seq] = mustJSON(t, ev)
		}
	}
	if s.folds.Load() != 0 || s.walFrames.Load() != uint64(frames) {
		t.Fatalf("%d folds, %d frames", s.folds.Load(), s.walFrames.Load())
	}
	crashClose(t, s)
	return filepath.Dir(o.Path), appended, o
}

// copyStore copies the template's files into a fresh folder.
func copyStore(t *testing.T, from string) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(to, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lintel.db", "lintel.db.wal"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// reopenDamaged opens the copy in dir, appends one event, closes cleanly
// and audits the file with the independent dump: it returns kept and lost
// and fails on any id with two contents or any undeclared loss.
func reopenDamaged(t *testing.T, name string, o Options, dir string, appended map[uint64]string) (kept, lost int, rec Recovery) {
	t.Helper()
	o.Path = filepath.Join(dir, "lintel.db")
	s, err := Open(o)
	if err != nil {
		t.Fatalf("%s: open after damage: %v", name, err)
	}
	rec = s.Recovery()
	ev := telemetryEvent(1 << 20)
	if err := s.Append(ctx, ev); err != nil {
		t.Fatal(err)
	}
	if _, dup := appended[ev.Seq]; dup {
		t.Fatalf("seq %d handed out again after the damage", ev.Seq)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	all := map[uint64]string{ev.Seq: mustJSON(t, ev)}
	var top uint64
	for seq, js := range appended {
		all[seq] = js
		top = max(top, seq)
	}
	if ev.Seq <= top {
		t.Fatalf("new event got seq %d, not above every seq handed out before (%d)", ev.Seq, top)
	}
	kept, lost, _ = auditDump(t, dumpIndependent(t, o.Path), all)
	if len(rec.Lost) == 0 && lost > 0 && rec.Skipped.Len() == 0 {
		t.Fatalf("%d events gone and nothing declared: %+v", lost, rec)
	}
	return kept - 1, lost, rec
}

// The reproduction: a journal that was never folded, one bit
// flipped in the middle of a frame. Before, replay stopped there, the
// frames after it were dropped without a word and their seqs went to new
// events. Now the frames after it are recovered, the hit frame's events
// are kept where their own checksums hold, the loss is declared with its
// range, and the next seq is above every seq the journal used.
func TestJournalBitFlipMidJournal(t *testing.T) {
	src, appended, o := damageTemplate(t, 40)
	wal, err := os.ReadFile(filepath.Join(src, "lintel.db.wal"))
	if err != nil {
		t.Fatal(err)
	}
	// The 20th frame: find it by its header (generation, index 20).
	gen := binary.BigEndian.Uint64(wal[12:])
	off := -1
	for p := walPage; p+walFrameHeader < len(wal); p++ {
		if binary.BigEndian.Uint64(wal[p+8:]) == gen && binary.BigEndian.Uint64(wal[p+16:]) == 20 {
			off = p
			break
		}
	}
	if off < 0 {
		t.Fatal("frame 20 not found")
	}
	for _, tt := range []struct {
		name string
		at   int // offset in the frame
	}{
		{"in an event's JSON", walFrameHeader + 60},
		{"in the frame length", 1},
		{"in the frame checksum", 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyStore(t, src)
			rewrite(t, filepath.Join(dir, "lintel.db.wal"), func(b []byte) []byte { b[off+tt.at] ^= 0x10; return b })
			kept, lost, rec := reopenDamaged(t, tt.name, o, dir, appended)
			if rec.Replayed != 19 || len(rec.Lost) == 0 || rec.Lost[len(rec.Lost)-1].Last < uint64(len(appended)) {
				t.Fatalf("recovery %+v", rec)
			}
			// Frames 21..40 hold their checksums: all of them are back.
			if kept < len(appended)-3 {
				t.Fatalf("kept %d of %d, lost %d: %+v", kept, len(appended), lost, rec)
			}
			t.Logf("kept %d of %d, lost %d; declared %v; %v", kept, len(appended), lost, rec.Lost, rec.Damage)
		})
	}
}

// Damage at every position of an unfolded journal: a bit flipped every 61
// bytes, every 512-byte sector zeroed, the file cut at every sector
// boundary and inside frames. Whatever the damage, no seq ever carries two
// contents and every loss is declared (checked by the independent dump).
func TestJournalDamageAnywhere(t *testing.T) {
	src, appended, o := damageTemplate(t, 24)
	wal, err := os.ReadFile(filepath.Join(src, "lintel.db.wal"))
	if err != nil {
		t.Fatal(err)
	}
	end := walPage
	for p := len(wal) - 1; p >= walPage; p-- {
		if wal[p] != 0 {
			end = p + 1
			break
		}
	}
	type damage struct {
		name string
		f    func([]byte) []byte
	}
	var cases []damage
	// Every position under LINTEL_SOAK=1 (make soak); a spread otherwise.
	stride, cut := 127, 1024
	if os.Getenv("LINTEL_SOAK") != "" {
		stride, cut = 1, 1
	} else if testing.Short() {
		stride, cut = 509, 4096
	}
	for p := walPage; p < end; p += stride {
		cases = append(cases, damage{fmt.Sprintf("bit %d", p), func(b []byte) []byte { b[p] ^= 1 << (p % 8); return b }})
	}
	for p := walPage; p < end; p += 512 {
		cases = append(cases, damage{fmt.Sprintf("sector %d zeroed", p), func(b []byte) []byte { clear(b[p : p+512]); return b }})
	}
	for p := walPage - 100; p < end; p += cut {
		cases = append(cases, damage{fmt.Sprintf("cut at %d", p), func(b []byte) []byte { return b[:p] }})
	}
	cases = append(cases,
		damage{"header bit", func(b []byte) []byte { b[13] ^= 4; return b }},
		damage{"header zeroed", func(b []byte) []byte { clear(b[:512]); return b }},
		damage{"empty file", func(b []byte) []byte { return b[:0] }},
	)
	var kept, lost, lostDeclared, skippedOnly int
	for _, c := range cases {
		dir := copyStore(t, src)
		rewrite(t, filepath.Join(dir, "lintel.db.wal"), c.f)
		k, l, rec := reopenDamaged(t, c.name, o, dir, appended)
		_ = os.RemoveAll(dir) // thousands of cases under LINTEL_SOAK: each holds a disk reserve
		kept, lost = kept+k, lost+l
		if len(rec.Lost) > 0 {
			lostDeclared++
		} else {
			skippedOnly++
			if l > 0 {
				t.Logf("%s: %d events gone, declared only as skipped %v", c.name, l, rec.Skipped)
			}
		}
		if t.Failed() {
			t.Fatalf("case %s", c.name)
		}
	}
	t.Logf("%d damaged journals of %d bytes with %d events: kept %d, lost %d (%.1f%%); loss declared in %d, only a skip in %d",
		len(cases), end, len(appended), kept, lost, 100*float64(lost)/float64(lost+kept), lostDeclared, skippedOnly)
}

// The same property across crash-reopen cycles with damage in between:
// the union of everything ever appended is audited at the end.
func TestJournalDamageCycles(t *testing.T) {
	o := testOptions(t, "city")
	o.walSize = 64 << 10
	appended := map[uint64]string{}
	n := 0
	for cycle := range 12 {
		s := mustOpen(t, o)
		for f := range 6 + cycle%5 {
			var evs []*event.Event
			for range 1 + f%2 {
				evs = append(evs, telemetryEvent(n))
				n++
			}
			if err := s.Append(ctx, evs...); err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				if old, dup := appended[ev.Seq]; dup {
					t.Fatalf("cycle %d: seq %d handed out again (was %s)", cycle, ev.Seq, old)
				}
				appended[ev.Seq] = mustJSON(t, ev)
			}
		}
		crashClose(t, s)
		if cycle%3 != 2 {
			rewrite(t, journalPath(o.Path), func(b []byte) []byte {
				p := walPage + (cycle*977)%(2*walPage)
				b[p] ^= 0x20
				return b
			})
		}
	}
	s := mustOpen(t, o)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	kept, lost, _ := auditDump(t, dumpIndependent(t, o.Path), appended)
	seqs := make([]uint64, 0, len(appended))
	for seq := range appended {
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	t.Logf("12 crash cycles, 8 with a flipped bit: %d appended (seq %d..%d), kept %d, lost %d (all declared)",
		len(appended), seqs[0], seqs[len(seqs)-1], kept, lost)
}

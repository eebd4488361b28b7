package store

import (
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/lintel-edge/lintel/edge/event"
)

// rawAll reads the whole log with ReadRangeRaw, copying what it is handed.
func rawAll(t *testing.T, st *Store, chunk int) []RawEvent {
	t.Helper()
	var out []RawEvent
	for after := uint64(0); ; {
		n, last, err := st.ReadRangeRaw(after, chunk, func(r RawEvent) bool {
			r.Kind = bytes.Clone(r.Kind)
			r.JSON = bytes.Clone(r.JSON)
			out = append(out, r)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
		after = last
	}
}

// checkRawMatchesRead holds ReadRaw to Read: the same seqs, the stored
// bytes are exactly what MarshalJSON gives for the decoded event, and
// kind and severity agree.
func checkRawMatchesRead(t *testing.T, st *Store) int {
	t.Helper()
	evs, err := st.ReadRange(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	raws := rawAll(t, st, 7)
	if len(raws) != len(evs) {
		t.Fatalf("raw read %d events, read %d", len(raws), len(evs))
	}
	for i, ev := range evs {
		r := raws[i]
		js, err := ev.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if r.Seq != ev.Seq || string(r.Kind) != string(ev.Kind) || r.Severity != ev.Severity || !bytes.Equal(r.JSON, js) {
			t.Fatalf("seq %d: raw {seq %d kind %q severity %q} %s, read {kind %q severity %q} %s", ev.Seq, r.Seq, r.Kind, r.Severity, r.JSON, ev.Kind, ev.Severity, js)
		}
		if r.Important != (classOf(ev) == classImportant) {
			t.Fatalf("seq %d: important %v, want %v", ev.Seq, r.Important, classOf(ev) == classImportant)
		}
	}
	return len(evs)
}

func TestReadRaw(t *testing.T) {
	st := mustOpen(t, testOptions(t, "city"))
	var evs []*event.Event
	for i := range 50 {
		ev := event.New(event.DoorOpened)
		if i%7 == 3 {
			ev = event.New(event.GateForcedOpen)
			ev.Severity = event.Critical
		}
		ev.Device = "d-1"
		ev.WithData(map[string]any{"i": i})
		evs = append(evs, ev)
	}
	// Half folded into bbolt, half still in the journal overlay.
	if err := st.Append(ctx, evs[:25]...); err != nil {
		t.Fatal(err)
	}
	if err := st.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Append(ctx, evs[25:]...); err != nil {
		t.Fatal(err)
	}
	if n := checkRawMatchesRead(t, st); n != 50 {
		t.Fatalf("%d events, want 50", n)
	}
	// f's refusal stops the read without counting the refused event.
	var seen []uint64
	n, last, err := st.ReadRaw("city", 10, 100, func(r RawEvent) bool {
		if r.Seq == 30 {
			return false
		}
		seen = append(seen, r.Seq)
		return true
	})
	if err != nil || n != 19 || last != 29 || len(seen) != 19 || seen[0] != 11 {
		t.Fatalf("stopped read: n %d last %d err %v seen %v", n, last, err, seen)
	}
	// max bounds it across the bbolt/journal boundary.
	n, last, err = st.ReadRaw("city", 20, 10, func(RawEvent) bool { return true })
	if err != nil || n != 10 || last != 30 {
		t.Fatalf("bounded read: n %d last %d err %v", n, last, err)
	}
	if _, _, err := st.ReadRaw("nope", 0, 1, func(RawEvent) bool { return true }); err == nil {
		t.Fatal("unknown sink accepted")
	}
	// Version 2 headers carry what routing needs.
	_, _, err = st.ReadRaw("city", 3, 1, func(r RawEvent) bool {
		if r.Seq != 4 || string(r.Kind) != string(event.GateForcedOpen) || r.Severity != event.Critical || !r.Important {
			t.Errorf("seq 4: %+v", r)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadRawSkipsDamage: a record whose checksum fails is skipped and
// counted, as Read does, and does not count against max.
func TestReadRawSkipsDamage(t *testing.T) {
	v := encodeRecord(5, header{class: classTelemetry, sev: 1, kind: "door.opened"}, []byte(`{"id":"x","seq":5}`))
	if _, err := rawEvent(5, v); err != nil {
		t.Fatal(err)
	}
	v[len(v)-3] ^= 1
	if _, err := rawEvent(5, v); err == nil {
		t.Fatal("flipped bit accepted")
	}
	if _, err := rawEvent(6, encodeRecord(5, header{class: classTelemetry, sev: 1, kind: "door.opened"}, []byte(`{}`))); err == nil {
		t.Fatal("record under the wrong key accepted")
	}
	// A kind too long for the header falls back to version 1.
	long := string(bytes.Repeat([]byte("k"), 300))
	if v := encodeRecord(1, header{class: classTelemetry, kind: long}, []byte(`{}`)); v[0] != recordV1 {
		t.Fatalf("version %d for a %d-byte kind", v[0], len(long))
	}
}

// copyGolden unpacks a store written by the version 1 encoder (commit
// 1ff557a, before issue 18) into a fresh directory.
func copyGolden(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"events.db", "events.db.wal"} {
		in, err := os.Open(filepath.Join("testdata", name, f+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(in)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(zr)
		in.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestVersion1StoreReadable opens stores written by the old encoder — one
// closed cleanly, one copied while open with its last ten events still in
// the journal — reads them both ways, appends to them (new records are
// version 2) and reads the mix.
func TestVersion1StoreReadable(t *testing.T) {
	for _, name := range []string{"v1store", "v1crash"} {
		t.Run(name, func(t *testing.T) {
			dir := copyGolden(t, name)
			st, err := Open(Options{Path: filepath.Join(dir, "events.db"), Gateway: "gw-old", Compound: "c-old", Sinks: []string{"city"}, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if rec := st.Recovery(); len(rec.Lost) > 0 {
				t.Fatalf("recovery lost %+v", rec.Lost)
			}
			old := rawAll(t, st, 1000)
			// After the unclean stop the store declares the seqs it had
			// reserved (store.seq_skipped): that one is version 2.
			if len(old) < 40 {
				t.Fatalf("%d events in the old store, want 40", len(old))
			}
			for _, r := range old[40:] {
				if !bytes.HasPrefix(r.Kind, []byte("store.")) {
					t.Fatalf("unexpected event %d %q after the old ones", r.Seq, r.Kind)
				}
			}
			for i, r := range old[:40] {
				wantKind, wantSev := event.DoorOpened, event.Info
				if (i+1)%10 == 0 {
					wantKind, wantSev = event.GateForcedOpen, event.Critical
				}
				if r.Seq != uint64(i+1) || string(r.Kind) != string(wantKind) || r.Severity != wantSev {
					t.Fatalf("old record %d: seq %d kind %q severity %q", i+1, r.Seq, r.Kind, r.Severity)
				}
			}
			checkRawMatchesRead(t, st)
			ev := event.New(event.SOSPressed)
			ev.Severity = event.Critical
			ev.Device = "sos-1"
			if err := st.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if ev.Seq <= old[len(old)-1].Seq {
				t.Fatalf("new event seq %d, not after %d", ev.Seq, old[len(old)-1].Seq)
			}
			if n := checkRawMatchesRead(t, st); n != len(old)+1 {
				t.Fatalf("%d events after the append, want %d", n, len(old)+1)
			}
			if err := st.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			checkRawMatchesRead(t, st)
		})
	}
}

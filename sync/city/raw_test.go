package city

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

// hiddenRaw is a Log without ReadRaw: the sink falls back to Read and
// encodes again.
type hiddenRaw struct{ Log }

// TestRawBatchSameBytes: the envelope built around the stored bytes is
// byte for byte the one built from decoded and re-encoded events, and it
// decodes to the events the log holds, ids unchanged.
func TestRawBatchSameBytes(t *testing.T) {
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ids := appendEvents(t, st, 1200, 7)
	h := header{lane: LaneEvents, gateway: "gw-01", compound: "c-01", epoch: st.Epoch()}
	at := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	s := &Sink{d: Deps{Name: "city", Log: hiddenRaw{st}}}
	for _, gz := range []bool{false, true} {
		for after := uint64(0); after < 1200; {
			raw, enc := newBatchBuilder(h), newBatchBuilder(h)
			raw.reset(nil)
			enc.reset(nil)
			if _, _, err := st.ReadRaw("city", after, 500, func(r store.RawEvent) bool {
				if raw.n > 0 && raw.size()+len(r.JSON)+1 > 64<<10 {
					return false
				}
				raw.add(r.Seq, r.JSON)
				return true
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.readEncoded(enc, after, 500, 64<<10); err != nil {
				t.Fatal(err)
			}
			if raw.n != enc.n || raw.first != enc.first || raw.last != enc.last {
				t.Fatalf("raw %d events %d..%d, encoded %d events %d..%d", raw.n, raw.first, raw.last, enc.n, enc.first, enc.last)
			}
			p1, err := raw.finish(after, at, gz, nil)
			if err != nil {
				t.Fatal(err)
			}
			p2, err := enc.finish(after, at, gz, nil)
			if err != nil {
				t.Fatal(err)
			}
			if gz {
				p1, p2 = gunzip(t, p1), gunzip(t, p2)
			}
			if !bytes.Equal(p1, p2) {
				t.Fatalf("batch after %d: raw and re-encoded envelopes differ", after)
			}
			enc2 := EncJSON
			b, evs, err := DecodeBatch(enc2, p1)
			if err != nil {
				t.Fatal(err)
			}
			if b.PrevSeq != after || b.Count != raw.n || b.FirstSeq != raw.first || b.LastSeq != raw.last {
				t.Fatalf("envelope %+v", b)
			}
			for i, ev := range evs {
				if ev.ID != ids[ev.Seq-1] {
					t.Fatalf("event %d: id %s, appended as %s", i, ev.ID, ids[ev.Seq-1])
				}
			}
			after = raw.last
		}
	}
}

func gunzip(t *testing.T, p []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDrainOldFormatStore drains a store written by the version 1 record
// encoder (before kind and severity were in the header) plus new events
// through mosquitto to the reference receiver, with platform acks: every
// id arrives unchanged, in order, and the durable cursor reaches the end.
func TestDrainOldFormatStore(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"events.db", "events.db.wal"} {
		in, err := os.Open(filepath.Join("..", "..", "edge", "store", "testdata", "v1store", f+".gz"))
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
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "events.db"), Gateway: "gw-old", Compound: "c-old", Sinks: []string{"city"}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	old, err := st.ReadRange(0, 1000)
	if err != nil || len(old) != 40 {
		t.Fatalf("old store: %d events, %v", len(old), err)
	}
	ids := make([]string, 0, 60)
	for _, ev := range old {
		ids = append(ids, ev.ID)
	}
	for range 20 {
		ev := event.New(event.DoorOpened)
		ev.Device = "door-1"
		if err := st.Append(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ev.ID)
	}
	b := startBroker(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	r := startReceiver(t, ctx, b, true, col)
	o := testOptions(b.url())
	o.AckMode = AckApplication
	o.Batch.MaxEvents = 16 // several batches across the old and new records
	runSink(t, ctx, st, o, func(d *Deps) { d.Gateway, d.Compound = "gw-old", "c-old" })
	waitFor(t, 30*time.Second, "durable cursor at the end", func() bool { return st.Cursor("city") == st.LastSeq() })
	checkDelivery(t, ids, col, r)
	if r.AcksSent.Load() == 0 {
		t.Error("no platform acks sent")
	}
}

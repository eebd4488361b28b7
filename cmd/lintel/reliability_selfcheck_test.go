package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

// The checks of the checker: the reliability suite passes only if its
// oracle, listener and store dump would have caught a failure. These run
// without any process.

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// relFixture is a clean run: five events tapped, received once each and
// still stored, the sink's cursor past all of them.
func relFixture(t *testing.T) (*relTap, *relListener, *relDump) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tap")
	var b strings.Builder
	for i := 1; i <= 5; i++ {
		fmt.Fprintf(&b, "%s:0123456789abcdef:%d %032x\n", relGateway, i, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	tp := &relTap{path: path, byID: map[string]int{}}
	if err := tp.refresh(); err != nil {
		t.Fatal(err)
	}
	l := newRelListenerCore(nopCloser{io.Discard})
	t.Cleanup(l.close)
	d := &relDump{epoch: "0123456789abcdef", cursors: map[string]uint64{"city": 5}, records: map[string]*relRecord{}}
	for i, e := range tp.entries {
		l.seen[e.id] = &relSeen{hash: e.hash, events: 1}
		d.records[e.id] = &relRecord{seq: uint64(i + 1), hash: e.hash}
	}
	return tp, l, d
}

func TestReliabilityOracle(t *testing.T) {
	id := func(i int) string { return fmt.Sprintf("%s:0123456789abcdef:%d", relGateway, i) }
	other := strings.Repeat("f", 32)
	tests := []struct {
		name       string
		beforeStop int
		fault      func(tp *relTap, l *relListener, d *relDump)
		want       string // in a problem; "" = none
		lost       int
		lossOK     bool // the journal-damage oracle
		declLost   int
	}{
		{name: "clean", beforeStop: 5},
		{name: "lost, not stored", beforeStop: 5, fault: func(_ *relTap, l *relListener, d *relDump) {
			delete(l.seen, id(3))
			delete(d.records, id(3))
		}, want: "LOST: " + id(3), lost: 1},
		{name: "lost, cursor passed it", beforeStop: 5, fault: func(_ *relTap, l *relListener, _ *relDump) {
			delete(l.seen, id(2))
		}, want: "cursor 5", lost: 1},
		{name: "only on the alert lane", beforeStop: 5, fault: func(_ *relTap, l *relListener, _ *relDump) {
			l.seen[id(2)].events, l.seen[id(2)].alerts = 0, 1
		}, want: "LOST: " + id(2), lost: 1},
		{name: "durable after the stop, kept for the next start", beforeStop: 4, fault: func(_ *relTap, l *relListener, d *relDump) {
			delete(l.seen, id(5))
			d.cursors["city"] = 4
		}},
		{name: "not drained before the stop", beforeStop: 5, fault: func(_ *relTap, l *relListener, d *relDump) {
			delete(l.seen, id(5))
			d.cursors["city"] = 4
		}, want: "still behind the sink's cursor"},
		{name: "listener got other content", beforeStop: 5, fault: func(_ *relTap, l *relListener, _ *relDump) {
			l.seen[id(4)].hash = other
		}, want: "the listener got " + other},
		{name: "stored with other content", beforeStop: 5, fault: func(_ *relTap, _ *relListener, d *relDump) {
			d.records[id(1)].hash = other
		}, want: "stored with content " + other},
		{name: "id reused in the tap", beforeStop: 5, fault: func(tp *relTap, _ *relListener, _ *relDump) {
			f, _ := os.OpenFile(tp.path, os.O_APPEND|os.O_WRONLY, 0)
			fmt.Fprintf(f, "%s %s\n", id(2), other)
			f.Close()
			if err := tp.refresh(); err != nil {
				panic(err)
			}
		}, want: "tapped twice with two contents"},
		{name: "indistinct load", beforeStop: 6, fault: func(tp *relTap, l *relListener, d *relDump) {
			f, _ := os.OpenFile(tp.path, os.O_APPEND|os.O_WRONLY, 0)
			fmt.Fprintf(f, "%s %s\n", id(6), tp.entries[0].hash)
			f.Close()
			if err := tp.refresh(); err != nil {
				panic(err)
			}
			l.seen[id(6)] = &relSeen{hash: tp.entries[0].hash, events: 1}
		}, want: "two events with one content"},
		{name: "second epoch", beforeStop: 6, fault: func(tp *relTap, l *relListener, _ *relDump) {
			e := relGateway + ":fedcba9876543210:1"
			f, _ := os.OpenFile(tp.path, os.O_APPEND|os.O_WRONLY, 0)
			fmt.Fprintf(f, "%s %s\n", e, other)
			f.Close()
			if err := tp.refresh(); err != nil {
				panic(err)
			}
			l.seen[e] = &relSeen{hash: other, events: 1}
		}, want: "2 store epochs"},
		{name: "undeclared seq gap", beforeStop: 5, fault: func(_ *relTap, l *relListener, _ *relDump) {
			l.seen[id(8)] = &relSeen{hash: other, events: 1}
		}, want: "seqs 6..7 never arrived"},
		{name: "declared seq gap", beforeStop: 5, fault: func(_ *relTap, l *relListener, _ *relDump) {
			l.seen[id(8)] = &relSeen{hash: other, events: 1}
			l.declared = append(l.declared, relDeclared{kind: "store.seq_skipped", id: id(8), first: 6, last: 7})
		}},
		{name: "store declared a loss", beforeStop: 5, fault: func(_ *relTap, l *relListener, _ *relDump) {
			l.declared = append(l.declared, relDeclared{kind: "store.lost", reason: "journal_damage", id: id(5), first: 9, last: 9})
		}, want: "declared durable events lost", lost: 0},
		{name: "damage expected: a loss declared by store.lost", beforeStop: 5, lossOK: true, fault: func(_ *relTap, l *relListener, d *relDump) {
			delete(l.seen, id(3))
			delete(d.records, id(3))
			l.seen[id(7)] = &relSeen{hash: other, events: 1}
			l.declared = append(l.declared, relDeclared{kind: "store.lost", reason: "journal_damage", id: id(7), first: 3, last: 6})
		}, declLost: 1},
		{name: "damage expected: a loss declared only as a skip", beforeStop: 5, lossOK: true, fault: func(_ *relTap, l *relListener, d *relDump) {
			delete(l.seen, id(3))
			delete(d.records, id(3))
			l.seen[id(7)] = &relSeen{hash: other, events: 1}
			l.declared = append(l.declared, relDeclared{kind: "store.seq_skipped", reason: "unclean_stop", id: id(7), first: 3, last: 6})
		}, want: "LOST: " + id(3), lost: 1},
		{name: "damage expected: an id reused is still caught", beforeStop: 5, lossOK: true, fault: func(_ *relTap, l *relListener, _ *relDump) {
			l.conflicts = append(l.conflicts, "id "+id(4)+" arrived with content x, earlier y (events lane)")
		}, want: "arrived with content"},
		{name: "bad batch", beforeStop: 5, fault: func(_ *relTap, l *relListener, _ *relDump) {
			l.bad = append(l.bad, "crc")
		}, want: "bad batch"},
		{name: "corrupt record", beforeStop: 5, fault: func(_ *relTap, _ *relListener, d *relDump) {
			d.corrupt = append(d.corrupt, "record 3: CRC-32C mismatch")
		}, want: "CRC-32C"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, l, d := relFixture(t)
			if tt.fault != nil {
				tt.fault(tp, l, d)
			}
			rep := &relReport{}
			problems := relOracle(rep, tp, l, d, tt.beforeStop, tt.lossOK)
			all := strings.Join(problems, "\n")
			switch {
			case tt.want == "" && len(problems) > 0:
				t.Errorf("clean run flagged:\n%s", all)
			case tt.want != "" && !strings.Contains(all, tt.want):
				t.Errorf("want a problem with %q, got:\n%s", tt.want, all)
			}
			if rep.Lost != tt.lost || rep.DeclaredLost != tt.declLost {
				t.Errorf("lost = %d, declared lost = %d, want %d, %d", rep.Lost, rep.DeclaredLost, tt.lost, tt.declLost)
			}
		})
	}
}

// TestReliabilityTapRepair: a torn last line is never read, and repair
// drops it so the next writer's line starts clean.
func TestReliabilityTapRepair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tap")
	whole := relGateway + ":0123456789abcdef:1 " + strings.Repeat("a", 32) + "\n"
	if err := os.WriteFile(path, []byte(whole+relGateway+":0123456789abcdef:2 bb"), 0o600); err != nil {
		t.Fatal(err)
	}
	tp := &relTap{path: path, byID: map[string]int{}}
	if err := tp.refresh(); err != nil || len(tp.entries) != 1 || tp.bad != 0 {
		t.Fatalf("refresh: %v, %d entries, %d bad", err, len(tp.entries), tp.bad)
	}
	if torn, err := tp.repair(); err != nil || !torn {
		t.Fatalf("repair: %v %v", torn, err)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintf(f, "%s:0123456789abcdef:3 %s\n", relGateway, strings.Repeat("c", 32))
	f.Close()
	if err := tp.refresh(); err != nil || len(tp.entries) != 2 || tp.bad != 0 || tp.entries[1].id != relGateway+":0123456789abcdef:3" {
		t.Fatalf("after repair: %v, %+v, %d bad", err, tp.entries, tp.bad)
	}
}

// TestReliabilityListener feeds the listener batches built by hand from
// docs/city-platform.md: good ones are recorded and acked, each broken
// one is refused without an ack, a redelivery with other content is a
// conflict.
func TestReliabilityListener(t *testing.T) {
	const epoch = "0123456789abcdef"
	prefix := "lintel/v1/" + relCompound + "/" + relGateway
	ev := func(seq int, device string) string {
		return fmt.Sprintf(`{"id":"%s:%s:%d","seq":%d,"gateway":"%s","compound":"%s","time":"2026-11-27T03:00:00.%03dZ","time_quality":"synced","kind":"motion.detected","severity":"info","device":"%s","data":{"b":1,"a":"x"}}`,
			relGateway, epoch, seq, seq, relGateway, relCompound, seq, device)
	}
	batch := func(lane string, prev, first, last int, events []string, crcDelta uint32, count int) []byte {
		arr := "[" + strings.Join(events, ",") + "]"
		return fmt.Appendf(nil, `{"schema":"lintel.batch/v1","lane":"%s","gateway":"%s","compound":"%s","epoch":"%s","prev_seq":%d,"first_seq":%d,"last_seq":%d,"count":%d,"sent_at":"2026-11-27T03:00:01.000Z","events":%s,"crc32":%d}`,
			lane, relGateway, relCompound, epoch, prev, first, last, count, arr, crc32.ChecksumIEEE([]byte(arr))+crcDelta)
	}
	gz := func(b []byte) []byte {
		var out bytes.Buffer
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		zw.Close()
		return out.Bytes()
	}
	l := newRelListenerCore(nopCloser{io.Discard})
	defer l.close()
	var acks []string
	l.ack = func(topic string, payload []byte) { acks = append(acks, topic+" "+string(payload)) }
	in := func(lane, enc string, payload []byte) {
		l.handle(relMsg{lane: lane, topic: prefix + "/" + lane + "/" + enc, payload: payload, at: time.Now()})
	}
	in("events", "gzip", gz(batch("events", 0, 1, 2, []string{ev(1, "pir-1"), ev(2, "pir-2")}, 0, 2)))
	in("events", "json", batch("events", 2, 3, 3, []string{ev(3, "pir-3")}, 0, 1))
	in("alerts", "json", batch("alerts", 2, 3, 3, []string{ev(3, "pir-3")}, 0, 1))
	if len(l.bad) != 0 || len(acks) != 2 || acks[0] != prefix+`/ack {"epoch":"`+epoch+`","seq":2}` {
		t.Fatalf("good batches: bad %v, acks %v", l.bad, acks)
	}
	if s := l.seen[relGateway+":"+epoch+":3"]; s == nil || s.events != 1 || s.alerts != 1 {
		t.Fatalf("seq 3 seen as %+v", s)
	}
	one := []string{ev(4, "pir-4")}
	badID := bytes.Replace(batch("events", 3, 4, 4, one, 0, 1), []byte(`:4","seq"`), []byte(`:9","seq"`), 1)
	broken := []struct {
		why, lane, enc string
		payload        []byte
	}{
		{"crc", "events", "json", batch("events", 3, 4, 4, one, 1, 1)},
		{"count", "events", "json", batch("events", 3, 4, 4, one, 0, 2)},
		{"last seq", "events", "json", batch("events", 3, 4, 5, one, 0, 1)},
		{"prev_seq", "events", "json", batch("events", 4, 4, 4, one, 0, 1)},
		{"order", "events", "json", batch("events", 3, 5, 4, []string{ev(5, "pir-5"), ev(4, "pir-4")}, 0, 2)},
		{"lane", "events", "json", batch("alerts", 3, 4, 4, one, 0, 1)},
		{"encoding", "events", "zstd", batch("events", 3, 4, 4, one, 0, 1)},
		{"id", "events", "json", badID},
	}
	for _, b := range broken {
		n := len(l.bad)
		in(b.lane, b.enc, b.payload)
		if len(l.bad) != n+1 {
			t.Errorf("batch with a bad %s accepted: %s", b.why, b.payload)
		}
	}
	if len(acks) != 2 {
		t.Errorf("a broken batch was acked: %v", acks)
	}
	in("events", "json", batch("events", 0, 1, 1, []string{ev(1, "pir-9")}, 0, 1))
	if len(l.conflicts) != 1 {
		t.Errorf("redelivery with other content: conflicts %v", l.conflicts)
	}
}

// TestReliabilityStoreDump holds the independent decoder to the real
// store's format: a file written by edge/store dumps to the same events
// (content hashes as the listener computes them) and cursor, and a
// flipped byte in a record is caught by its CRC.
func TestReliabilityStoreDump(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.db")
	st, err := store.Open(store.Options{Path: path, Gateway: relGateway, Compound: relCompound, Sinks: []string{"city"}, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	var evs []*event.Event
	for i := range 100 {
		e := event.New(event.MotionDetected).WithData(map[string]any{"code": fmt.Sprintf("%05X", i), "n": i})
		e.Device, e.Household = fmt.Sprintf("pir-%03d", i), "h-rel-00"
		e.Time = time.Date(2026, 11, 27, 3, 0, 0, i*int(time.Millisecond), time.UTC)
		e.TimeQuality = event.Synced
		evs = append(evs, e)
	}
	if err := st.Append(context.Background(), evs...); err != nil {
		t.Fatal(err)
	}
	if err := st.Ack(context.Background(), "city", 40); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := relDumpStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.corrupt)+len(d.checkErrs) > 0 || d.cursors["city"] != 40 {
		t.Fatalf("dump: corrupt %v, check %v, cursors %v", d.corrupt, d.checkErrs, d.cursors)
	}
	n := 0
	for _, e := range evs {
		js, _ := json.Marshal(e)
		var w relWireEvent
		json.Unmarshal(js, &w)
		rec := d.records[e.ID]
		if rec == nil {
			continue // acked and deleted: no history cursor here
		}
		n++
		if rec.hash != relContentHash(w) || rec.seq != e.Seq {
			t.Errorf("%s: dumped %+v, want hash %s", e.ID, rec, relContentHash(w))
		}
	}
	if n < 60 {
		t.Fatalf("only %d of the unacked events dumped", n)
	}

	// Flip one byte of a stored event's JSON, keeping bbolt's own
	// structure intact.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("events"))
		k := binary.BigEndian.AppendUint64(nil, 77)
		v := bytes.Clone(b.Get(k))
		if v == nil {
			return fmt.Errorf("seq 77 not stored")
		}
		v[len(v)-3] ^= 0x01
		return b.Put(k, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	d, err = relDumpStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.corrupt) != 1 || !strings.Contains(d.corrupt[0], "record 77: CRC-32C") {
		t.Errorf("flipped byte: corrupt = %v", d.corrupt)
	}
}

package city

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

type fakeMsg struct {
	topic   string
	payload []byte
}

func (m fakeMsg) Duplicate() bool   { return false }
func (m fakeMsg) Qos() byte         { return 1 }
func (m fakeMsg) Retained() bool    { return false }
func (m fakeMsg) Topic() string     { return m.topic }
func (m fakeMsg) MessageID() uint16 { return 1 }
func (m fakeMsg) Payload() []byte   { return m.payload }
func (m fakeMsg) Ack()              {}

const testEpoch = "0123456789abcdef"

func batchMsg(t *testing.T, lane string, prev uint64, seqs ...uint64) fakeMsg {
	t.Helper()
	var enc [][]byte
	for _, seq := range seqs {
		e := event.New(event.DoorOpened)
		e.ID, e.Seq, e.Gateway, e.Compound = event.FormatID("gw-01", testEpoch, seq), seq, "gw-01", "c-01"
		e.Time, e.TimeQuality = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), event.Synced
		js, err := e.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		enc = append(enc, js)
	}
	h := header{lane: lane, gateway: "gw-01", compound: "c-01", epoch: testEpoch}
	p, err := encodeBatch(h, prev, seqs[0], seqs[len(seqs)-1], enc, time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	return fakeMsg{topic: "lintel/v1/c-01/gw-01/" + lane + "/json", payload: p}
}

func TestReceiverGapCheckAndDedup(t *testing.T) {
	var out bytes.Buffer
	r, err := NewReceiver(ReceiverOptions{Broker: "tcp://x:1", Filter: "lintel/v1/+/+", Ack: true, GapCheck: true, Out: &out, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		m     fakeMsg
		acked bool
	}{
		{batchMsg(t, LaneEvents, 0, 1, 2, 3), true},
		{batchMsg(t, LaneAlerts, 4, 5), false},      // alert lane: written, never acked
		{batchMsg(t, LaneEvents, 6, 7, 8), false},   // 4..6 missing: refused
		{batchMsg(t, LaneEvents, 3, 4, 5, 6), true}, // resend fills the gap; 5 is a duplicate
		{batchMsg(t, LaneEvents, 6, 7, 8), true},    // now it chains
		{batchMsg(t, LaneEvents, 0, 1, 2, 3), true}, // an old batch again: all duplicates, acked
		{batchMsg(t, LaneEvents, 8, 10, 12), true},  // seq gaps inside a batch are fine
	}
	for i, s := range steps {
		a, ok := r.handle(s.m)
		if ok != s.acked {
			t.Fatalf("step %d: acked %v, want %v", i, ok, s.acked)
		}
		if ok && (a.prefix != "lintel/v1/c-01/gw-01" || a.epoch != testEpoch) {
			t.Fatalf("step %d: ack %+v", i, a)
		}
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var seqs []uint64
	for _, l := range lines {
		e, err := event.Decode([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, e.Seq)
	}
	if got := strings.Join(strings.Fields(fmtSeqs(seqs)), ","); got != "1,2,3,5,4,6,7,8,10,12" {
		t.Errorf("written seqs %s", got)
	}
	if r.Gaps.Load() != 1 || r.Duplicates.Load() != 4 || r.OrderViolations.Load() != 0 {
		t.Errorf("gaps %d dups %d violations %d", r.Gaps.Load(), r.Duplicates.Load(), r.OrderViolations.Load())
	}
	// A restarted receiver reading its output writes nothing twice.
	r2, _ := NewReceiver(ReceiverOptions{Broker: "tcp://x:1", Filter: "x", Logger: testLogger(t)})
	if err := r2.LoadSeen(strings.NewReader(out.String())); err != nil {
		t.Fatal(err)
	}
	r2.handle(batchMsg(t, LaneEvents, 6, 7, 8))
	if r2.Events.Load() != 0 || r2.Duplicates.Load() != 2 {
		t.Errorf("after LoadSeen: new %d dups %d", r2.Events.Load(), r2.Duplicates.Load())
	}
	// A mangled batch is refused and not acked.
	bad := batchMsg(t, LaneEvents, 12, 13)
	bad.payload = bytes.Replace(bad.payload, []byte(`"count":1`), []byte(`"count":2`), 1)
	if _, ok := r.handle(bad); ok || r.BadBatches.Load() != 1 {
		t.Error("mangled batch acked")
	}
}

func fmtSeqs(s []uint64) string {
	var b strings.Builder
	for _, v := range s {
		b.WriteString(" ")
		b.WriteString(strconvU(v))
	}
	return b.String()
}

func strconvU(v uint64) string { return strconv.FormatUint(v, 10) }

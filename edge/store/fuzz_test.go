package store

import "testing"

// FuzzDecodeRecord feeds damaged values to the decoder: it must return an
// error, never panic, and whatever it accepts must re-encode to itself.
func FuzzDecodeRecord(f *testing.F) {
	for _, ev := range recordSeedEvents() {
		js, err := ev.MarshalJSON()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(ev.Seq, encodeRecord(ev.Seq, header{class: classOf(ev), monoMS: 12, wallMS: 34}, js))
	}
	f.Add(uint64(0), []byte{})
	f.Add(uint64(1), []byte{recordVersion, classTelemetry})
	f.Fuzz(func(t *testing.T, seq uint64, v []byte) {
		h, ev, err := decodeRecord(seq, v)
		if err != nil {
			return
		}
		js, err := ev.MarshalJSON()
		if err != nil {
			t.Fatalf("accepted record does not re-encode: %v", err)
		}
		if ev.Seq != seq {
			t.Fatalf("accepted seq %d under key %d", ev.Seq, seq)
		}
		if _, _, err := decodeRecord(seq, encodeRecord(seq, h, js)); err != nil {
			t.Fatalf("re-encoded record rejected: %v", err)
		}
	})
}

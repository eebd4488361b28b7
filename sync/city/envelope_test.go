package city

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

func testBatch(t testing.TB, gz bool) []byte {
	t.Helper()
	var enc [][]byte
	for seq := uint64(5); seq <= 9; seq += 2 {
		e := event.New(event.DoorOpened)
		e.ID, e.Seq, e.Gateway, e.Compound = event.FormatID("gw-01", "0123456789abcdef", seq), seq, "gw-01", "c-01"
		e.Time = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
		e.TimeQuality = event.Synced
		e.Device = "door-1"
		js, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		enc = append(enc, js)
	}
	h := header{lane: LaneEvents, gateway: "gw-01", compound: "c-01", epoch: "0123456789abcdef"}
	b, err := encodeBatch(h, 4, 5, 9, enc, time.Date(2026, 11, 27, 3, 0, 1, 0, time.UTC), gz)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBatchRoundTrip(t *testing.T) {
	for _, gz := range []bool{false, true} {
		enc := EncJSON
		if gz {
			enc = EncGzip
		}
		b, evs, err := DecodeBatch(enc, testBatch(t, gz))
		if err != nil {
			t.Fatal(err)
		}
		if b.Schema != BatchSchema || b.PrevSeq != 4 || b.FirstSeq != 5 || b.LastSeq != 9 || b.Count != 3 || len(evs) != 3 || evs[1].Seq != 7 {
			t.Errorf("gzip=%v: %+v", gz, b)
		}
	}
	if _, _, err := DecodeBatch(EncGzip, testBatch(t, false)); err == nil {
		t.Error("plain JSON accepted as gzip")
	}
	if _, _, err := DecodeBatch("zstd", testBatch(t, false)); err == nil {
		t.Error("unknown encoding accepted")
	}
}

func TestBatchIntegrity(t *testing.T) {
	good := string(testBatch(t, false))
	for name, mangle := range map[string]func(string) string{
		"crc":    func(s string) string { return strings.Replace(s, `"device":"door-1"`, `"device":"door-2"`, 1) },
		"count":  func(s string) string { return strings.Replace(s, `"count":3`, `"count":4`, 1) },
		"first":  func(s string) string { return strings.Replace(s, `"first_seq":5`, `"first_seq":4`, 1) },
		"last":   func(s string) string { return strings.Replace(s, `"last_seq":9`, `"last_seq":10`, 1) },
		"prev":   func(s string) string { return strings.Replace(s, `"prev_seq":4`, `"prev_seq":5`, 1) },
		"schema": func(s string) string { return strings.Replace(s, BatchSchema, "lintel.batch/v2", 1) },
		"lane":   func(s string) string { return strings.Replace(s, `"lane":"events"`, `"lane":"x"`, 1) },
		"epoch": func(s string) string {
			return strings.Replace(s, `"epoch":"0123456789abcdef"`, `"epoch":"fedcba9876543210"`, 1)
		},
		"gateway": func(s string) string {
			return strings.Replace(s, `"gateway":"gw-01","compound"`, `"gateway":"gw-02","compound"`, 1)
		},
		"truncated": func(s string) string { return s[:len(s)/2] },
		"not json":  func(string) string { return "hello" },
	} {
		if _, _, err := DecodeBatch(EncJSON, []byte(mangle(good))); err == nil {
			t.Errorf("%s: mangled batch accepted", name)
		}
	}
}

func TestGzipBomb(t *testing.T) {
	defer func(m int) { maxDecoded = m }(maxDecoded)
	maxDecoded = 1 << 20
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 2; i++ {
		zw.Write(zeros)
	}
	zw.Close()
	if _, _, err := DecodeBatch(EncGzip, buf.Bytes()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("bomb: %v", err)
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(testBatch(f, false))
	f.Fuzz(func(t *testing.T, b []byte) {
		batch, evs, err := DecodeBatch(EncJSON, b)
		if err != nil {
			return
		}
		if len(evs) != batch.Count || evs[0].Seq != batch.FirstSeq || evs[len(evs)-1].Seq != batch.LastSeq {
			t.Fatalf("accepted inconsistent batch %+v", batch)
		}
	})
}

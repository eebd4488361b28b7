package event_test

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

func sameAsReflect(t *testing.T, e event.Event) {
	t.Helper()
	fast, ferr := e.MarshalJSON()
	ref, rerr := e.MarshalReflect()
	if (ferr == nil) != (rerr == nil) {
		t.Fatalf("errors differ: fast %v, reflect %v", ferr, rerr)
	}
	if !bytes.Equal(fast, ref) {
		t.Fatalf("encodings differ:\nfast    %s\nreflect %s", fast, ref)
	}
}

func TestAppendJSONMatchesReflect(t *testing.T) {
	for _, e := range goldenEvents() {
		sameAsReflect(t, *e)
	}
	odd := []string{"", "a\"b\\c", "<script>&", "\x00\x01\x1f\x7f", "line\nbreak\ttab\r\b\f", "\u2028\u2029", "中文 3栋", "\xff\xfe bad utf8 \xc3", "emoji 🚪"}
	r := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return odd[r.IntN(len(odd))] + odd[r.IntN(len(odd))] }
	for i := 0; i < 2000; i++ {
		e := event.Event{ID: pick(), Seq: r.Uint64(), Gateway: pick(), Compound: pick(),
			Time: time.Unix(r.Int64N(4e9), r.Int64N(1e9)), TimeQuality: event.TimeQuality(pick()),
			Kind: event.Kind(pick()), Severity: event.Severity(pick()), Device: pick(), Household: pick()}
		if r.IntN(2) == 0 {
			e.Place = &event.Place{Building: pick(), Room: pick(), Position: pick()}
		}
		if r.IntN(2) == 0 {
			d, _ := json.Marshal(map[string]any{"s": pick(), "n": r.Float64(), "l": []any{pick(), true, nil}})
			if r.IntN(3) == 0 {
				d = []byte(" {\n \"x\" : [1, 2]\t}")
			}
			e.Data = d
		}
		if r.IntN(3) == 0 {
			e.Evidence = []event.Evidence{{Type: pick(), Ref: pick(), MediaType: pick(), SHA256: pick(), Size: r.Int64()}, {Type: "clip", SHA256: strings.Repeat("a", 64)}}
		}
		sameAsReflect(t, e)
	}
	sameAsReflect(t, event.Event{Data: json.RawMessage(`{"bad"`)})
}

func FuzzAppendJSON(f *testing.F) {
	f.Add("gw-1", "door.opened", "3栋<&>", []byte(`{"a":"b"}`), int64(0))
	f.Add("\xff", "", "\u2028", []byte(`[1`), int64(-1))
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, data []byte, ns int64) {
		e := event.Event{ID: s1, Gateway: s2, Kind: event.Kind(s3), Device: s1 + s3, Household: s2,
			Time: time.Unix(0, ns), Place: &event.Place{Room: s3}, Data: data,
			Evidence: []event.Evidence{{Type: s1, Ref: s2, SHA256: s3}}}
		if len(data) == 0 {
			e.Data = nil
		}
		sameAsReflect(t, e)
	})
}

func BenchmarkMarshal(b *testing.B) {
	e := goldenEvents()["falling_object"]
	b.Run("append", func(b *testing.B) {
		buf := make([]byte, 0, 1024)
		for b.Loop() {
			buf, _ = e.AppendJSON(buf[:0])
		}
	})
	b.Run("reflect", func(b *testing.B) {
		for b.Loop() {
			e.MarshalReflect()
		}
	})
}

package city

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// BatchSchema is the envelope's schema field. A receiver refuses any other
// value; a later incompatible envelope gets a new name and a new topic
// level, never a silent change.
const BatchSchema = "lintel.batch/v1"

// Content encodings: the last level of the events and alerts topics.
const (
	EncJSON = "json" // the envelope as JSON
	EncGzip = "gzip" // the envelope as JSON, gzip-compressed (RFC 1952)
)

// Lanes.
const (
	LaneEvents = "events"
	LaneAlerts = "alerts"
)

// Batch is the envelope of one MQTT message on the events or alerts topic.
// Events holds Event v1 objects in increasing seq order; seqs may have gaps
// (the store drops telemetry over quota and says so with store.dropped).
// PrevSeq chains the ordered stream: the batch holds every stored event
// with PrevSeq < seq ≤ LastSeq, so a receiver that has everything up to
// PrevSeq knows it has missed nothing.
// CRC32 is the IEEE CRC of the exact bytes of the events array, so a
// receiver can tell a truncated or mangled batch from a good one.
type Batch struct {
	Schema   string          `json:"schema"`
	Lane     string          `json:"lane"`
	Gateway  string          `json:"gateway"`
	Compound string          `json:"compound"`
	Epoch    string          `json:"epoch"`
	PrevSeq  uint64          `json:"prev_seq"`
	FirstSeq uint64          `json:"first_seq"`
	LastSeq  uint64          `json:"last_seq"`
	Count    int             `json:"count"`
	SentAt   time.Time       `json:"sent_at"`
	Events   json.RawMessage `json:"events"`
	CRC32    uint32          `json:"crc32"`
}

// header is what the sink knows of a batch before encoding its events.
type header struct {
	lane, gateway, compound, epoch string
}

// encodeBatch builds the envelope of evs (already JSON-encoded, in seq
// order) and compresses it when gz is set. It writes the envelope by hand
// so the events array is hashed and written once.
func encodeBatch(h header, prev, first, last uint64, evs [][]byte, sentAt time.Time, gz bool) ([]byte, error) {
	n := 256
	for _, e := range evs {
		n += len(e) + 1
	}
	buf := make([]byte, 0, n)
	buf = append(buf, `{"schema":"`+BatchSchema+`","lane":`...)
	buf = strconv.AppendQuote(buf, h.lane)
	buf = append(buf, `,"gateway":`...)
	buf = appendString(buf, h.gateway)
	buf = append(buf, `,"compound":`...)
	buf = appendString(buf, h.compound)
	buf = append(buf, `,"epoch":`...)
	buf = appendString(buf, h.epoch)
	buf = append(buf, `,"prev_seq":`...)
	buf = strconv.AppendUint(buf, prev, 10)
	buf = append(buf, `,"first_seq":`...)
	buf = strconv.AppendUint(buf, first, 10)
	buf = append(buf, `,"last_seq":`...)
	buf = strconv.AppendUint(buf, last, 10)
	buf = append(buf, `,"count":`...)
	buf = strconv.AppendInt(buf, int64(len(evs)), 10)
	buf = append(buf, `,"sent_at":"`...)
	buf = sentAt.UTC().AppendFormat(buf, event.TimeLayout)
	buf = append(buf, `","events":`...)
	start := len(buf)
	buf = append(buf, '[')
	for i, e := range evs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, e...)
	}
	buf = append(buf, ']')
	sum := crc32.ChecksumIEEE(buf[start:])
	buf = append(buf, `,"crc32":`...)
	buf = strconv.AppendUint(buf, uint64(sum), 10)
	buf = append(buf, '}')
	if !gz {
		return buf, nil
	}
	var out bytes.Buffer
	out.Grow(len(buf) / 4)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(&out)
	if _, err := zw.Write(buf); err != nil {
		return nil, fmt.Errorf("gzip batch: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip batch: %w", err)
	}
	return out.Bytes(), nil
}

var gzipWriters = sync.Pool{New: func() any {
	// BestSpeed: on a gateway CPU the drain rate matters more than the last
	// few percent of ratio; event JSON compresses ~5-8x even so.
	zw, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return zw
}}

func appendString(b []byte, s string) []byte {
	js, _ := json.Marshal(s)
	return append(b, js...)
}

// MaxDecodedBatch bounds a decompressed envelope, so a gzip bomb cannot
// exhaust the receiver's memory.
const MaxDecodedBatch = 64 << 20

// maxDecoded is MaxDecodedBatch, lowered by a test.
var maxDecoded = MaxDecodedBatch

// DecodeBatch parses a message from an events or alerts topic whose last
// level is enc, checks its integrity and returns it with its events.
func DecodeBatch(enc string, payload []byte) (*Batch, []*event.Event, error) {
	switch enc {
	case EncJSON:
	case EncGzip:
		zr, err := gzip.NewReader(bytes.NewReader(payload))
		if err != nil {
			return nil, nil, fmt.Errorf("decode batch: gzip: %w", err)
		}
		raw, err := io.ReadAll(io.LimitReader(zr, int64(maxDecoded)+1))
		if err != nil {
			return nil, nil, fmt.Errorf("decode batch: gzip: %w", err)
		}
		if len(raw) > maxDecoded {
			return nil, nil, fmt.Errorf("decode batch: larger than %d bytes decompressed", maxDecoded)
		}
		payload = raw
	default:
		return nil, nil, fmt.Errorf("decode batch: unknown content encoding %q", enc)
	}
	var b Batch
	if err := json.Unmarshal(payload, &b); err != nil {
		return nil, nil, fmt.Errorf("decode batch: %w", err)
	}
	if b.Schema != BatchSchema {
		return nil, nil, fmt.Errorf("decode batch: schema %q, want %q", b.Schema, BatchSchema)
	}
	if b.Lane != LaneEvents && b.Lane != LaneAlerts {
		return nil, nil, fmt.Errorf("decode batch: lane %q", b.Lane)
	}
	if got := crc32.ChecksumIEEE(b.Events); got != b.CRC32 {
		return nil, nil, fmt.Errorf("decode batch: crc32 %d, envelope says %d", got, b.CRC32)
	}
	var evs []*event.Event
	if err := json.Unmarshal(b.Events, &evs); err != nil {
		return nil, nil, fmt.Errorf("decode batch: events: %w", err)
	}
	if len(evs) != b.Count || b.Count == 0 {
		return nil, nil, fmt.Errorf("decode batch: %d events, envelope says %d", len(evs), b.Count)
	}
	if evs[0].Seq != b.FirstSeq || evs[len(evs)-1].Seq != b.LastSeq {
		return nil, nil, fmt.Errorf("decode batch: seqs %d..%d, envelope says %d..%d", evs[0].Seq, evs[len(evs)-1].Seq, b.FirstSeq, b.LastSeq)
	}
	if b.PrevSeq >= b.FirstSeq {
		return nil, nil, fmt.Errorf("decode batch: prev_seq %d not below first_seq %d", b.PrevSeq, b.FirstSeq)
	}
	for i, e := range evs {
		if e == nil {
			return nil, nil, fmt.Errorf("decode batch: event %d is null", i)
		}
		if i > 0 && e.Seq <= evs[i-1].Seq {
			return nil, nil, fmt.Errorf("decode batch: seq %d after %d", e.Seq, evs[i-1].Seq)
		}
		if e.Gateway != b.Gateway {
			return nil, nil, fmt.Errorf("decode batch: event %s from gateway %q in a batch of %q", e.ID, e.Gateway, b.Gateway)
		}
		if _, ep, seq, err := event.ParseID(e.ID); err != nil || ep != b.Epoch || seq != e.Seq {
			return nil, nil, fmt.Errorf("decode batch: event id %q does not match the batch epoch and its seq", e.ID)
		}
	}
	return &b, evs, nil
}

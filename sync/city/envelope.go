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
// order) and compresses it when gz is set.
func encodeBatch(h header, prev, first, last uint64, evs [][]byte, sentAt time.Time, gz bool) ([]byte, error) {
	bb := newBatchBuilder(h)
	n := 0
	for _, e := range evs {
		n += len(e) + 1
	}
	bb.reset(make([]byte, 0, bb.reserve+n+64))
	for _, e := range evs {
		bb.add(0, e)
	}
	bb.first, bb.last = first, last
	return bb.finish(prev, sentAt, gz, nil)
}

// batchBuilder writes an envelope around event JSON appended to it as it
// is read from the log, copying each event's bytes once: the events array
// is written first, after room reserved for the envelope's head (whose
// counts and seqs are known only at the end), and the head is then
// written right-aligned into that room. The CRC is taken over the array's
// exact bytes, as the contract says.
type batchBuilder struct {
	h           header
	reserve     int // room for the longest head
	buf         []byte
	n           int
	first, last uint64
}

func newBatchBuilder(h header) *batchBuilder {
	far := time.Date(9999, 12, 31, 23, 59, 59, 999e6, time.UTC)
	head := appendBatchHead(nil, h, ^uint64(0), ^uint64(0), ^uint64(0), int(^uint(0)>>1), far)
	return &batchBuilder{h: h, reserve: len(head)}
}

// reset starts a batch in buf (its contents are discarded).
func (b *batchBuilder) reset(buf []byte) {
	if cap(buf) < b.reserve+2 {
		buf = make([]byte, 0, b.reserve+4096)
	}
	b.buf = append(buf[:b.reserve], '[')
	b.n, b.first, b.last = 0, 0, 0
}

// add appends one event's JSON (exactly the stored bytes).
func (b *batchBuilder) add(seq uint64, js []byte) {
	if b.n > 0 {
		b.buf = append(b.buf, ',')
	} else {
		b.first = seq
	}
	b.buf = append(b.buf, js...)
	b.last = seq
	b.n++
}

// size is the length of the events array so far.
func (b *batchBuilder) size() int { return len(b.buf) - b.reserve }

// finish closes the envelope and returns the payload, gzip-compressed when
// gz is set (into zbuf's storage if given). The payload aliases the
// builder's buffer when not compressed.
func (b *batchBuilder) finish(prev uint64, sentAt time.Time, gz bool, zbuf []byte) ([]byte, error) {
	b.buf = append(b.buf, ']')
	sum := crc32.ChecksumIEEE(b.buf[b.reserve:])
	b.buf = append(b.buf, `,"crc32":`...)
	b.buf = strconv.AppendUint(b.buf, uint64(sum), 10)
	b.buf = append(b.buf, '}')
	var scratch [512]byte
	head := appendBatchHead(scratch[:0], b.h, prev, b.first, b.last, b.n, sentAt)
	var out []byte
	if len(head) <= b.reserve {
		start := b.reserve - len(head)
		copy(b.buf[start:], head)
		out = b.buf[start:]
	} else { // a clock past year 9999: not worth a special case beyond correctness
		out = append(head, b.buf[b.reserve:]...)
	}
	if !gz {
		return out, nil
	}
	zb := bytes.NewBuffer(zbuf[:0])
	zb.Grow(len(out) / 4)
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(zb)
	if _, err := zw.Write(out); err != nil {
		return nil, fmt.Errorf("gzip batch: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip batch: %w", err)
	}
	return zb.Bytes(), nil
}

// appendBatchHead appends the envelope up to and including `"events":`.
func appendBatchHead(buf []byte, h header, prev, first, last uint64, count int, sentAt time.Time) []byte {
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
	buf = strconv.AppendInt(buf, int64(count), 10)
	buf = append(buf, `,"sent_at":"`...)
	buf = sentAt.UTC().AppendFormat(buf, event.TimeLayout)
	return append(buf, `","events":`...)
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

package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"

	"github.com/lintel-edge/lintel/edge/event"
)

// Record value layout (all integers big-endian):
//
//	off  size  field
//	0    1     format version (1 or 2, see below)
//	1    1     class (classTelemetry or classImportant)
//	2    8     store-monotonic time at commit, ms (see Store doc)
//	10   8     wall clock at commit, ms since the Unix epoch (informational)
//	18   4     CRC-32C over the 8-byte key, bytes 0..17 and bytes 22..end
//	22   …     version 1: the event as Event v1 JSON (event.Event.MarshalJSON)
//
// Version 2 (written since issue 18) puts what routing needs ahead of the
// JSON, so a reader can route a record without parsing it:
//
//	22   1     severity rank (event.Severity.Rank: 1 info … 4 critical; 0 unknown)
//	23   1     length k of the kind (≤ 64, event.Kind.Valid)
//	24   k     the kind, ASCII
//	24+k …     the event as Event v1 JSON
//
// The CRC covers the same ranges in both versions. Version 1 records stay
// readable: their kind and severity come from the JSON (see RawEvent).
//
// bbolt checksums only its meta pages, so the CRC is what tells a flipped
// bit inside a stored value from a good one.
const (
	recordV1        = 1
	recordVersion   = 2 // what encodeRecord writes
	headerSize      = 22
	keySize         = 8
	classTelemetry  = 1
	classImportant  = 2
	maxRecordLength = 16 << 20 // a larger value is corrupt, not an event
	maxKindLength   = 255
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Class names, as used in Stats and in store.dropped data.
const (
	ClassTelemetry = "telemetry"
	ClassImportant = "important"
)

// classOf decides which class an event is stored in. Important events
// (alert or critical, carrying evidence, or declaring missing seqs) are
// the last to be dropped when the quota is exceeded.
func classOf(ev *event.Event) byte {
	if ev.Severity.Urgent() || len(ev.Evidence) > 0 || declares(ev.Kind) {
		return classImportant
	}
	return classTelemetry
}

func className(c byte) string {
	if c == classImportant {
		return ClassImportant
	}
	return ClassTelemetry
}

// header is the fixed part of a record value. kind and sev are written by
// encodeRecord; decodeHeader fills sev and body (not kind: it would
// allocate on every scan; see recordKind).
type header struct {
	class  byte
	monoMS uint64
	wallMS int64
	sev    byte   // severity rank, 0 in a version 1 record
	kind   string // encode only
	body   int    // offset of the JSON in the value (decode only)
}

// headerOf is the header of a new record of ev.
func headerOf(ev *event.Event, mono uint64, wall int64) header {
	return header{class: classOf(ev), monoMS: mono, wallMS: wall, sev: byte(ev.Severity.Rank()), kind: string(ev.Kind)}
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, keySize), seq) }

func keySeq(k []byte) uint64 { return binary.BigEndian.Uint64(k) }

// encodeRecord builds the stored value for the event JSON js under seq:
// version 2, or version 1 when h carries no kind that fits the header.
func encodeRecord(seq uint64, h header, js []byte) []byte {
	ver, extra := byte(recordV1), 0
	if h.kind != "" && len(h.kind) <= maxKindLength {
		ver, extra = recordVersion, 2+len(h.kind)
	}
	v := make([]byte, headerSize, headerSize+extra+len(js))
	v[0] = ver
	v[1] = h.class
	binary.BigEndian.PutUint64(v[2:], h.monoMS)
	binary.BigEndian.PutUint64(v[10:], uint64(h.wallMS))
	if ver == recordVersion {
		v = append(v, h.sev, byte(len(h.kind)))
		v = append(v, h.kind...)
	}
	v = append(v, js...)
	binary.BigEndian.PutUint32(v[18:], recordCRC(seq, v))
	return v
}

// recordLen is the length of the record encodeRecord makes for kind and
// json bytes of JSON, for accounting before the record is encoded.
func recordLen(kind string, json int) int {
	if kind != "" && len(kind) <= maxKindLength {
		return headerSize + 2 + len(kind) + json
	}
	return headerSize + json
}

func recordCRC(seq uint64, v []byte) uint32 {
	var k [keySize]byte
	binary.BigEndian.PutUint64(k[:], seq)
	c := crc32.Update(0, castagnoli, k[:])
	c = crc32.Update(c, castagnoli, v[:18])
	return crc32.Update(c, castagnoli, v[headerSize:])
}

// decodeHeader validates the fixed part and the checksum of a stored value
// without parsing the JSON; the open-time scan uses it.
func decodeHeader(seq uint64, v []byte) (header, error) {
	if len(v) < headerSize+2 {
		return header{}, fmt.Errorf("record %d: %d bytes, shorter than a header", seq, len(v))
	}
	if len(v) > maxRecordLength {
		return header{}, fmt.Errorf("record %d: %d bytes, too long", seq, len(v))
	}
	h := header{body: headerSize}
	switch v[0] {
	case recordV1:
	case recordVersion:
		k := int(v[headerSize+1])
		if len(v) < headerSize+2+k+2 {
			return header{}, fmt.Errorf("record %d: %d bytes, shorter than its header", seq, len(v))
		}
		h.sev, h.body = v[headerSize], headerSize+2+k
	default:
		return header{}, fmt.Errorf("record %d: format version %d, want %d or %d", seq, v[0], recordV1, recordVersion)
	}
	if v[1] != classTelemetry && v[1] != classImportant {
		return header{}, fmt.Errorf("record %d: unknown class %d", seq, v[1])
	}
	if got, want := recordCRC(seq, v), binary.BigEndian.Uint32(v[18:]); got != want {
		return header{}, fmt.Errorf("record %d: checksum %08x, want %08x", seq, got, want)
	}
	h.class = v[1]
	h.monoMS = binary.BigEndian.Uint64(v[2:])
	h.wallMS = int64(binary.BigEndian.Uint64(v[10:]))
	return h, nil
}

// recordJSON is the Event v1 JSON of a value whose header decodeHeader
// accepted, without checking it again.
func recordJSON(v []byte) []byte {
	if v[0] == recordVersion {
		return v[headerSize+2+int(v[headerSize+1]):]
	}
	return v[headerSize:]
}

// recordKind is the kind in a version 2 header (nil in version 1).
func recordKind(v []byte) []byte {
	if v[0] == recordVersion {
		return v[headerSize+2 : headerSize+2+int(v[headerSize+1])]
	}
	return nil
}

// decodeRecord parses a stored value back into an event. A damaged value
// gives an error, never a panic (FuzzDecodeRecord holds it to that).
func decodeRecord(seq uint64, v []byte) (header, *event.Event, error) {
	h, err := decodeHeader(seq, v)
	if err != nil {
		return header{}, nil, err
	}
	var ev event.Event
	if err := json.Unmarshal(v[h.body:], &ev); err != nil {
		return header{}, nil, fmt.Errorf("record %d: decode event: %w", seq, err)
	}
	if ev.Seq != seq {
		return header{}, nil, fmt.Errorf("record %d: event carries seq %d", seq, ev.Seq)
	}
	return h, &ev, nil
}

// Events are marshalled by the caller (in parallel, off the writer) with an
// empty id and seq 0, which makes event.MarshalJSON start with this exact
// prefix; the writer then splices in the real id and seq. The result is
// byte-for-byte what MarshalJSON gives for the stamped event (tested).
var unstampedPrefix = []byte(`{"id":"","seq":0,`)

var errPrefix = errors.New("event json does not start with the id and seq fields")

func stampJSON(js []byte, id string, seq uint64) ([]byte, error) {
	if !bytes.HasPrefix(js, unstampedPrefix) {
		return nil, errPrefix
	}
	out := make([]byte, 0, len(js)+len(id)+24)
	out = append(out, `{"id":`...)
	out = appendJSONString(out, id)
	out = append(out, `,"seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	out = append(out, ',')
	return append(out, js[len(unstampedPrefix):]...), nil
}

// appendJSONString appends s quoted exactly as encoding/json would.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

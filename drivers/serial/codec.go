package serial

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Frame is one radio message as a receiver reported it, before any code
// table gave it a meaning.
//
// Receivers report codes in one of two shapes. Word receivers (Sonoff RF
// Bridge, RFXtrx Lighting4, most learning modules) pass on the whole
// EV1527 word — address and data together — and a code table says where
// to split it. Split receivers (RFXtrx Security1, framed codecs with data
// bytes, line codecs with a data field) already separate the sensor's
// address from its data; then HasData is set.
type Frame struct {
	// Code is the whole word (HasData false) or the sensor address
	// (HasData true), right-aligned.
	Code uint64
	// Bits is how many bits of Code are significant (24 for EV1527).
	Bits int
	// Data is the data or status value when HasData.
	Data    uint32
	HasData bool
	// RSSI is the receiver's signal figure when HasRSSI (RFXtrx: 0–15,
	// line receivers: usually dBm).
	RSSI    int
	HasRSSI bool
	// Tamper and BatteryLow are flags some receivers decode themselves
	// (RFXtrx Security1); HasFlags says the receiver reports them at all.
	Tamper     bool
	BatteryLow bool
	HasFlags   bool
	// Proto names the packet family ("ev1527", "portisch-1",
	// "lighting4", "security1-3", "framed", "line").
	Proto string
}

// CodeHex formats Code with Bits/4 hex digits (rounded up), upper case.
func (f Frame) CodeHex() string { return hexDigits(f.Code, f.Bits) }

func hexDigits(v uint64, bits int) string {
	n := (bits + 3) / 4
	if n < 1 {
		n = 1
	}
	s := strings.ToUpper(strconv.FormatUint(v, 16))
	if len(s) < n {
		s = strings.Repeat("0", n-len(s)) + s
	}
	return s
}

// Result says what a Decoder found at the start of a buffer.
type Result int

// Decode results.
const (
	// More means the buffer may be the start of a frame: read more bytes.
	More Result = iota
	// Got means buf[:n] is a radio frame.
	Got
	// Skip means buf[:n] is a well-formed frame of no interest (an ACK, a
	// status reply, a packet type Lintel does not use).
	Skip
	// Garbage means buf[:n] cannot start a frame and is dropped.
	Garbage
)

// Decoder finds frames at the start of a byte buffer. It is a pure parser:
// no I/O, no clock. It may keep state between calls (the line codec
// remembers it is discarding an over-long line), so each port has its own.
//
// Invariants, checked by the fuzz targets: Decode never panics; for any
// result but More, 0 < n ≤ len(buf); More is only returned while
// len(buf) < MaxFrame(), so a Scanner never holds more than MaxFrame()
// bytes of an unfinished frame.
type Decoder interface {
	Decode(buf []byte) (f Frame, n int, r Result)
	// MaxFrame is the longest frame this decoder accepts, in bytes.
	MaxFrame() int
}

// Codec is a Decoder that can also write frames (simulator, tests).
type Codec interface {
	Decoder
	// Encode renders f as the receiver would send it.
	Encode(f Frame) ([]byte, error)
	// Name is the codec's configuration name.
	Name() string
}

// Initializer is a Codec whose receiver must be told to start after the
// port opens.
type Initializer interface {
	InitSequence() []InitStep
}

// InitStep is one write to the receiver, then a pause.
type InitStep struct {
	Write []byte
	Wait  time.Duration
}

// Stats counts what a Scanner saw.
type Stats struct {
	Bytes   uint64 `json:"bytes"`
	Frames  uint64 `json:"frames"`
	Skipped uint64 `json:"skipped"`
	Garbage uint64 `json:"garbage_bytes"`
}

// Scanner feeds a byte stream to a Decoder and hands out frames. Bytes
// that cannot start a frame are dropped one decoder step at a time, so one
// bad byte costs at most one frame (resync). Its buffer never grows beyond
// the decoder's MaxFrame plus one Feed.
type Scanner struct {
	dec   Decoder
	buf   []byte
	stats Stats
}

// NewScanner returns a Scanner over dec.
func NewScanner(dec Decoder) *Scanner {
	return &Scanner{dec: dec, buf: make([]byte, 0, 2*dec.MaxFrame()+512)}
}

// Feed consumes p and calls fn for every complete frame in it.
func (s *Scanner) Feed(p []byte, fn func(Frame)) {
	s.stats.Bytes += uint64(len(p))
	s.buf = append(s.buf, p...)
	start := 0
	for start < len(s.buf) {
		f, n, r := s.dec.Decode(s.buf[start:])
		if r == More {
			if len(s.buf)-start < s.dec.MaxFrame() {
				break
			}
			// A decoder that still wants more after MaxFrame bytes is
			// looking at garbage that resembles a header.
			n, r = 1, Garbage
		}
		if n <= 0 || n > len(s.buf)-start {
			n, r = 1, Garbage // defensive: a decoder bug must not hang the port
		}
		switch r {
		case Got:
			s.stats.Frames++
			fn(f)
		case Skip:
			s.stats.Skipped++
		case Garbage:
			s.stats.Garbage += uint64(n)
		}
		start += n
	}
	// Keep the unfinished tail at the front of the buffer.
	s.buf = append(s.buf[:0], s.buf[start:]...)
}

// Buffered is how many bytes of an unfinished frame are held.
func (s *Scanner) Buffered() int { return len(s.buf) }

// Stats returns the counters so far.
func (s *Scanner) Stats() Stats { return s.stats }

// Reset drops any partial frame (after a reconnect the old tail is stale).
func (s *Scanner) Reset() { s.buf = s.buf[:0] }

// Codec names accepted by options.codec.
const (
	CodecSonoff = "sonoff"
	CodecRFXtrx = "rfxtrx"
	CodecFramed = "framed"
	CodecLine   = "line"
)

// CodecNames lists the codecs in documentation order.
var CodecNames = []string{CodecSonoff, CodecRFXtrx, CodecFramed, CodecLine}

// NewCodec builds the codec a receiver's options ask for. The framed and
// line codecs take their settings from opts; sonoff and rfxtrx have none.
func NewCodec(opts CodecOptions) (Codec, error) {
	switch opts.Codec {
	case CodecSonoff:
		return &Sonoff{}, nil
	case CodecRFXtrx:
		return &RFXtrx{}, nil
	case CodecFramed:
		return NewFramed(opts.Framed)
	case CodecLine:
		return NewLine(opts.Line)
	}
	return nil, fmt.Errorf("unknown codec %q: want %s", opts.Codec, strings.Join(CodecNames, ", "))
}

// CodecOptions selects and configures a codec.
type CodecOptions struct {
	Codec  string
	Framed FramedOptions
	Line   LineOptions
}

// ParseCodecSpec builds codec options from a compact command-line form,
// for `lintel sim serial` and `lintel probe serial` without a config:
//
//	framed: "header=FD,code_bytes=3,data_bytes=1,checksum=xor,trailer=DF"
//	line:   "format=csv,fields=code;data;rssi" or "format=regex,pattern=^RX (?P<code>\w+)"
//
// A pattern takes the rest of the spec, commas included.
func ParseCodecSpec(codec, spec string) (CodecOptions, error) {
	o := CodecOptions{Codec: codec}
	if codec == CodecFramed && spec == "" {
		spec = "header=FD,code_bytes=3,data_bytes=1,checksum=xor,trailer=DF"
	}
	if codec == CodecLine && spec == "" {
		spec = "format=kv"
	}
	rest := spec
	for rest != "" {
		var kv string
		if strings.HasPrefix(rest, "pattern=") {
			kv, rest = rest, ""
		} else {
			kv, rest, _ = strings.Cut(rest, ",")
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return o, fmt.Errorf("%q: want key=value", kv)
		}
		num := func() (int, error) {
			n, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("%s: %q is not a number", k, v)
			}
			return n, nil
		}
		var err error
		switch codec + "." + k {
		case "framed.header":
			o.Framed.Header = v
		case "framed.trailer":
			o.Framed.Trailer = v
		case "framed.code_bytes":
			o.Framed.CodeBytes, err = num()
		case "framed.data_bytes":
			o.Framed.DataBytes, err = num()
		case "framed.checksum":
			o.Framed.Checksum = v
		case "framed.checksum_header":
			o.Framed.ChecksumHeader = v == "true"
		case "line.format":
			o.Line.Format = v
		case "line.fields":
			o.Line.Fields = strings.Split(v, ";")
		case "line.separator":
			o.Line.Separator = v
		case "line.pattern":
			o.Line.Pattern = v
		case "line.max_line":
			o.Line.MaxLine, err = num()
		default:
			return o, fmt.Errorf("unknown %s setting %q", codec, k)
		}
		if err != nil {
			return o, err
		}
	}
	if _, err := NewCodec(o); err != nil {
		return o, err
	}
	return o, nil
}

package serial

import (
	"encoding/binary"
	"fmt"
)

// Sonoff decodes the UART of the Sonoff RF Bridge's EFM8BB1 radio
// co-processor (domain research §6.1).
//
// Stock firmware receive frame, 12 bytes, no escaping, no checksum:
//
//	AA A4 <Tsyn:2> <Tlow:2> <Thigh:2> <data:3> 55
//
// e.g. AA A4 36E2 01AE 0532 806507 55 is code 0x806507. The ACK AA A0 55
// and Portisch firmware's sniff frame AA A6 <len> <proto> <data…> 55 are
// understood too (the latter as a word of len-1 bytes). Because data may
// itself contain AA or 55, frames are recognised by their fixed length and
// trailer, and a candidate that fails is abandoned one byte later.
type Sonoff struct{}

const (
	sonoffStart   = 0xAA
	sonoffEnd     = 0x55
	sonoffRecv    = 0xA4
	sonoffAck     = 0xA0
	sonoffSniff   = 0xA6
	sonoffRecvLen = 12
	// Portisch frames carry at most 8 data bytes here (a uint64 word).
	sonoffMaxSniff = 2 + 1 + 1 + 8 + 1
)

// Name implements Codec.
func (*Sonoff) Name() string { return CodecSonoff }

// MaxFrame implements Decoder.
func (*Sonoff) MaxFrame() int { return sonoffMaxSniff }

// Decode implements Decoder.
func (*Sonoff) Decode(buf []byte) (Frame, int, Result) {
	if buf[0] != sonoffStart {
		// Skip the whole run of bytes that cannot start a frame.
		n := 1
		for n < len(buf) && buf[n] != sonoffStart {
			n++
		}
		return Frame{}, n, Garbage
	}
	if len(buf) < 2 {
		return Frame{}, 0, More
	}
	switch buf[1] {
	case sonoffRecv:
		if len(buf) < sonoffRecvLen {
			return Frame{}, 0, More
		}
		if buf[sonoffRecvLen-1] != sonoffEnd {
			return Frame{}, 1, Garbage
		}
		code := uint64(buf[8])<<16 | uint64(buf[9])<<8 | uint64(buf[10])
		return Frame{Code: code, Bits: 24, Proto: "ev1527"}, sonoffRecvLen, Got
	case sonoffAck:
		if len(buf) < 3 {
			return Frame{}, 0, More
		}
		if buf[2] != sonoffEnd {
			return Frame{}, 1, Garbage
		}
		return Frame{}, 3, Skip
	case sonoffSniff:
		if len(buf) < 3 {
			return Frame{}, 0, More
		}
		l := int(buf[2])
		if l < 2 || l > 9 {
			return Frame{}, 1, Garbage
		}
		total := 3 + l + 1
		if len(buf) < total {
			return Frame{}, 0, More
		}
		if buf[total-1] != sonoffEnd {
			return Frame{}, 1, Garbage
		}
		proto := buf[3]
		var code uint64
		for _, b := range buf[4 : total-1] {
			code = code<<8 | uint64(b)
		}
		return Frame{Code: code, Bits: 8 * (l - 1), Proto: fmt.Sprintf("portisch-%d", proto)}, total, Got
	}
	return Frame{}, 1, Garbage
}

// Default pulse timings written by Encode, from a real Kerui capture
// (Tsyn 0x36E2 = 14050 µs, Tlow 430 µs, Thigh 1330 µs).
const (
	sonoffTsyn  = 0x36E2
	sonoffTlow  = 0x01AE
	sonoffThigh = 0x0532
)

// Encode implements Codec: a stock AA A4 frame for 24-bit words, a
// Portisch AA A6 frame otherwise.
func (*Sonoff) Encode(f Frame) ([]byte, error) {
	if f.HasData {
		return nil, fmt.Errorf("sonoff frames carry a whole code word, not address and data")
	}
	if f.Bits == 24 {
		b := make([]byte, sonoffRecvLen)
		b[0], b[1] = sonoffStart, sonoffRecv
		binary.BigEndian.PutUint16(b[2:], sonoffTsyn)
		binary.BigEndian.PutUint16(b[4:], sonoffTlow)
		binary.BigEndian.PutUint16(b[6:], sonoffThigh)
		b[8], b[9], b[10] = byte(f.Code>>16), byte(f.Code>>8), byte(f.Code)
		b[11] = sonoffEnd
		return b, nil
	}
	if f.Bits <= 0 || f.Bits > 64 || f.Bits%8 != 0 {
		return nil, fmt.Errorf("sonoff: cannot send a %d-bit word", f.Bits)
	}
	nb := f.Bits / 8
	b := []byte{sonoffStart, sonoffSniff, byte(nb + 1), 1}
	for i := nb - 1; i >= 0; i-- {
		b = append(b, byte(f.Code>>(8*i)))
	}
	return append(b, sonoffEnd), nil
}

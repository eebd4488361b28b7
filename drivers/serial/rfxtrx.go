package serial

import (
	"fmt"
	"time"
)

// RFXtrx decodes the binary packets of RFXCOM RFXtrx433(E) USB
// transceivers (38400 8N1). Every packet starts with its length (bytes
// after the length byte) and its type; there is no checksum, so the
// decoder resynchronises by accepting only (length, type) pairs it knows
// and dropping one byte otherwise.
//
// Lighting4 (PT2262/EV1527 words), 10 bytes:
//
//	09 13 <subtype 00> <seq> <cmd1> <cmd2> <cmd3> <pulse:2> <rssi<<4>
//
// Security1 (door/PIR/smoke/panic sensors the RFXtrx decodes itself), 9 bytes:
//
//	08 20 <subtype> <seq> <id1> <id2> <id3> <status> <rssi<<4 | battery>
//
// Status bit 0x80 is tamper; the low 7 bits are the RFXtrx status code
// (00 normal, 02 alarm, 04 motion, 05 no motion, 06 panic, …). A battery
// level of 0 is reported as low battery. Other known packet types
// (interface status, transmitter ACKs, lighting and weather families) are
// skipped whole.
type RFXtrx struct{}

const (
	rfxLighting4 = 0x13
	rfxSecurity1 = 0x20
	rfxMaxFrame  = 0x25 // the longest known packet plus its length byte
)

// rfxKnown maps packet type → length byte of the packet families the
// decoder will consume (and skip unless Lighting4 or Security1).
var rfxKnown = map[byte]byte{
	0x01:         0x14, // interface response (status); older firmware uses 0x0D, checked below
	0x02:         0x04, // receiver/transmitter message (ACK/NAK)
	0x03:         0x11, // undecoded RF message (variable; checked below)
	0x10:         0x07, // Lighting1
	0x11:         0x0B, // Lighting2
	0x12:         0x08, // Lighting3
	rfxLighting4: 0x09,
	0x14:         0x0A, // Lighting5
	0x15:         0x0B, // Lighting6
	rfxSecurity1: 0x08,
	0x50:         0x08, // temperature
	0x52:         0x0A, // temperature + humidity
}

// security1Proto names Security1 subtypes without allocating per frame.
var security1Proto = func() (out [0x0D]string) {
	for i := range out {
		out[i] = fmt.Sprintf("security1-%d", i)
	}
	return out
}()

// Name implements Codec.
func (*RFXtrx) Name() string { return CodecRFXtrx }

// MaxFrame implements Decoder.
func (*RFXtrx) MaxFrame() int { return rfxMaxFrame }

// Decode implements Decoder.
func (*RFXtrx) Decode(buf []byte) (Frame, int, Result) {
	if len(buf) < 2 {
		if buf[0] < 0x04 || buf[0] > rfxMaxFrame-1 {
			return Frame{}, 1, Garbage
		}
		return Frame{}, 0, More
	}
	l, typ := buf[0], buf[1]
	want, known := rfxKnown[typ]
	switch {
	case !known:
		return Frame{}, 1, Garbage
	case typ == 0x01 && (l == 0x0D || l == 0x14):
	case typ == 0x03 && l >= 0x04 && l <= rfxMaxFrame-1:
	case l != want:
		return Frame{}, 1, Garbage
	}
	total := int(l) + 1
	if len(buf) < total {
		return Frame{}, 0, More
	}
	p := buf[:total]
	switch typ {
	case rfxLighting4:
		if p[2] != 0x00 {
			return Frame{}, 1, Garbage
		}
		code := uint64(p[4])<<16 | uint64(p[5])<<8 | uint64(p[6])
		return Frame{Code: code, Bits: 24, RSSI: int(p[9] >> 4), HasRSSI: true, Proto: "lighting4"}, total, Got
	case rfxSecurity1:
		if p[2] > 0x0C {
			return Frame{}, 1, Garbage
		}
		status := p[7]
		id := uint64(p[4])<<16 | uint64(p[5])<<8 | uint64(p[6])
		return Frame{
			Code: id, Bits: 24, Data: uint32(status & 0x7F), HasData: true,
			RSSI: int(p[8] >> 4), HasRSSI: true,
			Tamper: status&0x80 != 0, BatteryLow: p[8]&0x0F == 0, HasFlags: true,
			Proto: security1Proto[p[2]],
		}, total, Got
	}
	return Frame{}, total, Skip
}

// InitSequence is what an RFXtrx needs after the port opens before it
// reports anything (RFXtrx SDK; node-rfxcom's initialise): reset, a pause
// in which it ignores input, get status, and — firmware ≥ 1001 — start
// receiver. Replies (status, ACKs) are skipped by Decode.
func (*RFXtrx) InitSequence() []InitStep {
	cmd := func(c byte) []byte { return []byte{0x0D, 0x00, 0x00, 0x00, c, 0, 0, 0, 0, 0, 0, 0, 0, 0} }
	reset, status, start := cmd(0x00), cmd(0x02), cmd(0x07)
	status[3], start[3] = 1, 2 // sequence numbers
	return []InitStep{{Write: reset, Wait: 500 * time.Millisecond}, {Write: status}, {Write: start}}
}

// Encode implements Codec: Lighting4 for whole 24-bit words, Security1
// (subtype 3, Visonic PowerCode door/window) for address+status frames.
func (*RFXtrx) Encode(f Frame) ([]byte, error) {
	rssi := byte(0x07)
	if f.HasRSSI {
		rssi = byte(f.RSSI) & 0x0F
	}
	if !f.HasData {
		if f.Bits != 24 {
			return nil, fmt.Errorf("rfxtrx Lighting4 carries 24-bit words, not %d bits", f.Bits)
		}
		// Pulse width 0x015E = 350 µs, a typical EV1527 T.
		return []byte{0x09, rfxLighting4, 0x00, 0x00, byte(f.Code >> 16), byte(f.Code >> 8), byte(f.Code), 0x01, 0x5E, rssi << 4}, nil
	}
	if f.Bits > 24 || f.Data > 0x7F {
		return nil, fmt.Errorf("rfxtrx Security1 carries a 24-bit id and a 7-bit status")
	}
	sub := byte(0x03)
	if _, err := fmt.Sscanf(f.Proto, "security1-%d", &sub); err != nil || sub > 0x0C {
		sub = 0x03
	}
	status := byte(f.Data)
	if f.Tamper {
		status |= 0x80
	}
	batt := byte(0x09)
	if f.BatteryLow {
		batt = 0
	}
	return []byte{0x08, rfxSecurity1, sub, 0x00, byte(f.Code >> 16), byte(f.Code >> 8), byte(f.Code), status, rssi<<4 | batt}, nil
}

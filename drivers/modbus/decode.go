package modbus

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// decodeRegs returns the value of a point from the registers of the
// request that read it (regs[0] is the register at start). Booleans are
// 0 or 1; bitfields the raw register; numbers are scaled and offset.
func decodeRegs(p *Point, start int, regs []uint16) (float64, error) {
	i := p.Address - start
	if i < 0 || i+p.words() > len(regs) {
		return 0, fmt.Errorf("point %s at %d outside reply %d+%d", p.Name, p.Address, start, len(regs))
	}
	var raw float64
	switch p.typ {
	case tBool:
		return float64(regs[i] >> uint(*p.Bit) & 1), nil
	case tBitfield:
		return float64(regs[i]), nil
	case tU16:
		raw = float64(regs[i])
	case tI16:
		raw = float64(int16(regs[i]))
	case tU32, tI32, tF32:
		u := join32(regs[i], regs[i+1], p.order)
		switch p.typ {
		case tU32:
			raw = float64(u)
		case tI32:
			raw = float64(int32(u))
		default:
			f := math.Float32frombits(u)
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return 0, errors.New("not a finite number")
			}
			raw = float64(f)
		}
	}
	return raw*p.Scale + p.Offset, nil
}

// join32 assembles a 32-bit value from two registers as they arrived on
// the wire (each big-endian), in the device's byte order: ABCD is the
// Modbus convention, CDAB swaps words, BADC swaps bytes, DCBA both.
func join32(r0, r1 uint16, o byteOrder) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint16(b[0:], r0)
	binary.BigEndian.PutUint16(b[2:], r1)
	switch o {
	case orderCDAB:
		b = [4]byte{b[2], b[3], b[0], b[1]}
	case orderBADC:
		b = [4]byte{b[1], b[0], b[3], b[2]}
	case orderDCBA:
		b = [4]byte{b[3], b[2], b[1], b[0]}
	}
	return binary.BigEndian.Uint32(b[:])
}

// split32 is join32's inverse, for the simulator.
func split32(u uint32, o byteOrder) (uint16, uint16) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	switch o {
	case orderCDAB:
		b = [4]byte{b[2], b[3], b[0], b[1]}
	case orderBADC:
		b = [4]byte{b[1], b[0], b[3], b[2]}
	case orderDCBA:
		b = [4]byte{b[3], b[2], b[1], b[0]}
	}
	return binary.BigEndian.Uint16(b[0:]), binary.BigEndian.Uint16(b[2:])
}

// encodeRegs is decodeRegs' inverse: the registers a device holds for
// value v of point p (the simulator serves them).
func encodeRegs(p *Point, v float64) []uint16 {
	raw := (v - p.Offset) / p.Scale
	if p.typ == tBool || p.typ == tBitfield {
		raw = v // decodeRegs does not scale bits
	}
	switch p.typ {
	case tBool, tBitfield, tU16:
		return []uint16{uint16(clamp(math.Round(raw), 0, 0xFFFF))}
	case tI16:
		return []uint16{uint16(int16(clamp(math.Round(raw), math.MinInt16, math.MaxInt16)))}
	case tU32:
		a, b := split32(uint32(clamp(math.Round(raw), 0, math.MaxUint32)), p.order)
		return []uint16{a, b}
	case tI32:
		a, b := split32(uint32(int32(clamp(math.Round(raw), math.MinInt32, math.MaxInt32))), p.order)
		return []uint16{a, b}
	default:
		a, b := split32(math.Float32bits(float32(raw)), p.order)
		return []uint16{a, b}
	}
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

// Reply decoding. simonvetter/modbus parses replies for the driver; the
// functions below decode raw RTU frames for the simulator's slave, the
// probe's sniffing and the fuzz target, and check the invariants the
// driver relies on: a frame is accepted only with a good CRC, a known
// function code and a byte count that matches its length.

// errFrame is returned for any malformed frame.
var errFrame = errors.New("malformed frame")

// rtuReply is a decoded response frame.
type rtuReply struct {
	unit      byte
	fc        byte
	exception byte   // non-zero for an exception reply
	data      []byte // the data bytes after the byte count
}

// decodeRTUReply decodes one complete RTU response frame.
func decodeRTUReply(f []byte) (rtuReply, error) {
	if len(f) < 5 || len(f) > 256 {
		return rtuReply{}, errFrame
	}
	if crc16(f[:len(f)-2]) != binary.LittleEndian.Uint16(f[len(f)-2:]) {
		return rtuReply{}, fmt.Errorf("%w: bad crc", errFrame)
	}
	r := rtuReply{unit: f[0], fc: f[1] & 0x7F}
	body := f[2 : len(f)-2]
	if f[1]&0x80 != 0 {
		if len(body) != 1 || body[0] == 0 {
			return rtuReply{}, fmt.Errorf("%w: bad exception", errFrame)
		}
		r.exception = body[0]
		return r, nil
	}
	switch r.fc {
	case 1, 2, 3, 4:
		if len(body) < 1 || int(body[0]) != len(body)-1 || body[0] == 0 {
			return rtuReply{}, fmt.Errorf("%w: byte count", errFrame)
		}
		if (r.fc == 3 || r.fc == 4) && body[0]%2 != 0 {
			return rtuReply{}, fmt.Errorf("%w: odd register byte count", errFrame)
		}
		r.data = body[1:]
	case 5, 6, 15, 16:
		if len(body) != 4 {
			return rtuReply{}, fmt.Errorf("%w: write echo length", errFrame)
		}
		r.data = body
	default:
		return rtuReply{}, fmt.Errorf("%w: function %d", errFrame, r.fc)
	}
	return r, nil
}

// registers returns the register values of an FC 03/04 reply.
func (r rtuReply) registers() []uint16 {
	out := make([]uint16, len(r.data)/2)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(r.data[2*i:])
	}
	return out
}

// bits returns the first n bits of an FC 01/02 reply.
func (r rtuReply) bits(n int) []bool {
	out := make([]bool, 0, n)
	for i := 0; i < n && i/8 < len(r.data); i++ {
		out = append(out, r.data[i/8]>>(uint(i)%8)&1 == 1)
	}
	return out
}

func crc16(b []byte) uint16 {
	c := uint16(0xFFFF)
	for _, x := range b {
		c ^= uint16(x)
		for i := 0; i < 8; i++ {
			if c&1 != 0 {
				c = c>>1 ^ 0xA001
			} else {
				c >>= 1
			}
		}
	}
	return c
}

func appendCRC(b []byte) []byte { return binary.LittleEndian.AppendUint16(b, crc16(b)) }

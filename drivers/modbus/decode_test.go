package modbus

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

func TestJoin32(t *testing.T) {
	// 0x47F12000 is 123456.0 as a float32 (libmodbus unit-test.h).
	tests := []struct {
		order  byteOrder
		r0, r1 uint16
	}{
		{orderABCD, 0x47F1, 0x2000},
		{orderCDAB, 0x2000, 0x47F1},
		{orderBADC, 0xF147, 0x0020},
		{orderDCBA, 0x0020, 0xF147},
	}
	for _, tt := range tests {
		if got := join32(tt.r0, tt.r1, tt.order); got != 0x47F12000 {
			t.Errorf("order %d: %#x", tt.order, got)
		}
		a, b := split32(0x47F12000, tt.order)
		if a != tt.r0 || b != tt.r1 {
			t.Errorf("split order %d: %#x %#x", tt.order, a, b)
		}
	}
}

func TestDecodeRegs(t *testing.T) {
	bit := 3
	tests := []struct {
		p    Point
		regs []uint16
		want float64
	}{
		{Point{typ: tU16, Scale: 1}, []uint16{65535}, 65535},
		{Point{typ: tI16, Scale: 0.1}, []uint16{0xFF9C}, -10}, // -100 × 0.1
		{Point{typ: tU32, Scale: 1}, []uint16{1, 2}, 65538},
		{Point{typ: tI32, Scale: 1, order: orderCDAB}, []uint16{0xFFFE, 0xFFFF}, -2},
		{Point{typ: tF32, Scale: 1}, []uint16{0x47F1, 0x2000}, 123456},
		{Point{typ: tBool, Bit: &bit}, []uint16{0x0008}, 1},
		{Point{typ: tU16, Scale: 2, Offset: -5}, []uint16{10}, 15},
	}
	for i, tt := range tests {
		got, err := decodeRegs(&tt.p, 0, tt.regs)
		if err != nil || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%d: got %v %v, want %v", i, got, err, tt.want)
		}
	}
	if _, err := decodeRegs(&Point{typ: tF32, Scale: 1}, 0, []uint16{0x7FC0, 0}); err == nil {
		t.Error("NaN accepted")
	}
	if _, err := decodeRegs(&Point{typ: tU32, Scale: 1, Address: 5}, 5, []uint16{1}); err == nil {
		t.Error("short reply accepted")
	}
}

func rtuFrame(b ...byte) []byte { return appendCRC(b) }

var replyTests = []struct {
	name  string
	frame []byte
	ok    bool
}{
	{"fc3 two regs", rtuFrame(1, 3, 4, 0, 1, 0, 2), true},
	{"fc1 bits", rtuFrame(17, 1, 1, 0xCD), true},
	{"exception", rtuFrame(17, 0x83, 2), true},
	{"write echo", rtuFrame(1, 5, 0, 0, 0xFF, 0), true},
	{"bad crc", []byte{1, 3, 2, 0, 1, 0, 0}, false},
	{"count mismatch", rtuFrame(1, 3, 6, 0, 1, 0, 2), false},
	{"odd register bytes", rtuFrame(1, 3, 3, 0, 1, 0), false},
	{"unknown fc", rtuFrame(1, 0x2B, 1, 0), false},
	{"short", []byte{1, 3}, false},
	{"zero exception", rtuFrame(1, 0x83, 0), false},
}

func TestDecodeRTUReply(t *testing.T) {
	for _, tt := range replyTests {
		r, err := decodeRTUReply(tt.frame)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v, want ok=%v", tt.name, err, tt.ok)
		}
		if tt.name == "fc3 two regs" {
			if regs := r.registers(); len(regs) != 2 || regs[1] != 2 {
				t.Errorf("registers %v", regs)
			}
		}
	}
}

// FuzzDecodeRTUReply checks the frame decoder's invariants: it never
// panics, and a frame it accepts has a good CRC, a byte count equal to
// its data, and re-encodes to exactly the same bytes.
func FuzzDecodeRTUReply(f *testing.F) {
	for _, tt := range replyTests {
		f.Add(tt.frame)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeRTUReply(b)
		if err != nil {
			return
		}
		if crc16(b[:len(b)-2]) != binary.LittleEndian.Uint16(b[len(b)-2:]) {
			t.Fatal("accepted a bad CRC")
		}
		var re []byte
		switch {
		case r.exception != 0:
			re = []byte{r.unit, r.fc | 0x80, r.exception}
		case r.fc <= 4:
			if len(r.data) == 0 || len(r.data) > 250 {
				t.Fatalf("accepted %d data bytes", len(r.data))
			}
			re = append([]byte{r.unit, r.fc, byte(len(r.data))}, r.data...)
			_ = r.registers()
			_ = r.bits(8 * len(r.data))
		default:
			re = append([]byte{r.unit, r.fc}, r.data...)
		}
		if !bytes.Equal(appendCRC(re), b) {
			t.Fatalf("re-encoded %x, got %x", appendCRC(re), b)
		}
	})
}

// FuzzDecodeRegs feeds arbitrary register values to every point type and
// byte order: decoding never panics, yields a finite number, and values
// the simulator encodes decode back to themselves.
func FuzzDecodeRegs(f *testing.F) {
	f.Add(uint8(0), uint8(0), uint16(0x47F1), uint16(0x2000), 1.0, 0.0)
	f.Add(uint8(3), uint8(1), uint16(0xFFFE), uint16(0xFFFF), 0.1, -40.0)
	f.Add(uint8(6), uint8(3), uint16(0x7FC0), uint16(0), 1.0, 0.0)
	f.Fuzz(func(t *testing.T, typ, order uint8, r0, r1 uint16, scale, offset float64) {
		if scale == 0 || math.IsNaN(scale) || math.IsInf(scale, 0) || math.IsNaN(offset) || math.IsInf(offset, 0) || math.Abs(scale) > 1e6 || math.Abs(offset) > 1e6 {
			return
		}
		bit := int(r1 % 16)
		p := &Point{Name: "x", typ: valueType(typ % 7), order: byteOrder(order % 4), Scale: scale, Offset: offset, Bit: &bit}
		v, err := decodeRegs(p, 0, []uint16{r0, r1})
		if err != nil {
			if p.typ != tF32 {
				t.Fatalf("type %d: %v", p.typ, err)
			}
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("decoded %v", v)
		}
		if p.typ == tBool || p.typ == tF32 {
			return
		}
		enc := encodeRegs(p, v)
		v2, err := decodeRegs(p, 0, append(enc, 0))
		if err != nil || math.Abs(v2-v) > 1e-6*math.Max(1, math.Abs(v)) {
			t.Fatalf("type %d order %d: %v → %v → %v (%v)", p.typ, p.order, v, enc, v2, err)
		}
	})
}

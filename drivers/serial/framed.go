package serial

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// FramedOptions describe a fixed-layout binary frame, the shape of most
// undocumented Chinese "学习型 433 解码模块" learning receivers:
//
//	<header> <code bytes> <data bytes> <checksum> <trailer>
//
// Code and data are big-endian. With data_bytes 0 the code bytes are the
// whole radio word and the sensor's code table splits it.
type FramedOptions struct {
	// Header and Trailer are hex strings ("FD", "AA55"); the header is
	// required (it is what resynchronisation looks for), the trailer not.
	Header  string `yaml:"header"`
	Trailer string `yaml:"trailer"`
	// CodeBytes is 1–8; DataBytes 0–4.
	CodeBytes int `yaml:"code_bytes"`
	DataBytes int `yaml:"data_bytes"`
	// Checksum is none, sum8, xor or crc16 (CRC-16/MODBUS, low byte first).
	Checksum string `yaml:"checksum"`
	// ChecksumHeader includes the header bytes in the checksum; by default
	// it covers the code and data bytes only.
	ChecksumHeader bool `yaml:"checksum_header"`
}

// Framed decodes FramedOptions frames.
type Framed struct {
	opt             FramedOptions
	header, trailer []byte
	sumLen          int
	size            int
}

// Checksum names.
const (
	SumNone  = "none"
	SumSum8  = "sum8"
	SumXOR   = "xor"
	SumCRC16 = "crc16"
)

// NewFramed validates opts and returns the codec.
func NewFramed(opts FramedOptions) (*Framed, error) {
	var errs []error
	f := &Framed{opt: opts}
	var err error
	if f.header, err = parseHexBytes(opts.Header); err != nil {
		errs = append(errs, fmt.Errorf("header: %w", err))
	} else if len(f.header) == 0 || len(f.header) > 4 {
		errs = append(errs, errors.New("header: want 1–4 bytes of hex such as \"FD\""))
	}
	if f.trailer, err = parseHexBytes(opts.Trailer); err != nil {
		errs = append(errs, fmt.Errorf("trailer: %w", err))
	} else if len(f.trailer) > 4 {
		errs = append(errs, errors.New("trailer: at most 4 bytes"))
	}
	if opts.CodeBytes < 1 || opts.CodeBytes > 8 {
		errs = append(errs, fmt.Errorf("code_bytes: %d: want 1–8", opts.CodeBytes))
	}
	if opts.DataBytes < 0 || opts.DataBytes > 4 {
		errs = append(errs, fmt.Errorf("data_bytes: %d: want 0–4", opts.DataBytes))
	}
	switch opts.Checksum {
	case "", SumNone:
		f.opt.Checksum = SumNone
	case SumSum8, SumXOR:
		f.sumLen = 1
	case SumCRC16:
		f.sumLen = 2
	default:
		errs = append(errs, fmt.Errorf("checksum: %q: want none, sum8, xor or crc16", opts.Checksum))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	f.size = len(f.header) + opts.CodeBytes + opts.DataBytes + f.sumLen + len(f.trailer)
	return f, nil
}

func parseHexBytes(s string) ([]byte, error) {
	s = strings.NewReplacer(" ", "", "0x", "", "0X", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not hex bytes", s)
	}
	return b, nil
}

// Name implements Codec.
func (*Framed) Name() string { return CodecFramed }

// MaxFrame implements Decoder.
func (f *Framed) MaxFrame() int { return f.size }

// Decode implements Decoder.
func (f *Framed) Decode(buf []byte) (Frame, int, Result) {
	// Find the header; everything before it is garbage.
	if i := bytes.Index(buf, f.header); i != 0 {
		if i < 0 {
			// Keep a tail that may be the start of a split header.
			keep := min(len(f.header)-1, len(buf))
			for keep > 0 && !bytes.HasPrefix(f.header, buf[len(buf)-keep:]) {
				keep--
			}
			if n := len(buf) - keep; n > 0 {
				return Frame{}, n, Garbage
			}
			return Frame{}, 0, More
		}
		return Frame{}, i, Garbage
	}
	if len(buf) < f.size {
		return Frame{}, 0, More
	}
	p := buf[:f.size]
	h := len(f.header)
	body := p[h : h+f.opt.CodeBytes+f.opt.DataBytes]
	if !bytes.Equal(p[f.size-len(f.trailer):], f.trailer) {
		return Frame{}, 1, Garbage
	}
	if f.sumLen > 0 {
		covered := body
		if f.opt.ChecksumHeader {
			covered = p[:h+len(body)]
		}
		got := p[h+len(body) : h+len(body)+f.sumLen]
		var sb [2]byte
		if !bytes.Equal(got, f.sum(sb[:0], covered)) {
			return Frame{}, 1, Garbage
		}
	}
	var fr Frame
	for _, b := range body[:f.opt.CodeBytes] {
		fr.Code = fr.Code<<8 | uint64(b)
	}
	fr.Bits = 8 * f.opt.CodeBytes
	if f.opt.DataBytes > 0 {
		for _, b := range body[f.opt.CodeBytes:] {
			fr.Data = fr.Data<<8 | uint32(b)
		}
		fr.HasData = true
	}
	fr.Proto = CodecFramed
	return fr, f.size, Got
}

// sum appends the checksum of b to dst.
func (f *Framed) sum(dst, b []byte) []byte {
	switch f.opt.Checksum {
	case SumSum8:
		var s byte
		for _, c := range b {
			s += c
		}
		return append(dst, s)
	case SumXOR:
		var s byte
		for _, c := range b {
			s ^= c
		}
		return append(dst, s)
	case SumCRC16:
		c := crc16Modbus(b)
		return append(dst, byte(c), byte(c>>8))
	}
	return dst
}

// crc16Modbus is CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), the
// CRC these modules borrow from their RS-485 firmware.
func crc16Modbus(b []byte) uint16 {
	crc := uint16(0xFFFF)
	for _, c := range b {
		crc ^= uint16(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}

// Encode implements Codec.
func (f *Framed) Encode(fr Frame) ([]byte, error) {
	if fr.HasData != (f.opt.DataBytes > 0) {
		return nil, fmt.Errorf("framed: this layout has %d data bytes", f.opt.DataBytes)
	}
	if f.opt.CodeBytes < 8 && fr.Code>>(8*f.opt.CodeBytes) != 0 {
		return nil, fmt.Errorf("framed: code %X does not fit %d bytes", fr.Code, f.opt.CodeBytes)
	}
	if f.opt.DataBytes < 4 && uint64(fr.Data)>>(8*f.opt.DataBytes) != 0 {
		return nil, fmt.Errorf("framed: data %X does not fit %d bytes", fr.Data, f.opt.DataBytes)
	}
	out := append([]byte(nil), f.header...)
	for i := f.opt.CodeBytes - 1; i >= 0; i-- {
		out = append(out, byte(fr.Code>>(8*i)))
	}
	for i := f.opt.DataBytes - 1; i >= 0; i-- {
		out = append(out, byte(fr.Data>>(8*i)))
	}
	covered := out[len(f.header):]
	if f.opt.ChecksumHeader {
		covered = out
	}
	out = f.sum(out, covered)
	return append(out, f.trailer...), nil
}

package serial

import (
	"testing"
	"time"
)

// benchStream is 1000 frames of codec c, with a noise byte after every
// tenth frame so the resync path is part of the cost.
func benchStream(b *testing.B, c Codec, split bool) []byte {
	b.Helper()
	var out []byte
	for i := range 1000 {
		f := Frame{Code: uint64(0xA0000+i)<<4 | 0xE, Bits: 24}
		if split {
			f = Frame{Code: uint64(0xA0000 + i), Bits: 24, Data: 0x0E, HasData: true}
		}
		enc, err := c.Encode(f)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, enc...)
		if i%10 == 9 {
			out = append(out, 0x13)
		}
	}
	return out
}

func benchScan(b *testing.B, c Codec, split bool) {
	stream := benchStream(b, c, split)
	sc := NewScanner(c)
	frames := 0
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := 0; i < len(stream); i += 512 {
			sc.Feed(stream[i:min(i+512, len(stream))], func(Frame) { frames++ })
		}
	}
	b.ReportMetric(float64(frames)/b.Elapsed().Seconds(), "frames/s")
}

func BenchmarkParseSonoff(b *testing.B)          { benchScan(b, &Sonoff{}, false) }
func BenchmarkParseRFXtrxLighting4(b *testing.B) { benchScan(b, &RFXtrx{}, false) }
func BenchmarkParseRFXtrxSecurity1(b *testing.B) { benchScan(b, &RFXtrx{}, true) }
func BenchmarkParseFramedCRC16(b *testing.B) {
	benchScan(b, mustCodec(b, CodecOptions{Codec: CodecFramed, Framed: FramedOptions{Header: "FD", Trailer: "DF", CodeBytes: 3, DataBytes: 1, Checksum: SumCRC16}}), true)
}
func BenchmarkParseLineKV(b *testing.B) {
	benchScan(b, mustCodec(b, CodecOptions{Codec: CodecLine, Line: lineKV}), true)
}
func BenchmarkParseLineCSV(b *testing.B) {
	benchScan(b, mustCodec(b, CodecOptions{Codec: CodecLine, Line: lineCSV}), true)
}
func BenchmarkParseLineRegex(b *testing.B) {
	c := mustCodec(b, CodecOptions{Codec: CodecLine, Line: LineOptions{Format: LineRegex, Pattern: `code=(?P<code>[0-9A-F]+) data=(?P<data>[0-9A-F]+)`}})
	benchScan(b, c, true)
}

// BenchmarkBaselineCopy moves the Sonoff stream through the same 512-byte
// reads with no parsing: the floor the parsers are compared with.
func BenchmarkBaselineCopy(b *testing.B) {
	stream := benchStream(b, &Sonoff{}, false)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(stream)))
	b.ResetTimer()
	for b.Loop() {
		for i := 0; i < len(stream); i += 512 {
			buf = append(buf[:0], stream[i:min(i+512, len(stream))]...)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "frames/s")
}

// BenchmarkTracker is the per-frame cost after parsing: match, dedup,
// door state, event building.
func BenchmarkTracker(b *testing.B) {
	k := shippedTable(b, "kerui-d026")
	var ss []Sensor
	for i := range 200 {
		ss = append(ss, Sensor{ID: "door", Kind: "door", Household: "h", Profile: "kerui-d026", Table: k, Addr: uint64(0xA0000 + i)})
	}
	tr := NewTracker("rx", ss, time.Second, t0)
	now := t0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		now = now.Add(2 * time.Second)
		d := uint64(0xE)
		if (i/200)%2 == 1 {
			d = 0x7
		}
		tr.Frame(now, Frame{Code: uint64(0xA0000+i%200)<<4 | d, Bits: 24})
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

package rtsp

import (
	"encoding/xml"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
)

// BenchmarkParseMetadata parses a falling-object document (4 analytics
// frames + 1 event, 2.7 KB), the largest a camera sends per incident.
func BenchmarkParseMetadata(b *testing.B) {
	doc, _ := fakecam.EventDocument("falling", time.Unix(0, 0))
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if _, err := ParseMetadata(doc); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseMetadataStdlib is the baseline: encoding/xml Unmarshal
// into structs for the same document (what several NVRs do).
func BenchmarkParseMetadataStdlib(b *testing.B) {
	doc, _ := fakecam.EventDocument("falling", time.Unix(0, 0))
	type item struct {
		Name  string `xml:"Name,attr"`
		Value string `xml:"Value,attr"`
	}
	var v struct {
		Frames []struct {
			UtcTime string `xml:"UtcTime,attr"`
			Objects []struct {
				ID  string `xml:"ObjectId,attr"`
				Box struct {
					L float64 `xml:"left,attr"`
					T float64 `xml:"top,attr"`
					R float64 `xml:"right,attr"`
					B float64 `xml:"bottom,attr"`
				} `xml:"Appearance>Shape>BoundingBox"`
			} `xml:"Object"`
		} `xml:"VideoAnalytics>Frame"`
		Events []struct {
			Topic string `xml:"Topic"`
			Msg   struct {
				UtcTime string `xml:"UtcTime,attr"`
				Source  []item `xml:"Source>SimpleItem"`
				Data    []item `xml:"Data>SimpleItem"`
			} `xml:"Message>Message"`
		} `xml:"Event>NotificationMessage"`
	}
	b.SetBytes(int64(len(doc)))
	for b.Loop() {
		if err := xml.Unmarshal(doc, &v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReassemble joins a 2.7 KB document from 7 packets of 400 bytes.
func BenchmarkReassemble(b *testing.B) {
	doc, _ := fakecam.EventDocument("falling", time.Unix(0, 0))
	var parts [][]byte
	for off := 0; off < len(doc); off += 400 {
		parts = append(parts, doc[off:min(off+400, len(doc))])
	}
	var r Reassembler
	seq := uint16(0)
	b.SetBytes(int64(len(doc)))
	for i := 0; b.Loop(); i++ {
		for j, p := range parts {
			r.Push(seq, uint32(i), j == len(parts)-1, p)
			seq++
		}
	}
}

// BenchmarkFrameAndRing is the per-frame cost on the RTSP reader goroutine
// after depacketisation: parameter-set tracking, DTS, AVCC copy, ring push
// with trimming. Frames are 20 KB (4 Mbit/s at 25 fps).
func BenchmarkFrameAndRing(b *testing.B) {
	aus := fakecam.Video{Width: 320, Height: 240, FPS: 25, GOP: 50, Frames: 100}.AccessUnits()
	pad := fakecam.Padding(20_000)
	for i := range aus {
		aus[i] = append(aus[i], pad)
	}
	cs := codecState{name: "h264", params: newParamSets("h264", nil, aus[0][0], aus[0][1])}
	cs.dts264 = newDTS264()
	r := newRing(10*time.Second, 1<<30, &Budget{Limit: 1 << 30})
	t0 := time.Unix(0, 0)
	b.SetBytes(20_000)
	for i := 0; b.Loop(); i++ {
		a, ok := cs.frame(aus[i%len(aus)], int64(i)*3600)
		if !ok {
			b.Fatal("frame refused")
		}
		a.at = t0.Add(time.Duration(i) * 40 * time.Millisecond)
		r.push(a)
	}
}

// BenchmarkClipWrite writes a 20 s clip (500 frames of 20 KB) as fMP4 to
// a temporary folder, with sha256 and sidecar.
func BenchmarkClipWrite(b *testing.B) {
	aus := fakecam.Video{Width: 320, Height: 240, FPS: 25, GOP: 50, Frames: 500}.AccessUnits()
	cs := codecState{name: "h264", params: newParamSets("h264", nil, aus[0][0], aus[0][1])}
	cs.dts264 = newDTS264()
	pad := fakecam.Padding(20_000)
	var frames []*accessUnit
	t0 := time.Unix(0, 0)
	for i, au := range aus {
		a, _ := cs.frame(append(au, pad), int64(i)*3600)
		a.at = t0.Add(time.Duration(i) * 40 * time.Millisecond)
		frames = append(frames, a)
	}
	st := &clipStore{root: b.TempDir(), device: "cam", quota: 1 << 40, retention: time.Hour}
	b.SetBytes(int64(len(frames)) * 20_000)
	for i := 0; b.Loop(); i++ {
		ch := make(chan *accessUnit)
		close(ch)
		c := &capture{pre: frames, ch: ch}
		if _, err := st.writeClip(c, "camera.falling_object", t0.Add(time.Duration(i)*time.Millisecond), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSOAP parses a Hikvision-style GetProfiles answer (two
// profiles with their configurations), the largest answer of the ONVIF
// snapshot lookup, which runs once per session.
func BenchmarkParseSOAP(b *testing.B) {
	doc := []byte(soapCases[1].doc)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if r, err := parseSOAP(doc); err != nil || len(r.Profiles) != 2 {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSOAPStdlib is the baseline in the same run:
// encoding/xml.Unmarshal of the same answer into structs.
func BenchmarkParseSOAPStdlib(b *testing.B) {
	doc := []byte(soapCases[1].doc)
	type profiles struct {
		Body struct {
			Resp struct {
				Profiles []struct {
					Token string `xml:"token,attr"`
				} `xml:"Profiles"`
			} `xml:"GetProfilesResponse"`
		} `xml:"Body"`
	}
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		var p profiles
		if err := xml.Unmarshal(doc, &p); err != nil || len(p.Body.Resp.Profiles) != 2 {
			b.Fatal(err)
		}
	}
}

package fakecam

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
)

var update = flag.Bool("update", false, "rewrite testdata/test.h264")

// TestTestVideo keeps the committed test video equal to the generator's
// output and checks it is a sane H.264 stream.
func TestTestVideo(t *testing.T) {
	aus := DefaultVideo.AccessUnits()
	var all [][]byte
	for _, au := range aus {
		all = append(all, au...)
	}
	b, err := h264.AnnexBMarshal(all)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("testdata/test.h264", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !*update && !bytes.Equal(b, TestVideo) {
		t.Fatal("testdata/test.h264 is stale: run go test ./drivers/rtsp/fakecam -update")
	}
	var sps h264.SPS
	if err := sps.Unmarshal(aus[0][0]); err != nil {
		t.Fatalf("SPS: %v", err)
	}
	if sps.Width() != 320 || sps.Height() != 240 || sps.FPS() != 10 {
		t.Fatalf("SPS says %dx%d at %v fps", sps.Width(), sps.Height(), sps.FPS())
	}
	idr := 0
	dx := h264.NewDTSExtractor2()
	for i, au := range aus {
		if h264.IDRPresent(au) {
			idr++
		}
		if _, err := dx.Extract(au, int64(i)*9000); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if len(aus) != 30 || idr != 3 {
		t.Fatalf("%d frames, %d IDR; want 30, 3", len(aus), idr)
	}
	if len(b) > 64<<10 {
		t.Fatalf("test video is %d bytes; keep it small", len(b))
	}
	t.Logf("test video: %d bytes", len(b))
}

// TestTestVideoH265 checks the committed H.265 stream splits into the
// expected access units and is small.
func TestTestVideoH265(t *testing.T) {
	nalus, err := h264.AnnexBUnmarshal(TestVideoH265)
	if err != nil {
		t.Fatal(err)
	}
	aus := splitAUs265(nalus)
	var sps h265.SPS
	irap := 0
	dx := h265.NewDTSExtractor2()
	for i, au := range aus {
		if h265.IsRandomAccess(au) {
			irap++
		}
		for _, n := range au {
			if h265.NALUType((n[0]>>1)&0x3f) == h265.NALUType_SPS_NUT && sps.Unmarshal(n) != nil {
				t.Fatal("bad SPS")
			}
		}
		if _, err := dx.Extract(au, int64(i)*9000); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
	}
	if len(aus) != 30 || irap != 3 || sps.Width() != 320 || sps.Height() != 240 {
		t.Fatalf("%d frames, %d IRAP, %dx%d; want 30, 3, 320x240", len(aus), irap, sps.Width(), sps.Height())
	}
	if len(TestVideoH265) > 32<<10 {
		t.Fatalf("H.265 test video is %d bytes; keep it small", len(TestVideoH265))
	}
	c, err := Start(Options{Codec: "h265"})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

package rtsp_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/mediacommon/pkg/formats/fmp4"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/edge/event"
)

// TestClipCodecs runs an H.264 and an H.265 camera end to end: the
// session comes up with the right codec, a falling object gives a clip
// that is valid fMP4 with the codec's sample entry and starts on a
// keyframe (IDR / IRAP), and ffprobe, an independent decoder, decodes
// every frame of it without a complaint (skipped without ffprobe unless
// CI is set: CI installs ffmpeg).
func TestClipCodecs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		codec, entry, probe string
	}{
		{"h264", "avc1", "h264"},
		{"h265", "hvc1", "hevc"},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			t.Parallel()
			cam := startCam(t, fakecam.Options{Codec: tc.codec})
			r := startDriver(t, cam.URL(), "generic-falling-object", "camera", "\n      onvif: \"off\"")
			on := r.rec.wait(t, event.CameraOnline, 1, 10*time.Second)
			var info map[string]any
			json.Unmarshal(on.Data, &info)
			if info["codec"] != tc.codec || info["width"] != float64(320) || info["height"] != float64(240) {
				t.Errorf("camera.online data = %v", info)
			}
			waitPreRoll(t, r.cam)
			cam.Trigger("falling")
			ev := r.rec.wait(t, event.CameraFallingObject, 1, 10*time.Second)
			if len(ev.Evidence) == 0 || ev.Evidence[0].Type != "clip" {
				t.Fatalf("evidence %+v, data %s", ev.Evidence, ev.Data)
			}
			path := filepath.Join(r.dataDir, filepath.FromSlash(ev.Evidence[0].Ref))
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			checkCodecClip(t, b, tc.codec, tc.entry)
			if h := r.cam.Health(); h.Codec != tc.codec {
				t.Errorf("health codec %q", h.Codec)
			}

			ffprobe := findTool(t, "apt-get install ffmpeg", "ffprobe")
			cmd := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
				"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", path)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil || strings.TrimSpace(stderr.String()) != "" {
				t.Fatalf("ffprobe: %v\n%s", err, stderr.String())
			}
			f := strings.Split(strings.TrimSpace(stdout.String()), ",")
			if len(f) != 4 || f[0] != tc.probe || f[1] != "320" || f[2] != "240" || f[3] == "0" {
				t.Errorf("ffprobe says %q", stdout.String())
			}
			t.Logf("ffprobe: %s", strings.TrimSpace(stdout.String()))
		})
	}
}

// checkCodecClip checks a clip's structure: one track of the codec with
// the expected sample entry, fragments, and a first sample that is a sync
// sample whose first NAL unit is an IDR (H.264) or IRAP (H.265) picture.
func checkCodecClip(t *testing.T, b []byte, codec, entry string) {
	t.Helper()
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil {
		t.Fatalf("init segment: %v", err)
	}
	if len(init.Tracks) != 1 {
		t.Fatalf("tracks %+v", init.Tracks)
	}
	switch c := init.Tracks[0].Codec.(type) {
	case *fmp4.CodecH264:
		if codec != "h264" || len(c.SPS) == 0 {
			t.Fatalf("codec %T for %s", c, codec)
		}
	case *fmp4.CodecH265:
		if codec != "h265" || len(c.VPS) == 0 || len(c.SPS) == 0 || len(c.PPS) == 0 {
			t.Fatalf("codec %T for %s", c, codec)
		}
	default:
		t.Fatalf("codec %T", c)
	}
	var entries []string
	if _, err := mp4.ReadBoxStructure(bytes.NewReader(b), func(h *mp4.ReadHandle) (any, error) {
		switch typ := h.BoxInfo.Type.String(); typ {
		case "avc1", "avc3", "hvc1", "hev1":
			entries = append(entries, typ)
		case "moov", "trak", "mdia", "minf", "stbl", "stsd":
			return h.Expand()
		}
		return nil, nil
	}); err != nil {
		t.Fatalf("go-mp4: %v", err)
	}
	if len(entries) != 1 || (entries[0] != entry && !(codec == "h265" && entries[0] == "hev1")) {
		t.Fatalf("sample entries %v, want %s", entries, entry)
	}
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil {
		t.Fatalf("fragments: %v", err)
	}
	if len(parts) == 0 || len(parts[0].Tracks) == 0 || len(parts[0].Tracks[0].Samples) == 0 {
		t.Fatal("no samples")
	}
	s := parts[0].Tracks[0].Samples[0]
	if s.IsNonSyncSample || len(s.Payload) < 5 {
		t.Fatal("clip does not start on a sync sample")
	}
	n := s.Payload[4] // first NAL header after the 4-byte length
	if codec == "h265" {
		if typ := (n >> 1) & 0x3f; typ < 16 || typ > 21 {
			t.Fatalf("first NAL unit type %d, want an IRAP picture (16–21)", typ)
		}
	} else if n&0x1f != 5 {
		t.Fatalf("first NAL unit type %d, want IDR (5)", n&0x1f)
	}
}

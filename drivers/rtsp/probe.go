package rtsp

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/lintel-edge/lintel/edge/config"
)

// ProbeOptions configure Probe.
type ProbeOptions struct {
	URL       string        // rtsp://user:pass@host/path
	Transport string        // tcp (default), udp or auto
	Duration  time.Duration // how long to measure; default 5s
	Timeout   time.Duration // dial and request timeout; default 5s
	// AllowBasicAuth lets the password go out as Basic authentication
	// over plain rtsp:// (see Options.AllowBasicAuth).
	AllowBasicAuth bool
	// OnBasic, if set, is called when the password is sent as Basic over
	// plain rtsp:// (allowed): the probe says so loudly.
	OnBasic func()
}

// ProbeTrack is one media of the session description.
type ProbeTrack struct {
	Type    string `json:"type"`
	Codec   string `json:"codec"`
	RTPMap  string `json:"rtpmap,omitempty"`
	Control string `json:"control,omitempty"`
	Used    bool   `json:"used"` // the driver would set it up
}

// ProbeReport is what Probe found. URL is redacted.
type ProbeReport struct {
	URL        string         `json:"url"`
	Tracks     []ProbeTrack   `json:"tracks"`
	Transport  string         `json:"transport,omitempty"`
	Codec      string         `json:"codec,omitempty"`
	Width      int            `json:"width,omitempty"`
	Height     int            `json:"height,omitempty"`
	Seconds    float64        `json:"seconds"`
	Packets    uint64         `json:"packets"`
	Frames     uint64         `json:"frames"`
	Keyframes  uint64         `json:"keyframes"`
	FPS        float64        `json:"fps"`
	BitrateBps float64        `json:"bitrate_bps"`
	GOPSeconds float64        `json:"gop_s,omitempty"` // mean time between keyframes
	Lost       uint64         `json:"rtp_lost"`
	Documents  uint64         `json:"metadata_docs"`
	BadDocs    uint64         `json:"metadata_bad"`
	Topics     map[string]int `json:"topics,omitempty"` // raw topic → notifications seen
	Objects    int            `json:"objects"`          // tracked objects seen in analytics frames
}

// Probe connects to a camera like the driver does, lists its tracks, and
// measures the stream for a few seconds: frame rate, bitrate, keyframe
// interval, packet loss, and the metadata topics it sends. Errors say
// plainly what is wrong (credentials, path, transport) and never contain
// the password.
func Probe(ctx context.Context, o ProbeOptions) (*ProbeReport, error) {
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	rep := &ProbeReport{URL: config.RedactURL(o.URL), Topics: map[string]int{}}
	var secrets []string
	if pu, err := url.Parse(o.URL); err == nil && pu.User != nil {
		if p, ok := pu.User.Password(); ok && p != "" {
			secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
		}
	}
	scrub := func(err error) error {
		if err == nil {
			return nil
		}
		s := err.Error()
		for _, p := range secrets {
			s = strings.ReplaceAll(s, p, config.Redacted)
		}
		return errors.New(s)
	}
	u, err := base.ParseURL(o.URL)
	if err != nil {
		// The parser's error quotes the URL, password included.
		return rep, fmt.Errorf("address: %w", ErrMalformedURL)
	}
	guard := &rtspGuard{p: &basicPolicy{allowed: o.AllowBasicAuth, warn: func(string) {
		if o.OnBasic != nil {
			o.OnBasic()
		}
	}}, scheme: u.Scheme}
	var mu sync.Mutex // guards rep counters written by the reader goroutine
	cl := &gortsplib.Client{
		OnRequest:   guard.onRequest,
		ReadTimeout: o.Timeout, WriteTimeout: o.Timeout,
		OnPacketLost:      func(error) { mu.Lock(); rep.Lost++; mu.Unlock() },
		OnDecodeError:     func(error) {},
		OnTransportSwitch: func(error) {},
	}
	switch o.Transport {
	case "", "tcp":
		t := gortsplib.TransportTCP
		cl.Transport = &t
	case "udp":
		t := gortsplib.TransportUDP
		cl.Transport = &t
	case "auto":
	default:
		return rep, fmt.Errorf("transport %q: want tcp, udp or auto", o.Transport)
	}
	if err := cl.Start(u.Scheme, u.Host); err != nil {
		return rep, scrub(fmt.Errorf("connect: %w", explain(err)))
	}
	defer cl.Close()
	stop := context.AfterFunc(ctx, cl.Close)
	defer stop()

	desc, _, err := cl.Describe(u)
	if err != nil {
		if guard.refused() {
			return rep, fmt.Errorf("describe: %w", ErrBasicRefused)
		}
		return rep, scrub(fmt.Errorf("describe: %w", explain(err)))
	}
	var vm, mm *description.Media
	var vf, mf format.Format
	gzipped := false
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			tr := ProbeTrack{Type: string(m.Type), Codec: f.Codec(), RTPMap: f.RTPMap(), Control: m.Control}
			switch ff := f.(type) {
			case *format.H264, *format.H265:
				if vm == nil {
					vm, vf, tr.Used = m, f, true
				}
			case *format.Generic:
				rm := strings.ToLower(ff.RTPMap())
				if m.Type == description.MediaTypeApplication && mm == nil &&
					(strings.HasPrefix(rm, "vnd.onvif.metadata/") || strings.HasPrefix(rm, "vnd.onvif.metadata.gzip/")) {
					mm, mf, tr.Used = m, f, true
					gzipped = strings.HasPrefix(rm, "vnd.onvif.metadata.gzip/")
					tr.Codec = "ONVIF metadata"
				}
			}
			rep.Tracks = append(rep.Tracks, tr)
		}
	}
	if vm == nil {
		return rep, errors.New("the stream has no H.264 or H.265 video track")
	}
	if _, err := cl.Setup(desc.BaseURL, vm, 0, 0); err != nil {
		return rep, scrub(fmt.Errorf("setup video: %w", explain(err)))
	}
	if mm != nil {
		if _, err := cl.Setup(desc.BaseURL, mm, 0, 0); err != nil {
			return rep, scrub(fmt.Errorf("setup metadata: %w", explain(err)))
		}
	}
	var cs codecState
	switch f := vf.(type) {
	case *format.H264:
		sps, pps := f.SafeParams()
		cs.name, cs.params = "h264", newParamSets("h264", nil, sps, pps)
		cs.dec264, _ = f.CreateDecoder()
		cs.dts264 = h264.NewDTSExtractor2()
	case *format.H265:
		vps, sps, pps := f.SafeParams()
		cs.name, cs.params = "h265", newParamSets("h265", vps, sps, pps)
		cs.dec265, _ = f.CreateDecoder()
		cs.dts265 = h265.NewDTSExtractor2()
	}
	rep.Codec = cs.name
	var bytes uint64
	var firstKey, lastKey time.Time
	cl.OnPacketRTP(vm, vf, func(pkt *rtp.Packet) {
		mu.Lock()
		defer mu.Unlock()
		rep.Packets++
		bytes += uint64(len(pkt.Payload))
		var au [][]byte
		var err error
		if cs.dec264 != nil {
			au, err = cs.dec264.Decode(pkt)
		} else {
			au, err = cs.dec265.Decode(pkt)
		}
		if err != nil {
			return
		}
		rep.Frames++
		pts, _ := cl.PacketPTS2(vm, pkt)
		if a, ok := cs.frame(au, pts); ok && a.key {
			now := time.Now()
			if rep.Keyframes == 0 {
				firstKey = now
			}
			lastKey = now
			rep.Keyframes++
		}
	})
	if mm != nil {
		var ra Reassembler
		cl.OnPacketRTP(mm, mf, func(pkt *rtp.Packet) {
			mu.Lock()
			defer mu.Unlock()
			rep.Packets++
			doc, ok := ra.Push(pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, pkt.Payload)
			if !ok {
				return
			}
			if gzipped {
				d, gerr := Gunzip(doc)
				if gerr != nil {
					rep.BadDocs++
					return
				}
				doc = d
			}
			rep.Documents++
			md, perr := ParseMetadata(doc)
			if perr != nil {
				rep.BadDocs++
			}
			for _, n := range md.Events {
				if len(rep.Topics) < 64 || rep.Topics[n.Topic] > 0 {
					rep.Topics[n.Topic]++
				}
			}
			for _, f := range md.Frames {
				rep.Objects += len(f.Objects)
			}
		})
	}
	if _, err := cl.Play(nil); err != nil {
		return rep, scrub(fmt.Errorf("play: %w", explain(err)))
	}
	start := time.Now()
	if cl.Transport != nil {
		rep.Transport = strings.ToLower(cl.Transport.String())
	}
	wait := make(chan error, 1)
	go func() { wait <- cl.Wait() }()
	t := time.NewTimer(o.Duration)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case err = <-wait:
		err = scrub(fmt.Errorf("session ended: %w", explain(err)))
	}
	cl.Close()
	mu.Lock()
	defer mu.Unlock()
	rep.Seconds = round1(time.Since(start).Seconds())
	if s := time.Since(start).Seconds(); s > 0 {
		rep.FPS = round1(float64(rep.Frames) / s)
		rep.BitrateBps = float64(int64(float64(bytes) * 8 / s))
	}
	if rep.Keyframes > 1 {
		rep.GOPSeconds = round1(lastKey.Sub(firstKey).Seconds() / float64(rep.Keyframes-1))
	}
	if cs.params != nil {
		rep.Width, rep.Height = cs.params.width, cs.params.height
	}
	return rep, err
}

// TopicList returns the topics seen, most frequent first.
func (r *ProbeReport) TopicList() []string {
	out := make([]string, 0, len(r.Topics))
	for t := range r.Topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool {
		if r.Topics[out[i]] != r.Topics[out[j]] {
			return r.Topics[out[i]] > r.Topics[out[j]]
		}
		return out[i] < out[j]
	})
	return out
}

// Package fakecam is a simulated RTSP camera for tests, bench rehearsals
// and `lintel sim camera`: a gortsplib server that serves a small looped
// H.264 or H.265 test video and an ONVIF metadata track carrying scripted
// events (falling object with an object track, tamper, visitor, loitering,
// doorbell, motion), with digest authentication and switches to stall the
// video, stall everything, drop a metadata packet and restart; optionally
// an HTTP snapshot and ONVIF device/media services with a snapshot URI.
package fakecam

import (
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/auth"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
	"github.com/pion/rtp"
)

// TestVideo is testdata/test.h264: DefaultVideo as an Annex-B byte
// stream (regenerate with `go test ./drivers/rtsp/fakecam -update`).
//
//go:embed testdata/test.h264
var TestVideo []byte

// TestVideoH265 is testdata/test.h265: 3 s of ffmpeg's testsrc at
// 320×240, 10 fps, an IDR every 10 frames, no B-frames, parameter sets
// before each IDR. Made once with
//
//	ffmpeg -f lavfi -i testsrc=size=320x240:rate=10 -t 3 -c:v libx265 -crf 18 \
//	  -x265-params keyint=10:min-keyint=10:bframes=0:open-gop=0:repeat-headers=1:info=0 \
//	  -f hevc test.h265
//
//go:embed testdata/test.h265
var TestVideoH265 []byte

// Options configure a camera. The zero value serves the test video at
// 10 fps on a free loopback port with no authentication.
type Options struct {
	Addr     string // listen address; default 127.0.0.1:0
	Path     string // stream path; default /stream1
	User     string // digest authentication when set
	Password string
	// BasicAuth asks for Basic instead of Digest (RTSP and the HTTP
	// snapshot), as a hostile host or an old firmware would: the client
	// then sends the password itself.
	BasicAuth bool
	// Codec is "h264" (default) or "h265".
	Codec string
	// Video is an Annex-B stream in Codec looped forever; default
	// TestVideo, or TestVideoH265 for h265.
	Video []byte
	FPS   int // default 10
	// Bitrate pads each frame with SEI NAL units to reach this many
	// bits per second (load tests); 0 = the video's own rate.
	Bitrate int
	// Gzip serves the metadata as vnd.onvif.metadata.gzip.
	Gzip bool
	// NoMetadata serves video only.
	NoMetadata bool
	// PacketSize splits metadata documents into RTP packets of at most
	// this many bytes, to exercise reassembly; default 400.
	PacketSize int
	// Heartbeat is the period of empty metadata documents; default 1s.
	Heartbeat time.Duration
	// UDP also offers RTP over UDP (on a free even/odd loopback port pair
	// next to Addr's host); TCP interleaved is always offered.
	UDP bool
	// Snapshots serves a JPEG at http://<SnapshotAddr>/snapshot.jpg
	// (same digest credentials); SnapshotAddr defaults to 127.0.0.1:0.
	Snapshots    bool
	SnapshotAddr string
	// ONVIF also serves an ONVIF device and media service on that HTTP
	// server (GetCapabilities, GetServices, GetProfiles, GetSnapshotUri;
	// see ONVIFURL), checking the WS-Security PasswordDigest, and the
	// JPEG at the snapshot URI it hands out. ONVIFDigest makes it refuse
	// WS-Security with HTTP 401 and want HTTP Digest instead, as some
	// firmwares do.
	ONVIF       bool
	ONVIFDigest bool
	// ONVIFPassword, when set, is the password of the ONVIF services and
	// their snapshot instead of Password (Hikvision keeps ONVIF users
	// apart from web/RTSP users).
	ONVIFPassword string
	Logger        *slog.Logger
}

// Camera is a running simulated camera.
type Camera struct {
	opts  Options
	aus   [][][]byte
	vps   []byte // h265 only
	sps   []byte
	pps   []byte
	log   *slog.Logger
	nonce string

	mu         sync.Mutex
	srv        *gortsplib.Server
	stream     *gortsplib.ServerStream
	video      *description.Media
	meta       *description.Media
	addr       string
	stallVideo bool
	stallAll   bool
	dropNext   bool
	pending    [][]byte // metadata documents to send at the next tick
	metaSeq    uint16
	videoEnc   videoEncoder
	frame      int64
	sessions   int

	http     *http.Server
	httpAddr string
	onvifReq map[string]int // by operation
	authSeen []string       // every Authorization header received (RTSP and HTTP)

	stop chan struct{}
	done chan struct{}
}

type videoEncoder interface {
	Encode([][]byte) ([]*rtp.Packet, error)
}

// Start starts a camera.
func Start(opts Options) (*Camera, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Path == "" {
		opts.Path = "/stream1"
	}
	if !strings.HasPrefix(opts.Path, "/") {
		opts.Path = "/" + opts.Path
	}
	switch opts.Codec {
	case "":
		opts.Codec = "h264"
	case "h264", "h265":
	default:
		return nil, fmt.Errorf("codec %q: want h264 or h265", opts.Codec)
	}
	if opts.Codec == "h265" && opts.Bitrate > 0 {
		return nil, errors.New("bitrate padding is for h264 only")
	}
	if opts.Video == nil {
		opts.Video = TestVideo
		if opts.Codec == "h265" {
			opts.Video = TestVideoH265
		}
	}
	if opts.FPS <= 0 {
		opts.FPS = 10
	}
	if opts.PacketSize <= 0 {
		opts.PacketSize = 400
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Camera{opts: opts, log: opts.Logger, stop: make(chan struct{}), done: make(chan struct{})}
	// Annex-B framing is the same for both codecs.
	nalus, err := h264.AnnexBUnmarshal(opts.Video)
	if err != nil {
		return nil, fmt.Errorf("read test video: %w", err)
	}
	if opts.Codec == "h265" {
		c.aus = splitAUs265(nalus)
		for _, n := range nalus {
			if len(n) < 2 {
				continue
			}
			switch h265.NALUType((n[0] >> 1) & 0x3f) {
			case h265.NALUType_VPS_NUT:
				c.vps = first(c.vps, n)
			case h265.NALUType_SPS_NUT:
				c.sps = first(c.sps, n)
			case h265.NALUType_PPS_NUT:
				c.pps = first(c.pps, n)
			}
		}
		if c.vps == nil {
			return nil, errors.New("test video has no VPS")
		}
	} else {
		c.aus = splitAUs(nalus)
		for _, n := range nalus {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				c.sps = first(c.sps, n)
			case h264.NALUTypePPS:
				c.pps = first(c.pps, n)
			}
		}
	}
	if len(c.aus) == 0 {
		return nil, errors.New("test video has no frames")
	}
	if c.sps == nil || c.pps == nil {
		return nil, errors.New("test video has no SPS/PPS")
	}
	if c.nonce, err = auth.GenerateNonce(); err != nil {
		return nil, err
	}
	if err := c.startServer(opts.Addr); err != nil {
		return nil, err
	}
	if opts.Snapshots || opts.ONVIF {
		if opts.SnapshotAddr == "" {
			opts.SnapshotAddr = "127.0.0.1:0"
		}
		if err := c.startSnapshots(opts.SnapshotAddr); err != nil {
			c.srv.Close()
			return nil, err
		}
	}
	go c.run()
	return c, nil
}

// splitAUs groups NAL units into access units: a new one starts at an
// AUD, SPS, or at a slice after a slice.
func splitAUs(nalus [][]byte) [][][]byte {
	var out [][][]byte
	var cur [][]byte
	hasSlice := false
	for _, n := range nalus {
		if len(n) == 0 {
			continue
		}
		t := h264.NALUType(n[0] & 0x1f)
		isSlice := t == h264.NALUTypeIDR || t == h264.NALUTypeNonIDR
		if hasSlice && (isSlice || t == h264.NALUTypeSPS || t == h264.NALUTypeAccessUnitDelimiter) {
			out = append(out, cur)
			cur, hasSlice = nil, false
		}
		cur = append(cur, n)
		hasSlice = hasSlice || isSlice
	}
	if hasSlice {
		out = append(out, cur)
	}
	return out
}

func first(have, n []byte) []byte {
	if have != nil {
		return have
	}
	return n
}

// splitAUs265 groups H.265 NAL units into access units: a new one starts
// at a VPS, SPS, PPS, AUD or prefix SEI after a slice, or at a slice that
// is the first of its picture (first_slice_segment_in_pic_flag).
func splitAUs265(nalus [][]byte) [][][]byte {
	var out [][][]byte
	var cur [][]byte
	hasSlice := false
	for _, n := range nalus {
		if len(n) < 2 {
			continue
		}
		t := h265.NALUType((n[0] >> 1) & 0x3f)
		isSlice := t < 32
		firstInPic := isSlice && len(n) > 2 && n[2]&0x80 != 0
		startsAU := firstInPic || t == h265.NALUType_VPS_NUT || t == h265.NALUType_SPS_NUT ||
			t == h265.NALUType_PPS_NUT || t == h265.NALUType_AUD_NUT || t == h265.NALUType_PREFIX_SEI_NUT
		if hasSlice && startsAU {
			out = append(out, cur)
			cur, hasSlice = nil, false
		}
		cur = append(cur, n)
		hasSlice = hasSlice || isSlice
	}
	if hasSlice {
		out = append(out, cur)
	}
	return out
}

func (c *Camera) startServer(addr string) error {
	var vf format.Format
	var enc videoEncoder
	if c.opts.Codec == "h265" {
		f := &format.H265{PayloadTyp: 96, VPS: c.vps, SPS: c.sps, PPS: c.pps}
		e, err := f.CreateEncoder()
		if err != nil {
			return err
		}
		vf, enc = f, e
	} else {
		f := &format.H264{PayloadTyp: 96, PacketizationMode: 1, SPS: c.sps, PPS: c.pps}
		e, err := f.CreateEncoder()
		if err != nil {
			return err
		}
		vf, enc = f, e
	}
	c.video = &description.Media{Type: description.MediaTypeVideo, Formats: []format.Format{vf}}
	medias := []*description.Media{c.video}
	c.meta = nil
	if !c.opts.NoMetadata {
		rtpmap := "vnd.onvif.metadata/90000"
		if c.opts.Gzip {
			rtpmap = "vnd.onvif.metadata.gzip/90000"
		}
		mf := &format.Generic{PayloadTyp: 107, RTPMa: rtpmap}
		if err := mf.Init(); err != nil {
			return err
		}
		c.meta = &description.Media{Type: description.MediaTypeApplication, Formats: []format.Format{mf}}
		medias = append(medias, c.meta)
	}
	var bound net.Addr
	var s *gortsplib.Server
	for attempt := 0; ; attempt++ {
		s = &gortsplib.Server{
			Handler:     (*handler)(c),
			RTSPAddress: addr,
			ReadTimeout: 10 * time.Second,
			Listen: func(network, address string) (net.Listener, error) {
				l, err := net.Listen(network, address)
				if err == nil {
					bound = l.Addr()
				}
				return l, err
			},
		}
		if c.opts.UDP {
			host, _, _ := net.SplitHostPort(addr)
			rtpPort, err := freeUDPPair(host)
			if err != nil {
				return err
			}
			s.UDPRTPAddress = net.JoinHostPort(host, fmt.Sprint(rtpPort))
			s.UDPRTCPAddress = net.JoinHostPort(host, fmt.Sprint(rtpPort+1))
		}
		err := s.Start()
		if err == nil {
			break
		}
		if !c.opts.UDP || attempt >= 20 {
			return fmt.Errorf("start rtsp server: %w", err)
		}
	}
	c.mu.Lock()
	c.srv = s
	c.stream = gortsplib.NewServerStream(s, &description.Session{Medias: medias})
	c.addr = bound.String()
	c.videoEnc = enc
	c.mu.Unlock()
	return nil
}

// freeUDPPair finds an even port whose successor looks free too.
func freeUDPPair(host string) (int, error) {
	for i := 0; i < 50; i++ {
		l, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, err
		}
		p := l.LocalAddr().(*net.UDPAddr).Port
		l.Close()
		if p%2 == 1 {
			p--
		}
		l1, err1 := net.ListenPacket("udp", net.JoinHostPort(host, fmt.Sprint(p)))
		l2, err2 := net.ListenPacket("udp", net.JoinHostPort(host, fmt.Sprint(p+1)))
		if l1 != nil {
			l1.Close()
		}
		if l2 != nil {
			l2.Close()
		}
		if err1 == nil && err2 == nil {
			return p, nil
		}
	}
	return 0, errors.New("no free UDP port pair")
}

// Addr is the host:port the camera listens on.
func (c *Camera) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// URL is the camera's stream URL, with the credentials when set.
func (c *Camera) URL() string {
	u := url.URL{Scheme: "rtsp", Host: c.Addr(), Path: c.opts.Path}
	if c.opts.User != "" {
		u.User = url.UserPassword(c.opts.User, c.opts.Password)
	}
	return u.String()
}

// Sessions is how many PLAY requests the camera has accepted.
func (c *Camera) Sessions() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions
}

// StallVideo stops (true) or resumes the video while the session and the
// metadata track stay up, like a camera whose sensor died.
func (c *Camera) StallVideo(on bool) { c.mu.Lock(); c.stallVideo = on; c.mu.Unlock() }

// StallAll stops every packet, like a camera that froze; readers time out.
func (c *Camera) StallAll(on bool) { c.mu.Lock(); c.stallAll = on; c.mu.Unlock() }

// DropNextMetadataPacket loses the second packet of the next metadata
// document that spans several packets.
func (c *Camera) DropNextMetadataPacket() { c.mu.Lock(); c.dropNext = true; c.mu.Unlock() }

// Restart closes the server, dropping every session, and starts it again
// on the same address after pause.
func (c *Camera) Restart(pause time.Duration) error {
	c.mu.Lock()
	s, st, addr := c.srv, c.stream, c.addr
	c.srv, c.stream = nil, nil
	c.mu.Unlock()
	st.Close()
	s.Close()
	time.Sleep(pause)
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment
		if err = c.startServer(addr); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Close stops the camera.
func (c *Camera) Close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	<-c.done
	c.mu.Lock()
	s, st := c.srv, c.stream
	c.srv, c.stream = nil, nil
	c.mu.Unlock()
	if st != nil {
		st.Close()
	}
	if s != nil {
		s.Close()
	}
	if c.http != nil {
		c.http.Close()
	}
}

func (c *Camera) run() {
	defer close(c.done)
	period := time.Second / time.Duration(c.opts.FPS)
	tk := time.NewTicker(period)
	defer tk.Stop()
	beatEvery := int64(c.opts.Heartbeat / period)
	if beatEvery < 1 {
		beatEvery = 1
	}
	for {
		select {
		case <-c.stop:
			return
		case <-tk.C:
		}
		c.tick(beatEvery)
	}
}

func (c *Camera) tick(beatEvery int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := c.frame
	c.frame++
	if c.stream == nil || c.stallAll {
		return
	}
	ts := uint32(i * 90000 / int64(c.opts.FPS))
	if !c.stallVideo {
		au := c.aus[int(i)%len(c.aus)]
		if c.opts.Bitrate > 0 {
			size := 0
			for _, n := range au {
				size += len(n)
			}
			if pad := c.opts.Bitrate/8/c.opts.FPS - size; pad > 0 {
				au = append(append([][]byte(nil), au...), Padding(pad))
			}
		}
		pkts, err := c.videoEnc.Encode(au)
		if err == nil {
			for _, p := range pkts {
				p.Timestamp = ts
				_ = c.stream.WritePacketRTP(c.video, p)
			}
		}
	}
	if c.meta == nil {
		c.pending = nil
		return
	}
	docs := c.pending
	c.pending = nil
	if i%beatEvery == 0 && len(docs) == 0 {
		docs = append(docs, []byte(heartbeatDoc))
	}
	for _, d := range docs {
		c.writeDoc(d, ts)
	}
}

func (c *Camera) writeDoc(doc []byte, ts uint32) {
	if c.opts.Gzip {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(doc)
		zw.Close()
		doc = b.Bytes()
	}
	n := 0
	for off := 0; off < len(doc); off += c.opts.PacketSize {
		end := min(off+c.opts.PacketSize, len(doc))
		pkt := &rtp.Packet{
			Header: rtp.Header{
				Version: 2, PayloadType: 107, SequenceNumber: c.metaSeq, Timestamp: ts, SSRC: 0x4f4e5646,
				Marker: end == len(doc),
			},
			Payload: doc[off:end],
		}
		c.metaSeq++
		drop := c.dropNext && n == 1
		n++
		if drop {
			c.dropNext = false
			continue
		}
		_ = c.stream.WritePacketRTP(c.meta, pkt)
	}
}

const heartbeatDoc = `<?xml version="1.0" encoding="UTF-8"?>
<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema"></tt:MetadataStream>`

// Kinds of scripted events.
var Kinds = []string{"falling", "tamper", "visitor", "loitering", "doorbell", "motion"}

// Trigger sends a scripted event with the next frame.
func (c *Camera) Trigger(kind string) error {
	doc, err := EventDocument(kind, time.Now())
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.pending = append(c.pending, doc)
	c.mu.Unlock()
	return nil
}

// EventDocument builds the metadata document of a scripted event.
func EventDocument(kind string, now time.Time) ([]byte, error) {
	var topic, items, frames string
	switch kind {
	case "falling":
		// An object seen over 0.6 s falling down the left of the image,
		// from y=0.1 (top) to y=0.7, in ONVIF coordinates (y up).
		topic = "tns1:RuleEngine/FallingObjectDetector/FallingObject"
		items = `<tt:SimpleItem Name="ObjectId" Value="17"/><tt:SimpleItem Name="State" Value="true"/>`
		var b strings.Builder
		for k := 0; k < 4; k++ {
			yImg := 0.1 + 0.2*float64(k)
			y := 1 - 2*yImg
			at := now.Add(time.Duration(k-3) * 200 * time.Millisecond).UTC().Format("2006-01-02T15:04:05.000Z")
			fmt.Fprintf(&b, `<tt:VideoAnalytics><tt:Frame UtcTime="%s"><tt:Object ObjectId="17"><tt:Appearance><tt:Shape>`+
				`<tt:BoundingBox left="-0.52" top="%.3f" right="-0.48" bottom="%.3f"/><tt:CenterOfGravity x="-0.5" y="%.3f"/>`+
				`</tt:Shape><tt:Class><tt:Type Likelihood="0.8">Object</tt:Type></tt:Class></tt:Appearance></tt:Object></tt:Frame></tt:VideoAnalytics>`,
				at, y+0.02, y-0.02, y)
		}
		frames = b.String()
	case "tamper":
		topic = "tns1:RuleEngine/TamperDetector/Tamper"
		items = `<tt:SimpleItem Name="IsTamper" Value="true"/>`
	case "visitor":
		topic = "tns1:RuleEngine/PeopleDetector/People"
		items = `<tt:SimpleItem Value="true" Name="IsPeople"/>`
	case "loitering":
		topic = "tns1:RuleEngine/LoiteringDetector/Loitering"
		items = `<tt:SimpleItem Name="State" Value="true"/>`
	case "doorbell":
		topic = "tns1:RuleEngine/DoorbellDetector/Doorbell"
		items = `<tt:SimpleItem Name="Ring" Value="1"/>`
	case "motion":
		topic = "tns1:RuleEngine/CellMotionDetector/Motion"
		items = `<tt:SimpleItem Name="IsMotion" Value="true"/>`
	default:
		return nil, fmt.Errorf("unknown event %q: want %s", kind, strings.Join(Kinds, ", "))
	}
	doc := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<tt:MetadataStream xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tns1="http://www.onvif.org/ver10/topics">%s
<tt:Event><wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">%s</wsnt:Topic>`+
		`<wsnt:Message><tt:Message UtcTime="%s" PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="VideoSourceConfigurationToken" Value="vs0"/></tt:Source>`+
		`<tt:Data>%s</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></tt:Event></tt:MetadataStream>`,
		frames, topic, now.UTC().Format("2006-01-02T15:04:05.000Z"), items)
	return []byte(doc), nil
}

// ScriptStep is one scripted event: Kind at offset At in each loop.
type ScriptStep struct {
	Kind string
	At   time.Duration
}

// ParseScript reads "falling@5s,tamper@12s".
func ParseScript(s string) ([]ScriptStep, error) {
	var out []ScriptStep
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, at, ok := strings.Cut(part, "@")
		if !ok {
			return nil, fmt.Errorf("script step %q: want kind@offset like falling@5s", part)
		}
		d, err := time.ParseDuration(at)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("script step %q: bad offset", part)
		}
		if _, err := EventDocument(kind, time.Time{}); err != nil {
			return nil, err
		}
		out = append(out, ScriptStep{kind, d})
	}
	return out, nil
}

// RunScript triggers the steps, repeating every loop (0 = once), until ctx
// ends. onStep is called after each trigger.
func (c *Camera) RunScript(ctx context.Context, steps []ScriptStep, loop time.Duration, onStep func(ScriptStep)) {
	for {
		start := time.Now()
		for _, st := range steps {
			t := time.NewTimer(time.Until(start.Add(st.At)))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			_ = c.Trigger(st.Kind)
			if onStep != nil {
				onStep(st)
			}
		}
		if loop <= 0 {
			<-ctx.Done()
			return
		}
		t := time.NewTimer(time.Until(start.Add(loop)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

type handler Camera

func (h *handler) authorize(req *base.Request) *base.Response {
	if h.opts.User == "" {
		return nil
	}
	if v := req.Header["Authorization"]; len(v) > 0 {
		(*Camera)(h).sawAuth(v[0])
	}
	methods := []auth.ValidateMethod{auth.ValidateMethodDigestMD5}
	if h.opts.BasicAuth {
		methods = []auth.ValidateMethod{auth.ValidateMethodBasic}
	}
	if err := auth.Validate(req, h.opts.User, h.opts.Password, methods, "IPCAM", h.nonce); err != nil {
		return &base.Response{
			StatusCode: base.StatusUnauthorized,
			Header:     base.Header{"WWW-Authenticate": auth.GenerateWWWAuthenticate(methods, "IPCAM", h.nonce)},
		}
	}
	return nil
}

func (c *Camera) sawAuth(h string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.authSeen = append(c.authSeen, h)
}

// Authorizations returns every Authorization header the camera received,
// over RTSP and HTTP, in order.
func (c *Camera) Authorizations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.authSeen...)
}

func (h *handler) current(path string) (*gortsplib.ServerStream, *base.Response) {
	// SETUP paths carry the track's control ("stream1/trackID=0").
	want := strings.Trim(h.opts.Path, "/")
	if p := strings.Trim(path, "/"); p != want && !strings.HasPrefix(p, want+"/") {
		return nil, &base.Response{StatusCode: base.StatusNotFound}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stream == nil {
		return nil, &base.Response{StatusCode: base.StatusServiceUnavailable}
	}
	return h.stream, nil
}

// OnDescribe implements gortsplib.ServerHandlerOnDescribe.
func (h *handler) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res := h.authorize(ctx.Request); res != nil {
		return res, nil, nil
	}
	st, res := h.current(ctx.Path)
	if res != nil {
		return res, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnSetup implements gortsplib.ServerHandlerOnSetup.
func (h *handler) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if res := h.authorize(ctx.Request); res != nil {
		return res, nil, nil
	}
	st, res := h.current(ctx.Path)
	if res != nil {
		return res, nil, nil
	}
	return &base.Response{StatusCode: base.StatusOK}, st, nil
}

// OnPlay implements gortsplib.ServerHandlerOnPlay.
func (h *handler) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	if res := h.authorize(ctx.Request); res != nil {
		return res, nil
	}
	h.mu.Lock()
	h.sessions++
	h.mu.Unlock()
	h.log.Info("client playing", "remote", ctx.Conn.NetConn().RemoteAddr().String())
	return &base.Response{StatusCode: base.StatusOK}, nil
}

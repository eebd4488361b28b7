package rtsp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph265"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/bluenviron/mediacommon/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/pkg/codecs/h265"
	"github.com/pion/rtp"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/sdnotify"
)

// Camera keeps the session to one camera or peephole and turns what it
// sends into events. It implements edge.Component.
type Camera struct {
	dev      config.Device
	opts     Options
	prof     *Profile
	log      *slog.Logger
	emit     edge.Emitter
	rawURL   string // with credentials: handed to the RTSP library only
	shownURL string // redacted
	secrets  []string
	ring     *ring
	clips    *clipStore
	snapper  *snapshotter // nil without snapshot_url
	basic    *basicPolicy
	onvif    *onvifSnapshots // nil with snapshot_url or onvif off
	now      func() time.Time

	docs     chan metaDoc
	state    chan stateChange
	h        healthCounters
	snapMu   sync.Mutex
	snap     Health
	inflight sync.WaitGroup // clip writers

	// sessionBeat is when the session loop last made progress between
	// sessions (an attempt, a backoff wake), on monoNow's clock.
	sessionBeat atomic.Int64
}

type metaDoc struct {
	doc []byte
	at  time.Time
}

type stateChange struct {
	online bool
	info   map[string]any
	err    string
}

// newCamera builds a camera from its device config; opts are already
// validated. It does no I/O beyond reading the profile.
func newCamera(env edge.Env, dev config.Device, opts Options, prof *Profile, budget *Budget) (*Camera, error) {
	u, err := url.Parse(dev.Address)
	if err != nil {
		return nil, fmt.Errorf("address %s: %w", config.RedactURL(dev.Address), ErrMalformedURL)
	}
	var secrets []string
	if p, ok := u.User.Password(); ok && p != "" {
		secrets = append(secrets, p, url.QueryEscape(p), url.PathEscape(p))
	}
	if opts.Username != "" || !opts.Password.IsZero() {
		user := opts.Username
		if user == "" && u.User != nil {
			user = u.User.Username()
		}
		pass, err := opts.Password.Reveal()
		if err != nil {
			return nil, fmt.Errorf("camera password: %w", err)
		}
		if pass != "" {
			secrets = append(secrets, pass, url.QueryEscape(pass), url.PathEscape(pass))
		}
		u.User = url.UserPassword(user, pass)
	}
	user, pass := "", ""
	if u.User != nil {
		user = u.User.Username()
		pass, _ = u.User.Password()
	}
	log := env.Logger.With("device", dev.ID)
	basic := &basicPolicy{allowed: opts.AllowBasicAuth, warn: func(scheme string) {
		log.Warn("camera password sent in clear: Basic authentication over plain "+scheme+":// (allow_basic_auth: true); "+
			"anyone on the path, or answering at the camera's address, can read it", "url", config.RedactURL(u.String()))
	}}
	snap, err := newSnapshotter(opts.SnapshotURL, user, pass, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("snapshot_url: %w", err)
	}
	if snap != nil {
		snap.basic = basic
	}
	if snap != nil && snap.pass != "" {
		secrets = append(secrets, snap.pass, url.QueryEscape(snap.pass), url.PathEscape(snap.pass))
	}
	var onvif *onvifSnapshots
	if snap == nil && opts.ONVIF == "auto" && prof.ONVIF != "off" {
		if onvif, err = newONVIFSnapshots(opts.ONVIFURL, hostOnly(u.Hostname()), user, pass); err != nil {
			return nil, fmt.Errorf("onvif_url: %w", err)
		}
		onvif.basic = basic
	}
	root := opts.ClipDir
	if root == "" {
		root = env.Config.Gateway.DataDir + "/clips"
	}
	c := &Camera{
		dev: dev, opts: opts, prof: prof,
		log:      log,
		basic:    basic,
		emit:     env.Emit,
		rawURL:   u.String(),
		shownURL: config.RedactURL(u.String()),
		secrets:  secrets,
		ring:     newRing(opts.PreRoll.Std(), int64(opts.BufferMax), budget),
		clips:    &clipStore{root: root, device: dev.ID, quota: int64(opts.ClipQuota), retention: opts.ClipRetention.Std()},
		snapper:  snap,
		onvif:    onvif,
		now:      time.Now,
		docs:     make(chan metaDoc, 64),
		state:    make(chan stateChange),
	}
	c.snap = Health{Device: dev.ID, Kind: dev.Kind, URL: c.shownURL, State: StateConnecting}
	return c, nil
}

// redact removes the camera's password from text (error messages of the
// RTSP library may quote a URL) and redacts URLs with credentials.
func (c *Camera) redact(s string) string {
	for _, p := range c.secrets {
		if p != "" {
			s = strings.ReplaceAll(s, p, config.Redacted)
		}
	}
	return s
}

func (c *Camera) errString(err error) string {
	if err == nil {
		return ""
	}
	return c.redact(err.Error())
}

// Run keeps a session to the camera until ctx ends, reconnecting forever
// with capped, jittered exponential backoff.
func (c *Camera) Run(ctx context.Context) error {
	registerLive(c)
	defer unregisterLive(c)
	c.sessionBeat.Store(monoNow())
	sdnotify.Register(c.loopName(), workTick+beatSlack)
	defer sdnotify.Unregister(c.loopName())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.work(ctx)
	}()
	defer wg.Wait()

	backoff := time.Second
	max := c.opts.ReconnectMax.Std()
	failures := 0
	for ctx.Err() == nil {
		c.sessionBeat.Store(monoNow())
		c.h.attempts.Add(1)
		started := c.now()
		played, err := c.session(ctx)
		c.sessionBeat.Store(monoNow())
		if ctx.Err() != nil {
			break
		}
		msg := c.errString(err)
		c.h.lastVideo.Store(0) // no session, no video
		c.setState(ctx, stateChange{online: false, err: msg})
		if played && c.now().Sub(started) > 30*time.Second {
			backoff = time.Second // it ran for a while: start over
		}
		// Full jitter in [backoff/2, backoff] so many cameras behind one
		// switch that reboots do not reconnect in lockstep.
		wait := backoff/2 + rand.N(backoff/2+1)
		// Warn when the state changes (a session dropped, the first failed
		// attempt), not on every retry of a camera that stays away.
		if played {
			failures = 0
		}
		failures++
		lvl := slog.LevelDebug
		if failures == 1 {
			lvl = slog.LevelWarn
		}
		c.log.Log(ctx, lvl, "camera session ended", "err", msg, "retry_in", wait.Round(time.Millisecond).String(), "attempt", failures)
		backoff = min(backoff*2, max)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		c.sessionBeat.Store(monoNow())
	}
	return nil
}

// workTick is the period of the event loop's housekeeping (rates, video
// lost, retention).
const workTick = 500 * time.Millisecond

// beatSlack is added to the liveness deadlines for one Emit held up by a
// slow flash commit and a loaded CPU.
const beatSlack = time.Minute

func (c *Camera) loopName() string { return "camera/" + c.dev.ID }

// sessionBound is the longest the session loop may legitimately go
// without progress between sessions: the longest backoff, then connect,
// DESCRIBE, two SETUPs and PLAY, each bounded by read_timeout, and slack.
func (c *Camera) sessionBound() time.Duration {
	return c.opts.ReconnectMax.Std() + 5*c.opts.ReadTimeout.Std() + beatSlack
}

var monoBase = time.Now()

// monoNow is a monotonic clock reading, immune to wall-clock steps (a box
// without an RTC jumps years when NTP arrives).
func monoNow() int64 { return int64(time.Since(monoBase)) }

// The running cameras, for Snapshots: the status page and the metrics are
// wired in cmd/lintel and cannot reach the components edge runs.
var live struct {
	sync.Mutex
	m map[*Camera]bool
}

func registerLive(c *Camera) {
	live.Lock()
	defer live.Unlock()
	if live.m == nil {
		live.m = map[*Camera]bool{}
	}
	live.m[c] = true
}

func unregisterLive(c *Camera) {
	live.Lock()
	defer live.Unlock()
	delete(live.m, c)
}

// Snapshots returns the health of every running camera, by device id.
func Snapshots() []Health {
	live.Lock()
	cs := make([]*Camera, 0, len(live.m))
	for c := range live.m {
		cs = append(cs, c)
	}
	live.Unlock()
	out := make([]Health, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.Health())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out
}

func (c *Camera) setState(ctx context.Context, s stateChange) {
	select {
	case c.state <- s:
	case <-ctx.Done():
	}
}

// codecState follows one session's video track: depacketiser, DTS
// extraction and the parameter sets in force.
type codecState struct {
	name    string
	dec264  *rtph264.Decoder
	dec265  *rtph265.Decoder
	dts264  *h264.DTSExtractor2
	dts265  *h265.DTSExtractor2
	params  *paramSets
	started bool // a keyframe was seen: DTS extraction can run
}

// session runs one RTSP session to its end. played reports whether PLAY
// succeeded.
func (c *Camera) session(ctx context.Context) (played bool, err error) {
	u, err := base.ParseURL(c.rawURL)
	if err != nil {
		return false, fmt.Errorf("address: %w", ErrMalformedURL)
	}
	guard := &rtspGuard{p: c.basic, scheme: u.Scheme}
	cl := &gortsplib.Client{
		OnRequest:    guard.onRequest,
		ReadTimeout:  c.opts.ReadTimeout.Std(),
		WriteTimeout: c.opts.ReadTimeout.Std(),
		OnPacketLost: func(err error) {
			var e liberrors.ErrClientRTPPacketsLost
			if errors.As(err, &e) {
				c.h.lost.Add(uint64(e.Lost))
			} else {
				c.h.lost.Add(1)
			}
		},
		OnDecodeError:     func(error) { c.h.decodeErrors.Add(1) },
		OnTransportSwitch: func(err error) { c.log.Info("transport switched", "reason", c.errString(err)) },
	}
	switch c.opts.Transport {
	case "tcp":
		t := gortsplib.TransportTCP
		cl.Transport = &t
	case "udp":
		t := gortsplib.TransportUDP
		cl.Transport = &t
	}
	if err := cl.Start(u.Scheme, u.Host); err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer cl.Close()
	// Close the client when ctx ends: Describe and friends do not take a
	// context.
	stop := context.AfterFunc(ctx, cl.Close)
	defer stop()

	desc, _, err := cl.Describe(u)
	if err != nil {
		if guard.refused() {
			return false, fmt.Errorf("describe: %w", ErrBasicRefused)
		}
		return false, fmt.Errorf("describe: %w", explain(err))
	}
	var vm *description.Media
	var cs codecState
	var f264 *format.H264
	var f265 *format.H265
	if m := desc.FindFormat(&f264); m != nil {
		vm, cs.name = m, "h264"
	} else if m := desc.FindFormat(&f265); m != nil {
		vm, cs.name = m, "h265"
	} else {
		return false, errors.New("the stream has no H.264 or H.265 video track")
	}
	var mm *description.Media
	var mf format.Format
	gzipped := false
	for _, m := range desc.Medias {
		for _, f := range m.Formats {
			if g, ok := f.(*format.Generic); ok && m.Type == description.MediaTypeApplication {
				rm := strings.ToLower(g.RTPMap())
				switch {
				case strings.HasPrefix(rm, "vnd.onvif.metadata.gzip/"):
					mm, mf, gzipped = m, f, true
				case strings.HasPrefix(rm, "vnd.onvif.metadata/"):
					mm, mf = m, f
				case strings.HasPrefix(rm, "vnd.onvif.metadata"):
					c.log.Warn("metadata encoding not supported, track ignored", "rtpmap", g.RTPMap())
				}
			}
		}
	}
	if _, err := cl.Setup(desc.BaseURL, vm, 0, 0); err != nil {
		return false, fmt.Errorf("setup video: %w", explain(err))
	}
	if mm != nil {
		if _, err := cl.Setup(desc.BaseURL, mm, 0, 0); err != nil {
			return false, fmt.Errorf("setup metadata: %w", explain(err))
		}
	}
	switch cs.name {
	case "h264":
		sps, pps := f264.SafeParams()
		cs.params = newParamSets("h264", nil, sps, pps)
		if cs.dec264, err = f264.CreateDecoder(); err != nil {
			return false, err
		}
		cs.dts264 = h264.NewDTSExtractor2()
	case "h265":
		vps, sps, pps := f265.SafeParams()
		cs.params = newParamSets("h265", vps, sps, pps)
		if cs.dec265, err = f265.CreateDecoder(); err != nil {
			return false, err
		}
		cs.dts265 = h265.NewDTSExtractor2()
	}
	// A new session restarts the RTP clock: old frames cannot be joined
	// to new ones in a clip.
	c.ring.reset()
	// Callbacks only after Setup: gortsplib panics otherwise.
	var vf format.Format = f264
	if cs.name == "h265" {
		vf = f265
	}
	cl.OnPacketRTP(vm, vf, func(pkt *rtp.Packet) { c.onVideo(cl, vm, &cs, pkt) })
	if mm != nil {
		var ra Reassembler
		var counted uint64
		cl.OnPacketRTP(mm, mf, func(pkt *rtp.Packet) {
			c.h.metaPackets.Add(1)
			doc, ok := ra.Push(pkt.SequenceNumber, pkt.Timestamp, pkt.Marker, pkt.Payload)
			if ra.Dropped != counted {
				c.h.metaDropped.Add(ra.Dropped - counted)
				counted = ra.Dropped
			}
			if !ok {
				return
			}
			if gzipped {
				d, err := Gunzip(doc)
				if err != nil {
					c.h.metaErrors.Add(1)
					return
				}
				doc = d
			}
			select {
			case c.docs <- metaDoc{doc, c.now()}:
			default:
				c.h.metaOverflow.Add(1) // never block the reader goroutine
			}
		})
	}
	if _, err := cl.Play(nil); err != nil {
		return false, fmt.Errorf("play: %w", explain(err))
	}
	if c.onvif != nil {
		c.onvif.newSession()
	}
	transport := "auto"
	if cl.Transport != nil {
		transport = cl.Transport.String()
	}
	info := map[string]any{"codec": cs.name, "transport": strings.ToLower(transport), "metadata": mm != nil}
	if cs.params.width > 0 {
		info["width"], info["height"] = cs.params.width, cs.params.height
	}
	c.h.lastVideo.Store(c.now().UnixNano()) // grace period for the first frame
	c.setState(ctx, stateChange{online: true, info: info})
	err = cl.Wait()
	if ctx.Err() != nil {
		return true, nil
	}
	return true, explain(err)
}

func newParamSets(codec string, vps, sps, pps []byte) *paramSets {
	p := &paramSets{codec: codec, vps: vps, sps: sps, pps: pps}
	switch codec {
	case "h264":
		var s h264.SPS
		if len(sps) > 0 && s.Unmarshal(sps) == nil {
			p.width, p.height = s.Width(), s.Height()
		}
	case "h265":
		var s h265.SPS
		if len(sps) > 0 && s.Unmarshal(sps) == nil {
			p.width, p.height = s.Width(), s.Height()
		}
	}
	return p
}

// explain turns library errors into plain ones an installer can act on.
func explain(err error) error {
	if err == nil {
		return nil
	}
	var bad liberrors.ErrClientBadStatusCode
	if errors.As(err, &bad) {
		switch bad.Code {
		case base.StatusUnauthorized:
			return fmt.Errorf("camera refused the credentials (401): check user and password: %w", err)
		case base.StatusNotFound:
			return fmt.Errorf("camera has no such stream (404): check the path: %w", err)
		}
	}
	var to liberrors.ErrClientTCPTimeout
	if errors.As(err, &to) {
		return fmt.Errorf("no data from the camera within read_timeout: %w", err)
	}
	var udp liberrors.ErrClientUDPTimeout
	if errors.As(err, &udp) {
		return fmt.Errorf("no packets over UDP: a firewall or NAT drops RTP; use transport: tcp: %w", err)
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("nothing listens at that address: check host, port and that RTSP is on: %w", err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("no answer from the camera: check the address and the network: %w", err)
	}
	return err
}

// onVideo runs on the RTSP reader goroutine for every video packet: it
// must stay quick and never block.
func (c *Camera) onVideo(cl *gortsplib.Client, vm *description.Media, cs *codecState, pkt *rtp.Packet) {
	c.h.videoPackets.Add(1)
	c.h.videoBytes.Add(uint64(len(pkt.Payload)))
	pts, ok := cl.PacketPTS2(vm, pkt)
	if !ok {
		return
	}
	var au [][]byte
	var err error
	if cs.dec264 != nil {
		au, err = cs.dec264.Decode(pkt)
	} else {
		au, err = cs.dec265.Decode(pkt)
	}
	if err != nil {
		return // more packets needed, or a partial frame after a loss
	}
	now := c.now()
	c.h.frames.Add(1)
	c.h.lastVideo.Store(now.UnixNano())

	a, ok := cs.frame(au, pts)
	if !ok {
		return
	}
	a.at = now
	if a.key {
		c.h.lastKey.Store(now.UnixNano())
	}
	c.ring.push(a)
}

// frame converts a depacketised access unit into a ring entry: it follows
// in-band parameter sets, computes DTS, and keeps the slices as AVCC.
func (cs *codecState) frame(au [][]byte, pts int64) (*accessUnit, bool) {
	var keep [][]byte
	var vps, sps, pps []byte
	key := false
	size := 0
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if cs.name == "h264" {
			switch h264.NALUType(n[0] & 0x1f) {
			case h264.NALUTypeSPS:
				sps = n
				continue
			case h264.NALUTypePPS:
				pps = n
				continue
			case h264.NALUTypeAccessUnitDelimiter, h264.NALUTypeFillerData:
				continue
			case h264.NALUTypeIDR:
				key = true
			}
		} else {
			switch t := h265.NALUType((n[0] >> 1) & 0x3f); t {
			case h265.NALUType_VPS_NUT:
				vps = n
				continue
			case h265.NALUType_SPS_NUT:
				sps = n
				continue
			case h265.NALUType_PPS_NUT:
				pps = n
				continue
			case h265.NALUType_AUD_NUT, h265.NALUType_FD_NUT:
				continue
			default:
				if t >= 16 && t <= 21 {
					key = true // IRAP
				}
			}
		}
		keep = append(keep, n)
		size += 4 + len(n)
	}
	if sps != nil || pps != nil || vps != nil {
		p := cs.params
		np := &paramSets{codec: p.codec, vps: p.vps, sps: p.sps, pps: p.pps, width: p.width, height: p.height}
		changed := false
		if vps != nil && string(vps) != string(p.vps) {
			np.vps, changed = append([]byte(nil), vps...), true
		}
		if sps != nil && string(sps) != string(p.sps) {
			np.sps, changed = append([]byte(nil), sps...), true
		}
		if pps != nil && string(pps) != string(p.pps) {
			np.pps, changed = append([]byte(nil), pps...), true
		}
		if changed {
			cs.params = newParamSets(np.codec, np.vps, np.sps, np.pps)
		}
	}
	if len(keep) == 0 || cs.params == nil || len(cs.params.sps) == 0 || len(cs.params.pps) == 0 {
		return nil, false
	}
	if !cs.started && !key {
		return nil, false
	}
	// The DTS extractors need the parameter sets in front of keyframes.
	withParams := keep
	if key {
		withParams = append([][]byte{cs.params.sps, cs.params.pps}, keep...)
		if cs.name == "h265" {
			withParams = append([][]byte{cs.params.vps}, withParams...)
		}
	}
	var dts int64
	var err error
	if cs.name == "h264" {
		dts, err = cs.dts264.Extract(withParams, pts)
	} else {
		dts, err = cs.dts265.Extract(withParams, pts)
	}
	if err != nil {
		// Start over at the next keyframe with a fresh extractor.
		cs.started = false
		cs.dts264, cs.dts265 = h264.NewDTSExtractor2(), h265.NewDTSExtractor2()
		return nil, false
	}
	cs.started = true
	data := make([]byte, 0, size)
	for _, n := range keep {
		l := len(n)
		data = append(data, byte(l>>24), byte(l>>16), byte(l>>8), byte(l))
		data = append(data, n...)
	}
	return &accessUnit{pts: pts, dts: dts, key: key, data: data, params: cs.params}, true
}

// work is the camera's event loop: metadata documents, session state,
// video-lost detection, clips and their retention. It is the only
// goroutine that emits events, so they leave in order.
func (c *Camera) work(ctx context.Context) {
	mapper := NewMapper(c.prof, c.dev.ID, c.opts.FloorBands)
	tick := time.NewTicker(workTick)
	defer tick.Stop()
	done := make(chan clipResult, 16)
	var online, everOnline, reportedOffline, videoLost bool
	var lastSweep time.Time
	var rates rateWindow

	emit := func(evs ...*event.Event) {
		ectx := ctx
		if ctx.Err() != nil {
			// Shutting down: still try to record what happened (a falling
			// object must not vanish with a restart), briefly.
			var cancel context.CancelFunc
			ectx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
		}
		for _, e := range evs {
			if e.Device == "" {
				e.Device = c.dev.ID
			}
			if e.Household == "" {
				// A peephole's events belong to the home it watches: the
				// elder-safety rules key on the household.
				e.Household = c.dev.Household
			}
		}
		if err := c.emit.Emit(ectx, evs...); err != nil {
			c.log.Error("events not recorded", "err", err, "count", len(evs))
		}
	}
	defer func() {
		// Wait for clips being cut and emit their incidents.
		go func() { c.inflight.Wait(); close(done) }()
		for r := range done {
			emit(c.clipDone(r))
		}
	}()

	loop, bound := c.loopName(), int64(c.sessionBound())
	for {
		// This loop wakes at least every workTick, so it beats the
		// watchdog, but only while the session loop is alive too: in a
		// session (the RTSP library's read_timeout ends a stuck one) or
		// retrying between sessions.
		if online || monoNow()-c.sessionBeat.Load() < bound {
			sdnotify.Beat(loop)
		}
		select {
		case <-ctx.Done():
			return
		case s := <-c.state:
			switch {
			case s.online && !online:
				online, everOnline, reportedOffline, videoLost = true, true, false, false
				c.setHealth(func(h *Health) {
					h.State, h.Since, h.LastError = StateOnline, c.now(), ""
					h.Codec, _ = s.info["codec"].(string)
					h.Transport, _ = s.info["transport"].(string)
					h.Width, _ = s.info["width"].(int)
					h.Height, _ = s.info["height"].(int)
					h.Metadata, _ = s.info["metadata"].(bool)
				})
				c.log.Info("camera online", "url", c.shownURL, "codec", s.info["codec"], "transport", s.info["transport"])
				emit(event.New(event.CameraOnline).WithData(s.info))
			case !s.online:
				wasOnline := online
				online, videoLost = false, false
				c.setHealth(func(h *Health) {
					if h.State != StateOffline {
						h.Since = c.now()
					}
					h.State, h.LastError, h.VideoLost = StateOffline, s.err, false
				})
				// Report offline when a session drops, and once when the
				// first attempts fail (unknown → offline), not every retry.
				if wasOnline || (!everOnline && !reportedOffline) {
					reportedOffline = true
					emit(event.New(event.CameraOffline).WithData(map[string]any{"error": s.err}))
				}
			}
		case d := <-c.docs:
			c.h.metaDocs.Add(1)
			md, err := ParseMetadata(d.doc)
			if err != nil {
				c.h.metaErrors.Add(1)
				c.log.Debug("bad metadata document", "err", err, "bytes", len(d.doc))
			}
			c.noteTopics(md)
			for _, inc := range mapper.Handle(md, d.at) {
				if inc.Clip && c.opts.Clips == "on" {
					// Judged by the last frame rather than the session state:
					// documents may overtake the "online" notice at PLAY.
					if last := c.h.lastVideo.Load(); videoLost || last == 0 || c.now().Sub(time.Unix(0, last)) >= c.opts.VideoLostAfter.Std() {
						// Nothing to cut: say so at once rather than hold an
						// alert for the post-roll.
						addData(inc.Event, map[string]any{"clip_error": "no video from the camera"})
						emit(inc.Event)
						continue
					}
					c.startClip(ctx, inc, done)
					continue
				}
				emit(inc.Event)
			}
		case r := <-done:
			emit(c.clipDone(r))
		case now := <-tick.C:
			rates.update(now, &c.h)
			frames, bytes, span := c.ring.stats()
			c.setHealth(func(h *Health) {
				h.PacketsPerSec, h.BitrateBps, h.FPS = rates.pps, rates.bps, rates.fps
				h.BufferFrames, h.BufferBytes, h.BufferSeconds = frames, bytes, span.Seconds()
				h.RTPLost, h.Reconnects = c.h.lost.Load(), max(c.h.attempts.Load(), 1)-1
				h.MetadataDocs, h.MetadataDropped = c.h.metaDocs.Load(), c.h.metaDropped.Load()+c.h.metaOverflow.Load()
				if k := c.h.lastKey.Load(); k > 0 {
					h.LastKeyframe = time.Unix(0, k)
				}
			})
			if online {
				silent := now.Sub(time.Unix(0, c.h.lastVideo.Load()))
				switch {
				case !videoLost && silent >= c.opts.VideoLostAfter.Std():
					videoLost = true
					c.setHealth(func(h *Health) { h.VideoLost = true })
					c.log.Warn("video lost", "silent", silent.Round(time.Millisecond).String())
					emit(event.New(event.CameraVideoLost).WithData(map[string]any{"silent_s": round1(silent.Seconds())}))
				case videoLost && silent < time.Second:
					videoLost = false
					c.setHealth(func(h *Health) { h.VideoLost = false })
					c.log.Info("video restored")
					emit(event.New(event.CameraVideoRestored))
				}
			}
			if now.Sub(lastSweep) > time.Hour {
				lastSweep = now
				c.sweep(now)
			}
		}
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

type clipResult struct {
	inc     Incident
	clip    *Clip
	err     error
	snap    *event.Evidence
	snapErr error
}

// startClip cuts a clip for an incident in its own goroutine; the
// incident's event is emitted when the clip is done.
func (c *Camera) startClip(ctx context.Context, inc Incident, done chan<- clipResult) {
	post := c.opts.PostRoll.Std()
	cp := c.ring.capture(inc.At.Add(post), 1024)
	c.inflight.Add(1)
	go func() {
		defer c.inflight.Done()
		// Give up waiting for frames a little after the post-roll, or at
		// once when the gateway stops.
		deadline := make(chan time.Time, 1)
		fire := func() {
			select {
			case deadline <- time.Now():
			default:
			}
		}
		t := time.AfterFunc(time.Until(inc.At.Add(post+3*time.Second)), fire)
		defer t.Stop()
		stop := context.AfterFunc(ctx, fire)
		defer stop()
		// The snapshot is taken now, while the clip's post-roll runs.
		var snap *event.Evidence
		var snapErr error
		var sg sync.WaitGroup
		if c.snapper != nil || c.onvif != nil {
			sg.Go(func() {
				// ONVIF may take four round trips before the JPEG.
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				defer cancel()
				var jpeg []byte
				var err error
				if c.snapper != nil {
					jpeg, err = c.snapper.fetch(sctx)
				} else {
					jpeg, err = c.onvif.fetch(sctx)
				}
				if err != nil {
					snapErr = err
					return
				}
				ev, err := c.clips.saveSnapshot(jpeg, string(inc.Event.Kind), inc.At)
				if err != nil {
					snapErr = err
					return
				}
				snap = &ev
			})
		}
		clip, err := c.clips.writeClip(cp, string(inc.Event.Kind), inc.At, deadline)
		c.ring.cancel(cp)
		sg.Wait()
		done <- clipResult{inc: inc, clip: clip, err: err, snap: snap, snapErr: snapErr}
	}()
}

func (c *Camera) clipDone(r clipResult) *event.Event {
	ev := r.inc.Event
	ev.Time = r.inc.At
	if r.err != nil {
		c.h.clipErrors.Add(1)
		c.log.Error("evidence clip failed", "err", c.redact(r.err.Error()), "kind", string(ev.Kind))
		addData(ev, map[string]any{"clip_error": c.redact(r.err.Error())})
	} else {
		c.h.clips.Add(1)
		ev.Evidence = append(ev.Evidence, r.clip.Evidence())
		if r.clip.Truncated {
			addData(ev, map[string]any{"clip_truncated": true})
		}
		c.log.Info("evidence clip written", "ref", r.clip.Ref, "bytes", r.clip.Size, "duration_s", round1(r.clip.Duration), "kind", string(ev.Kind))
	}
	if r.snap != nil {
		ev.Evidence = append(ev.Evidence, *r.snap)
	} else if r.snapErr != nil {
		c.log.Warn("snapshot failed", "err", c.redact(r.snapErr.Error()))
		addData(ev, map[string]any{"snapshot_error": c.redact(r.snapErr.Error())})
	}
	c.sweep(c.now())
	return ev
}

func (c *Camera) sweep(now time.Time) {
	if n, err := c.clips.sweep(now); err != nil {
		c.log.Warn("clip retention sweep failed", "err", err)
	} else if n > 0 {
		c.log.Info("old clips deleted", "count", n)
	}
}

// addData merges keys into an event's data object.
func addData(ev *event.Event, kv map[string]any) {
	m, err := ev.DataMap()
	if err != nil {
		m = map[string]any{}
	}
	for k, v := range kv {
		m[k] = v
	}
	ev.WithData(m)
}

// noteTopics remembers recent topics for the health snapshot (what
// `lintel probe rtsp` and the status page show to an installer).
func (c *Camera) noteTopics(md *Metadata) {
	if md == nil || len(md.Events) == 0 {
		return
	}
	c.setHealth(func(h *Health) {
		for _, n := range md.Events {
			if !contains(h.Topics, n.Topic) && len(h.Topics) < 32 {
				h.Topics = append(h.Topics, n.Topic)
			}
		}
	})
}

func newDTS264() *h264.DTSExtractor2 { return h264.NewDTSExtractor2() }

// Package serial is the driver for 433 MHz (and similar) radio sensors —
// door magnets, PIR motion sensors, SOS buttons, smoke and water-leak
// sensors in elders' homes — heard by a receiver on a UART, a USB serial
// adapter or a serial server (tcp://).
//
// A receiver device owns a port and a codec (codec.go: Sonoff RF Bridge,
// RFXtrx, a configurable framed-binary codec, a configurable line codec);
// sensor devices name their receiver, their radio code and a code table
// (configs/radio/*.yaml) that gives their data values a meaning. The
// Tracker (sensor.go) drops RF repeats, tracks door state and supervises
// heartbeats; the Receiver component (this file) keeps the port open
// across unplug and replug and emits the events.
package serial

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/sdnotify"
)

func init() {
	edge.RegisterDriver("serial", newDrivers)
}

// newDrivers builds one Receiver per enabled receiver device, with the
// sensors bound to it.
func newDrivers(env edge.Env, devs []config.Device) ([]edge.Component, error) {
	byID := map[string]*Receiver{}
	var out []edge.Component
	var errs []error
	for _, d := range devs {
		if d.Kind != KindReceiver {
			continue
		}
		o, err := ReceiverFromConfig(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r, err := NewReceiver(d.ID, d.Address, o, nil, env.Emit, env.Logger.With("device", d.ID))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		byID[d.ID] = r
		out = append(out, r)
	}
	for _, d := range devs {
		if !contains(SensorKinds, d.Kind) {
			continue
		}
		s, err := SensorFromConfig(env.Config, d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		o, _ := decodeSensorOptions(d.Options)
		rx, _ := receiverOf(env.Config, d, o)
		r := byID[rx.ID]
		if r == nil {
			env.Logger.Warn("sensor ignored: its receiver is disabled", "device", d.ID, "receiver", rx.ID)
			continue
		}
		r.sensors = append(r.sensors, s)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Receiver is the component serving one receiver port and its sensors.
type Receiver struct {
	id      string
	spec    PortSpec
	opts    ReceiverOptions
	sensors []Sensor
	emit    edge.Emitter
	log     *slog.Logger

	// Seams for tests.
	now  func() time.Time
	tick time.Duration
	open func(context.Context, PortSpec) (Conn, error)

	codec Codec // set by Run before the port goroutine starts

	mu         sync.Mutex
	tracker    *Tracker
	scanner    *Scanner
	online     bool
	since      time.Time
	reconnects uint64
	lastErr    string

	// portBeat is when the port loop last made progress while the port
	// was closed (an open attempt, a backoff wake), on the monotonic clock
	// of monoNow.
	portBeat atomic.Int64
}

// NewReceiver returns a receiver component. sensors may be nil and added
// by the driver factory.
func NewReceiver(id, address string, o ReceiverOptions, sensors []Sensor, emit edge.Emitter, log *slog.Logger) (*Receiver, error) {
	if _, err := NewCodec(o.CodecOptions()); err != nil {
		return nil, err
	}
	baud := o.Baud
	if baud == 0 {
		baud = DefaultBaud(o.Codec)
	}
	return &Receiver{
		id: id, spec: PortSpec{Address: address, Baud: baud, Parity: o.Parity}, opts: o,
		sensors: sensors, emit: emit, log: log,
		now: time.Now, tick: time.Second, open: OpenPort,
	}, nil
}

// portMsg is what the port goroutine tells the event loop.
type portMsg struct {
	data []byte
	up   bool
	down error
}

// Run serves the port until ctx ends. It never fails for a port problem:
// a lost port is retried with backoff and reported as device.offline.
func (r *Receiver) Run(ctx context.Context) error {
	codec, err := NewCodec(r.opts.CodecOptions())
	if err != nil {
		return err
	}
	r.codec = codec
	r.mu.Lock()
	r.tracker = NewTracker(r.id, r.sensors, r.opts.DedupWindow.Std(), r.now())
	r.scanner = NewScanner(codec)
	r.mu.Unlock()
	registerLive(r)
	defer unregisterLive(r)
	loop := "radio/" + r.id
	sdnotify.Register(loop, r.tick+beatSlack)
	defer sdnotify.Unregister(loop)
	r.portBeat.Store(monoNow())
	portBound := r.portBound()

	msgs := make(chan portMsg, 16)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(msgs)
		r.portLoop(ctx, msgs)
	})
	defer wg.Wait()

	tick := time.NewTicker(r.tick)
	defer tick.Stop()
	var downSince time.Time
	up := false
	for {
		// This loop wakes at least every tick, so it beats the watchdog.
		// It stops when the port loop is stuck: an open port may stay
		// quiet for hours (a quiet radio), but a closed one must keep
		// being retried.
		if up || monoNow()-r.portBeat.Load() < int64(portBound) {
			sdnotify.Beat(loop)
		}
		var evs []*event.Event
		select {
		case m, ok := <-msgs:
			if !ok {
				return nil
			}
			now := r.now()
			r.mu.Lock()
			switch {
			case m.up:
				up = true
				r.scanner.Reset()
				r.tracker.Resume(now)
				r.online, r.since, r.lastErr = true, now, ""
				d := map[string]any{"port": config.RedactURL(r.spec.Address), "codec": r.opts.Codec}
				if !downSince.IsZero() {
					d["offline_for"] = now.Sub(downSince).Round(time.Second).String()
					r.reconnects++
				}
				e := event.New(event.DeviceOnline).WithData(d)
				e.Device, e.Time = r.id, now
				evs = append(evs, e)
			case m.down != nil:
				up = false
				r.tracker.Pause()
				r.online, r.since, r.lastErr = false, now, m.down.Error()
				downSince = now
				e := event.New(event.DeviceOffline).WithData(map[string]any{
					"port": config.RedactURL(r.spec.Address), "codec": r.opts.Codec, "reason": m.down.Error(),
				})
				e.Device, e.Time = r.id, now
				evs = append(evs, e)
			default:
				r.scanner.Feed(m.data, func(f Frame) {
					evs = append(evs, r.tracker.Frame(now, f)...)
				})
			}
			r.mu.Unlock()
		case <-tick.C:
			r.mu.Lock()
			evs = r.tracker.Tick(r.now())
			r.mu.Unlock()
		}
		if len(evs) == 0 {
			continue
		}
		if err := r.emit.Emit(ctx, evs...); err != nil && ctx.Err() == nil {
			// The store refused them (full disk, a bug in an event): the
			// port keeps running; the runtime counts the rejection.
			r.log.Error("emit radio events", "err", err, "events", len(evs))
		}
	}
}

// portLoop opens the port, reads it, and reopens it with backoff when it
// is lost, until ctx ends.
func (r *Receiver) portLoop(ctx context.Context, msgs chan<- portMsg) {
	send := func(m portMsg) bool {
		select {
		case msgs <- m:
			return true
		case <-ctx.Done():
			return false
		}
	}
	minB, maxB := r.opts.ReconnectMin.Std(), r.opts.ReconnectMax.Std()
	if minB <= 0 {
		minB = DefaultReconnectMin
	}
	if maxB < minB {
		maxB = minB
	}
	backoff := minB
	first, online := true, false
	for ctx.Err() == nil {
		r.portBeat.Store(monoNow())
		conn, err := r.open(ctx, r.spec)
		if err == nil {
			if err = r.initPort(ctx, conn); err != nil {
				_ = conn.Close()
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if online || first {
				r.log.Warn("radio receiver offline", "port", config.RedactURL(r.spec.Address), "err", err)
				if !send(portMsg{down: err}) {
					return
				}
			}
			first, online = false, false
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, maxB)
			continue
		}
		first, online, backoff = false, true, minB
		r.log.Info("radio receiver port open", "port", config.RedactURL(r.spec.Address), "codec", r.opts.Codec, "baud", r.spec.Baud)
		if !send(portMsg{up: true}) {
			_ = conn.Close()
			return
		}
		// Reads ignore ctx; closing the port unblocks them.
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		err = r.readLoop(conn, send)
		r.portBeat.Store(monoNow())
		stop()
		_ = conn.Close()
		if ctx.Err() != nil {
			return
		}
		online = false
		r.log.Warn("radio receiver offline", "port", config.RedactURL(r.spec.Address), "err", err)
		if !send(portMsg{down: err}) {
			return
		}
		if !sleep(ctx, jitter(minB)) {
			return
		}
	}
}

// beatSlack is added to the liveness deadlines for one Emit held up by a
// slow flash commit and a loaded CPU.
const beatSlack = time.Minute

// portBound is the longest the port loop may legitimately go without
// progress while the port is closed: the longest backoff with its +20 %
// jitter, a TCP dial (5 s), the codec's start-up waits, and slack.
func (r *Receiver) portBound() time.Duration {
	maxB := max(r.opts.ReconnectMax.Std(), r.opts.ReconnectMin.Std(), DefaultReconnectMin)
	return maxB*6/5 + 5*time.Second + 5*time.Second + beatSlack
}

var monoBase = time.Now()

// monoNow is a monotonic clock reading, immune to wall-clock steps (a box
// without an RTC jumps years when NTP arrives).
func monoNow() int64 { return int64(time.Since(monoBase)) }

// initPort sends the codec's start-up commands, if it has any.
func (r *Receiver) initPort(ctx context.Context, conn Conn) error {
	in, ok := r.codec.(Initializer)
	if !ok {
		return nil
	}
	for _, st := range in.InitSequence() {
		if _, err := conn.Write(st.Write); err != nil {
			return fmt.Errorf("initialise receiver: %w", err)
		}
		if st.Wait > 0 && !sleep(ctx, st.Wait) {
			return ctx.Err()
		}
	}
	return nil
}

func (r *Receiver) readLoop(conn Conn, send func(portMsg) bool) error {
	buf := make([]byte, 512)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			if !send(portMsg{data: append([]byte(nil), buf[:n]...)}) {
				return context.Canceled
			}
		}
		if err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// jitter spreads reconnects of several receivers by ±20 %.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()-0.5)*0.4*float64(d))
}

// ReceiverStatus is a receiver's state for the status page.
type ReceiverStatus struct {
	ID         string         `json:"id"`
	Port       string         `json:"port"`
	Codec      string         `json:"codec"`
	Online     bool           `json:"online"`
	Since      time.Time      `json:"since"`
	Reconnects uint64         `json:"reconnects"`
	LastError  string         `json:"last_error,omitempty"`
	Stats      Stats          `json:"stats"`
	Sensors    []SensorStatus `json:"sensors"`
	Unknown    []UnknownCode  `json:"unknown_codes,omitempty"`
}

// Snapshot returns the receiver's and its sensors' state. It is safe to
// call from any goroutine while Run runs.
func (r *Receiver) Snapshot() ReceiverStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := ReceiverStatus{
		ID: r.id, Port: config.RedactURL(r.spec.Address), Codec: r.opts.Codec,
		Online: r.online, Since: r.since, Reconnects: r.reconnects, LastError: r.lastErr,
	}
	if r.tracker != nil {
		st.Sensors = r.tracker.Snapshot()
		st.Unknown = r.tracker.Unknown()
		st.Stats = r.scanner.Stats()
	}
	return st
}

// Supervised reports whether sensor id of this receiver has a heartbeat.
func (r *Receiver) Supervised(id string) bool {
	for _, s := range r.sensors {
		if s.ID == id {
			return s.Supervised()
		}
	}
	return false
}

// The running receivers, for Snapshots: the status page and the rules are
// wired in cmd/lintel and cannot reach the components edge runs.
var live struct {
	sync.Mutex
	m map[*Receiver]bool
}

func registerLive(r *Receiver) {
	live.Lock()
	defer live.Unlock()
	if live.m == nil {
		live.m = map[*Receiver]bool{}
	}
	live.m[r] = true
}

func unregisterLive(r *Receiver) {
	live.Lock()
	defer live.Unlock()
	delete(live.m, r)
}

// Snapshots returns the state of every running receiver, by id.
func Snapshots() []ReceiverStatus {
	live.Lock()
	rs := make([]*Receiver, 0, len(live.m))
	for r := range live.m {
		rs = append(rs, r)
	}
	live.Unlock()
	out := make([]ReceiverStatus, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

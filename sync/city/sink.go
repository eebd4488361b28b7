// Package city is the uplink to the community (city) platform over MQTT.
//
// The sink reads the durable event log from its own cursor and sends it in
// batches on {prefix}/events/{json|gzip}, QoS 1, with a window of batches
// in flight. The cursor advances only over a prefix of batches confirmed
// on the connection that sent them: by the broker's PUBACK (ack_mode
// puback) or by the platform's {epoch, seq} on {prefix}/ack (ack_mode
// application). paho's AutoReconnect is off and each connection uses a new
// client with a clean session, because with AutoReconnect paho completes
// tokens at resend time, before the broker has the message (measured, see
// docs/city-platform.md). Anything not confirmed is read again from the
// log on the next connection: delivery is at least once and the platform
// de-duplicates by event id. Reconnects back off exponentially with
// jitter; while the broker is unreachable, bare TCP probes cut a long
// back-off short when it returns (see prober).
//
// Events of severity alert or critical also go out at once on
// {prefix}/alerts/json, ahead of any backlog; they are sent again in order
// on the events topic. A retained {prefix}/status says online/offline (the
// Last Will), and {prefix}/cmd carries commands whose results go to
// {prefix}/cmd/result.
package city

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/sdnotify"
	"github.com/lintel-edge/lintel/edge/store"
)

// Log is what the sink needs of the event log; *store.Store implements it.
type Log interface {
	Read(sink string, after uint64, max int) ([]*event.Event, error)
	Ack(ctx context.Context, sink string, seq uint64) error
	Cursor(sink string) uint64
	Epoch() string
	BootCount() uint64
	LastSeq() uint64
	Subscribe(buf int) (<-chan *event.Event, func())
	Stats() store.Stats
}

// RawLog is what the sink uses of a log that can hand out stored events as
// bytes (*store.Store does): the batcher then copies each event's stored
// JSON into the envelope without decoding or re-encoding it. A Log without
// it is read with Read and re-encoded.
type RawLog interface {
	ReadRaw(sink string, after uint64, max int, f func(store.RawEvent) bool) (n int, last uint64, err error)
}

// Commander dispatches downlink commands; *edge.Commands implements it.
type Commander interface {
	Dispatch(ctx context.Context, name string, args json.RawMessage, actor, via string) (any, error)
}

// Deps is what a sink is built from besides its options.
type Deps struct {
	Name     string // cursor name in the log, normally "city"
	Gateway  string
	Compound string
	Log      Log
	Logger   *slog.Logger
	Emit     edge.Emitter // audit events of built-in commands; may be nil
	Commands Commander    // may be nil: every command but resend is unknown
	// State keeps the seen command ids (replay protection) durably; nil
	// keeps them in memory only (tests).
	State   StateStore
	Version string
	// Clock reads the wall clock and its quality; default edge.SystemClock.
	Clock edge.Clock
}

// Sink is the city uplink component.
type Sink struct {
	d       Deps
	o       Options
	log     *slog.Logger
	topics  Topics
	client  string
	enc     string
	started time.Time

	confirmed atomic.Uint64 // every seq up to here is delivered, in order
	ackWake   chan struct{}
	dataWake  chan struct{}
	rewind    chan uint64
	cmdq      chan inbound
	verifier  *Verifier
	seen      *seenIDs
	audit     *refusalAudit
	recent    *resultCache
	conns     atomic.Uint64
	cur       atomic.Pointer[mqttConn]

	alertMu  sync.Mutex
	alertQ   []*event.Event
	alertNew chan struct{}

	lastOK  atomic.Int64           // unix ns of the last confirmed delivery
	lastErr atomic.Pointer[string] // why the last connection ended
	retryIn atomic.Int64           // the last reconnect delay drawn, ns
	// urls are the brokers, tried in turn: at is the index of the one
	// connected or tried next, down whether the last attempt at each
	// failed before TCP was up, probes the TCP prober of each.
	urls   []string
	at     atomic.Int64
	down   []bool
	probes []*prober
	probe  *prober // probes[0], for tests of one broker

	// Counters (read by tests, benchmarks and the status message).
	BatchesSent atomic.Uint64
	EventsSent  atomic.Uint64
	BytesSent   atomic.Uint64 // payload bytes of event batches
	AlertsSent  atomic.Uint64
	Reconnects  atomic.Uint64
	Rewinds     atomic.Uint64

	CommandsApplied atomic.Uint64
	CommandsRefused atomic.Uint64 // every refusal, busy included
	CommandsBusy    atomic.Uint64 // answered busy from a full queue
}

type mqttConn struct {
	c    mqtt.Client
	conn uint64
}

// New builds a sink. It loads the TLS files once to fail early on a wrong
// path; they are loaded again at every connection so renewed certificates
// are picked up without a restart.
func New(d Deps, o Options) (*Sink, error) {
	if d.Log == nil || d.Logger == nil || d.Gateway == "" {
		return nil, errors.New("city sink: log, logger and gateway are required")
	}
	if d.Name == "" {
		d.Name = "city"
	}
	if d.Clock == nil {
		d.Clock = edge.SystemClock{}
	}
	if o.ClientID == "" {
		o.ClientID = d.Gateway
	}
	if o.UsesTLS() {
		if _, err := o.tlsConfig(); err != nil {
			return nil, err
		}
	}
	urls := o.URLs()
	if len(urls) == 0 {
		return nil, errors.New("city sink: no broker URL")
	}
	for _, b := range urls {
		if _, err := url.Parse(b); err != nil {
			return nil, fmt.Errorf("city sink: broker: %w", err)
		}
	}
	s := &Sink{
		d: d, o: o, log: d.Logger,
		topics:   Topics{Prefix: ExpandPrefix(o.TopicPrefix, d.Compound, d.Gateway)},
		client:   o.ClientID,
		enc:      EncJSON,
		started:  time.Now(),
		ackWake:  make(chan struct{}, 1),
		dataWake: make(chan struct{}, 1),
		rewind:   make(chan uint64, 1),
		cmdq:     make(chan inbound, o.Commands.Queue),
		verifier: o.verifier(d.Gateway),
		recent:   newResultCache(1024),
		alertNew: make(chan struct{}, 1),
		urls:     urls,
		down:     make([]bool, len(urls)),
	}
	for _, b := range urls {
		s.probes = append(s.probes, newProber(b, o.Reconnect.Probe.Std()))
	}
	s.probe = s.probes[0]
	if o.Gzip {
		s.enc = EncGzip
	}
	if d.State == nil {
		d.State = &memState{}
		s.d.State = d.State
	}
	s.seen = newSeenIDs(d.State, "city.cmd.seen/"+d.Name, o.Commands.MaxSeen)
	s.audit = newRefusalAudit(d.Emit, d.Logger, s.topics.Cmd(), o.Commands.Refusals)
	return s, nil
}

// Topics returns the sink's topics.
func (s *Sink) Topics() Topics { return s.topics }

// Confirmed is the highest seq delivered in order.
func (s *Sink) Confirmed() uint64 { return s.confirmed.Load() }

func (o *Options) tlsConfig() (*tls.Config, error) { return o.TLS.Config() }

// Config loads the files into a client TLS configuration: TLS 1.2 or
// later, the CA bundle (or the system roots), and the client certificate
// for mTLS.
func (t TLSOptions) Config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, warned at every connection
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read tls ca file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls ca file %s: no PEM certificates in it", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// clockRetry is how often the sink re-checks an insane clock (a var for tests).
var clockRetry = 5 * time.Second

// Run delivers the log until ctx ends.
func (s *Sink) Run(ctx context.Context) error {
	s.confirmed.Store(s.d.Log.Cursor(s.d.Name))
	running.Store(s, struct{}{})
	defer running.Delete(s)
	// The watchdog pings systemd only while this loop beats: it beats per
	// reconnect attempt and, once connected, on every pass of the pump.
	loop := s.loopName()
	sdnotify.Register(loop, s.o.Reconnect.Max.Std()+2*time.Minute)
	defer sdnotify.Unregister(loop)
	if err := s.seen.load(); err != nil {
		s.log.Error("downlink commands disabled: the seen command ids cannot be read", "err", err)
	}
	if len(s.verifier.Keys) == 0 {
		s.log.Warn("no platform key configured (sinks.city.commands.keys): every downlink command is refused")
	}
	sub, cancelSub := s.d.Log.Subscribe(4096)
	var wg sync.WaitGroup
	wg.Add(5)
	go func() { defer wg.Done(); s.watch(ctx, sub) }()
	go func() { defer wg.Done(); s.acker(ctx) }()
	go func() { defer wg.Done(); s.commands(ctx) }()
	go func() { defer wg.Done(); s.pruner(ctx) }()
	go func() { defer wg.Done(); s.audit.run(ctx) }()
	defer func() {
		cancelSub()
		wg.Wait()
	}()

	bo := newBackoff(s.o.Reconnect.Min.Std(), s.o.Reconnect.Max.Std())
	clockWarned := false
	for ctx.Err() == nil {
		sdnotify.Beat(loop)
		if s.o.UsesTLS() {
			if now, _ := s.d.Clock.Now(); now.Before(edge.EarliestSane) {
				// Certificate validity cannot be checked against a 1970
				// clock: wait for time sync instead of failing hard.
				if !clockWarned {
					s.log.Warn("clock not set, tls connection deferred until time sync", "now", now.UTC().Format(time.RFC3339))
					clockWarned = true
				}
				if !sleep(ctx, clockRetry) {
					break
				}
				continue
			}
		}
		clockWarned = false
		t0 := time.Now()
		at := int(s.at.Load())
		err := s.session(ctx, s.urls[at])
		if ctx.Err() != nil {
			break
		}
		if time.Since(t0) > 30*time.Second {
			bo.reset()
		}
		s.Reconnects.Add(1)
		s.setLastErr(err)
		// Brokers are tried in turn, one attempt each, with the back-off
		// between attempts as with one broker: after a connection that
		// worked, the next node is tried within reconnect.min.
		s.down[at] = unreachable(err)
		next := (at + 1) % len(s.urls)
		s.at.Store(int64(next))
		wait := bo.next()
		s.retryIn.Store(int64(wait))
		args := []any{"err", err, "retry_in", wait.Round(time.Millisecond), "confirmed_seq", s.confirmed.Load()}
		if len(s.urls) > 1 {
			args = append(args, "broker", config.RedactURL(s.urls[at]), "next_broker", config.RedactURL(s.urls[next]))
		}
		s.log.Warn("uplink connection ended, retrying", args...)
		sdnotify.Beat(loop)
		// A long back-off ends early when TCP probes see the broker to be
		// tried next come back (see prober): the backlog then moves within
		// seconds.
		t1 := time.Now()
		ok, woke := s.probes[next].wait(ctx, wait, s.down[next])
		if !ok {
			break
		}
		if woke {
			s.log.Info("broker reachable again, reconnecting before the back-off ends", "waited", time.Since(t1).Round(time.Millisecond), "retry_in", wait.Round(time.Millisecond))
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// watch feeds the alert lane and wakes the batcher on new events. The
// subscription is lossy; a missed wake is covered by the poll in pump and
// a missed alert still goes out in the ordered stream.
func (s *Sink) watch(ctx context.Context, sub <-chan *event.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub:
			if !ok {
				return
			}
			if ev.Severity.Urgent() {
				s.queueAlert(ev)
			}
			poke(s.dataWake)
		}
	}
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// maxAlertQueue bounds alerts waiting for a connection; beyond it the
// oldest leave the lane (they are still in the ordered stream).
const maxAlertQueue = 10000

func (s *Sink) queueAlert(ev *event.Event) {
	s.alertMu.Lock()
	if len(s.alertQ) >= maxAlertQueue {
		s.alertQ = s.alertQ[1:]
	}
	s.alertQ = append(s.alertQ, ev)
	s.alertMu.Unlock()
	poke(s.alertNew)
}

// takeAlerts returns the queued alerts not yet delivered in order.
func (s *Sink) takeAlerts() []*event.Event {
	s.alertMu.Lock()
	defer s.alertMu.Unlock()
	conf := s.confirmed.Load()
	var out []*event.Event
	for _, ev := range s.alertQ {
		if ev.Seq > conf {
			out = append(out, ev)
		}
	}
	s.alertQ = nil
	return out
}

func (s *Sink) requeueAlerts(evs []*event.Event) {
	s.alertMu.Lock()
	s.alertQ = append(append([]*event.Event(nil), evs...), s.alertQ...)
	if n := len(s.alertQ) - maxAlertQueue; n > 0 {
		s.alertQ = s.alertQ[n:]
	}
	s.alertMu.Unlock()
}

// acker writes the confirmed position to the log, coalescing: the store
// group-commits acks, but one per batch would still be a wasted fsync
// each when the drain is fast.
func (s *Sink) acker(ctx context.Context) {
	last := s.d.Log.Cursor(s.d.Name)
	flush := func(ctx context.Context) {
		if c := s.confirmed.Load(); c > last {
			if err := s.d.Log.Ack(ctx, s.d.Name, c); err != nil {
				if ctx.Err() == nil {
					s.log.Error("store ack failed", "seq", c, "err", err)
				}
				return
			}
			last = c
		}
	}
	for {
		select {
		case <-ctx.Done():
			// The daemon stops sinks before closing the store: save the
			// final position so a restart does not resend it.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			flush(fctx)
			cancel()
			return
		case <-s.ackWake:
			flush(ctx)
		}
	}
}

// confirm records in-order delivery up to seq.
func (s *Sink) confirm(seq uint64) {
	for {
		c := s.confirmed.Load()
		if seq <= c {
			break
		}
		if s.confirmed.CompareAndSwap(c, seq) {
			s.lastOK.Store(time.Now().UnixNano())
			break
		}
	}
	poke(s.ackWake)
}

// appAck is the platform's acknowledgement of one batch.
type appAck struct {
	Epoch string `json:"epoch"`
	Seq   uint64 `json:"seq"`
}

// flight is one batch sent and not yet confirmed.
type flight struct {
	first, last uint64
	tok         mqtt.Token
	sent        time.Time
	pubacked    bool
	appacked    bool
	fresh       bool   // its seqs were not sent before on this connection
	buf         []byte // the payload, reused once the batch is confirmed
}

// readEncoded fills bb from a Log without ReadRaw: decoded events,
// encoded again. It reports whether the batch is full (see pump).
func (s *Sink) readEncoded(bb *batchBuilder, next uint64, maxEv, maxBytes int) (bool, error) {
	evs, err := s.d.Log.Read(s.d.Name, next, maxEv)
	if err != nil {
		return false, err
	}
	for _, ev := range evs {
		js, err := ev.MarshalJSON()
		if err != nil {
			return false, fmt.Errorf("encode event %d: %w", ev.Seq, err)
		}
		if bb.n > 0 && bb.size()+len(js)+1 > maxBytes {
			return true, nil
		}
		bb.add(ev.Seq, js)
	}
	return len(evs) == maxEv, nil
}

// maxAckBackoff bounds the adaptive wait for a platform ack (timeouts
// and slow acks stretch it), in multiples of ack_timeout.
const maxAckBackoff = 8

// session runs one connection from connect to loss or ctx end.
func (s *Sink) session(ctx context.Context, broker string) error {
	conn := s.conns.Add(1)
	boot := s.d.Log.BootCount()
	opts := mqtt.NewClientOptions().
		AddBroker(broker).
		SetClientID(s.client).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(false).
		SetKeepAlive(s.o.KeepAlive.Std()).
		SetPingTimeout(10*time.Second).
		SetConnectTimeout(20*time.Second).
		SetWriteTimeout(30*time.Second).
		SetBinaryWill(s.topics.Status(), s.statusJSON("offline", boot, conn), 1, true)
	if s.o.Username != "" {
		opts.SetUsername(s.o.Username)
		if !s.o.Password.IsZero() {
			pw, err := s.o.Password.Reveal()
			if err != nil {
				return fmt.Errorf("read mqtt password (%s): %w", s.o.Password.Source(), err)
			}
			opts.SetPassword(pw)
		}
	}
	if s.o.UsesTLS() {
		tc, err := s.o.tlsConfig()
		if err != nil {
			return err
		}
		if tc.InsecureSkipVerify {
			// Logged at every connection on purpose: this must not go
			// unnoticed in production.
			s.log.Warn("tls server verification is off (tls.insecure_skip_verify): anyone on the path can read and forge the uplink", "broker", config.RedactURL(broker))
		}
		opts.SetTLSConfig(tc)
	}
	lost := make(chan error, 1)
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		select {
		case lost <- err:
		default:
		}
	})
	c := mqtt.NewClient(opts)
	if err := wait(ctx, c.Connect()); err != nil {
		c.Disconnect(0)
		return fmt.Errorf("connect %s: %w", config.RedactURL(broker), err)
	}
	acks := make(chan appAck, 1024)
	graceful := false
	defer func() {
		if graceful {
			// Our own offline status: Disconnect suppresses the will.
			t := c.Publish(s.topics.Status(), 1, true, s.statusJSON("offline", boot, conn))
			t.WaitTimeout(time.Second)
			c.Disconnect(250)
		} else {
			// Usually the connection is already gone and the broker
			// publishes the will; otherwise (a log read error) the next
			// connection's online status follows at once.
			c.Disconnect(0)
		}
	}()
	subs := map[string]byte{s.topics.Cmd(): 1}
	if s.o.AckMode == AckApplication {
		subs[s.topics.Ack()] = 1
	}
	subTok := c.SubscribeMultiple(subs, func(c mqtt.Client, m mqtt.Message) {
		switch m.Topic() {
		case s.topics.Cmd():
			s.onCommand(c, m)
		case s.topics.Ack():
			var a appAck
			if json.Unmarshal(m.Payload(), &a) != nil {
				s.log.Warn("bad ack message ignored", "bytes", len(m.Payload()))
				return
			}
			select {
			case acks <- a:
			default: // the ack timeout resends what this loses
			}
		}
	})
	if err := wait(ctx, subTok); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	// paho completes the token on any SUBACK: a refused subscription
	// (0x80, e.g. an ACL, or a NATS node that could not create its
	// JetStream consumer) would leave the gateway deaf to acks and
	// commands, resending its window every ack_timeout. Such a
	// connection is given up, and the next broker is tried.
	if err := checkSuback(subTok, subs); err != nil {
		s.log.Error("broker refused a subscription: connection given up", "broker", config.RedactURL(broker), "err", err)
		return err
	}
	mc := &mqttConn{c: c, conn: conn}
	s.cur.Store(mc)
	defer s.cur.CompareAndSwap(mc, nil)
	s.log.Info("uplink connected", "broker", config.RedactURL(broker), "conn", conn, "confirmed_seq", s.confirmed.Load())

	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); s.statusLoop(sctx, c, boot, conn) }()
	go func() { defer wg.Done(); s.alertLane(sctx, c) }()
	err := s.pump(sctx, c, lost, acks)
	cancel()
	wg.Wait()
	if ctx.Err() != nil {
		graceful = true
		return nil
	}
	return err
}

// subRefused is the SUBACK return code of a refused subscription.
const subRefused = 0x80

// SubscriptionRefusedError says which subscriptions a broker refused.
type SubscriptionRefusedError struct {
	Topics []string // refused, sorted
	Codes  []byte   // their SUBACK return codes
}

func (e *SubscriptionRefusedError) Error() string {
	parts := make([]string, len(e.Topics))
	for i, t := range e.Topics {
		parts[i] = fmt.Sprintf("%s (SUBACK 0x%02x)", t, e.Codes[i])
	}
	return "broker refused the subscription to " + strings.Join(parts, ", ") +
		": check the broker's ACL for this gateway (subscribe on {prefix}/ack and {prefix}/cmd); a NATS node also refuses when it cannot create the subscription's JetStream consumer"
}

// checkSuback checks the return code of every subscription in subs.
func checkSuback(t mqtt.Token, subs map[string]byte) error {
	st, ok := t.(*mqtt.SubscribeToken)
	if !ok {
		return nil
	}
	res := st.Result()
	var e SubscriptionRefusedError
	topics := make([]string, 0, len(subs))
	for topic := range subs {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	for _, topic := range topics {
		code, ok := res[topic]
		if !ok || code > 2 {
			if !ok {
				code = subRefused // no return code for it at all
			}
			e.Topics = append(e.Topics, topic)
			e.Codes = append(e.Codes, code)
		}
	}
	if len(e.Topics) > 0 {
		return &e
	}
	return nil
}

// wait waits for a token or ctx.
func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pollEvery bounds how long new events can sit unseen when the lossy
// subscription skipped the wake-up.
const pollEvery = time.Second

// pump sends the ordered stream on one connection.
func (s *Sink) pump(ctx context.Context, c mqtt.Client, lost <-chan error, acks <-chan appAck) error {
	epoch := s.d.Log.Epoch()
	h := header{lane: LaneEvents, gateway: s.d.Gateway, compound: s.d.Compound, epoch: epoch}
	topic := s.topics.Events(s.enc)
	maxEv := s.o.Batch.MaxEvents
	maxBytes := int(s.o.Batch.MaxBytes)
	linger := s.o.Batch.Linger.Std()
	appMode := s.o.AckMode == AckApplication
	next := s.confirmed.Load()
	var inflight []*flight
	var partial time.Time // when a short batch was first seen
	// In application mode a timeout resends the window. A platform that
	// is slow rather than lossy would then get one more window of
	// duplicates every ack_timeout, fall further behind and ack later
	// still: the drain collapses into resends. So the wait adapts, in the
	// manner of TCP's retransmission timer: each timeout doubles it, and
	// the ack of a batch sent for the first time on this connection (one
	// that cannot belong to an earlier copy: Karn's rule) raises it to
	// twice that batch's ack delay, or lets it fall by an eighth. It stays
	// within ack_timeout and maxAckBackoff × ack_timeout.
	base := s.o.AckTimeout.Std()
	ackWait := base
	var sentTo uint64 // highest seq sent on this connection
	timer := time.NewTimer(pollEvery)
	defer timer.Stop()
	bb := newBatchBuilder(h)
	rawLog, _ := s.d.Log.(RawLog)
	// Payload buffers come back once their batch is confirmed: paho holds
	// a payload until its PUBACK, so only a confirmed batch's is free.
	var free [][]byte
	var zbuf []byte // the uncompressed envelope when gzip is on
	loop := s.loopName()
	for {
		sdnotify.Beat(loop)
		wakeIn := pollEvery
		// Fill the window.
		for len(inflight) < s.o.Window {
			var buf []byte
			if s.o.Gzip {
				buf = zbuf
			} else if k := len(free); k > 0 {
				buf, free = free[k-1], free[:k-1]
			}
			bb.reset(buf)
			// full: the batch holds max_events, or the next event would
			// pass max_bytes; a batch that is not full may linger.
			var full bool
			var err error
			if rawLog != nil {
				_, _, err = rawLog.ReadRaw(s.d.Name, next, maxEv, func(r store.RawEvent) bool {
					if bb.n > 0 && bb.size()+len(r.JSON)+1 > maxBytes {
						full = true
						return false
					}
					bb.add(r.Seq, r.JSON)
					return true
				})
				full = full || bb.n == maxEv
			} else {
				full, err = s.readEncoded(bb, next, maxEv, maxBytes)
			}
			if err != nil {
				return fmt.Errorf("read log: %w", err)
			}
			unused := func() {
				if !s.o.Gzip {
					free = append(free, bb.buf)
				}
			}
			if bb.n == 0 {
				partial = time.Time{}
				unused()
				break
			}
			if !full && linger > 0 {
				if partial.IsZero() {
					partial = time.Now()
				}
				if w := linger - time.Since(partial); w > 0 {
					wakeIn = min(wakeIn, w)
					unused()
					break
				}
			}
			partial = time.Time{}
			n, first, last := bb.n, bb.first, bb.last
			payload, err := bb.finish(next, time.Now(), s.o.Gzip, nil)
			if err != nil {
				return err
			}
			var owned []byte // the buffer behind payload, to reuse
			if s.o.Gzip {
				zbuf = bb.buf // the envelope was copied into the compressed payload
			} else {
				owned = bb.buf
			}
			tok := c.Publish(topic, 1, false, payload)
			inflight = append(inflight, &flight{first: first, last: last, tok: tok, sent: time.Now(), fresh: last > sentTo, buf: owned})
			sentTo = max(sentTo, last)
			s.BatchesSent.Add(1)
			s.EventsSent.Add(uint64(n))
			s.BytesSent.Add(uint64(len(payload)))
			next = last
		}
		// Confirm the head of the window as far as possible.
		for len(inflight) > 0 {
			f := inflight[0]
			if !f.pubacked {
				if !isDone(f.tok) {
					break
				}
				if err := f.tok.Error(); err != nil {
					return fmt.Errorf("publish batch %d..%d: %w", f.first, f.last, err)
				}
				f.pubacked = true
			}
			if appMode && !f.appacked {
				break
			}
			if appMode && f.fresh {
				// Up at once to twice a slow ack's delay, down slowly.
				ackWait = min(max(2*time.Since(f.sent), ackWait-ackWait/8, base), maxAckBackoff*base)
			}
			s.confirm(f.last)
			if f.buf != nil && len(free) < s.o.Window {
				free = append(free, f.buf)
			}
			inflight = inflight[1:]
		}
		var headDone <-chan struct{}
		if len(inflight) > 0 {
			f := inflight[0]
			if !f.pubacked {
				// A PUBACK that does not come on a live connection means the
				// connection is stuck: give it up and resend on a new one.
				w := time.Until(f.sent.Add(s.o.AckTimeout.Std()))
				if w <= 0 {
					return fmt.Errorf("no PUBACK for batch %d..%d within ack_timeout %s", f.first, f.last, s.o.AckTimeout.Std())
				}
				wakeIn = min(wakeIn, w)
				headDone = f.tok.Done()
			} else if appMode {
				if w := time.Until(f.sent.Add(ackWait)); w <= 0 {
					waited := ackWait
					ackWait = min(2*ackWait, maxAckBackoff*base)
					s.log.Warn("no platform ack in time, resending from the confirmed seq", "batch_first", f.first, "batch_last", f.last,
						"confirmed_seq", s.confirmed.Load(), "waited", waited, "next_wait", ackWait)
					s.Rewinds.Add(1)
					inflight = inflight[:0]
					next = s.confirmed.Load()
					continue
				} else {
					wakeIn = min(wakeIn, w)
				}
			}
		}
		timer.Reset(wakeIn)
		select {
		case <-ctx.Done():
			return nil
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-headDone:
		case a := <-acks:
			if a.Epoch == epoch {
				for _, f := range inflight {
					if f.last == a.Seq {
						f.appacked = true
					}
				}
			}
		case from := <-s.rewind:
			s.Rewinds.Add(1)
			inflight = inflight[:0]
			// Never skip ahead of what is confirmed: that would lose the
			// events in between.
			next = min(from-1, s.confirmed.Load())
			partial = time.Time{}
		case <-s.dataWake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

func isDone(t mqtt.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// alertLane publishes urgent events as soon as they are durable, on the
// same connection as the backlog but without waiting behind its window.
func (s *Sink) alertLane(ctx context.Context, c mqtt.Client) {
	topic := s.topics.Alerts(EncJSON)
	h := header{lane: LaneAlerts, gateway: s.d.Gateway, compound: s.d.Compound, epoch: s.d.Log.Epoch()}
	poke(s.alertNew) // alerts queued while disconnected go first
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.alertNew:
		}
		evs := s.takeAlerts()
		if len(evs) == 0 {
			continue
		}
		toks := make([]mqtt.Token, len(evs))
		for i, ev := range evs {
			js, err := ev.MarshalJSON()
			if err != nil {
				s.log.Error("encode alert", "seq", ev.Seq, "err", err)
				continue
			}
			p, _ := encodeBatch(h, ev.Seq-1, ev.Seq, ev.Seq, [][]byte{js}, time.Now(), false)
			toks[i] = c.Publish(topic, 1, false, p)
		}
		var failed []*event.Event
		for i, t := range toks {
			if t == nil {
				continue
			}
			if err := wait(ctx, t); err != nil {
				failed = append(failed, evs[i])
				continue
			}
			s.AlertsSent.Add(1)
		}
		if len(failed) > 0 {
			// The connection is going down; the next one sends them first.
			s.requeueAlerts(failed)
			return
		}
	}
}

// Status is the retained message on {prefix}/status. A consumer keeps
// the message with the highest (boot, conn): an offline will from an
// older connection that arrives late never overrides a newer online.
type Status struct {
	State    string                  `json:"state"` // online | offline
	Gateway  string                  `json:"gateway"`
	Compound string                  `json:"compound"`
	Boot     uint64                  `json:"boot"` // store boot counter
	Conn     uint64                  `json:"conn"` // connection number within this boot
	Version  string                  `json:"version,omitempty"`
	Time     time.Time               `json:"time"`
	Clock    event.TimeQuality       `json:"clock"`
	UptimeS  int64                   `json:"uptime_s"`
	Epoch    string                  `json:"epoch,omitempty"`
	LastSeq  uint64                  `json:"last_seq,omitempty"`
	Backlog  map[string]BacklogState `json:"backlog,omitempty"`
}

// BacklogState is one sink's undelivered part of the log.
type BacklogState struct {
	Cursor     uint64  `json:"cursor"`
	Events     uint64  `json:"events"`       // upper bound: dropped seqs count
	OldestAgeS float64 `json:"oldest_age_s"` // store-monotonic age of the oldest unacked event
}

func (s *Sink) statusJSON(state string, boot, conn uint64) []byte {
	now, q := s.d.Clock.Now()
	st := Status{
		State: state, Gateway: s.d.Gateway, Compound: s.d.Compound, Boot: boot, Conn: conn,
		Version: s.d.Version, Time: now.UTC().Truncate(time.Millisecond), Clock: q,
		UptimeS: int64(time.Since(s.started).Seconds()),
	}
	if state == "online" {
		ls := s.d.Log.Stats()
		st.Epoch, st.LastSeq = ls.Epoch, ls.LastSeq
		st.Backlog = map[string]BacklogState{}
		for name, ss := range ls.Sinks {
			st.Backlog[name] = BacklogState{Cursor: ss.Cursor, Events: ss.Backlog, OldestAgeS: ss.OldestUnackedAge.Seconds()}
		}
	}
	b, _ := json.Marshal(st)
	return b
}

func (s *Sink) statusLoop(ctx context.Context, c mqtt.Client, boot, conn uint64) {
	t := time.NewTicker(s.o.StatusInterval.Std())
	defer t.Stop()
	for {
		tok := c.Publish(s.topics.Status(), 1, true, s.statusJSON("online", boot, conn))
		if err := wait(ctx, tok); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// inbound is one message from the command topic.
type inbound struct {
	payload []byte
}

// onCommand takes a message off the command topic (paho's handler
// goroutine): into the queue, or at once a "busy" result.
func (s *Sink) onCommand(c mqtt.Client, m mqtt.Message) {
	if len(m.Payload()) == 0 {
		// Clearing a retained message delivers an empty one: not a
		// command, and nothing to answer.
		return
	}
	in := inbound{payload: m.Payload()}
	if m.Retained() {
		// Never queued: a retained command would run again at every
		// connection.
		r := claimed(in.payload)
		r.Reason = ReasonRetained
		r.Detail = "a retained message on the command topic is never applied (it would run again at every connection); clear it: mosquitto_pub -r -n -t " + s.topics.Cmd()
		s.refused(c, &r, true)
		return
	}
	select {
	case s.cmdq <- in:
	default:
		r := claimed(in.payload)
		r.Reason, r.Detail = ReasonBusy, fmt.Sprintf("%d commands are waiting: nothing applied, send again with the same id", cap(s.cmdq))
		s.CommandsBusy.Add(1)
		s.refused(c, &r, false)
	}
}

// refused answers and audits one refusal.
func (s *Sink) refused(c mqtt.Client, r *Refusal, retained bool) {
	s.CommandsRefused.Add(1)
	s.audit.refuse(r, retained)
	res := CommandResult{ID: r.ID, Command: r.Command, Refused: r.Reason, Error: r.Error()}
	if c != nil {
		publishResult(c, s.topics.CmdResult(), res)
		return
	}
	s.publishResult(res)
}

// commandBatch bounds how many queued commands are checked together; their
// ids are recorded in one round of concurrent, group-committed writes.
const commandBatch = 64

// commands checks and applies downlink commands in arrival order, one at
// a time; see docs/city-platform.md "Commands".
func (s *Sink) commands(ctx context.Context) {
	batch := make([]inbound, 0, commandBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case in := <-s.cmdq:
			batch = append(batch, in)
		}
	fill:
		for len(batch) < commandBatch {
			select {
			case in := <-s.cmdq:
				batch = append(batch, in)
			default:
				break fill
			}
		}
		s.handleBatch(ctx, batch)
	}
}

// pruneEvery is how often expired ids are forgotten.
var pruneEvery = 10 * time.Minute

// pruner forgets expired command ids, beside the command loop (deleting
// many ids takes a while and must not hold commands up).
func (s *Sink) pruner(ctx context.Context) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		s.pruneSeen(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sink) pruneSeen(ctx context.Context) {
	now, q := s.d.Clock.Now()
	if q != event.Synced || now.Before(edge.EarliestSane) {
		return
	}
	n, err := s.seen.prune(ctx, now)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("forgetting expired command ids", "err", err, "forgotten", n)
	} else if n > 0 {
		s.log.Debug("expired command ids forgotten", "count", n, "kept", s.seen.len())
	}
}

func (s *Sink) handleBatch(ctx context.Context, batch []inbound) {
	now, q := s.d.Clock.Now()
	var ok []Verified
	var ids []string
	var entries []seenEntry
	inBatch := map[string]bool{}
	loadErr := s.seen.err()
	room := s.seen.room()
	for _, in := range batch {
		v, err := s.verifier.Verify(in.payload, now, q)
		if err != nil {
			var r *Refusal
			if !errors.As(err, &r) {
				r = &Refusal{Reason: ReasonMalformed, Detail: err.Error()}
			}
			s.refused(nil, r, false)
			continue
		}
		claims := Refusal{ID: v.ID, Command: v.Command.Command, Actor: sanitize(v.Claimed), KeyID: v.KeyID}
		if prev, seen := s.seen.get(v.ID); seen || inBatch[v.ID] {
			r := claims
			r.Reason = ReasonReplay
			r.Detail = "command id already received"
			if seen {
				r.Detail += " at " + time.UnixMilli(prev.Recv).UTC().Format(time.RFC3339)
			}
			r.Detail += ": never applied twice; a new command needs a new id"
			res := CommandResult{ID: r.ID, Command: r.Command, Refused: r.Reason, Error: r.Error()}
			if orig, ok := s.recent.get(v.ID); ok {
				res.Original = &orig
			}
			s.CommandsRefused.Add(1)
			s.audit.refuse(&r, false)
			s.publishResult(res)
			continue
		}
		if loadErr != nil {
			r := claims
			r.Reason, r.Detail = ReasonUnavailable, "the record of seen command ids could not be read: no command is applied until the gateway restarts cleanly"
			s.refused(nil, &r, false)
			continue
		}
		if len(ids) >= room {
			r := claims
			r.Reason, r.Detail = ReasonBusy, fmt.Sprintf("%d command ids are remembered against replay (max_seen): wait for older commands to expire", s.o.Commands.MaxSeen)
			s.refused(nil, &r, false)
			continue
		}
		inBatch[v.ID] = true
		ok = append(ok, v)
		ids = append(ids, v.ID)
		entries = append(entries, seenEntry{Keep: v.KeepUntil.UnixMilli(), Recv: now.UnixMilli()})
	}
	if len(ok) == 0 {
		return
	}
	// Durable before anything is applied.
	errs := s.seen.record(ctx, ids, entries)
	for i, v := range ok {
		if errs[i] != nil {
			r := Refusal{ID: v.ID, Command: v.Command.Command, Actor: sanitize(v.Claimed), KeyID: v.KeyID,
				Reason: ReasonUnavailable, Detail: "could not record the command id durably: nothing applied, send it again with a new id"}
			s.log.Error("record command id", "id", v.ID, "err", errs[i])
			s.refused(nil, &r, false)
			continue
		}
		s.apply(ctx, v)
	}
}

// apply runs one verified, recorded command and publishes its result.
func (s *Sink) apply(ctx context.Context, v Verified) {
	cmd := v.Command
	res := CommandResult{ID: cmd.ID, Command: cmd.Command}
	var out any
	var err error
	switch {
	case cmd.Command == CmdResend:
		out, err = s.resend(ctx, cmd)
	case s.d.Commands == nil:
		err = fmt.Errorf("%w %q", edge.ErrUnknownCommand, cmd.Command)
	default:
		out, err = s.d.Commands.Dispatch(ctx, cmd.Command, cmd.Args, cmd.Actor, "mqtt")
	}
	res.Result = out
	if err != nil {
		res.Error = err.Error()
		res.Refused = ReasonRejected
		s.CommandsRefused.Add(1)
		s.audit.refuse(&Refusal{Reason: ReasonRejected, Detail: err.Error(), ID: cmd.ID, Command: cmd.Command,
			Actor: sanitize(v.Claimed), KeyID: v.KeyID}, false)
	} else {
		res.OK = true
		s.CommandsApplied.Add(1)
		s.log.Info("downlink command applied", "id", cmd.ID, "command", cmd.Command, "actor", cmd.Actor)
	}
	s.recent.put(cmd.ID, CommandResult{ID: res.ID, Command: res.Command, OK: res.OK, Error: res.Error, Refused: res.Refused})
	s.publishResult(res)
}

func (s *Sink) publishResult(res CommandResult) {
	mc := s.cur.Load()
	if mc == nil {
		return // the platform times out and sends a new command
	}
	publishResult(mc.c, s.topics.CmdResult(), res)
}

func publishResult(c mqtt.Client, topic string, res CommandResult) {
	b, err := json.Marshal(res)
	if err != nil {
		b, _ = json.Marshal(CommandResult{ID: res.ID, Command: res.Command, OK: res.OK, Refused: res.Refused, Error: "result not encodable"})
	}
	c.Publish(topic, 1, false, b)
}

func (s *Sink) resend(ctx context.Context, cmd Command) (any, error) {
	a, err := decodeResend(cmd.Args, s.d.Log.LastSeq())
	if err != nil {
		return nil, err
	}
	select {
	case <-s.rewind: // a newer request replaces an unserved one
	default:
	}
	s.rewind <- a.FromSeq
	poke(s.dataWake)
	if s.d.Emit != nil {
		ev := event.New(event.CommandApplied).WithData(map[string]any{
			"command": cmd.Command, "actor": cmd.Actor, "via": "mqtt", "args": cmd.Args,
		})
		if err := s.d.Emit.Emit(ctx, ev); err != nil {
			return nil, fmt.Errorf("resend applied but audit event not recorded: %w", err)
		}
	}
	// The log deletes a record once every sink has acked it: what was
	// already deleted cannot be resent, and the result says so.
	out := map[string]uint64{"from_seq": a.FromSeq, "last_seq": s.d.Log.LastSeq()}
	if evs, err := s.d.Log.Read(s.d.Name, a.FromSeq-1, 1); err == nil && len(evs) == 1 {
		out["first_available_seq"] = evs[0].Seq
	}
	return out, nil
}

// resultCache remembers the last results by command id.
type resultCache struct {
	max   int
	order []string
	m     map[string]CommandResult
}

func newResultCache(n int) *resultCache {
	return &resultCache{max: n, m: map[string]CommandResult{}}
}

func (c *resultCache) get(id string) (CommandResult, bool) { r, ok := c.m[id]; return r, ok }

func (c *resultCache) put(id string, r CommandResult) {
	if _, ok := c.m[id]; !ok {
		c.order = append(c.order, id)
		if len(c.order) > c.max {
			delete(c.m, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.m[id] = r
}

// running holds the sinks whose Run is active, for the status page.
var running sync.Map // *Sink → struct{}

// State is what a running sink tells the status page.
type State struct {
	Gateway     string
	Name        string
	Connected   bool
	Confirmed   uint64
	LastSuccess time.Time // last in-order confirmed delivery
	LastError   string    // why the last connection ended (credentials removed)
}

// Snapshots reports every running sink of this process.
func Snapshots() []State {
	var out []State
	running.Range(func(k, _ any) bool {
		s := k.(*Sink)
		st := State{Gateway: s.d.Gateway, Name: s.d.Name, Connected: s.cur.Load() != nil, Confirmed: s.confirmed.Load()}
		if ns := s.lastOK.Load(); ns != 0 {
			st.LastSuccess = time.Unix(0, ns)
		}
		if e := s.lastErr.Load(); e != nil {
			st.LastError = *e
		}
		out = append(out, st)
		return true
	})
	return out
}

// setLastErr keeps why a connection ended, with the broker URL's and the
// password's text removed: the status page shows it.
func (s *Sink) setLastErr(err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	urls := s.urls
	if len(urls) == 0 {
		urls = s.o.URLs() // a sink not built through New (tests)
	}
	for _, b := range urls {
		msg = strings.ReplaceAll(msg, b, config.RedactURL(b))
	}
	if pw, perr := s.o.Password.Reveal(); perr == nil && pw != "" {
		msg = strings.ReplaceAll(msg, pw, config.Redacted)
	}
	s.lastErr.Store(&msg)
}

// loopName names the sink's loop for the watchdog's liveness registry.
func (s *Sink) loopName() string { return "uplink/" + s.d.Gateway + "/" + s.d.Name }

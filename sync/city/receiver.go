package city

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// ReceiverOptions configures the reference receiver.
type ReceiverOptions struct {
	Broker string
	// Filter matches gateway prefixes, e.g. "lintel/v1/+/+" for every
	// gateway of every compound; the receiver subscribes to
	// Filter/events/+ and Filter/alerts/+.
	Filter string
	// ShareGroup, if set, subscribes as $share/<group>/…: the broker then
	// splits the messages among the receivers of the group.
	ShareGroup string
	ClientID   string
	Username   string
	Password   string
	TLS        *tls.Config
	// Ack sends the application ack {epoch, seq} for every good batch on
	// the events lane, after its events are written and synced.
	Ack bool
	// GapCheck (with Ack) refuses, unacknowledged, an events batch whose
	// prev_seq is beyond what this receiver has of the gateway: the batch
	// before it was lost (e.g. published while the receiver was away),
	// and the gateway resends from its confirmed seq after ack_timeout.
	// This keeps each gateway's stream complete and in order at this
	// receiver. Turn it off when a shared subscription spreads one
	// gateway's batches over several receivers (round-robin): then no
	// receiver sees a complete chain and the platform orders by seq.
	GapCheck bool
	// Out receives one JSON line per new event. Sync, if set, is called
	// before acks are sent (an fsync of the output file).
	Out  io.Writer
	Sync func() error
	// OnEvent, if set, is called for each new event as it is written.
	OnEvent func(lane string, ev *event.Event, at time.Time)
	Logger  *slog.Logger
}

// Receiver subscribes to gateway uplinks, checks every batch, drops
// duplicates by event id and writes what is new.
//
// It also accounts for the seqs of each gateway:epoch stream. The
// gateway's log declares every seq it will never send with an event that
// follows the range in the same epoch: store.dropped (quota, retention),
// store.lost (storage damage) and store.seq_skipped (seqs reserved but
// never used, after an unclean stop). A seq the receiver has neither
// received nor seen declared, between the lowest seq it has and the
// highest it has on the events lane, is an undeclared hole: 0 on a healthy
// gateway once the stream has caught up (see [Receiver.Holes]).
type Receiver struct {
	o          ReceiverOptions
	mu         sync.Mutex
	streams    map[string]*stream // gateway:epoch
	q          chan mqtt.Message
	werr       error          // first output write error: Run stops, nothing more is acked
	subscribed [2]atomic.Bool // events, alerts lane

	Batches         atomic.Uint64
	Events          atomic.Uint64 // new events written
	Duplicates      atomic.Uint64
	BadBatches      atomic.Uint64
	OrderViolations atomic.Uint64 // a new events-lane event below one already received
	Gaps            atomic.Uint64 // batches refused by the gap check
	AcksSent        atomic.Uint64

	// Seq accounting over every stream (also those read by LoadSeen).
	//
	// Received counts the distinct seqs held, on either lane. Declared
	// counts the seqs in ranges the gateway declared missing that were not
	// received (by reason: [Receiver.DeclaredByReason]). Holes counts the
	// seqs from each stream's lowest held seq to its highest on the events
	// lane that were neither received nor declared. A hole can be
	// transient: a drop made while the uplink was down is declared at the
	// head of the log, so its range shows as a hole until the drain
	// reaches the declaration. One that stays after the stream caught up
	// with the gateway's status last_seq is a real loss.
	Received        atomic.Uint64
	Declared        atomic.Uint64
	Holes           atomic.Uint64
	BadDeclarations atomic.Uint64 // declarations ignored: no range, or a range not before the declaring event
}

// stream is what the receiver knows of one gateway:epoch.
type stream struct {
	got       seqSet             // seqs received, either lane
	evMax     uint64             // highest seq on the events lane
	have      uint64             // end of the contiguous chain (gap check)
	haveKnown bool               // have is set (a batch or LoadSeen)
	declared  seqSet             // union of the declared ranges
	reasons   map[string]*seqSet // declared ranges by "dropped/quota", "lost/…", "skipped/…"
	missing   uint64             // cached |declared \ got|
	holes     uint64             // cached undeclared holes
}

// NewReceiver returns a receiver; Run connects it.
func NewReceiver(o ReceiverOptions) (*Receiver, error) {
	if o.Broker == "" || o.Filter == "" || o.Logger == nil {
		return nil, errors.New("receiver: broker, filter and logger are required")
	}
	if o.ClientID == "" {
		o.ClientID = fmt.Sprintf("lintel-receive-%d", time.Now().UnixNano()%1e9)
	}
	return &Receiver{o: o, streams: map[string]*stream{}, q: make(chan mqtt.Message, 4096)}, nil
}

// Subscribed reports whether both lanes' subscriptions are in place on
// live connections: from then on nothing a gateway publishes is missed.
func (r *Receiver) Subscribed() bool {
	return r.subscribed[0].Load() && r.subscribed[1].Load()
}

func (r *Receiver) stream(k string) *stream {
	st := r.streams[k]
	if st == nil {
		st = &stream{reasons: map[string]*seqSet{}}
		r.streams[k] = st
	}
	return st
}

// LoadSeen reads a JSON-lines file written earlier, so a restarted
// receiver does not write again what it already has.
func (r *Receiver) LoadSeen(rd io.Reader) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	r.mu.Lock()
	defer r.mu.Unlock()
	touched := map[string]*stream{}
	for sc.Scan() {
		var v struct {
			ID   string          `json:"id"`
			Kind event.Kind      `json:"kind"`
			Data json.RawMessage `json:"data"`
		}
		if json.Unmarshal(sc.Bytes(), &v) != nil {
			continue
		}
		gw, ep, seq, err := event.ParseID(v.ID)
		if err != nil {
			continue
		}
		k := gw + ":" + ep
		st := r.stream(k)
		touched[k] = st
		if st.got.add(seq, seq) == 1 {
			r.Received.Add(1)
		}
		if isDeclaration(v.Kind) {
			r.declare(st, &event.Event{ID: v.ID, Seq: seq, Kind: v.Kind, Data: v.Data})
		}
		st.evMax = max(st.evMax, seq)
		st.have, st.haveKnown = st.evMax, true
	}
	for _, st := range touched {
		r.account(st)
	}
	return sc.Err()
}

// Declaration kinds: the gateway's log says which seqs it will never send.
func isDeclaration(k event.Kind) bool {
	return k == event.StoreDropped || k == event.StoreLost || k == event.StoreSeqSkipped
}

// declRange is the part of a declaration's data the receiver uses.
// Ranges, if given, are the exact runs inside FirstSeq..LastSeq
// (store.lost lists them when damage hit several places).
type declRange struct {
	FirstSeq uint64      `json:"first_seq"`
	LastSeq  uint64      `json:"last_seq"`
	Reason   string      `json:"reason"`
	Ranges   [][2]uint64 `json:"ranges"`
}

// maxDeclRanges bounds the runs one declaration may list.
const maxDeclRanges = 4096

// maxReasons bounds the reasons kept per stream; others count as "other".
const maxReasons = 16

// declare records the range ev declares missing. A declaration always
// follows its range in the same epoch, so one whose range is not wholly
// below its own seq is malformed and ignored.
func (r *Receiver) declare(st *stream, ev *event.Event) {
	var d declRange
	ok := json.Unmarshal(ev.Data, &d) == nil && d.FirstSeq != 0 && d.FirstSeq <= d.LastSeq && d.LastSeq < ev.Seq && len(d.Ranges) <= maxDeclRanges
	for _, rg := range d.Ranges {
		ok = ok && d.FirstSeq <= rg[0] && rg[0] <= rg[1] && rg[1] <= d.LastSeq
	}
	if !ok {
		r.BadDeclarations.Add(1)
		r.o.Logger.Warn("declaration of missing seqs ignored: want data.first_seq ≤ data.last_seq < its own seq, data.ranges inside them",
			"id", ev.ID, "kind", ev.Kind, "first_seq", d.FirstSeq, "last_seq", d.LastSeq)
		return
	}
	if len(d.Ranges) == 0 {
		d.Ranges = [][2]uint64{{d.FirstSeq, d.LastSeq}}
	}
	key := strings.TrimPrefix(string(ev.Kind), "store.")
	if key == "seq_skipped" {
		key = "skipped"
	}
	key += "/" + reasonLabel(d.Reason)
	set := st.reasons[key]
	if set == nil {
		if len(st.reasons) >= maxReasons {
			key = strings.SplitN(key, "/", 2)[0] + "/other"
			set = st.reasons[key]
		}
		if set == nil {
			set = &seqSet{}
			st.reasons[key] = set
		}
	}
	for _, rg := range d.Ranges {
		set.add(rg[0], rg[1])
		st.declared.add(rg[0], rg[1])
	}
}

// reasonLabel keeps a declared reason if it is a short word, so that a
// gateway cannot fill a summary line with arbitrary text.
func reasonLabel(s string) string {
	if s == "" {
		return "unspecified"
	}
	if len(s) > 32 || strings.IndexFunc(s, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.')
	}) >= 0 {
		return "other"
	}
	return s
}

// account recomputes st's declared and hole counts and moves the totals
// by the difference.
func (r *Receiver) account(st *stream) {
	decl := st.declared.minus(&st.got)
	var holes uint64
	if lo, _, ok := st.got.bounds(); ok && st.evMax >= lo {
		holes = missing(lo, st.evMax, &st.got, &st.declared)
	}
	r.Declared.Add(decl - st.missing) // mod 2^64: also a decrease
	r.Holes.Add(holes - st.holes)
	st.missing, st.holes = decl, holes
}

// DeclaredByReason splits [Receiver.Declared] by "dropped/quota",
// "dropped/retention", "lost/<reason>" and "skipped/<reason>". A seq that
// two declarations of different reasons cover counts under both here and
// once in Declared.
func (r *Receiver) DeclaredByReason() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]uint64{}
	for _, st := range r.streams {
		for k, set := range st.reasons {
			if n := set.minus(&st.got); n > 0 {
				out[k] += n
			}
		}
	}
	return out
}

// StreamReport is the seq accounting of one gateway:epoch.
type StreamReport struct {
	Gateway, Epoch   string
	Received         uint64            // distinct seqs held
	FirstSeq         uint64            // lowest seq held
	LastSeq          uint64            // highest seq on the events lane
	Declared         uint64            // declared missing, not received
	ByReason         map[string]uint64 // Declared by reason
	Holes            uint64            // neither received nor declared, FirstSeq..LastSeq
	HoleRanges       [][2]uint64       // the first holes, as [first, last]
	HoleRangesCapped bool              // more holes than HoleRanges lists
}

// maxHoleRanges bounds StreamReport.HoleRanges.
const maxHoleRanges = 8

// Streams reports every stream, sorted by gateway and epoch.
func (r *Receiver) Streams() []StreamReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]StreamReport, 0, len(r.streams))
	for k, st := range r.streams {
		i := strings.LastIndexByte(k, ':')
		rep := StreamReport{Gateway: k[:i], Epoch: k[i+1:], Received: st.got.len(), LastSeq: st.evMax,
			Declared: st.missing, Holes: st.holes, ByReason: map[string]uint64{}}
		rep.FirstSeq, _, _ = st.got.bounds()
		for rk, set := range st.reasons {
			if n := set.minus(&st.got); n > 0 {
				rep.ByReason[rk] = n
			}
		}
		if st.holes > 0 {
			rep.HoleRanges, rep.HoleRangesCapped = holeRanges(rep.FirstSeq, st.evMax, &st.got, &st.declared, maxHoleRanges)
		}
		out = append(out, rep)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Gateway != out[j].Gateway {
			return out[i].Gateway < out[j].Gateway
		}
		return out[i].Epoch < out[j].Epoch
	})
	return out
}

// Run receives until ctx ends. The alert lane has its own connection:
// on a shared one, an alert would queue at the broker behind every batch
// the receiver has not yet taken, which is what the lane exists to avoid.
func (r *Receiver) Run(ctx context.Context) error {
	share := ""
	if r.o.ShareGroup != "" {
		share = "$share/" + r.o.ShareGroup + "/"
	}
	alertq := make(chan mqtt.Message, 1024)
	var evConn atomic.Pointer[mqttClient] // the events lane's client while connected: acks go out on it
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		r.keep(ctx, r.o.ClientID, share+r.o.Filter+"/events/+", r.q, &r.subscribed[0], &evConn)
	}()
	go func() {
		defer wg.Done()
		r.keep(ctx, r.o.ClientID+"-alerts", share+r.o.Filter+"/alerts/+", alertq, &r.subscribed[1], nil)
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-alertq:
				r.handle(m)
			}
		}
	}()
	defer wg.Wait()
	var pending []pendingAck
	for {
		var m mqtt.Message
		select {
		case <-ctx.Done():
			return nil
		case m = <-r.q:
		}
		// Group commit: write everything queued, sync once, then ack.
		for {
			if a, ok := r.handle(m); ok {
				pending = append(pending, a)
			}
			select {
			case m = <-r.q:
				continue
			default:
			}
			break
		}
		if err := r.writeErr(); err != nil {
			return err
		}
		if len(pending) == 0 {
			continue
		}
		if r.o.Sync != nil {
			if err := r.o.Sync(); err != nil {
				return fmt.Errorf("sync output: %w", err)
			}
		}
		if c := evConn.Load(); c != nil && r.o.Ack {
			// An ack lost with its connection costs the gateway one resend
			// after its ack_timeout; the duplicates are dropped here.
			for _, a := range pending {
				b, _ := json.Marshal(appAck{Epoch: a.epoch, Seq: a.seq})
				c.Publish(a.prefix+"/ack", 1, false, b)
				r.AcksSent.Add(1)
			}
		}
		pending = pending[:0]
	}
}

func (r *Receiver) writeErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.werr
}

// mqttClient names the interface so that an atomic.Pointer can hold it.
type mqttClient struct{ mqtt.Client }

// keep holds one subscription to filter until ctx ends, queueing its
// messages in arrival order. It owns the reconnect loop (a new client per
// connection, paho's AutoReconnect off), as the sink does: after an
// automatic reconnect paho resends the stored QoS 1 acks while its
// writer may still hold them, a data race in the library
// (paho.mqtt.golang#703). Retries back off from 250 ms to at most 2 s, so
// the receiver is back within about 2 s of the broker.
func (r *Receiver) keep(ctx context.Context, id, filter string, q chan mqtt.Message, subscribed *atomic.Bool, cur *atomic.Pointer[mqttClient]) {
	handler := func(_ mqtt.Client, m mqtt.Message) {
		select {
		case q <- m:
		case <-ctx.Done():
		}
	}
	bo := newBackoff(250*time.Millisecond, 2*time.Second)
	failing := false
	for ctx.Err() == nil {
		lost := make(chan error, 1)
		opts := mqtt.NewClientOptions().AddBroker(r.o.Broker).SetClientID(id).
			SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
			SetConnectTimeout(10 * time.Second).SetKeepAlive(30 * time.Second).
			// In order: the handler only queues, and the queue keeps the
			// broker's order for the integrity and ordering checks.
			SetOrderMatters(true).
			SetConnectionLostHandler(func(_ mqtt.Client, err error) {
				select {
				case lost <- err:
				default:
				}
			})
		if r.o.Username != "" {
			opts.SetUsername(r.o.Username).SetPassword(r.o.Password)
		}
		if r.o.TLS != nil {
			opts.SetTLSConfig(r.o.TLS)
		}
		c := mqtt.NewClient(opts)
		err := wait(ctx, c.Connect())
		if err == nil {
			if err = wait(ctx, c.Subscribe(filter, 1, handler)); err != nil {
				err = fmt.Errorf("subscribe %s: %w", filter, err)
			}
		}
		if err != nil {
			c.Disconnect(0)
			if ctx.Err() != nil {
				return
			}
			if !failing {
				r.o.Logger.Warn("receiver cannot connect, retrying", "broker", config.RedactURL(r.o.Broker), "filter", filter, "err", err)
				failing = true
			}
			sleep(ctx, bo.next())
			continue
		}
		failing = false
		bo.reset()
		r.o.Logger.Info("receiver connected", "broker", config.RedactURL(r.o.Broker), "filter", filter)
		if cur != nil {
			cur.Store(&mqttClient{c})
		}
		subscribed.Store(true)
		select {
		case <-ctx.Done():
		case err = <-lost:
			r.o.Logger.Warn("receiver connection lost", "err", err)
		}
		subscribed.Store(false)
		if cur != nil {
			cur.Store(nil)
		}
		if ctx.Err() != nil {
			c.Disconnect(250)
			return
		}
		c.Disconnect(0)
		sleep(ctx, bo.next())
	}
}

type pendingAck struct {
	prefix, epoch string
	seq           uint64
}

// handle checks one message and writes its new events; it returns the ack
// owed for a good events-lane batch.
func (r *Receiver) handle(m mqtt.Message) (pendingAck, bool) {
	now := time.Now()
	topic := m.Topic()
	i := strings.LastIndexByte(topic, '/')
	if i < 0 {
		return pendingAck{}, false
	}
	enc := topic[i+1:]
	rest := topic[:i]
	j := strings.LastIndexByte(rest, '/')
	if j < 0 {
		return pendingAck{}, false
	}
	prefix, lane := rest[:j], rest[j+1:]
	b, evs, err := DecodeBatch(enc, m.Payload())
	if err == nil && b.Lane != lane {
		err = fmt.Errorf("lane %q on topic %s", b.Lane, topic)
	}
	if err != nil {
		r.BadBatches.Add(1)
		r.o.Logger.Warn("bad batch dropped, not acknowledged", "topic", topic, "err", err)
		return pendingAck{}, false
	}
	r.Batches.Add(1)
	r.mu.Lock()
	st := r.stream(b.Gateway + ":" + b.Epoch)
	if lane == LaneEvents && r.o.Ack && r.o.GapCheck {
		if st.haveKnown && b.PrevSeq > st.have {
			r.mu.Unlock()
			r.Gaps.Add(1)
			return pendingAck{}, false
		}
		st.have, st.haveKnown = max(st.have, b.LastSeq), true
	}
	for _, ev := range evs {
		fresh := st.got.add(ev.Seq, ev.Seq) == 1
		if lane == LaneEvents {
			if fresh && ev.Seq < st.evMax {
				r.OrderViolations.Add(1)
			}
			st.evMax = max(st.evMax, ev.Seq)
		}
		if !fresh {
			r.Duplicates.Add(1)
			continue
		}
		r.Received.Add(1)
		if isDeclaration(ev.Kind) {
			r.declare(st, ev)
		}
		r.Events.Add(1)
		if r.o.Out != nil && r.werr == nil {
			js, _ := ev.MarshalJSON()
			js = append(js, '\n')
			if _, err := r.o.Out.Write(js); err != nil {
				r.werr = fmt.Errorf("write output: %w", err)
			}
		}
		if r.o.OnEvent != nil {
			r.o.OnEvent(lane, ev, now)
		}
	}
	r.account(st)
	r.mu.Unlock()
	if lane != LaneEvents {
		return pendingAck{}, false
	}
	return pendingAck{prefix: prefix, epoch: b.Epoch, seq: b.LastSeq}, true
}

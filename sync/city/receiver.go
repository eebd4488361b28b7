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
type Receiver struct {
	o    ReceiverOptions
	mu   sync.Mutex
	seen map[string]map[uint64]struct{} // gateway:epoch → seqs
	max  map[string]uint64              // gateway:epoch → highest seq on the events lane
	have map[string]uint64              // gateway:epoch → end of the contiguous chain received
	q    chan mqtt.Message
	werr error // first output write error: Run stops, nothing more is acked

	Batches         atomic.Uint64
	Events          atomic.Uint64 // new events written
	Duplicates      atomic.Uint64
	BadBatches      atomic.Uint64
	OrderViolations atomic.Uint64 // a new events-lane event below one already received
	Gaps            atomic.Uint64 // batches refused by the gap check
	AcksSent        atomic.Uint64
}

// NewReceiver returns a receiver; Run connects it.
func NewReceiver(o ReceiverOptions) (*Receiver, error) {
	if o.Broker == "" || o.Filter == "" || o.Logger == nil {
		return nil, errors.New("receiver: broker, filter and logger are required")
	}
	if o.ClientID == "" {
		o.ClientID = fmt.Sprintf("lintel-receive-%d", time.Now().UnixNano()%1e9)
	}
	return &Receiver{o: o, seen: map[string]map[uint64]struct{}{}, max: map[string]uint64{}, have: map[string]uint64{}, q: make(chan mqtt.Message, 4096)}, nil
}

// LoadSeen reads a JSON-lines file written earlier, so a restarted
// receiver does not write again what it already has.
func (r *Receiver) LoadSeen(rd io.Reader) error {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	r.mu.Lock()
	defer r.mu.Unlock()
	for sc.Scan() {
		var v struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(sc.Bytes(), &v) != nil {
			continue
		}
		gw, ep, seq, err := event.ParseID(v.ID)
		if err != nil {
			continue
		}
		k := gw + ":" + ep
		r.mark(k, seq)
		r.max[k] = max(r.max[k], seq)
		r.have[k] = r.max[k]
	}
	return sc.Err()
}

func (r *Receiver) mark(k string, seq uint64) bool {
	m := r.seen[k]
	if m == nil {
		m = map[uint64]struct{}{}
		r.seen[k] = m
	}
	if _, dup := m[seq]; dup {
		return false
	}
	m[seq] = struct{}{}
	return true
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
	ev, err := r.connect(ctx, r.o.ClientID, share+r.o.Filter+"/events/+", r.q)
	if err != nil {
		return err
	}
	defer ev.Disconnect(250)
	al, err := r.connect(ctx, r.o.ClientID+"-alerts", share+r.o.Filter+"/alerts/+", alertq)
	if err != nil {
		return err
	}
	defer al.Disconnect(250)
	var wg sync.WaitGroup
	wg.Add(1)
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
		for _, a := range pending {
			if r.o.Ack {
				b, _ := json.Marshal(appAck{Epoch: a.epoch, Seq: a.seq})
				ev.Publish(a.prefix+"/ack", 1, false, b)
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

// connect starts a client that re-subscribes to filter at every
// connection and queues messages in arrival order.
func (r *Receiver) connect(ctx context.Context, id, filter string, q chan mqtt.Message) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker(r.o.Broker).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(500 * time.Millisecond).SetMaxReconnectInterval(2 * time.Second).
		SetKeepAlive(30 * time.Second).
		// In order: the handler only queues, and the queue keeps the
		// broker's order for the integrity and ordering checks.
		SetOrderMatters(true)
	if r.o.Username != "" {
		opts.SetUsername(r.o.Username).SetPassword(r.o.Password)
	}
	if r.o.TLS != nil {
		opts.SetTLSConfig(r.o.TLS)
	}
	handler := func(_ mqtt.Client, m mqtt.Message) {
		select {
		case q <- m:
		case <-ctx.Done():
		}
	}
	opts.SetOnConnectHandler(func(c mqtt.Client) {
		r.o.Logger.Info("receiver connected", "broker", config.RedactURL(r.o.Broker), "filter", filter)
		t := c.Subscribe(filter, 1, handler)
		go func() {
			if t.Wait(); t.Error() != nil {
				r.o.Logger.Error("subscribe failed", "filter", filter, "err", t.Error())
			}
		}()
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) {
		r.o.Logger.Warn("receiver connection lost", "err", err)
	})
	c := mqtt.NewClient(opts)
	c.Connect() // ConnectRetry: keeps trying in the background
	return c, nil
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
	k := b.Gateway + ":" + b.Epoch
	r.mu.Lock()
	if lane == LaneEvents && r.o.Ack && r.o.GapCheck {
		if have, known := r.have[k]; known && b.PrevSeq > have {
			r.mu.Unlock()
			r.Gaps.Add(1)
			return pendingAck{}, false
		}
		r.have[k] = max(r.have[k], b.LastSeq)
	}
	for _, ev := range evs {
		fresh := r.mark(k, ev.Seq)
		if lane == LaneEvents {
			if fresh && ev.Seq < r.max[k] {
				r.OrderViolations.Add(1)
			}
			r.max[k] = max(r.max[k], ev.Seq)
		}
		if !fresh {
			r.Duplicates.Add(1)
			continue
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
	r.mu.Unlock()
	if lane != LaneEvents {
		return pendingAck{}, false
	}
	return pendingAck{prefix: prefix, epoch: b.Epoch, seq: b.LastSeq}, true
}

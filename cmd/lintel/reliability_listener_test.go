package main

// The reliability suite's listener: the city platform's side of the
// uplink, written from docs/city-platform.md alone. It shares no code with
// sync/city (neither its Receiver nor its envelope decoder), so a bug there
// cannot hide one in what it checks.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// relSeen is what the listener knows of one event id.
type relSeen struct {
	hash       string
	kind       string
	severity   string
	events     int   // deliveries on the events lane
	alerts     int   // deliveries on the alert lane
	firstEvent int64 // unix ns of the first events-lane delivery
	firstAlert int64 // unix ns of the first alert-lane delivery
}

type relMsg struct {
	lane, topic string
	payload     []byte
	at          time.Time
}

// relListener subscribes to every gateway's events and alert lanes, checks
// each batch as the contract says a receiver must, records every event's
// content by id, and acks each good events-lane batch after recording it.
// It keeps a raw history: one line per event delivery (arrival in unix ns,
// lane, id, content hash).
type relListener struct {
	evc     paho.Client // events lane; also sends the acks
	alc     paho.Client // alert lane, on its own connection as the contract advises
	ack     func(topic string, payload []byte)
	in      chan relMsg
	inMu    sync.RWMutex // closed guards sends on in
	closed  bool
	done    chan struct{}
	hist    *bufio.Writer
	histF   io.Closer
	closeMu sync.Once

	mu         sync.Mutex
	seen       map[string]*relSeen
	conflicts  []string
	bad        []string
	batches    int
	alertMsgs  int
	acks       int
	lastMsg    time.Time
	ackTimes   []time.Time // when each ack was sent (for "first ack after")
	alertTimes []time.Time // arrival of each alert-lane message
	declared   []relDeclared
	notable    []relNotable // the gateway's and the store's own events, in order of arrival
	subscribed int
	// lossOK: events covered by a store.lost count as arrived for
	// advance (the journal-damage scenarios destroy them on purpose).
	lossOK bool
}

// relNotable is one store.*, storage.* or gateway.* event as first
// received, with its data, on whichever lane it came first.
type relNotable struct {
	id, kind string
	seq      uint64
	data     json.RawMessage
	at       time.Time
}

func startRelListener(t *testing.T, broker, histPath string) *relListener {
	t.Helper()
	hf, err := os.Create(histPath)
	if err != nil {
		t.Fatal(err)
	}
	l := newRelListenerCore(hf)
	// Not waited for: a lost ack only delays the batch until the gateway's
	// ack_timeout resends it, and waiting here could stall paho's router.
	l.ack = func(topic string, payload []byte) { l.evc.Publish(topic, 1, false, payload) }
	mk := func(id, lane, filter string) paho.Client {
		handler := func(_ paho.Client, m paho.Message) {
			l.inMu.RLock()
			defer l.inMu.RUnlock()
			if !l.closed {
				l.in <- relMsg{lane: lane, topic: m.Topic(), payload: slices.Clone(m.Payload()), at: time.Now()}
			}
		}
		o := paho.NewClientOptions().AddBroker(broker).SetClientID(id).
			SetCleanSession(true).
			SetAutoReconnect(true).SetConnectRetry(true).
			SetConnectRetryInterval(100 * time.Millisecond).SetMaxReconnectInterval(250 * time.Millisecond).
			SetKeepAlive(5 * time.Second).SetPingTimeout(5 * time.Second).
			SetDefaultPublishHandler(handler).
			SetOnConnectHandler(func(c paho.Client) {
				// The handler runs on paho's own goroutine: wait elsewhere.
				tok := c.Subscribe(filter, 1, handler)
				go func() {
					if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
						l.mu.Lock()
						l.subscribed++
						l.mu.Unlock()
					}
				}()
			})
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("listener connect: %v", tok.Error())
		}
		return c
	}
	l.evc = mk(fmt.Sprintf("rel-listener-events-%d", time.Now().UnixNano()), "events", "lintel/v1/+/+/events/+")
	l.alc = mk(fmt.Sprintf("rel-listener-alerts-%d", time.Now().UnixNano()), "alerts", "lintel/v1/+/+/alerts/+")
	if !l.waitSubscribed(2, 20*time.Second) {
		t.Fatal("listener did not subscribe")
	}
	return l
}

// newRelListenerCore is the listener without connections: messages come
// through l.in, acks go to l.ack.
func newRelListenerCore(hist io.WriteCloser) *relListener {
	l := &relListener{in: make(chan relMsg, 1<<16), done: make(chan struct{}), seen: map[string]*relSeen{},
		histF: hist, hist: bufio.NewWriterSize(hist, 1<<20), ack: func(string, []byte) {}}
	go l.work()
	return l
}

// subscriptions is how many subscriptions the listener's connections
// have had acknowledged so far (two per round of connections).
func (l *relListener) subscriptions() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.subscribed
}

// waitSubscribed waits until n subscriptions have been acknowledged.
func (l *relListener) waitSubscribed(n int, timeout time.Duration) bool {
	return relPoll(timeout, 10*time.Millisecond, func() bool { return l.subscriptions() >= n })
}

func (l *relListener) close() {
	l.closeMu.Do(func() {
		for _, c := range []paho.Client{l.evc, l.alc} {
			if c != nil {
				c.Disconnect(100)
			}
		}
		l.inMu.Lock()
		l.closed = true
		close(l.in)
		l.inMu.Unlock()
		<-l.done
		l.hist.Flush()
		l.histF.Close()
	})
}

func (l *relListener) work() {
	defer close(l.done)
	for m := range l.in {
		l.handle(m)
	}
}

// relWireEvent is the part of Event v1 the listener reads.
type relWireEvent struct {
	ID        string          `json:"id"`
	Seq       uint64          `json:"seq"`
	Gateway   string          `json:"gateway"`
	Compound  string          `json:"compound"`
	Time      string          `json:"time"`
	Kind      string          `json:"kind"`
	Severity  string          `json:"severity"`
	Device    string          `json:"device"`
	Household string          `json:"household"`
	Data      json.RawMessage `json:"data"`
}

// relEnvelope is lintel.batch/v1 as docs/city-platform.md defines it.
type relEnvelope struct {
	Schema   string          `json:"schema"`
	Lane     string          `json:"lane"`
	Gateway  string          `json:"gateway"`
	Compound string          `json:"compound"`
	Epoch    string          `json:"epoch"`
	PrevSeq  uint64          `json:"prev_seq"`
	FirstSeq uint64          `json:"first_seq"`
	LastSeq  uint64          `json:"last_seq"`
	Count    int             `json:"count"`
	SentAt   string          `json:"sent_at"`
	Events   json.RawMessage `json:"events"`
	CRC32    uint32          `json:"crc32"`
}

func (l *relListener) handle(m relMsg) {
	bad := func(format string, a ...any) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.bad = append(l.bad, fmt.Sprintf("%s: %s", m.topic, fmt.Sprintf(format, a...)))
	}
	levels := strings.Split(m.topic, "/")
	if len(levels) != 6 || levels[0] != "lintel" || levels[1] != "v1" || levels[4] != m.lane {
		bad("unexpected topic")
		return
	}
	body := m.payload
	switch levels[5] {
	case "json":
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(m.payload))
		if err != nil {
			bad("gzip: %v", err)
			return
		}
		body, err = io.ReadAll(io.LimitReader(zr, 64<<20+1))
		if err != nil {
			bad("gunzip: %v", err)
			return
		}
		if len(body) > 64<<20 {
			bad("more than 64 MiB decompressed")
			return
		}
	default:
		bad("unknown encoding %q", levels[5])
		return
	}
	var env relEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		bad("envelope: %v", err)
		return
	}
	var evs []relWireEvent
	switch {
	case env.Schema != "lintel.batch/v1":
		bad("schema %q", env.Schema)
		return
	case env.Lane != m.lane:
		bad("lane %q on the %s topic", env.Lane, m.lane)
		return
	case env.Gateway != levels[3] || env.Compound != levels[2]:
		bad("gateway/compound %s/%s under the topic of %s/%s", env.Gateway, env.Compound, levels[3], levels[2])
		return
	case len(env.Epoch) != 16 || strings.Trim(env.Epoch, "0123456789abcdef") != "":
		bad("epoch %q: want 16 hex digits", env.Epoch)
		return
	case crc32.ChecksumIEEE(env.Events) != env.CRC32:
		bad("crc32 %d, the events array gives %d", env.CRC32, crc32.ChecksumIEEE(env.Events))
		return
	}
	if err := json.Unmarshal(env.Events, &evs); err != nil {
		bad("events: %v", err)
		return
	}
	switch {
	case env.Count != len(evs) || len(evs) == 0:
		bad("count %d, %d events", env.Count, len(evs))
		return
	case evs[0].Seq != env.FirstSeq || evs[len(evs)-1].Seq != env.LastSeq:
		bad("first/last seq %d/%d, events run %d..%d", env.FirstSeq, env.LastSeq, evs[0].Seq, evs[len(evs)-1].Seq)
		return
	case env.PrevSeq >= env.FirstSeq:
		bad("prev_seq %d ≥ first_seq %d", env.PrevSeq, env.FirstSeq)
		return
	}
	for i, e := range evs {
		if i > 0 && e.Seq <= evs[i-1].Seq {
			bad("seq %d after %d", e.Seq, evs[i-1].Seq)
			return
		}
		if e.Gateway != env.Gateway {
			bad("event %s of gateway %q", e.ID, e.Gateway)
			return
		}
		if want := env.Gateway + ":" + env.Epoch + ":" + strconv.FormatUint(e.Seq, 10); e.ID != want {
			bad("event id %q, want %q", e.ID, want)
			return
		}
	}

	// Record, then ack: the ack says the platform has them.
	at := m.at.UnixNano()
	l.mu.Lock()
	for _, e := range evs {
		h := relContentHash(e)
		s := l.seen[e.ID]
		if s == nil {
			s = &relSeen{hash: h, kind: e.Kind, severity: e.Severity}
			l.seen[e.ID] = s
			if d, ok := relDeclares(e); ok {
				l.declared = append(l.declared, d)
			}
			if k := e.Kind; strings.HasPrefix(k, "store.") || strings.HasPrefix(k, "storage.") || strings.HasPrefix(k, "gateway.") {
				l.notable = append(l.notable, relNotable{id: e.ID, kind: k, seq: e.Seq, data: slices.Clone(e.Data), at: m.at})
			}
		} else if s.hash != h {
			l.conflicts = append(l.conflicts, fmt.Sprintf("id %s arrived with content %s, earlier %s (%s lane)", e.ID, h, s.hash, m.lane))
		}
		if m.lane == "events" {
			if s.events == 0 {
				s.firstEvent = at
			}
			s.events++
		} else {
			if s.alerts == 0 {
				s.firstAlert = at
			}
			s.alerts++
		}
		fmt.Fprintf(l.hist, "%d %s %s %s\n", at, m.lane, e.ID, h)
	}
	l.lastMsg = m.at
	if m.lane == "alerts" {
		l.alertMsgs++
		l.alertTimes = append(l.alertTimes, m.at)
		l.mu.Unlock()
		return
	}
	l.batches++
	l.mu.Unlock()

	ack, _ := json.Marshal(map[string]any{"epoch": env.Epoch, "seq": env.LastSeq})
	l.ack(strings.Join(levels[:4], "/")+"/ack", ack)
	l.mu.Lock()
	l.acks++
	l.ackTimes = append(l.ackTimes, time.Now())
	l.mu.Unlock()
}

// relDeclared is a seq range the log says it does not hold, declared by a
// store.dropped (quota, retention), store.seq_skipped (seqs reserved but
// unused at an unclean stop) or store.lost (journal damage) event.
type relDeclared struct {
	kind, reason string
	id           string
	first, last  uint64
}

func relDeclares(e relWireEvent) (relDeclared, bool) {
	switch e.Kind {
	case "store.dropped", "store.seq_skipped", "store.lost":
	default:
		return relDeclared{}, false
	}
	var d struct {
		Reason string `json:"reason"`
		First  uint64 `json:"first_seq"`
		Last   uint64 `json:"last_seq"`
	}
	_ = json.Unmarshal(e.Data, &d)
	return relDeclared{kind: e.Kind, reason: d.Reason, id: e.ID, first: d.First, last: d.Last}, true
}

// advance moves from past the tap entries already received on the events
// lane and counts how many of the rest are not.
func (l *relListener) advance(entries []relTapEntry, from int) (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	got := func(id string) bool {
		if s := l.seen[id]; s != nil && s.events > 0 {
			return true
		}
		return l.lossOK && relCoveredBy(l.declared, "store.lost", id)
	}
	for from < len(entries) && got(entries[from].id) {
		from++
	}
	missing := 0
	for _, e := range entries[from:] {
		if !got(e.id) {
			missing++
		}
	}
	return from, missing
}

// receivedCount is the number of distinct ids on the events lane.
func (l *relListener) receivedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.seen {
		if s.events > 0 {
			n++
		}
	}
	return n
}

// notables returns the store's and gateway's own events received so far
// (of kind, if not empty), in order of arrival.
func (l *relListener) notables(kind string) []relNotable {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []relNotable
	for _, n := range l.notable {
		if kind == "" || n.kind == kind {
			out = append(out, n)
		}
	}
	return out
}

// waitNotable waits until an event of kind that arrived at or after since
// is at the listener, and returns it.
func (l *relListener) waitNotable(kind string, since time.Time, timeout time.Duration) (relNotable, bool) {
	var got relNotable
	ok := relPoll(timeout, 20*time.Millisecond, func() bool {
		for _, n := range l.notables(kind) {
			if !n.at.Before(since) {
				got = n
				return true
			}
		}
		return false
	})
	return got, ok
}

// quiesce waits until no message arrived for quiet (at most max).
func (l *relListener) quiesce(quiet, max time.Duration) {
	relPoll(max, 50*time.Millisecond, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.in) == 0 && time.Since(l.lastMsg) > quiet
	})
}

// firstAfter returns the first time in ts at or after t0 (zero if none).
func relFirstAfter(ts []time.Time, t0 time.Time) time.Time {
	for _, x := range ts {
		if !x.Before(t0) {
			return x
		}
	}
	return time.Time{}
}

// relContentHash mirrors the tap's hash (edge/tap_faulttest.go) from what
// arrived: the first 16 bytes of SHA-256 over kind, severity, device,
// household, time and the canonical data, each ended by a NUL byte.
func relContentHash(e relWireEvent) string {
	h := sha256.New()
	for _, s := range []string{e.Kind, e.Severity, e.Device, e.Household, e.Time, relCanonical(e.Data)} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func relCanonical(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return string(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return string(raw)
	}
	return string(b)
}

// relSplitID splits gateway:epoch:seq.
func relSplitID(id string) (epoch string, seq uint64, ok bool) {
	i := strings.LastIndexByte(id, ':')
	if i < 0 {
		return "", 0, false
	}
	j := strings.LastIndexByte(id[:i], ':')
	if j < 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseUint(id[i+1:], 10, 64)
	return id[j+1 : i], seq, err == nil
}

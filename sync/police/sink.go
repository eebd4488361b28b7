// Package police is the police feed: a GA/T 1400 (视图库, VIID) client that
// reads the durable event log from its own cursor and pushes the security
// net's incidents to the public-security platform.
//
// Only what the allow-list names leaves the box (see Policy); elder and
// household events never do. The node registers with HTTP Digest
// (System/Register, 401 challenge first), keeps alive on a schedule,
// registers again after a 401 or a refused keepalive with a randomized
// back-off, and unregisters on shutdown. Each event becomes Images
// (snapshots), VideoSlices (clips) and, without evidence, a Scene; their
// ids are built from the event, so a resend carries the same ids. Per-
// record statuses are honoured: only the records the platform refused are
// sent again, and the cursor advances only when every record of every
// event up to it is accepted. Evidence is streamed from disk.
//
// A police outage never holds up the city uplink: the store keeps one
// cursor per sink and this sink only ever reads.
package police

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// Log is what the sink needs of the event log; *store.Store implements it.
type Log interface {
	Read(sink string, after uint64, max int) ([]*event.Event, error)
	Ack(ctx context.Context, sink string, seq uint64) error
	Cursor(sink string) uint64
	LastSeq() uint64
	Subscribe(buf int) (<-chan *event.Event, func())
}

// Deps is what a sink is built from besides its options.
type Deps struct {
	Name    string // cursor name, normally "police"
	Gateway string
	DataDir string // default root of evidence refs
	Log     Log
	Logger  *slog.Logger
}

// Sink is the police feed component.
type Sink struct {
	d      Deps
	o      Options
	log    *slog.Logger
	c      *Client
	policy *Policy
	b      builder
	root   string

	registered atomic.Bool
	wake       chan struct{}
	lastKA     atomic.Int64
	lastOK     atomic.Int64
	lastErr    atomic.Pointer[string]

	// Counters.
	Registrations atomic.Uint64
	Keepalives    atomic.Uint64
	EventsSent    atomic.Uint64
	EventsSkipped atomic.Uint64
	RecordsSent   atomic.Uint64
	RecordRetries atomic.Uint64
	BytesStreamed atomic.Uint64
}

// New builds a sink; it does no network I/O.
func New(d Deps, o Options) (*Sink, error) {
	if d.Log == nil || d.Logger == nil {
		return nil, errors.New("police sink: log and logger are required")
	}
	if d.Name == "" {
		d.Name = "police"
	}
	loc, err := time.LoadLocation(o.TimeZone)
	if err != nil {
		return nil, fmt.Errorf("police sink: time_zone: %w", err)
	}
	pass, err := o.Password.Reveal()
	if err != nil {
		return nil, fmt.Errorf("police sink: password: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.TLS.CAFile != "" || o.TLS.CertFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.TLS.CAFile != "" {
			pem, err := os.ReadFile(o.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("police sink: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("police sink: %s: no PEM certificates", o.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		if o.TLS.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.TLS.CertFile, o.TLS.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("police sink: client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
	}
	root := o.EvidenceDir
	if root == "" {
		root = d.DataDir
	}
	s := &Sink{
		d: d, o: o, log: d.Logger, root: root,
		policy: NewPolicy(o.AllowList(), o.Faces.Enabled),
		wake:   make(chan struct{}, 1),
		c: &Client{
			Base: o.URL, User: o.Username, Pass: pass, DeviceID: o.DeviceID, Loc: loc,
			HTTP: &http.Client{Transport: tr, Timeout: o.Timeout.Std()}, Chunk: int(o.Chunk),
		},
	}
	s.b = builder{ids: IDs{Prefix: o.IDPrefix, Devices: o.Devices, Loc: loc}, gateway: d.Gateway, evidence: s.checkEvidence}
	if o.IDPrefix == "" {
		s.b.ids.Prefix = o.DeviceID[:13]
	}
	return s, nil
}

// Client is the sink's VIID client (its clock is the platform's time).
func (s *Sink) Client() *Client { return s.c }

// State is the feed's state for the status page and metrics.
type State struct {
	Name          string
	Gateway       string
	Registered    bool
	LastKeepalive time.Time
	LastSuccess   time.Time
	LastError     string // never holds the password or URL credentials
	Cursor        uint64
	Backlog       uint64
	Time          TimeSample
}

// State reports the feed's state.
func (s *Sink) State() State {
	st := State{Name: s.d.Name, Gateway: s.d.Gateway, Registered: s.registered.Load(), Time: s.c.Time(), Cursor: s.d.Log.Cursor(s.d.Name)}
	if v := s.lastKA.Load(); v > 0 {
		st.LastKeepalive = time.Unix(0, v)
	}
	if v := s.lastOK.Load(); v > 0 {
		st.LastSuccess = time.Unix(0, v)
	}
	if p := s.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	if last := s.d.Log.LastSeq(); last > st.Cursor {
		st.Backlog = last - st.Cursor
	}
	return st
}

func (s *Sink) fail(err error) {
	msg := err.Error()
	if s.c.Pass != "" {
		msg = redact(msg, s.c.Pass)
	}
	s.lastErr.Store(&msg)
}

func redact(msg, secret string) string { return strings.ReplaceAll(msg, secret, "[redacted]") }

func (s *Sink) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// backoff draws randomized delays between retry.min and a ceiling that
// doubles up to retry.max.
type backoff struct {
	min, max, cur time.Duration
}

func (b *backoff) next() time.Duration {
	if b.cur < b.min {
		b.cur = b.min
	}
	d := b.min + rand.N(b.cur-b.min+1)
	b.cur = min(b.cur*2, b.max)
	return d
}

func (b *backoff) reset() { b.cur = b.min }

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

// Run delivers the log until ctx ends, then unregisters.
func (s *Sink) Run(ctx context.Context) error {
	defer track(s)()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.keepalive(ctx) }()
	defer wg.Wait()
	defer s.unregister()

	sub, cancel := s.d.Log.Subscribe(64)
	defer cancel()
	bo := &backoff{min: s.o.Retry.Min.Std(), max: s.o.Retry.Max.Std()}
	for ctx.Err() == nil {
		if !s.registered.Load() {
			if err := s.register(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.fail(err)
				d := bo.next()
				s.log.Warn("police registration failed", "err", s.lastError(), "retry_in", d)
				sleep(ctx, d)
				continue
			}
			bo.reset()
		}
		cur := s.d.Log.Cursor(s.d.Name)
		evs, err := s.d.Log.Read(s.d.Name, cur, s.o.Batch)
		if err != nil {
			return fmt.Errorf("police sink: %w", err)
		}
		if len(evs) == 0 {
			select {
			case <-ctx.Done():
			case <-sub:
			case <-s.wake:
			case <-time.After(time.Second):
			}
			continue
		}
		if err := s.deliver(ctx, evs, bo); err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

func (s *Sink) lastError() string {
	if p := s.lastErr.Load(); p != nil {
		return *p
	}
	return ""
}

func (s *Sink) register(ctx context.Context) error {
	if err := s.c.Register(ctx); err != nil {
		return err
	}
	s.registered.Store(true)
	s.Registrations.Add(1)
	s.lastKA.Store(time.Now().UnixNano())
	s.log.Info("registered with the police platform", "device_id", s.o.DeviceID)
	if ts, err := s.c.ReadTime(ctx); err != nil {
		s.log.Warn("police platform time not read", "err", err)
	} else {
		s.log.Info("police platform time", "offset", ts.Offset, "quality", ts.Quality, "rtt", ts.RTT)
	}
	return nil
}

func (s *Sink) unregister() {
	if !s.registered.Load() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.c.UnRegister(ctx); err != nil {
		s.log.Warn("police unregister failed", "err", err)
	}
	s.registered.Store(false)
}

func (s *Sink) keepalive(ctx context.Context) {
	t := time.NewTicker(s.o.Keepalive.Std())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.registered.Load() {
			continue
		}
		err := s.c.Keepalive(ctx)
		switch {
		case err == nil:
			s.Keepalives.Add(1)
			s.lastKA.Store(time.Now().UnixNano())
		case errors.Is(err, ErrUnauthorized):
			s.fail(err)
			s.registered.Store(false)
			s.poke()
			s.log.Warn("police platform dropped the node; registering again", "err", err)
		case ctx.Err() == nil:
			s.fail(err)
			s.log.Warn("police keepalive failed", "err", err)
		}
	}
}

// deliver sends one batch until every record is accepted, retrying only
// what failed, then acks the batch's last seq.
func (s *Sink) deliver(ctx context.Context, evs []*event.Event, bo *backoff) error {
	var recs []*record
	sent := 0
	for _, e := range evs {
		f, ok := s.policy.Apply(e)
		if !ok {
			s.EventsSkipped.Add(1)
			continue
		}
		sent++
		recs = append(recs, s.b.build(f)...)
	}
	for len(recs) > 0 && ctx.Err() == nil {
		if !s.registered.Load() {
			if err := s.register(ctx); err != nil {
				s.fail(err)
				if !sleep(ctx, bo.next()) {
					return nil
				}
				continue
			}
		}
		err := s.attempt(ctx, recs)
		pending := recs[:0]
		for _, r := range recs {
			if !r.done() {
				pending = append(pending, r)
			}
		}
		recs = pending
		if len(recs) == 0 {
			break
		}
		if err == nil {
			err = fmt.Errorf("%d records refused, first %s: %s", len(recs), recs[0].id, recs[0].lastErr)
		}
		if errors.Is(err, ErrUnauthorized) {
			s.registered.Store(false)
		}
		s.fail(err)
		s.RecordRetries.Add(uint64(len(recs)))
		d := bo.next()
		var he *HTTPError
		if errors.As(err, &he) && he.RetryAfter > d {
			d = min(he.RetryAfter, s.o.Retry.Max.Std())
		}
		s.log.Warn("police delivery incomplete", "pending", len(recs), "err", s.lastError(), "retry_in", d)
		if !sleep(ctx, d) {
			return nil
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	bo.reset()
	if err := s.d.Log.Ack(ctx, s.d.Name, evs[len(evs)-1].Seq); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("police sink: ack: %w", err)
	}
	s.EventsSent.Add(uint64(sent))
	s.lastOK.Store(time.Now().UnixNano())
	return nil
}

// attempt sends the pending infos grouped by resource, then the data of
// accepted records. It returns the first transport-level error.
func (s *Sink) attempt(ctx context.Context, recs []*record) error {
	byRes := map[string][]*record{}
	for _, r := range recs {
		if !r.infoOK {
			byRes[r.resource] = append(byRes[r.resource], r)
		}
	}
	res := make([]string, 0, len(byRes))
	for k := range byRes {
		res = append(res, k)
	}
	sort.Strings(res)
	for _, path := range res {
		rs := byRes[path]
		sts, err := s.c.PostJSON(ctx, path, envelope(path, rs))
		if err != nil {
			return err
		}
		s.apply(rs, sts)
	}
	for _, r := range recs {
		if !r.infoOK || r.ev == nil || r.dataOK {
			continue
		}
		if err := s.upload(ctx, r); err != nil {
			r.lastErr = err.Error()
			return err
		}
		r.dataOK = true
	}
	return nil
}

// apply marks records by their statuses: by Id when the platform echoes
// ids, else by position. A record without a status is not accepted.
func (s *Sink) apply(rs []*record, sts []StatusObject) {
	byID := map[string]StatusObject{}
	for _, st := range sts {
		if st.ID != "" {
			byID[st.ID] = st
		}
	}
	for i, r := range rs {
		st, ok := byID[r.id]
		if !ok && len(byID) == 0 && i < len(sts) {
			st, ok = sts[i], true
		}
		r.attempts++
		switch {
		case !ok:
			r.lastErr = "no status for record"
		case st.OK():
			r.infoOK = true
			s.RecordsSent.Add(1)
		default:
			r.lastErr = fmt.Sprintf("status %d %s", st.StatusCode, truncate(st.StatusString, 80))
		}
	}
}

// evidencePath resolves a ref under the evidence root; refs are local
// paths ("clips/<device>/<day>/<name>"), never absolute or with "..".
func (s *Sink) evidencePath(ref string) (string, bool) {
	if !filepath.IsLocal(filepath.FromSlash(ref)) || s.root == "" {
		return "", false
	}
	return filepath.Join(s.root, filepath.FromSlash(ref)), true
}

// checkEvidence reports whether the file is there with its sha256 and size,
// reading it through a bounded buffer.
func (s *Sink) checkEvidence(ev event.Evidence) (bool, string) {
	p, ok := s.evidencePath(ev.Ref)
	if !ok {
		return false, "ref outside the evidence directory"
	}
	f, err := os.Open(p)
	if err != nil {
		return false, "file missing"
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, s.chunk()))
	if err != nil {
		return false, "file unreadable"
	}
	if n != ev.Size || hex.EncodeToString(h.Sum(nil)) != ev.SHA256 {
		return false, "file changed since the event (sha256 or size differ)"
	}
	return true, ""
}

func (s *Sink) chunk() int {
	if s.o.Chunk <= 0 {
		return DefaultChunk
	}
	return int(s.o.Chunk)
}

func (s *Sink) upload(ctx context.Context, r *record) error {
	p, _ := s.evidencePath(r.ev.Ref)
	f, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("evidence %s: %w", r.ev.Ref, err)
	}
	defer f.Close()
	ctype := r.ev.MediaType
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	if err := s.c.PostData(ctx, dataPath(r), ctype, f, r.ev.Size); err != nil {
		return err
	}
	s.BytesStreamed.Add(uint64(r.ev.Size))
	return nil
}

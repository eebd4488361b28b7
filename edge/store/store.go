// Package store is Lintel's durable event log: one bbolt file per gateway
// that every event passes through before any rule or sink sees it.
//
// # Group commit
//
// A bbolt commit costs two fdatasync calls and about five 4 KiB page writes
// whatever it carries, so one commit per event would cap the log at a few
// hundred events per second and wear out an SD card. One writer goroutine
// therefore owns every write: appends, sink acks and state puts queue up and
// ride the same transaction. A batch is committed when it holds MaxBatch
// events or MaxBatchBytes bytes, when the oldest request in it has waited
// FlushWindow (less the recent commit time, so the window bounds the whole
// append-to-durable latency), or when every caller seen inside the store
// recently is in the batch (a group of at least earlyGroup concurrent
// callers: waiting longer would gain nothing). Each caller returns only
// after the commit that holds its request has been fsync'd. NoSync is never used: it risks
// corruption, not just loss.
//
// # Journal
//
// A small batch (at most 64 events and 64 KiB; appends, acks and state)
// is not a bbolt commit but one CRC-framed frame appended to a journal
// beside the file (<path>.wal) and fdatasync'd; see wal.go for the format
// and the crash rules. Journal-resident data is held in memory and served
// by every reader exactly as if it were in bbolt; acks delete from the
// readers' view at once. The journal is folded into bbolt in one large
// transaction every 30 s, at 1 MiB, when it fills, before a quota or
// retention drop, at Flush and at Close. A larger batch (many concurrent
// appenders) commits to bbolt directly, taking whatever the journal holds
// along in the same transaction. At Open the journal's current generation
// is replayed and folded; past a torn or damaged frame, whatever still
// holds its checksums is recovered (recover.go).
//
// The physics of the cost: at 10 events/s and a 200 ms window about two
// events share each sync. Through the page cache a sync writes at least one
// whole 4 KiB page, so ~2 KiB per event is the floor there. The journal
// therefore writes with O_DIRECT where the filesystem allows it, in
// 512-byte logical sectors: a commit submits only the sectors its frame
// touches (the last, partly filled sector rewritten with the new bytes):
// ~2.3 sectors for two events, ~0.56 KiB per event instead of ~1.95, so
// ~1.2 KiB per event with the fold. Where O_DIRECT is refused (EINVAL at
// open or in the probe write) it falls back to whole pages through the
// page cache (~2.6 KiB per event). The fold adds what storing the records
// in the B+tree costs (~0.6 KiB per event). A bbolt commit per window
// instead rewrites leaf, branch, root, freelist and meta pages: ~17 KiB
// per event. Flash itself programs whole internal pages (often 16 KiB or
// more) and an SD card's controller may rewrite more, so the wear saved
// is smaller than the byte count suggests; what falls ~3.5× is the bytes
// the journal sends to the device.
//
// # Classes and quota
//
// Every record carries a class: "important" (severity alert or critical, or
// any evidence) or "telemetry" (everything else). When the stored record
// bytes exceed MaxBytes, the oldest telemetry is deleted down to 90 % of the
// quota, and only if that is not enough the oldest important records.
// Retention deletes records older than MaxAge. Every such drop appends one
// store.dropped event so the loss is visible upstream. A record is also
// deleted, silently, once every configured sink has acked it.
//
// # Store-monotonic time
//
// The box may boot with no RTC, so record age is not measured by the wall
// clock. The store persists an elapsed-running-time counter, advanced from
// the monotonic clock at every commit; a record's age is the counter now
// minus the counter when it was committed. A wrong wall clock therefore
// never expires or keeps data wrongly. Downtime does not age records: a
// gateway that is off for a week keeps what it had.
//
// # Corruption
//
// At Open the file is checked (bbolt meta, tx.Check, every record's CRC).
// A corrupt file is renamed to <path>.corrupt-<UTC time>, a fresh store with
// a new epoch takes its place, and a store.quarantined alert is appended;
// Open never crashes or loops on a bad file. Event ids embed the epoch, so
// a recreated store never reuses an id.
//
// # Ids and recovery
//
// No seq is ever given to two events, whatever a crash or damage did to
// the journal: journal commits take seqs from a range reserved in bbolt
// first, and after an unclean stop the next seq is above that range. Every
// seq that is then missing is declared by an event after it
// (store.seq_skipped, store.lost); see recover.go.
//
// # Disk space
//
// The quota follows the free space, a reserve file is kept for the day the
// disk fills anyway, and a full disk is an alarm (storage.disk_full), not
// an error loop; see disk.go.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lintel-edge/lintel/edge/event"
)

// Defaults for zero Options fields.
const (
	DefaultMaxBytes      int64 = 256 << 20
	DefaultMaxAge              = 30 * 24 * time.Hour
	DefaultFlushWindow         = 10 * time.Millisecond
	DefaultMaxBatch            = 4096
	DefaultMaxBatchBytes       = 4 << 20
)

// earlyGroup is the smallest group of concurrent callers whose complete
// return lets a batch commit before its window ends. Smaller groups are
// what a trickle of independent drivers looks like, and for them waiting is
// what saves flash.
const earlyGroup = 32

// Drop reasons, as in store.dropped data.reason and Stats.Dropped.
const (
	ReasonQuota     = "quota"
	ReasonRetention = "retention"
)

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store closed")

// Options configures Open. Path, Gateway and Logger are required.
type Options struct {
	Path          string           // bbolt file path; parent dir created 0750
	Gateway       string           // gateway id, used in event ids
	Compound      string           // stamped on events that carry none
	Sinks         []string         // consumers; a record is deleted once every sink has acked it; none = keep until quota/retention
	MaxBytes      int64            // quota on stored record bytes (default 256 MiB)
	MaxAge        time.Duration    // retention in store-monotonic time (default 30 days)
	FlushWindow   time.Duration    // group-commit window (default 10ms: p99 append-to-durable ≤ 20 ms at 1,000 events/s)
	MaxBatch      int              // events per transaction (default 4096)
	MaxBatchBytes int              // bytes per transaction (default 4 MiB)
	Logger        *slog.Logger     // required
	Now           func() time.Time // wall clock, default time.Now

	// TimeQuality says whether the wall clock can be trusted now; the
	// store stamps it on the events it raises itself (store.dropped and
	// the like). Default: always unsynced, since the store cannot know.
	TimeQuality func() event.TimeQuality

	// Elapsed is the monotonic clock that drives store-monotonic time:
	// it must never go backwards. Default: time since process start on
	// the monotonic clock. Tests inject it to age records.
	Elapsed func() time.Duration

	// Journal tuning; zero means the default. Unexported: tests shrink
	// them to make folds and a full journal frequent.
	walSize      int64         // journal file size (default 2 MiB)
	walFoldEvery time.Duration // fold the journal into bbolt at least this often (default 30s)
	walFoldBytes int           // … or once it holds this many record bytes (default 1 MiB)
	walMaxEvents int           // batches with more events skip the journal (default 64)
	walMaxBytes  int           // … and batches with more bytes (default 64 KiB)
	walBuffered  bool          // write the journal through the page cache even where O_DIRECT works

	// Disk space (see disk.go); zero means the default. Tests inject
	// the free-space reading.
	diskCheckEvery time.Duration                                    // re-read free space this often (default 2s)
	diskSpace      func(dir string) (avail, total int64, err error) // default statfs
}

var processStart = time.Now()

func (o *Options) setDefaults() error {
	if o.Path == "" {
		return errors.New("open store: empty path")
	}
	if o.Gateway == "" {
		return errors.New("open store: empty gateway id")
	}
	if o.Logger == nil {
		return errors.New("open store: nil logger")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.FlushWindow <= 0 {
		o.FlushWindow = DefaultFlushWindow
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TimeQuality == nil {
		o.TimeQuality = func() event.TimeQuality { return event.Unsynced }
	}
	if o.diskCheckEvery <= 0 {
		o.diskCheckEvery = defaultDiskCheckEvery
	}
	if o.diskSpace == nil {
		o.diskSpace = diskSpace
	}
	if o.walSize <= 0 {
		o.walSize = defaultWALSize
	}
	o.walSize = max(o.walSize, 4*walPage) / walPage * walPage
	if o.walFoldEvery <= 0 {
		o.walFoldEvery = defaultWALFoldEvery
	}
	if o.walFoldBytes <= 0 {
		o.walFoldBytes = defaultWALFoldBytes
	}
	if o.walMaxEvents <= 0 {
		o.walMaxEvents = defaultWALMaxEvents
	}
	if o.walMaxBytes <= 0 {
		o.walMaxBytes = defaultWALMaxBytes
	}
	if o.Elapsed == nil {
		o.Elapsed = func() time.Duration { return time.Since(processStart) }
	}
	seen := map[string]bool{}
	for _, s := range o.Sinks {
		if s == "" || seen[s] {
			return fmt.Errorf("open store: sink %q empty or repeated", s)
		}
		seen[s] = true
	}
	return nil
}

// maxFileSize is the bbolt MaxSize for a quota: record bytes plus room for
// half-full pages, branch pages, the freelist and pages pinned by readers.
func maxFileSize(quota int64) int64 { return quota*2 + 64<<20 }

// Store is an open event log. All methods are safe for concurrent use.
type Store struct {
	opts        Options
	log         *slog.Logger
	db          *bolt.DB
	epoch       string
	boots       uint64
	quarantined string
	sinks       map[string]bool

	// elapsed at Open (persisted ms) and the Elapsed reading then.
	elapsedBase  uint64
	elapsedStart time.Duration

	// Journal (see wal.go): j and ov are owned by the writer, rv is the
	// overlay published to readers.
	j              *journal
	ov             overlay
	rv             atomic.Pointer[readView]
	walFolded      uint64 // generation whose frames bbolt holds (meta wal_gen)
	walReplayed    int    // frames replayed at Open
	walQuarantined string // where an unreadable journal was moved at Open
	walReason      string
	walFrames      atomic.Uint64 // journal commits since Open
	folds          atomic.Uint64 // journal folds into bbolt since Open
	abandon        atomic.Bool   // tests: Close without the final fold, as after a crash

	// Writer-owned meta bookkeeping (see putMeta).
	savedElapsed   uint64         // elapsed counter last committed
	elapsedPending bool           // the current transaction saves it
	forceMeta      bool           // closing: save it whatever its age
	closing        bool           // the final commit of a clean Close: leave the clean mark
	reserved       uint64         // seqs journal commits may use, durable in meta (see recover.go)
	newReserved    uint64         // … as the current transaction writes it
	cleanClose     bool           // Open found the last run's clean-stop mark
	rec            Recovery       // set by Open, read-only after it
	seqBumped      bool           // recovery moved lastSeq past the reservation: the next commit saves it
	pending        []*event.Event // events the store raises itself, for the next bbolt commit
	disk           diskState      // free space, reserve and quota (see disk.go)
	diskPub        atomic.Pointer[DiskStats]
	finalErr       error // the final commit at Close failed

	reqs       chan *request
	closeMu    sync.RWMutex
	closed     bool
	closeOnce  sync.Once
	closeErr   error
	writerDone chan struct{}

	// w is owned by the writer goroutine; pub is its published copy.
	w       state
	mu      sync.Mutex
	pub     state
	lastSeq atomic.Uint64

	appended     atomic.Uint64
	commits      atomic.Uint64
	commitErrors atomic.Uint64
	bytesWritten atomic.Uint64
	corruptReads atomic.Uint64
	commitEWMA   atomic.Int64 // ns
	inflight     atomic.Int64 // callers inside submit
	peak         atomic.Int64 // most callers inside submit since the last window expiry

	subsMu sync.Mutex
	subs   map[*subscriber]struct{}
	misses atomic.Uint64
}

// state is the writer's view of what the file holds.
type state struct {
	lastSeq     uint64
	firstSeq    uint64 // 0 when empty
	firstMono   uint64
	records     uint64
	storedBytes int64
	count       [3]uint64 // by class
	bytes       [3]int64
	low         uint64 // every record with seq <= low is deleted (acked by all sinks)
	cursors     map[string]uint64
	dropped     map[string]uint64 // by reason, since Open
	droppedImp  uint64
}

func (st state) clone() state {
	c := st
	c.cursors = make(map[string]uint64, len(st.cursors))
	for k, v := range st.cursors {
		c.cursors[k] = v
	}
	c.dropped = make(map[string]uint64, len(st.dropped))
	for k, v := range st.dropped {
		c.dropped[k] = v
	}
	return c
}

// Epoch is the random id of this store file (16 lower-case hex digits),
// part of every event id.
func (s *Store) Epoch() string { return s.epoch }

// BootCount is how many times the file has been opened, this Open included.
func (s *Store) BootCount() uint64 { return s.boots }

// LastSeq is the highest durable sequence number.
func (s *Store) LastSeq() uint64 { return s.lastSeq.Load() }

// Quarantined is where a corrupt file was moved at this Open, or "".
func (s *Store) Quarantined() string { return s.quarantined }

// Cursor is the last seq sink has acked (0 for an unknown sink).
func (s *Store) Cursor(sink string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pub.cursors[sink]
}

// elapsedMS is store-monotonic time now, in ms.
func (s *Store) elapsedMS() uint64 {
	d := s.opts.Elapsed() - s.elapsedStart
	if d < 0 {
		d = 0
	}
	return s.elapsedBase + uint64(d.Milliseconds())
}

// Append stores evs in one transaction and returns once it is fsync'd.
// It sets Seq and ID on each event, and Gateway, Compound and Time where
// empty. If ctx ends first, Append returns ctx.Err() and the events may or
// may not have been stored (they are then not modified).
func (s *Store) Append(ctx context.Context, evs ...*event.Event) error {
	if len(evs) == 0 {
		return nil
	}
	r := &request{op: opAppend, done: make(chan error, 1), recs: make([]pendingRecord, len(evs))}
	now := s.opts.Now()
	for i, ev := range evs {
		if ev == nil {
			return fmt.Errorf("append: event %d is nil", i)
		}
		c := *ev
		c.ID, c.Seq = "", 0
		if c.Gateway == "" {
			c.Gateway = s.opts.Gateway
		}
		if c.Compound == "" {
			c.Compound = s.opts.Compound
		}
		if c.Time.IsZero() {
			c.Time = now
		}
		if c.TimeQuality == "" {
			c.TimeQuality = s.opts.TimeQuality()
		}
		if err := c.Validate(); err != nil {
			return fmt.Errorf("append: event %d (%s): %w", i, c.Kind, err)
		}
		js, err := c.MarshalJSON()
		if err != nil {
			return fmt.Errorf("append: event %d: %w", i, err)
		}
		// The copy outlives the call (subscribers get it): detach it
		// from the caller's slices.
		c.Data = cloneBytes(ev.Data)
		c.Evidence = append([]event.Evidence(nil), ev.Evidence...)
		if ev.Place != nil {
			p := *ev.Place
			c.Place = &p
		}
		r.recs[i] = pendingRecord{js: js, class: classOf(&c), ev: &c}
		r.bytes += recordLen(string(c.Kind), len(js)) + keySize
	}
	if err := s.submit(ctx, r); err != nil {
		return fmt.Errorf("append: %w", err)
	}
	for i, ev := range evs {
		c := r.recs[i].ev
		ev.Seq, ev.ID, ev.Gateway, ev.Compound, ev.Time, ev.TimeQuality = c.Seq, c.ID, c.Gateway, c.Compound, c.Time, c.TimeQuality
	}
	return nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// Ack records that sink has durably delivered every event up to seq. It is
// group-committed with appends and returns once fsync'd. Acks never move a
// cursor backwards; an ack beyond a dropped range is fine.
func (s *Store) Ack(ctx context.Context, sink string, seq uint64) error {
	if !s.sinks[sink] {
		return fmt.Errorf("ack: unknown sink %q", sink)
	}
	if last := s.lastSeq.Load(); seq > last {
		return fmt.Errorf("ack %s: seq %d beyond last seq %d", sink, seq, last)
	}
	r := &request{op: opAck, sink: sink, seq: seq, done: make(chan error, 1)}
	if err := s.submit(ctx, r); err != nil {
		return fmt.Errorf("ack %s: %w", sink, err)
	}
	return nil
}

// Flush commits whatever is queued now, applies retention, and returns
// once that commit is durable.
func (s *Store) Flush(ctx context.Context) error {
	r := &request{op: opFlush, done: make(chan error, 1)}
	if err := s.submit(ctx, r); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// PutState stores a small versioned value under ns/key through the writer;
// it is durable on return.
func (s *Store) PutState(ctx context.Context, ns, key string, version uint32, val []byte) error {
	if err := checkStateKey(ns, key); err != nil {
		return fmt.Errorf("put state: %w", err)
	}
	r := &request{op: opPutState, ns: ns, key: key, version: version, val: cloneBytes(val), done: make(chan error, 1)}
	r.bytes = len(ns) + len(key) + len(val)
	if err := s.submit(ctx, r); err != nil {
		return fmt.Errorf("put state %s/%s: %w", ns, key, err)
	}
	return nil
}

// DeleteState removes ns/key; deleting a missing key is not an error.
func (s *Store) DeleteState(ctx context.Context, ns, key string) error {
	if err := checkStateKey(ns, key); err != nil {
		return fmt.Errorf("delete state: %w", err)
	}
	r := &request{op: opDeleteState, ns: ns, key: key, done: make(chan error, 1)}
	if err := s.submit(ctx, r); err != nil {
		return fmt.Errorf("delete state %s/%s: %w", ns, key, err)
	}
	return nil
}

func checkStateKey(ns, key string) error {
	if ns == "" || key == "" {
		return errors.New("empty namespace or key")
	}
	if len(ns) > 1024 || len(key) > 1024 {
		return errors.New("namespace or key longer than 1024 bytes")
	}
	return nil
}

func (s *Store) submit(ctx context.Context, r *request) error {
	r.enqueued = time.Now()
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return ctx.Err()
	}
	s.closeMu.RUnlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close commits what is queued, stops the writer and closes the file.
// It is idempotent; writes after Close return ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		close(s.reqs)
		s.closeMu.Unlock()
		<-s.writerDone
		s.closeErr = s.finalErr
		s.subsMu.Lock()
		for sub := range s.subs {
			close(sub.ch)
			delete(s.subs, sub)
		}
		s.subsMu.Unlock()
		if err := s.db.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("close store: %w", err)
		}
		if err := s.j.close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("close store: journal: %w", err)
		}
		s.log.Info("store closed", "path", s.opts.Path, "last_seq", s.lastSeq.Load())
	})
	return s.closeErr
}

type subscriber struct{ ch chan *event.Event }

// Subscribe returns a channel of copies of each event once it is durable,
// and a cancel func. The writer never waits for a subscriber: when the
// buffer is full the event is skipped for that subscriber (counted in
// Stats.SubscriberMisses), which must then catch up with Read. The channel
// is closed by cancel or Close. Treat received events as read-only.
func (s *Store) Subscribe(buf int) (<-chan *event.Event, func()) {
	if buf < 1 {
		buf = 1
	}
	sub := &subscriber{ch: make(chan *event.Event, buf)}
	s.subsMu.Lock()
	if s.subs == nil {
		s.subs = map[*subscriber]struct{}{}
	}
	if s.isClosed() {
		close(sub.ch)
	} else {
		s.subs[sub] = struct{}{}
	}
	s.subsMu.Unlock()
	var once sync.Once
	return sub.ch, func() {
		once.Do(func() {
			s.subsMu.Lock()
			defer s.subsMu.Unlock()
			if _, ok := s.subs[sub]; ok {
				delete(s.subs, sub)
				close(sub.ch)
			}
		})
	}
}

func (s *Store) isClosed() bool {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	return s.closed
}

// broadcast hands committed events to subscribers without blocking.
func (s *Store) broadcast(evs []*event.Event) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	for sub := range s.subs {
		for _, ev := range evs {
			c := *ev
			select {
			case sub.ch <- &c:
			default:
				s.misses.Add(1)
			}
		}
	}
}

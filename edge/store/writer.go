package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/lintel-edge/lintel/edge/event"
)

// Bucket names and meta keys.
var (
	bucketMeta    = []byte("meta")
	bucketEvents  = []byte("events")
	bucketCursors = []byte("cursors")
	bucketState   = []byte("state")

	keyFormat    = []byte("format")
	keyEpoch     = []byte("epoch")
	keyBoots     = []byte("boots")
	keyElapsed   = []byte("elapsed_ms")
	keyLastSeq   = []byte("last_seq")
	keyCreatedMS = []byte("created_wall_ms")
	keyWALGen    = []byte("wal_gen")      // journal generation folded into this file (see wal.go)
	keyReserved  = []byte("seq_reserved") // highest seq journal commits may use (see recover.go)
	keyClean     = []byte("clean_close")  // last seq at a clean Close; consumed by Open
)

// fileFormat is the layout version of the bbolt file (buckets and keys).
const fileFormat = 1

// lowWater is the fraction of MaxBytes a quota drop goes down to, so that
// drops come in chunks rather than one per commit.
const lowWaterPct = 90

// idleCommitEvery bounds how stale the persisted elapsed counter may get
// while nothing is written, so a crash after a long idle spell loses at
// most this much record age.
const idleCommitEvery = 10 * time.Minute

// elapsedSaveEvery is how often a commit also saves the elapsed counter
// (see putMeta).
const elapsedSaveEvery = time.Minute

type op int

const (
	opAppend op = iota
	opAck
	opPutState
	opDeleteState
	opFlush
)

type pendingRecord struct {
	js    []byte // unstamped Event v1 JSON
	class byte
	ev    *event.Event // the store's copy; stamped by the writer
}

type request struct {
	op       op
	recs     []pendingRecord
	bytes    int
	sink     string
	seq      uint64
	ns, key  string
	version  uint32
	val      []byte
	enqueued time.Time
	done     chan error
}

// run is the writer goroutine: it batches requests and commits them.
func (s *Store) run() {
	defer close(s.writerDone)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	tick := time.NewTicker(min(s.maintenanceEvery(), s.opts.walFoldEvery, s.opts.diskCheckEvery))
	defer tick.Stop()
	lastCommit := time.Now()
	for {
		var first *request
		select {
		case r, ok := <-s.reqs:
			if !ok {
				if s.abandon.Load() {
					return
				}
				s.closeCommit() // fold the journal, persist the elapsed counter
				return
			}
			first = r
		case <-tick.C:
			s.checkDisk()
			if s.retentionDue() || time.Since(lastCommit) >= idleCommitEvery || s.foldDue() || len(s.pending) > 0 {
				_ = s.commitBatch(nil)
				lastCommit = time.Now()
			}
			continue
		}
		batch := []*request{first}
		events, bytes := len(first.recs), first.bytes
		wait := s.opts.FlushWindow - time.Duration(s.commitEWMA.Load())*3/2
		if wait < 0 {
			wait = 0
		}
		timer.Reset(wait - time.Since(first.enqueued))
		closing := false
	collect:
		for first.op != opFlush && events < s.opts.MaxBatch && bytes < s.opts.MaxBatchBytes &&
			!s.groupComplete(len(batch)) {
			// Take what is already queued before looking at the timer: a
			// writer that fell behind must catch up in big batches.
			var r *request
			ok := true
			select {
			case r, ok = <-s.reqs:
			default:
				select {
				case r, ok = <-s.reqs:
				case <-timer.C:
					break collect
				}
			}
			if !ok {
				closing = true
				break collect
			}
			batch = append(batch, r)
			events += len(r.recs)
			bytes += r.bytes
			if r.op == opFlush {
				break collect
			}
		}
		early := timer.Stop()
		if !early {
			// The window ran out: callers counted in the peak may have
			// gone away for good; start counting afresh.
			s.peak.Store(s.inflight.Load())
			select {
			case <-timer.C:
			default:
			}
		}
		start := time.Now()
		s.commitBatch(batch)
		lastCommit = time.Now()
		d := int64(lastCommit.Sub(start))
		old := s.commitEWMA.Load()
		s.commitEWMA.Store(old + (d-old)/5)
		if closing {
			for r := range s.reqs { // closed: drains what is left
				s.commitBatch([]*request{r})
			}
			if s.abandon.Load() {
				return
			}
			s.closeCommit()
			return
		}
	}
}

// closeCommit is the last commit of a clean Close: it folds the journal,
// saves the elapsed counter and leaves the clean-stop mark. If it fails,
// the journal stays as it is (replayed at the next Open) and Close says so.
func (s *Store) closeCommit() {
	s.forceMeta, s.closing = true, true
	err := s.commitBatch(nil)
	if err == nil && s.ov.frames > 0 {
		err = errors.New("the journal was not folded")
	}
	if err != nil {
		s.finalErr = fmt.Errorf("final commit: %w (the journal is replayed at the next start)", err)
	}
}

// groupComplete reports whether a batch of n requests holds every caller
// seen inside the store recently (a group of at least earlyGroup): with
// closed-loop callers nobody else is coming, so waiting out the window
// would only add latency.
func (s *Store) groupComplete(n int) bool {
	p := s.peak.Load()
	return p >= earlyGroup && int64(n) >= p
}

func (s *Store) maintenanceEvery() time.Duration {
	d := s.opts.MaxAge / 20
	if d > time.Minute {
		d = time.Minute
	}
	if d < 10*time.Millisecond {
		d = 10 * time.Millisecond
	}
	return d
}

// retentionDue reports whether the oldest record has outlived MaxAge.
func (s *Store) retentionDue() bool {
	return s.w.records > 0 && s.elapsedMS() > s.w.firstMono+uint64(s.opts.MaxAge.Milliseconds())
}

// commitBatch commits batch in one transaction and answers every request.
// A request that fails on its own (say, a value bbolt rejects) is answered
// with its error and the rest retried; ErrMaxSizeReached and a full disk
// make room by dropping old records and retry. It returns the error that
// made it give up, if any (for a nil batch, the only way to learn it).
func (s *Store) commitBatch(batch []*request) error {
	for s.useJournal(batch) {
		bad, err := s.tryJournal(batch)
		if err == nil {
			for _, r := range batch {
				r.done <- nil
			}
			return nil
		}
		if bad == nil {
			break // full, over quota or failed: commit to bbolt
		}
		s.commitErrors.Add(1)
		bad.done <- err
		kept := batch[:0]
		for _, r := range batch {
			if r != bad {
				kept = append(kept, r)
			}
		}
		if batch = kept; len(batch) == 0 {
			return nil
		}
	}
	for attempt := 0; ; attempt++ {
		bad, err := s.tryCommit(batch)
		if err == nil {
			for _, r := range batch {
				r.done <- nil
			}
			return nil
		}
		s.commitErrors.Add(1)
		if bad != nil {
			bad.done <- err
			kept := batch[:0]
			for _, r := range batch {
				if r != bad {
					kept = append(kept, r)
				}
			}
			batch = kept
			continue
		}
		full := isNoSpace(err)
		if full {
			s.diskFull("commit: " + err.Error())
		}
		if (full || errors.Is(err, berrors.ErrMaxSizeReached)) && attempt < 3 {
			s.log.Error("store file cannot grow", "err", err, "stored_bytes", s.w.storedBytes, "disk_full", full)
			if derr := s.emergencyDrop(); derr != nil {
				s.log.Error("store emergency drop failed", "err", derr)
			}
			continue
		}
		s.log.Error("store commit failed", "err", err, "requests", len(batch))
		for _, r := range batch {
			r.done <- fmt.Errorf("commit: %w", err)
		}
		return err
	}
}

// emergencyDrop frees room after ErrMaxSizeReached: the file is full of
// pages even though the record quota is not, so drop to 80 % of what is
// stored now, in a transaction of its own.
func (s *Store) emergencyDrop() error {
	saved := s.w.clone()
	tx, err := s.db.Begin(true)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	b := tx.Bucket(bucketEvents)
	mono, wall := s.elapsedMS(), s.opts.Now().UnixMilli()
	var out []*event.Event
	folded, err := s.foldInto(tx, b)
	if err != nil {
		s.w = saved
		return err
	}
	if folded && s.ov.acked {
		if err := s.putCursors(tx); err != nil {
			s.w = saved
			return err
		}
	}
	if err := s.dropOldest(tx, b, s.w.storedBytes*8/10, ReasonQuota, mono, wall, &out); err != nil {
		s.w = saved
		return err
	}
	s.elapsedPending = false
	if err := s.putMeta(tx, mono); err != nil {
		s.w = saved
		return err
	}
	if err := tx.Commit(); err != nil {
		s.w = saved
		return err
	}
	s.metaSaved(mono)
	if folded {
		s.afterFold()
	}
	s.publish(out)
	return nil
}

// tryCommit runs one write transaction. On error the writer state is
// restored; bad is the request that caused it, if one did.
func (s *Store) tryCommit(batch []*request) (bad *request, err error) {
	saved := s.w.clone()
	defer func() {
		if err != nil {
			s.w = saved
		}
	}()
	s.elapsedPending = false
	tx, err := s.db.Begin(true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }()
	evb := tx.Bucket(bucketEvents)
	// Keys only ever grow (appends at the end, deletions at the front),
	// so full pages never take a later insert: fill them (measured: a
	// fold of 300 events wrote 614 instead of 650 bytes per event at 0.9).
	evb.FillPercent = 1.0
	mono, wall := s.elapsedMS(), s.opts.Now().UnixMilli()
	folded, err := s.foldInto(tx, evb)
	if err != nil {
		return nil, err
	}
	var out []*event.Event
	acked := folded && s.ov.acked
	for _, r := range batch {
		switch r.op {
		case opAppend:
			for i := range r.recs {
				p := &r.recs[i]
				seq, id, v, h, err := s.stamp(p, mono, wall)
				if err != nil {
					return r, err
				}
				if err := evb.Put(seqKey(seq), v); err != nil {
					return r, fmt.Errorf("put record %d: %w", seq, err)
				}
				s.account(seq, h, int64(keySize+len(v)))
				p.ev.ID, p.ev.Seq = id, seq
				out = append(out, p.ev)
			}
		case opAck:
			if r.seq > s.w.cursors[r.sink] {
				s.w.cursors[r.sink] = r.seq
				acked = true
			}
		case opPutState:
			nb, err := tx.Bucket(bucketState).CreateBucketIfNotExists([]byte(r.ns))
			if err != nil {
				return r, fmt.Errorf("state bucket %s: %w", r.ns, err)
			}
			v := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(r.val)), r.version)
			if err := nb.Put([]byte(r.key), append(v, r.val...)); err != nil {
				return r, err
			}
		case opDeleteState:
			if nb := tx.Bucket(bucketState).Bucket([]byte(r.ns)); nb != nil {
				if err := nb.Delete([]byte(r.key)); err != nil {
					return r, err
				}
			}
		}
	}
	for _, ev := range s.pending {
		if err := s.appendInternal(evb, ev, mono, wall, &out); err != nil {
			return nil, err
		}
	}
	if acked {
		if err := s.putCursors(tx); err != nil {
			return nil, err
		}
	}
	if err := s.deleteAcked(evb); err != nil {
		return nil, err
	}
	if s.retentionDue() {
		if err := s.dropExpired(tx, evb, mono, wall, &out); err != nil {
			return nil, err
		}
	}
	if q := s.disk.quota; s.w.storedBytes > q {
		low := int64(lowWaterPct)
		if s.disk.full {
			low = fullLowWater
		}
		if err := s.dropOldest(tx, evb, q*low/100, ReasonQuota, mono, wall, &out); err != nil {
			return nil, err
		}
	}
	if err := s.putMeta(tx, mono); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	s.metaSaved(mono)
	s.pending = nil
	if folded {
		s.afterFold()
	}
	s.commits.Add(1)
	for _, r := range batch {
		s.appended.Add(uint64(len(r.recs)))
	}
	s.publish(out)
	return nil, nil
}

// putMeta writes the meta keys a commit must carry, and only those: every
// Put dirties the meta bucket's page, a 4 KiB write per commit for a few
// bytes. The last seq is recovered at Open as the larger of the saved
// value and the last event key, so it is saved only when the events
// bucket is empty (everything acked). The elapsed
// counter is recovered as the larger of the saved value and the newest
// record's stamp, so it is saved at most every elapsedSaveEvery (and at
// Close): a crash loses at most that much idle time, and record ages stay
// monotonic because every record carries its own stamp.
func (s *Store) putMeta(tx *bolt.Tx, mono uint64) error {
	m := tx.Bucket(bucketMeta)
	if s.forceMeta || mono >= s.savedElapsed+uint64(elapsedSaveEvery.Milliseconds()) {
		if err := m.Put(keyElapsed, binary.BigEndian.AppendUint64(nil, mono)); err != nil {
			return err
		}
		s.elapsedPending = true
	}
	// The bucket ends at lastSeq unless it is empty: acks delete a prefix,
	// and a quota or retention drop always appends its store.dropped
	// event. (Not Cursor.Last: in bbolt v1.5.0 it loops forever on a
	// bucket of several pages emptied in the same transaction.)
	if s.w.records == 0 || s.seqBumped {
		// Also after recovery moved lastSeq past a reservation with no
		// record at the new end yet.
		if v := m.Get(keyLastSeq); v == nil || binary.BigEndian.Uint64(v) != s.w.lastSeq {
			if err := m.Put(keyLastSeq, binary.BigEndian.AppendUint64(nil, s.w.lastSeq)); err != nil {
				return err
			}
		}
	}
	// Journal commits use seqs up to the reservation; renew it before
	// half of it is used (see recover.go).
	s.newReserved = s.reserved
	if s.w.lastSeq+seqReserve/2 > s.reserved {
		s.newReserved = s.w.lastSeq + seqReserve
		if err := m.Put(keyReserved, binary.BigEndian.AppendUint64(nil, s.newReserved)); err != nil {
			return err
		}
	}
	if s.closing {
		return m.Put(keyClean, binary.BigEndian.AppendUint64(nil, s.w.lastSeq))
	}
	return nil
}

// metaSaved notes a committed elapsed counter.
func (s *Store) metaSaved(mono uint64) {
	if s.elapsedPending {
		s.savedElapsed = mono
	}
	s.reserved = s.newReserved
	s.seqBumped = false
}

// publish makes the committed writer state visible and feeds subscribers.
func (s *Store) publish(out []*event.Event) {
	s.mu.Lock()
	s.pub = s.w.clone()
	s.rv.Store(&readView{evs: s.ov.evs, state: s.ov.state, low: s.w.low})
	s.mu.Unlock()
	s.lastSeq.Store(s.w.lastSeq)
	if len(out) > 0 {
		s.broadcast(out)
	}
}

// putRecord stores one record and accounts for it.
func (s *Store) putRecord(b *bolt.Bucket, seq uint64, h header, js []byte) error {
	v := encodeRecord(seq, h, js)
	if err := b.Put(seqKey(seq), v); err != nil {
		return fmt.Errorf("put record %d: %w", seq, err)
	}
	s.account(seq, h, int64(keySize+len(v)))
	return nil
}

// account counts a new record, wherever it is stored.
func (s *Store) account(seq uint64, h header, n int64) {
	s.w.lastSeq = seq
	if s.w.records == 0 {
		s.w.firstSeq, s.w.firstMono = seq, h.monoMS
	}
	s.w.records++
	s.w.storedBytes += n
	s.w.count[h.class]++
	s.w.bytes[h.class] += n
	s.bytesWritten.Add(uint64(n))
}

// removed accounts for a deleted record.
func (s *Store) removed(h header, n int64) {
	if h.class != classImportant {
		h.class = classTelemetry
	}
	s.w.records--
	s.w.storedBytes -= n
	s.w.count[h.class]--
	s.w.bytes[h.class] -= n
}

// refreshFirst re-reads the first record after deletions.
func (s *Store) refreshFirst(b *bolt.Bucket) {
	k, v := b.Cursor().First()
	if k == nil {
		s.w.firstSeq, s.w.firstMono, s.w.records = 0, 0, 0
		return
	}
	s.w.firstSeq = keySeq(k)
	if h, err := decodeHeader(s.w.firstSeq, v); err == nil {
		s.w.firstMono = h.monoMS
	}
}

// ackLow is the highest seq every sink has acked (0 without sinks: the
// log then keeps everything until quota or retention).
func (s *Store) ackLow() uint64 {
	if len(s.sinks) == 0 {
		return 0
	}
	low := s.w.lastSeq
	for sink := range s.sinks {
		low = min(low, s.w.cursors[sink])
	}
	return low
}

// deleteAcked deletes every record all sinks have acked, inside a bbolt
// transaction that holds every record (the journal folded in).
func (s *Store) deleteAcked(b *bolt.Bucket) error {
	low := s.ackLow()
	if low <= s.w.low {
		return nil
	}
	err := deleteHead(b, func(k, _ []byte) bool { return keySeq(k) > low }, func(k, v []byte) {
		h, _ := decodeHeader(keySeq(k), v)
		s.removed(h, int64(len(k)+len(v)))
	})
	if err != nil {
		return fmt.Errorf("delete acked: %w", err)
	}
	s.w.low = low
	s.refreshFirst(b)
	return nil
}

// dropInfo is the data of one store.dropped event.
type dropInfo struct {
	Reason    string `json:"reason"`
	Count     uint64 `json:"count"`
	FirstSeq  uint64 `json:"first_seq"`
	LastSeq   uint64 `json:"last_seq"`
	Telemetry uint64 `json:"telemetry"`
	Important uint64 `json:"important"`
	Bytes     int64  `json:"bytes"`
}

// absorb widens the drop's range over the range a dropped declaration
// (store.seq_skipped, store.lost, an earlier store.dropped) declared, so
// that what it declared stays declared. v is the dropped record's value.
func (d *dropInfo) absorb(v []byte) {
	if len(v) <= headerSize || v[1] != classImportant || !bytes.Contains(v[headerSize:], []byte(`"kind":"store.`)) || (v[0] != recordV1 && v[0] != recordVersion) {
		return
	}
	var ev struct {
		Kind event.Kind `json:"kind"`
		Data struct {
			First uint64 `json:"first_seq"`
		} `json:"data"`
	}
	if len(v) < headerSize+2 || (v[0] == recordVersion && len(v) < headerSize+2+int(v[headerSize+1])) || json.Unmarshal(recordJSON(v), &ev) != nil || !declares(ev.Kind) || ev.Data.First == 0 {
		return
	}
	d.FirstSeq = min(d.FirstSeq, ev.Data.First)
}

// declares reports whether events of kind k declare a seq range that is
// missing from the log: they are kept as important records.
func declares(k event.Kind) bool {
	return k == event.StoreDropped || k == event.StoreSeqSkipped || k == event.StoreLost
}

func (d *dropInfo) add(seq uint64, h header, n int64) {
	if d.Count == 0 || seq < d.FirstSeq {
		d.FirstSeq = seq
	}
	d.LastSeq = max(d.LastSeq, seq)
	d.Count++
	d.Bytes += n
	if h.class == classImportant {
		d.Important++
	} else {
		d.Telemetry++
	}
}

// dropExpired deletes records older than MaxAge in store-monotonic time.
// Records are committed with a non-decreasing elapsed counter, so the
// expired ones are a prefix of the bucket.
func (s *Store) dropExpired(tx *bolt.Tx, b *bolt.Bucket, mono uint64, wall int64, out *[]*event.Event) error {
	cutoff := mono - min(mono, uint64(s.opts.MaxAge.Milliseconds()))
	d := dropInfo{Reason: ReasonRetention}
	err := deleteHead(b, func(k, v []byte) bool {
		h, err := decodeHeader(keySeq(k), v)
		return err == nil && h.monoMS >= cutoff
	}, func(k, v []byte) {
		seq := keySeq(k)
		h, _ := decodeHeader(seq, v)
		n := int64(len(k) + len(v))
		s.removed(h, n)
		d.add(seq, h, n)
		d.absorb(v)
	})
	if err != nil {
		return fmt.Errorf("drop expired: %w", err)
	}
	s.refreshFirst(b)
	return s.appendDropped(b, d, mono, wall, out)
}

// dropOldest deletes the oldest telemetry until the stored bytes are at
// most target, and only then the oldest important records.
func (s *Store) dropOldest(tx *bolt.Tx, b *bolt.Bucket, target int64, reason string, mono uint64, wall int64, out *[]*event.Event) error {
	d := dropInfo{Reason: reason}
	for _, class := range []byte{classTelemetry, classImportant} {
		c := b.Cursor()
		k, v := c.First()
		for k != nil && s.w.storedBytes > target && s.w.count[class] > 0 {
			seq := keySeq(k)
			h, err := decodeHeader(seq, v)
			if err != nil {
				h = header{class: classTelemetry}
			}
			if h.class != class {
				k, v = c.Next()
				continue
			}
			n := int64(len(k) + len(v))
			d.absorb(v) // before the delete: v points into the page
			if err := c.Delete(); err != nil {
				return fmt.Errorf("drop %d: %w", seq, err)
			}
			s.removed(h, n)
			d.add(seq, h, n)
			k, v = c.Seek(seqKey(seq + 1)) // Next after Delete may skip
		}
	}
	s.refreshFirst(b)
	return s.appendDropped(b, d, mono, wall, out)
}

// appendDropped appends the store.dropped event that accounts for d.
func (s *Store) appendDropped(b *bolt.Bucket, d dropInfo, mono uint64, wall int64, out *[]*event.Event) error {
	if d.Count == 0 {
		return nil
	}
	s.w.dropped[d.Reason] += d.Count
	s.w.droppedImp += d.Important
	ev := event.New(event.StoreDropped).WithData(d)
	s.log.Warn("store dropped records", "reason", d.Reason, "count", d.Count,
		"first_seq", d.FirstSeq, "last_seq", d.LastSeq, "important", d.Important)
	return s.appendInternal(b, ev, mono, wall, out)
}

// appendInternal stores an event the store itself raises.
func (s *Store) appendInternal(b *bolt.Bucket, ev *event.Event, mono uint64, wall int64, out *[]*event.Event) error {
	seq := s.w.lastSeq + 1
	ev.Seq = seq
	ev.ID = event.FormatID(s.opts.Gateway, s.epoch, seq)
	ev.Gateway, ev.Compound = s.opts.Gateway, s.opts.Compound
	ev.Time = time.UnixMilli(wall).UTC()
	ev.TimeQuality = s.opts.TimeQuality()
	js, err := ev.MarshalJSON()
	if err != nil {
		return fmt.Errorf("encode %s: %w", ev.Kind, err)
	}
	if err := s.putRecord(b, seq, headerOf(ev, mono, wall), js); err != nil {
		return err
	}
	*out = append(*out, ev)
	return nil
}

// deleteHead deletes records from the head of b until stop says to keep
// one, telling gone about each before it goes. It walks forward and deletes
// by key in chunks. The obvious loop — First, Delete, First again — is
// quadratic in bbolt: the pages it empties stay in the tree until the
// commit rebalances it, and every First walks over all of them again (acking
// a backlog of a million records took many minutes).
func deleteHead(b *bolt.Bucket, stop func(k, v []byte) bool, gone func(k, v []byte)) error {
	const chunk = 4096
	c := b.Cursor()
	keys := make([][]byte, 0, chunk)
	k, v := c.First()
	for k != nil {
		keys = keys[:0]
		stopped := false
		for ; k != nil && len(keys) < chunk; k, v = c.Next() {
			if stop(k, v) {
				stopped = true
				break
			}
			gone(k, v)
			keys = append(keys, append([]byte(nil), k...))
		}
		var resume []byte
		if k != nil && !stopped {
			resume = append([]byte(nil), k...)
		}
		for _, key := range keys {
			if err := b.Delete(key); err != nil {
				return fmt.Errorf("delete %d: %w", keySeq(key), err)
			}
		}
		if stopped || resume == nil {
			return nil
		}
		// The cursor is stale after the deletes; Seek walks the branches to
		// the next key instead of over the emptied pages.
		k, v = c.Seek(resume)
	}
	return nil
}

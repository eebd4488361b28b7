package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/lintel-edge/lintel/edge/event"
)

// view runs a short read transaction, guarded against a damaged page
// faulting or panicking inside bbolt, and maps a closed db to ErrClosed.
func (s *Store) view(f func(tx *bolt.Tx) error) error {
	err := guarded(func() error { return s.db.View(f) })
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Read returns up to max events with seq > after, ascending, for sink.
// Records dropped by quota or retention are simply absent: a sink whose
// cursor is below a dropped range skips it. A record whose checksum fails
// is skipped, logged and counted (Stats.CorruptReads).
func (s *Store) Read(sink string, after uint64, max int) ([]*event.Event, error) {
	if !s.sinks[sink] {
		return nil, fmt.Errorf("read: unknown sink %q", sink)
	}
	evs, err := s.ReadRange(after, max)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", sink, err)
	}
	return evs, nil
}

// ReadRange is Read without a sink.
func (s *Store) ReadRange(after uint64, max int) ([]*event.Event, error) {
	if max <= 0 {
		return nil, fmt.Errorf("read range: max %d, want > 0", max)
	}
	var out []*event.Event
	err := s.scan(after, max, func(seq uint64, v []byte) scanStep {
		_, ev, err := decodeRecord(seq, v)
		if err != nil {
			s.corruptReads.Add(1)
			s.log.Error("store record unreadable, skipped", "seq", seq, "err", err)
			return scanSkip
		}
		out = append(out, ev)
		return scanTake
	})
	if err != nil {
		return nil, fmt.Errorf("read range: %w", err)
	}
	return out, nil
}

// scanStep is what a scan callback did with a record.
type scanStep int

const (
	scanTake scanStep = iota // taken: counts against max
	scanSkip                 // skipped (damaged): does not count
	scanStop                 // not taken, and no more wanted
)

// scan calls f with the stored values of the records with seq > after,
// ascending, until f has taken max of them or asks to stop. Values alias
// bbolt's pages or the journal overlay: valid only during f.
func (s *Store) scan(after uint64, max int, f func(seq uint64, v []byte) scanStep) error {
	n := 0
	stop := false
	each := func(seq uint64, v []byte) {
		switch f(seq, v) {
		case scanTake:
			n++
		case scanStop:
			stop = true
		}
	}
	// The journal overlay is taken before the bbolt snapshot: a fold in
	// between puts the same records in both, never in neither. bbolt
	// holds the seqs below the overlay's first.
	rv := s.rv.Load()
	after = maxU64(after, rv.low)
	ovFirst := rv.firstSeq()
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && n < max && !stop; k, v = c.Next() {
			if ovFirst != 0 && keySeq(k) >= ovFirst {
				break
			}
			each(keySeq(k), v)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, e := range rv.evs {
		if n >= max || stop {
			break
		}
		if e.seq > after {
			each(e.seq, e.v)
		}
	}
	return nil
}

// RawEvent is one stored event as the bytes it is stored as, with what
// routing needs taken from the record header: no JSON is parsed (for a
// record written before the header carried kind and severity, those two
// fields alone are parsed from the JSON).
//
// JSON and Kind alias the store's memory (a bbolt page or the journal
// overlay) and are valid only during the callback that received them:
// copy what must outlive it.
type RawEvent struct {
	Seq      uint64
	Severity event.Severity
	Kind     []byte // as ASCII bytes; event.Kind(r.Kind) copies it
	// Important is the storage class (urgent, with evidence, or declaring
	// missing seqs): the last dropped under quota pressure.
	Important bool
	// JSON is the event exactly as stored: Event v1, the bytes
	// event.Event.MarshalJSON gave at append time.
	JSON []byte
}

// ReadRaw is Read without decoding: it calls f with each stored event
// after the given seq, ascending, up to max events, until f returns false
// (that event is then not counted and f sees no more). It returns how many
// events f accepted and the seq of the last of them. f runs while the
// store holds a read snapshot: it must be quick, must not keep the slices
// it is handed, and must not call the store. Damaged records are skipped
// and counted as in Read.
func (s *Store) ReadRaw(sink string, after uint64, max int, f func(RawEvent) bool) (n int, last uint64, err error) {
	if !s.sinks[sink] {
		return 0, 0, fmt.Errorf("read raw: unknown sink %q", sink)
	}
	n, last, err = s.ReadRangeRaw(after, max, f)
	if err != nil {
		return 0, 0, fmt.Errorf("read %s: %w", sink, err)
	}
	return n, last, nil
}

// ReadRangeRaw is ReadRaw without a sink.
func (s *Store) ReadRangeRaw(after uint64, max int, f func(RawEvent) bool) (n int, last uint64, err error) {
	if max <= 0 {
		return 0, 0, fmt.Errorf("read range raw: max %d, want > 0", max)
	}
	err = s.scan(after, max, func(seq uint64, v []byte) scanStep {
		r, err := rawEvent(seq, v)
		if err != nil {
			s.corruptReads.Add(1)
			s.log.Error("store record unreadable, skipped", "seq", seq, "err", err)
			return scanSkip
		}
		if !f(r) {
			return scanStop
		}
		n++
		last = seq
		return scanTake
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read range raw: %w", err)
	}
	return n, last, nil
}

// rawEvent checks a stored value and describes it without decoding it.
func rawEvent(seq uint64, v []byte) (RawEvent, error) {
	h, err := decodeHeader(seq, v)
	if err != nil {
		return RawEvent{}, err
	}
	r := RawEvent{Seq: seq, Important: h.class == classImportant, JSON: v[h.body:]}
	if v[0] == recordVersion {
		r.Severity, r.Kind = severityOfRank(h.sev), recordKind(v)
		return r, nil
	}
	// A version 1 record: the two routing fields from the JSON.
	var ev struct {
		Seq      uint64         `json:"seq"`
		Kind     string         `json:"kind"`
		Severity event.Severity `json:"severity"`
	}
	if err := json.Unmarshal(r.JSON, &ev); err != nil {
		return RawEvent{}, fmt.Errorf("record %d: decode event: %w", seq, err)
	}
	if ev.Seq != seq {
		return RawEvent{}, fmt.Errorf("record %d: event carries seq %d", seq, ev.Seq)
	}
	r.Severity, r.Kind = ev.Severity, []byte(ev.Kind)
	return r, nil
}

func severityOfRank(r byte) event.Severity {
	switch r {
	case 1:
		return event.Info
	case 2:
		return event.Warning
	case 3:
		return event.Alert
	case 4:
		return event.Critical
	}
	return ""
}

func maxU64(a, b uint64) uint64 { return max(a, b) }

// Get returns the event with seq, if it is stored.
func (s *Store) Get(seq uint64) (*event.Event, bool, error) {
	var ev *event.Event
	rv := s.rv.Load()
	if seq <= rv.low {
		if s.isClosed() {
			return nil, false, fmt.Errorf("get %d: %w", seq, ErrClosed)
		}
		return nil, false, nil
	}
	if v, ok := rv.find(seq); ok {
		if s.isClosed() {
			return nil, false, fmt.Errorf("get %d: %w", seq, ErrClosed)
		}
		_, e, err := decodeRecord(seq, v)
		if err != nil {
			return nil, false, fmt.Errorf("get %d: %w", seq, err)
		}
		return e, true, nil
	}
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketEvents).Get(seqKey(seq))
		if v == nil {
			return nil
		}
		_, e, err := decodeRecord(seq, v)
		ev = e
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("get %d: %w", seq, err)
	}
	return ev, ev != nil, nil
}

// GetState returns the value stored under ns/key and its version.
func (s *Store) GetState(ns, key string) (version uint32, val []byte, ok bool, err error) {
	if st, in := s.rv.Load().state[ns][key]; in {
		if s.isClosed() {
			return 0, nil, false, fmt.Errorf("get state: %w", ErrClosed)
		}
		if st.deleted {
			return 0, nil, false, nil
		}
		return st.version, append([]byte{}, st.val...), true, nil
	}
	err = s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState).Bucket([]byte(ns))
		if b == nil {
			return nil
		}
		v := b.Get([]byte(key))
		if v == nil {
			return nil
		}
		if len(v) < 4 {
			return fmt.Errorf("state %s/%s: %d bytes, shorter than a version", ns, key, len(v))
		}
		version, val, ok = binary.BigEndian.Uint32(v), append([]byte{}, v[4:]...), true
		return nil
	})
	if err != nil {
		return 0, nil, false, fmt.Errorf("get state: %w", err)
	}
	return version, val, ok, nil
}

// ListState returns every value in ns (without versions).
func (s *Store) ListState(ns string) (map[string][]byte, error) {
	out := map[string][]byte{}
	rv := s.rv.Load()
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketState).Bucket([]byte(ns))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			if len(v) < 4 {
				return fmt.Errorf("state %s/%s: %d bytes, shorter than a version", ns, k, len(v))
			}
			out[string(k)] = append([]byte{}, v[4:]...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list state: %w", err)
	}
	for k, st := range rv.state[ns] {
		if st.deleted {
			delete(out, k)
		} else {
			out[k] = append([]byte{}, st.val...)
		}
	}
	return out, nil
}

// Check runs bbolt's consistency check over the whole file.
func (s *Store) Check() error {
	err := s.view(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("check store: %w", err)
	}
	return nil
}

// SinkStats is one sink's position.
type SinkStats struct {
	Cursor uint64 // last acked seq
	// Backlog counts seqs after the cursor, LastSeq − Cursor: an upper
	// bound on unacked records, since dropped seqs are included.
	Backlog uint64
	// OldestUnackedAge is the store-monotonic age of the first stored
	// record after the cursor (0 if none).
	OldestUnackedAge time.Duration
}

// Stats are counters since Open plus the current shape of the log.
type Stats struct {
	Epoch            string
	BootCount        uint64
	Appended         uint64            // events appended since Open
	Commits          uint64            // successful write transactions
	CommitErrors     uint64            // failed transaction attempts
	BytesAppended    uint64            // record bytes written since Open
	Dropped          map[string]uint64 // records dropped since Open, by reason
	DroppedImportant uint64            // of which important
	Records          uint64            // records stored now
	StoredBytes      int64             // record bytes stored now (the quota measure)
	ClassRecords     map[string]uint64 // records stored now, by class
	FirstSeq         uint64            // 0 when empty
	LastSeq          uint64
	Sinks            map[string]SinkStats
	SubscriberMisses uint64        // events a full subscriber buffer skipped
	CorruptReads     uint64        // records skipped by Read for a bad checksum
	CommitLatency    time.Duration // moving average of commit time
	FileSize         int64
	Quarantined      string
	Disk             DiskStats // free space, quota, the full state
	Recovery         Recovery  // what this Open recovered, skipped or lost
}

// Stats is cheap: a copy of in-memory counters plus one short read
// transaction with a seek per sink.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	p := s.pub.clone()
	s.mu.Unlock()
	st := Stats{
		Epoch: s.epoch, BootCount: s.boots,
		Appended: s.appended.Load(), Commits: s.commits.Load(), CommitErrors: s.commitErrors.Load(),
		BytesAppended: s.bytesWritten.Load(), Dropped: p.dropped, DroppedImportant: p.droppedImp,
		Records: p.records, StoredBytes: p.storedBytes,
		ClassRecords: map[string]uint64{ClassTelemetry: p.count[classTelemetry], ClassImportant: p.count[classImportant]},
		FirstSeq:     p.firstSeq, LastSeq: p.lastSeq, Sinks: map[string]SinkStats{},
		SubscriberMisses: s.misses.Load(), CorruptReads: s.corruptReads.Load(),
		CommitLatency: time.Duration(s.commitEWMA.Load()), Quarantined: s.quarantined,
	}
	if fi, err := os.Stat(s.opts.Path); err == nil {
		st.FileSize = fi.Size()
	}
	if d := s.diskPub.Load(); d != nil {
		st.Disk = *d
	}
	st.Recovery = s.Recovery()
	now := s.elapsedMS()
	rv := s.rv.Load()
	ovFirst := rv.firstSeq()
	_ = s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for sink, cur := range p.cursors {
			ss := SinkStats{Cursor: cur, Backlog: p.lastSeq - min(cur, p.lastSeq)}
			from := max(cur, rv.low)
			var seq uint64
			var v []byte
			if k, bv := c.Seek(seqKey(from + 1)); k != nil && (ovFirst == 0 || keySeq(k) < ovFirst) {
				seq, v = keySeq(k), bv
			} else {
				for _, e := range rv.evs {
					if e.seq > from {
						seq, v = e.seq, e.v
						break
					}
				}
			}
			if v != nil {
				if h, err := decodeHeader(seq, v); err == nil && now > h.monoMS {
					ss.OldestUnackedAge = time.Duration(now-h.monoMS) * time.Millisecond
				}
			}
			st.Sinks[sink] = ss
		}
		return nil
	})
	return st
}

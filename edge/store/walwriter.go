package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lintel-edge/lintel/edge/event"
)

// stamp gives a pending record the next seq and encodes its stored value.
func (s *Store) stamp(p *pendingRecord, mono uint64, wall int64) (seq uint64, id string, v []byte, h header, err error) {
	seq = s.w.lastSeq + 1
	id = event.FormatID(s.opts.Gateway, s.epoch, seq)
	js, err := stampJSON(p.js, id, seq)
	if err != nil {
		return 0, "", nil, header{}, fmt.Errorf("stamp event: %w", err)
	}
	h = header{class: p.class, monoMS: mono, wallMS: wall, sev: byte(p.ev.Severity.Rank()), kind: string(p.ev.Kind)}
	return seq, id, encodeRecord(seq, h, js), h, nil
}

// useJournal decides whether batch goes to the journal rather than to a
// bbolt commit: small batches of appends, acks and state, while the
// journal needs no fold and no record has to be dropped.
func (s *Store) useJournal(batch []*request) bool {
	if s.j == nil || s.j.broken || len(batch) == 0 {
		return false
	}
	events, bytes := 0, 0
	for _, r := range batch {
		if r.op == opFlush {
			return false
		}
		events += len(r.recs)
		bytes += r.bytes
	}
	return events <= s.opts.walMaxEvents && bytes <= s.opts.walMaxBytes && len(s.pending) == 0 &&
		s.w.lastSeq+uint64(events) <= s.reserved &&
		s.w.storedBytes+int64(bytes) <= s.disk.quota && !s.retentionDue() && !s.foldDue()
}

// foldDue reports whether the journal should be folded into bbolt now.
func (s *Store) foldDue() bool {
	return s.ov.frames > 0 && (s.ov.bytes >= s.opts.walFoldBytes || time.Since(s.ov.since) >= s.opts.walFoldEvery)
}

// tryJournal commits batch as one journal frame. On error the writer
// state and the overlay are restored; bad is the request that caused it,
// if one did. errWALFull, errWALNotHere and I/O errors send the batch to
// bbolt instead.
func (s *Store) tryJournal(batch []*request) (bad *request, err error) {
	saved, ov := s.w.clone(), s.ov
	defer func() {
		if err != nil {
			s.w, s.ov = saved, ov
		}
	}()
	mono, wall := s.elapsedMS(), s.opts.Now().UnixMilli()
	var payload []byte
	var out []*event.Event
	for _, r := range batch {
		switch r.op {
		case opAppend:
			for i := range r.recs {
				p := &r.recs[i]
				seq, id, v, h, err := s.stamp(p, mono, wall)
				if err != nil {
					return r, err
				}
				payload = appendWALOp(payload, walOp{kind: walOpEvent, seq: seq, val: v})
				s.ov.evs = append(s.ov.evs, walEvent{seq: seq, v: v})
				s.ov.bytes += len(v)
				s.account(seq, h, int64(keySize+len(v)))
				p.ev.ID, p.ev.Seq = id, seq
				out = append(out, p.ev)
			}
		case opAck:
			if r.seq > s.w.cursors[r.sink] {
				s.w.cursors[r.sink] = r.seq
				s.ov.acked = true
				payload = appendWALOp(payload, walOp{kind: walOpAck, sink: r.sink, seq: r.seq})
			}
		case opPutState, opDeleteState:
			op := walOp{kind: walOpPut, ns: r.ns, key: r.key, version: r.version, val: r.val}
			if r.op == opDeleteState {
				op = walOp{kind: walOpDelete, ns: r.ns, key: r.key}
			}
			s.ov.state = cloneWALState(s.ov.state, r.ns)
			s.ov.state[r.ns][r.key] = walState{version: op.version, val: op.val, deleted: op.kind == walOpDelete}
			s.ov.bytes += len(r.ns) + len(r.key) + len(r.val)
			payload = appendWALOp(payload, op)
		default:
			return nil, errWALNotHere
		}
	}
	if s.w.storedBytes > s.disk.quota {
		return nil, errWALNotHere // the quota needs a drop, which needs bbolt
	}
	if err := s.dropAckedLogical(); err != nil {
		return nil, err
	}
	if len(payload) == 0 {
		return nil, nil // acks that moved no cursor: nothing to make durable
	}
	if err := s.j.append(payload); err != nil {
		if !errors.Is(err, errWALFull) {
			s.log.Error("store journal write failed, committing to bbolt only until reopen", "err", err)
			s.j.broken = true
		}
		return nil, err
	}
	if s.ov.frames == 0 {
		s.ov.since = time.Now()
	}
	s.ov.frames++
	s.walFrames.Add(1)
	s.commits.Add(1)
	for _, r := range batch {
		s.appended.Add(uint64(len(r.recs)))
	}
	s.publish(out)
	return nil, nil
}

// dropAckedLogical deletes what every sink has acked without a bbolt
// commit: the records are only counted out and hidden from readers
// (readView.low); the next fold removes them from the file, and those
// still in the journal never reach it.
func (s *Store) dropAckedLogical() error {
	low := s.ackLow()
	if low <= s.w.low {
		return nil
	}
	from := s.w.low
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(seqKey(from + 1)); k != nil && keySeq(k) <= low; k, v = c.Next() {
			h, _ := decodeHeader(keySeq(k), v)
			s.removed(h, int64(len(k)+len(v)))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("count acked records: %w", err)
	}
	for _, e := range s.ov.evs {
		if e.seq > from && e.seq <= low {
			h, _ := decodeHeader(e.seq, e.v)
			s.removed(h, int64(keySize+len(e.v)))
		}
	}
	s.w.low = low
	return s.refreshFirstLogical()
}

// refreshFirstLogical finds the first record not deleted, in bbolt or in
// the journal.
func (s *Store) refreshFirstLogical() error {
	if s.w.records == 0 {
		s.w.firstSeq, s.w.firstMono, s.w.records = 0, 0, 0
		return nil
	}
	found := false
	err := s.view(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketEvents).Cursor().Seek(seqKey(s.w.low + 1))
		if k == nil || len(s.ov.evs) > 0 && keySeq(k) >= s.ov.evs[0].seq {
			return nil
		}
		found = true
		s.w.firstSeq = keySeq(k)
		if h, err := decodeHeader(s.w.firstSeq, v); err == nil {
			s.w.firstMono = h.monoMS
		}
		return nil
	})
	if err != nil || found {
		return err
	}
	for _, e := range s.ov.evs {
		if e.seq > s.w.low {
			s.w.firstSeq = e.seq
			if h, err := decodeHeader(e.seq, e.v); err == nil {
				s.w.firstMono = h.monoMS
			}
			break
		}
	}
	return nil
}

// foldInto puts what the journal holds into a bbolt transaction, after
// removing from the file the records acks deleted meanwhile (they were
// counted out then; records the journal holds that are already acked
// never reach the file). It reports whether the journal held anything;
// then the transaction also records the generation it folds.
func (s *Store) foldInto(tx *bolt.Tx, evb *bolt.Bucket) (bool, error) {
	low := s.w.low
	if err := deleteHead(evb, func(k, _ []byte) bool { return keySeq(k) > low }, func(_, _ []byte) {}); err != nil {
		return false, fmt.Errorf("delete acked: %w", err)
	}
	if s.ov.frames == 0 || s.j == nil {
		return false, nil
	}
	for _, e := range s.ov.evs {
		if e.seq > s.w.low {
			if err := evb.Put(seqKey(e.seq), e.v); err != nil {
				return false, fmt.Errorf("fold record %d: %w", e.seq, err)
			}
		}
	}
	sb := tx.Bucket(bucketState)
	for ns, kv := range s.ov.state {
		for k, st := range kv {
			if st.deleted {
				if nb := sb.Bucket([]byte(ns)); nb != nil {
					if err := nb.Delete([]byte(k)); err != nil {
						return false, fmt.Errorf("fold state %s/%s: %w", ns, k, err)
					}
				}
				continue
			}
			nb, err := sb.CreateBucketIfNotExists([]byte(ns))
			if err != nil {
				return false, fmt.Errorf("fold state bucket %s: %w", ns, err)
			}
			v := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(st.val)), st.version)
			if err := nb.Put([]byte(k), append(v, st.val...)); err != nil {
				return false, fmt.Errorf("fold state %s/%s: %w", ns, k, err)
			}
		}
	}
	if err := tx.Bucket(bucketMeta).Put(keyWALGen, binary.BigEndian.AppendUint64(nil, s.j.gen)); err != nil {
		return false, err
	}
	return true, nil
}

// putCursors writes every sink cursor.
func (s *Store) putCursors(tx *bolt.Tx) error {
	cb := tx.Bucket(bucketCursors)
	for sink, seq := range s.w.cursors {
		if err := cb.Put([]byte(sink), binary.BigEndian.AppendUint64(nil, seq)); err != nil {
			return err
		}
	}
	return nil
}

// foldHook lets the crash test kill the process between the steps of a
// fold: 1 after its commit, 2 after the empty commit, 3 after the new
// generation's header.
var foldHook = func(stage int) {}

// afterFold runs once a fold's transaction has committed. One more,
// empty, commit follows, so that bbolt falling back to its other meta page
// (one damaged by a power cut) still finds the fold; then the journal
// moves to the next generation and its old frames are never replayed.
func (s *Store) afterFold() {
	s.folds.Add(1)
	s.walFolded = s.j.gen
	s.ov = overlay{}
	if s.j.broken {
		return
	}
	foldHook(1)
	if err := s.db.Update(func(*bolt.Tx) error { return nil }); err != nil {
		s.log.Error("store commit after journal fold failed, committing to bbolt only until reopen", "err", err)
		s.j.broken = true
		return
	}
	foldHook(2)
	defer foldHook(3)
	if err := s.j.startGeneration(s.j.gen + 1); err != nil {
		s.log.Error("store journal header write failed, committing to bbolt only until reopen", "err", err)
		s.j.broken = true
	}
}

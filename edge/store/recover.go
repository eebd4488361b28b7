package store

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// Recovery after an unclean stop or storage damage.
//
// No id is ever handed out twice. Journal commits take seqs from a range
// reserved in bbolt beforehand (meta seq_reserved, raised by any bbolt
// commit once less than half of seqReserve is left, which a fold does at
// no extra cost: its commit dirties the meta page anyway). A clean Close
// leaves its last seq under meta clean_close; Open consumes it. Without
// it, the last run may have handed out any seq up to the reservation, and
// whatever the journal still shows cannot prove which: a commit cut short
// by a power cut and a frame damaged afterwards look the same. So after
// an unclean stop the next seq is above the reservation. The seqs in
// between are declared, after them, in the same commit that makes the
// jump durable: store.seq_skipped (info) when nothing points to damage
// (the usual kill -9 or watchdog restart: reserved, never used), or
// store.lost (alert) when something does, with the range and how many
// events at most. A receiver can then tell a declared gap from a hole.
//
// What the journal still holds is kept: its frames are replayed in order,
// then, past the first frame that fails, every later frame of the same
// generation whose checksum holds and every single event record whose own
// checksum holds (a record's CRC covers its seq and bytes), so one flipped
// bit costs the events it hit, not the rest of the journal.

// seqReserve is how many seqs a bbolt commit reserves for the journal.
const seqReserve = 2048

// minWALEventOp is the smallest journal event operation: the bound on how
// many seqs a journal of n bytes can have used when no reservation is
// known (a file written before reservations).
const minWALEventOp = 1 + 8 + 4 + headerSize + 2

// Recovery is what Open found of the last run and what it did about it.
type Recovery struct {
	Unclean  bool     // the last run ended without Close (crash, kill -9, power cut)
	Replayed int      // journal frames replayed in order
	Salvaged int      // events recovered past a damaged part of the journal
	Damage   []string // what was found damaged; empty if nothing
	// Lost are seq ranges whose events were, or may have been, durable
	// and are gone.
	Lost []SeqRange
	// Skipped are seqs reserved by the last run and skipped at this Open
	// so that none is reused; nothing points to any of them having been
	// used.
	Skipped SeqRange
	// Quarantined and JournalQuarantined are where a corrupt store file or
	// journal was moved at this Open.
	Quarantined, JournalQuarantined string
}

// SeqRange is an inclusive range of seqs; Certain says the events in it
// were durable (a later commit survived), not just possibly so.
type SeqRange struct {
	First, Last uint64
	Certain     bool
}

// Len is the number of seqs in r.
func (r SeqRange) Len() uint64 {
	if r.Last < r.First || r.First == 0 {
		return 0
	}
	return r.Last - r.First + 1
}

// Recovery reports what this Open recovered, skipped or lost.
func (s *Store) Recovery() Recovery {
	r := s.rec
	r.Damage = append([]string(nil), r.Damage...)
	r.Lost = append([]SeqRange(nil), r.Lost...)
	return r
}

func (r *Recovery) note(format string, args ...any) {
	r.Damage = append(r.Damage, fmt.Sprintf(format, args...))
}

// lose records seqs first..last as lost.
func (r *Recovery) lose(first, last uint64, certain bool) {
	if first == 0 || last < first {
		return
	}
	if n := len(r.Lost); n > 0 && r.Lost[n-1].Last+1 == first && r.Lost[n-1].Certain == certain {
		r.Lost[n-1].Last = last
		return
	}
	r.Lost = append(r.Lost, SeqRange{First: first, Last: last, Certain: certain})
}

// internal queues an event the store raises itself; the next bbolt commit
// stores it (useJournal sends a batch to bbolt while any is queued).
func (s *Store) internal(ev *event.Event) {
	s.pending = append(s.pending, ev)
}

// seqLimit is the highest seq the last run can have handed out: its
// reservation, or for a file without one a bound from the journal's size.
func (s *Store) seqLimit(journalBytes int64) uint64 {
	if s.reserved > 0 && s.reserved >= s.w.lastSeq {
		return s.reserved
	}
	n := max(journalBytes, s.opts.walSize)
	return s.w.lastSeq + uint64(n/minWALEventOp)
}

// recoverJournal replays generation gen of the journal in data and then
// salvages what holds past the point where replay stopped.
func (s *Store) recoverJournal(data []byte, gen, limit uint64) {
	stop, next := s.replay(data, gen)
	s.rec.Replayed = s.walReplayed
	if frameHeaderAt(data, stop, gen, next) || frameHeaderAt(data, stop+walPage-stop%walPage, gen, next) {
		s.rec.note("journal frame %d (offset %d) is torn or damaged", next, stop)
	}
	s.salvage(data, gen, next-1, stop, limit)
}

// frameHeaderAt reports whether a frame header of gen with index starts at
// off, whatever its checksum says.
func frameHeaderAt(data []byte, off int64, gen, index uint64) bool {
	b := tail(data, off)
	return len(b) >= walFrameHeader &&
		binary.BigEndian.Uint64(b[8:]) == gen && binary.BigEndian.Uint64(b[16:]) == index
}

// salvage scans data from off for what survived past a damaged frame:
// whole frames of gen with an index above lastIndex whose checksum holds,
// and single event records above the last seq and within limit whose own
// checksum holds. Bytes of older generations hold only seqs bbolt already
// has (each generation was folded before the next began), so they are
// skipped by the seq test.
func (s *Store) salvage(data []byte, gen, lastIndex uint64, off int64, limit uint64) {
	salvaged := 0
	for p := int(max(off, walPage)); p+walFrameHeader <= len(data); {
		b := data[p:]
		if binary.BigEndian.Uint64(b[8:]) == gen {
			if idx := binary.BigEndian.Uint64(b[16:]); idx > lastIndex {
				if ops, n, err := decodeWALFrame(b, gen, idx); err == nil && s.applyLoose(ops, limit) {
					lastIndex = idx
					salvaged++
					p += n
					continue
				}
			}
		}
		if n := s.salvageRecord(b, limit); n > 0 {
			salvaged++
			p += n
			continue
		}
		p++
	}
	if salvaged > 0 {
		s.rec.note("%d frames or records recovered past the damage", salvaged)
	}
}

// salvageRecord takes the event operation at the start of b if its record
// checks out, returning its length, or 0.
func (s *Store) salvageRecord(b []byte, limit uint64) int {
	const opHead = 1 + 8 + 4
	if len(b) < opHead+headerSize+2 || b[0] != walOpEvent || (b[opHead] != recordVersion && b[opHead] != recordV1) {
		return 0
	}
	seq := binary.BigEndian.Uint64(b[1:])
	n := int(binary.BigEndian.Uint32(b[9:]))
	if seq <= s.w.lastSeq || seq > limit || n < headerSize+2 || n > len(b)-opHead {
		return 0
	}
	v := b[opHead : opHead+n]
	h, err := decodeHeader(seq, v)
	if err != nil {
		return 0
	}
	s.takeSalvaged(seq, h, append([]byte(nil), v...), false)
	return opHead + n
}

// applyLoose applies a frame found past damage. Its events need not follow
// the store (what lies between is lost) but must be new and within the
// limit, in order; else the frame is not taken.
func (s *Store) applyLoose(ops []walOp, limit uint64) bool {
	last := s.w.lastSeq
	for _, op := range ops {
		if op.kind == walOpEvent {
			if op.seq <= last || op.seq > limit {
				return false
			}
			last = op.seq
		}
	}
	for _, op := range ops {
		if op.kind == walOpEvent {
			h, _ := decodeHeader(op.seq, op.val) // checked by decodeWALFrame
			s.takeSalvaged(op.seq, h, op.val, true)
		}
	}
	s.applyOps(ops, false)
	return true
}

// takeSalvaged adds a recovered record to the overlay; the seqs between
// the store's last and it are lost (certainly, if a whole later frame
// survived: frames are written one after the other, each synced).
func (s *Store) takeSalvaged(seq uint64, h header, v []byte, certain bool) {
	if seq > s.w.lastSeq+1 {
		s.rec.lose(s.w.lastSeq+1, seq-1, certain)
	}
	if s.ov.frames == 0 {
		s.ov.frames, s.ov.since = 1, time.Now()
	}
	s.account(seq, h, int64(keySize+len(v)))
	s.ov.evs = append(s.ov.evs, walEvent{seq: seq, v: v})
	s.ov.bytes += len(v)
	s.elapsedBase = max(s.elapsedBase, h.monoMS)
	s.rec.Salvaged++
}

// settleRecovery decides, once the journal is read, where the next seq
// starts and queues the events that declare what was skipped or lost.
func (s *Store) settleRecovery(limit uint64) error {
	if err := s.dropAckedLogical(); err != nil {
		return err
	}
	damaged := len(s.rec.Damage) > 0
	if s.cleanClose && s.ov.frames == 0 {
		// Nothing can have been written after a clean Close: whatever
		// happened to the journal since, no seq is in doubt.
		return nil
	}
	s.rec.Unclean = !s.cleanClose
	if limit > s.w.lastSeq {
		r := SeqRange{First: s.w.lastSeq + 1, Last: limit}
		if damaged {
			s.rec.lose(r.First, r.Last, false)
		} else {
			s.rec.Skipped = r
		}
		s.w.lastSeq = limit
		s.seqBumped = true
	}
	if len(s.rec.Lost) > 0 {
		first, last := s.rec.Lost[0].First, s.rec.Lost[len(s.rec.Lost)-1].Last
		var count, certain uint64
		ranges := make([][2]uint64, 0, len(s.rec.Lost))
		for _, r := range s.rec.Lost {
			count += r.Len()
			if r.Certain {
				certain += r.Len()
			}
			ranges = append(ranges, [2]uint64{r.First, r.Last})
		}
		damage := strings.Join(s.rec.Damage, "; ")
		s.log.Error("store lost durable events to journal damage", "first_seq", first, "last_seq", last,
			"at_most", count, "certain", certain, "salvaged", s.rec.Salvaged, "damage", damage)
		s.internal(event.New(event.StoreLost).WithData(map[string]any{
			"reason": "journal_damage", "first_seq": first, "last_seq": last, "count": count,
			"certain": certain, "ranges": ranges, "salvaged": s.rec.Salvaged, "damage": damage,
		}))
	}
	if r := s.rec.Skipped; r.Len() > 0 {
		s.log.Info("store recovered after an unclean stop", "replayed_frames", s.rec.Replayed,
			"skipped_first_seq", r.First, "skipped_last_seq", r.Last)
		s.internal(event.New(event.StoreSeqSkipped).WithData(map[string]any{
			"reason": "unclean_stop", "first_seq": r.First, "last_seq": r.Last, "count": r.Len(),
		}))
	}
	return nil
}

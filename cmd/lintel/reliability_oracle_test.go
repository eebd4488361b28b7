package main

// The reliability suite's oracle and its inputs: the daemon's durability
// tap and an independent dump of its store (see reliability_harness_test.go).

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ---------------------------------------------------------------------------
// Oracle.

// relOracle compares the tap, the listener and the store dump (see the
// comment of reliability_harness_test.go), fills rep's counts and returns
// every violation found (at most 10 of a kind spelled out). beforeStop is
// the number of tap entries written before the final SIGTERM: those must
// all have reached the listener; later ones may wait in the store.
//
// lossOK is for the journal-damage scenarios, where the test itself
// destroys durable events: there a store.lost declaration is expected,
// and a tapped event that is neither at the listener nor in the store is
// DeclaredLost when a store.lost that reached the listener covers its seq
// (a store.seq_skipped does not: it says nothing was used). Everything
// else holds as without it: no id with two contents, every hole declared.
func relOracle(rep *relReport, tp *relTap, l *relListener, dump *relDump, beforeStop int, lossOK bool) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var problems []string
	counted := map[string]int{}
	problem := func(kind, format string, a ...any) {
		counted[kind]++
		if counted[kind] <= 10 {
			problems = append(problems, fmt.Sprintf(format, a...))
		}
	}

	rep.Acked = len(tp.byID)
	rep.TapReused = len(tp.reused)
	rep.Torn = tp.torn
	for _, id := range tp.reused {
		problem("reused", "id %s tapped twice with two contents: one id given to two events", id)
	}
	if tp.bad > 0 {
		problems = append(problems, fmt.Sprintf("%d malformed tap lines", tp.bad))
	}
	cursor, haveCursor := dump.cursors["city"]
	if !haveCursor {
		problems = append(problems, "store dump: no cursor for sink city")
	}
	byHash := make(map[string]string, len(tp.byID))
	epochs := map[string]bool{}
	for i, e := range tp.entries {
		if tp.byID[e.id] != i {
			continue // a repeated line
		}
		// Distinct events must be distinguishable, or the oracle is blind.
		if other, ok := byHash[e.hash]; ok {
			problem("indistinct", "the load made two events with one content: %s and %s", other, e.id)
		}
		byHash[e.hash] = e.id
		if ep, _, ok := relSplitID(e.id); ok {
			epochs[ep] = true
		}
		seen := l.seen[e.id]
		rec := dump.records[e.id]
		switch {
		case seen != nil && seen.events > 0:
			if seen.hash != e.hash {
				problem("conflict", "id %s: tapped with content %s, the listener got %s", e.id, e.hash, seen.hash)
			}
		case rec != nil && rec.seq > cursor:
			rep.Retained++
			if i < beforeStop {
				problem("undrained", "id %s (seq %d) durable before the final stop but still behind the sink's cursor %d", e.id, rec.seq, cursor)
			}
		case lossOK && rec == nil && relCoveredBy(l.declared, "store.lost", e.id):
			rep.DeclaredLost++
		default:
			rep.Lost++
			where := "and it is not in the store"
			if rec != nil {
				where = fmt.Sprintf("though the store holds it at seq %d, at or below the sink's cursor %d", rec.seq, cursor)
			}
			problem("lost", "LOST: %s (tap line %d) never reached the listener, %s", e.id, i+1, where)
		}
	}
	rep.Epochs = len(epochs)
	if len(epochs) > 1 {
		problems = append(problems, fmt.Sprintf("%d store epochs in the tap: the store was recreated (quarantined?) during the run", len(epochs)))
	}

	// The listener's own view.
	for _, c := range l.conflicts {
		problem("conflict", "listener: %s", c)
	}
	for _, b := range l.bad {
		problem("bad", "bad batch: %s", b)
	}
	rep.BadBatches = len(l.bad)
	rep.Batches, rep.AlertMsgs, rep.Acks = l.batches, l.alertMsgs, l.acks
	for id, s := range l.seen {
		if s.events > 0 {
			rep.Received++
			rep.Duplicates += s.events - 1
			if _, ok := tp.byID[id]; !ok {
				rep.Unknown++
			}
		}
	}

	// Seqs are contiguous within an epoch except where the log declares a
	// range it does not hold: an undeclared gap is events the platform
	// can never tell from lost ones (and may be durable events lost
	// before the tap heard of them).
	seqs := map[string][]uint64{}
	for id, s := range l.seen {
		if s.events == 0 {
			continue
		}
		if ep, seq, ok := relSplitID(id); ok {
			seqs[ep] = append(seqs[ep], seq)
		}
	}
	for _, d := range l.declared {
		rep.Declared = append(rep.Declared, fmt.Sprintf("%s(%s) %d..%d", d.kind, d.reason, d.first, d.last))
		if d.kind == "store.lost" && !lossOK {
			problem("lost", "the store declared durable events lost: %s %s seqs %d..%d", d.id, d.reason, d.first, d.last)
		}
	}
	for ep, ss := range seqs {
		slices.Sort(ss)
		prev := uint64(0)
		for _, seq := range ss {
			if seq > prev+1 {
				rep.SeqGaps++
				if !relCovered(l.declared, ep, prev+1, seq-1) {
					problem("gap", "epoch %s: seqs %d..%d never arrived and no store event declares them", ep, prev+1, seq-1)
				}
			}
			prev = seq
		}
	}

	// The independent dump.
	rep.Stored = len(dump.records)
	rep.StoreCorrupt = len(dump.corrupt) + len(dump.checkErrs)
	for _, c := range dump.corrupt {
		problem("corrupt", "store dump: %s", c)
	}
	for _, c := range dump.checkErrs {
		problem("corrupt", "bbolt check: %s", c)
	}
	for id, rec := range dump.records {
		s := l.seen[id]
		if s != nil && s.hash != rec.hash {
			problem("conflict", "id %s: stored with content %s, the listener got %s", id, rec.hash, s.hash)
		}
		if i, ok := tp.byID[id]; ok && tp.entries[i].hash != rec.hash {
			problem("conflict", "id %s: stored with content %s, tapped with %s", id, rec.hash, tp.entries[i].hash)
		}
		if haveCursor && rec.seq <= cursor && (s == nil || s.events == 0) {
			if _, tapped := tp.byID[id]; !tapped {
				rep.Lost++ // tapped ones are counted above
			}
			problem("cursor", "LOST: %s (seq %d) is behind the sink's cursor %d but never reached the listener", id, rec.seq, cursor)
		}
	}
	rep.Conflicts = counted["conflict"] + counted["reused"]
	for kind, n := range counted {
		if n > 10 {
			problems = append(problems, fmt.Sprintf("… %d problems of kind %q in all", n, kind))
		}
	}
	return problems
}

// relCoveredBy reports whether a declaration of kind covers id's seq.
func relCoveredBy(ds []relDeclared, kind, id string) bool {
	ep, seq, ok := relSplitID(id)
	if !ok {
		return false
	}
	var of []relDeclared
	for _, d := range ds {
		if d.kind == kind {
			of = append(of, d)
		}
	}
	return relCovered(of, ep, seq, seq)
}

// relCovered reports whether the declared ranges of epoch ep cover
// first..last.
func relCovered(ds []relDeclared, ep string, first, last uint64) bool {
	var rs [][2]uint64
	for _, d := range ds {
		if e, _, ok := relSplitID(d.id); ok && e == ep && d.first > 0 && d.last >= d.first {
			rs = append(rs, [2]uint64{d.first, d.last})
		}
	}
	slices.SortFunc(rs, func(a, b [2]uint64) int { return cmp.Compare(a[0], b[0]) })
	next := first
	for _, r := range rs {
		if r[0] > next {
			break
		}
		next = max(next, r[1]+1)
		if next > last {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Durability tap.

type relTapEntry struct{ id, hash string }

// relTap reads the daemon's tap file incrementally: only complete lines,
// so a line being written is read whole on a later refresh.
type relTap struct {
	path    string
	off     int64
	entries []relTapEntry
	byID    map[string]int // first entry of each id
	reused  []string       // ids tapped with two contents
	torn    int
	bad     int
}

func (p *relTap) refresh() error {
	f, err := os.Open(p.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(p.off, io.SeekStart); err != nil {
		return err
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return nil
	}
	for _, line := range bytes.Split(data[:end], []byte{'\n'}) {
		id, hash, ok := strings.Cut(string(line), " ")
		if !ok || len(hash) != 32 || strings.Count(id, ":") != 2 {
			p.bad++
			continue
		}
		if i, dup := p.byID[id]; dup {
			if p.entries[i].hash != hash {
				p.reused = append(p.reused, id)
			}
		} else {
			p.byID[id] = len(p.entries)
		}
		p.entries = append(p.entries, relTapEntry{id, hash})
	}
	p.off += int64(end + 1)
	return nil
}

// repair truncates a torn last line left by a writer killed mid-write.
// Call it only while no daemon runs.
func (p *relTap) repair() (bool, error) {
	data, err := os.ReadFile(p.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(data) == 0 || data[len(data)-1] == '\n' {
		return false, nil
	}
	keep := bytes.LastIndexByte(data, '\n') + 1
	return true, os.Truncate(p.path, int64(keep))
}

// ---------------------------------------------------------------------------
// Independent store dump.

type relRecord struct {
	seq            uint64
	hash, severity string
}

type relDump struct {
	epoch     string
	cursors   map[string]uint64
	records   map[string]*relRecord
	corrupt   []string
	checkErrs []string
}

var relCastagnoli = crc32.MakeTable(crc32.Castagnoli)

// relDumpStore opens the gateway's bbolt file read-only, with bbolt alone,
// and decodes it from the layout documented in edge/store/record.go:
// bucket "events", key = 8-byte big-endian seq, value = version (1),
// class (1 or 2), two 8-byte clocks, a CRC-32C over key, bytes 0..17 and
// the JSON, then Event v1 JSON from byte 22. Bucket "meta" holds the epoch,
// bucket "cursors" each sink's last acked seq (8 bytes big-endian).
func relDumpStore(path string) (*relDump, error) {
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	defer db.Close()
	d := &relDump{cursors: map[string]uint64{}, records: map[string]*relRecord{}}
	err = db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			d.checkErrs = append(d.checkErrs, err.Error())
			if len(d.checkErrs) > 20 {
				break
			}
		}
		meta, evs, curs := tx.Bucket([]byte("meta")), tx.Bucket([]byte("events")), tx.Bucket([]byte("cursors"))
		if meta == nil || evs == nil || curs == nil {
			return errors.New("buckets meta, events or cursors missing")
		}
		d.epoch = string(meta.Get([]byte("epoch")))
		if err := curs.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				d.corrupt = append(d.corrupt, fmt.Sprintf("cursor %q: %d bytes", k, len(v)))
				return nil
			}
			d.cursors[string(k)] = binary.BigEndian.Uint64(v)
			return nil
		}); err != nil {
			return err
		}
		return evs.ForEach(func(k, v []byte) error {
			if len(k) != 8 {
				d.corrupt = append(d.corrupt, fmt.Sprintf("key %x: not 8 bytes", k))
				return nil
			}
			seq := binary.BigEndian.Uint64(k)
			if len(v) < 24 || (v[0] != 1 && v[0] != 2) || (v[1] != 1 && v[1] != 2) {
				d.corrupt = append(d.corrupt, fmt.Sprintf("record %d: bad header", seq))
				return nil
			}
			body := 22 // version 1: the JSON follows the CRC
			if v[0] == 2 {
				// version 2: severity rank, kind length, kind, then the JSON
				body = 24 + int(v[23])
				if len(v) < body+2 {
					d.corrupt = append(d.corrupt, fmt.Sprintf("record %d: bad header", seq))
					return nil
				}
			}
			c := crc32.Update(0, relCastagnoli, k)
			c = crc32.Update(c, relCastagnoli, v[:18])
			c = crc32.Update(c, relCastagnoli, v[22:])
			if c != binary.BigEndian.Uint32(v[18:22]) {
				d.corrupt = append(d.corrupt, fmt.Sprintf("record %d: CRC-32C mismatch", seq))
				return nil
			}
			var e relWireEvent
			if err := json.Unmarshal(v[body:], &e); err != nil {
				d.corrupt = append(d.corrupt, fmt.Sprintf("record %d: %v", seq, err))
				return nil
			}
			if want := relGateway + ":" + d.epoch + ":" + strconv.FormatUint(seq, 10); e.Seq != seq || e.ID != want {
				d.corrupt = append(d.corrupt, fmt.Sprintf("record %d holds id %q seq %d", seq, e.ID, e.Seq))
				return nil
			}
			d.records[e.ID] = &relRecord{seq: seq, hash: relContentHash(e), severity: e.Severity}
			return nil
		})
	})
	return d, err
}

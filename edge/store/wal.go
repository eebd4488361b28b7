package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/lintel-edge/lintel/edge/event"
)

// The write-ahead journal (<path>.wal) makes small group commits cheap.
//
// A bbolt commit rewrites whole 4 KiB pages (leaf, branch, root, freelist,
// meta) whatever it carries; at a trickle of 10 events/s with a 200 ms
// window that is ~18 KB per event. A journal commit instead writes one
// CRC-framed frame and fdatasyncs it. Where the filesystem allows it the
// journal is written with O_DIRECT in logical-sector units (512 bytes,
// 4096 if the device refuses 512: a probe at open decides), so a commit
// sends only the sectors holding its frame to the block layer; elsewhere
// (no O_DIRECT: EINVAL at open or in the probe) it goes through the page
// cache in whole 4 KiB pages, since a synced buffered write dirties a
// whole page anyway. The file is created once at full size and filled
// with real zeros, so later writes overwrite allocated blocks and
// fdatasync has no metadata to commit. The frames stay in memory (the
// overlay, see readView) and are folded into bbolt in one large
// transaction every walFoldEvery, or at walFoldBytes, when the file fills,
// before any deletion that is not a plain ack (quota, retention), at Flush
// and at Close.
//
// Generations make replay exact. Every frame carries the header's
// generation and a frame index (1, 2, … with no gaps). A fold stores the
// generation it folded in the bbolt meta (wal_gen) in the same transaction
// as the records, commits one more (empty) transaction so that a damaged
// meta page cannot fall back to before the fold, and only then rewrites
// the header with the next generation. At Open, the frames of the header's
// generation are replayed only if that generation is newer than wal_gen;
// replay stops at the first frame that is torn, of another generation or
// out of order, which is where the last, unacknowledged commit ended.
//
// Torn writes after a power cut: frames are written as whole units
// (sectors or pages) that repeat the unit's earlier frames byte for byte,
// so whatever mix of old and new sectors lands, those frames are intact;
// the frame being written, which may straddle sectors, fails its CRC if
// any of its sectors did not land, and replay stops there (its Append
// never returned; TestJournalTornSectors). This assumes the device writes
// one logical sector atomically. The header is rewritten only when
// everything in the journal is already folded, so a torn header loses
// nothing; the journal is then moved aside with an alert.
//
// Journal layout, integers big-endian. Header, page 0:
//
//	off  size  field
//	0    8     magic "LNTLWAL\x00"
//	8    4     format version (walVersion)
//	12   8     generation (≥ 1)
//	20   8     file size when created
//	28   16    store epoch
//	44   4     CRC-32C over bytes 0..43
//
// Frames from offset walPage on:
//
//	0    4     payload length n (> 0)
//	4    4     CRC-32C over bytes 8..24+n
//	8    8     generation
//	16   8     frame index within the generation, from 1
//	24   n     operations, each a kind byte then:
//	             event  (1): seq u64, len u32, the stored record value
//	             ack    (2): sink (u16 len + bytes), seq u64
//	             put    (3): ns, key (u16 len + bytes each), version u32, len u32, value
//	             delete (4): ns, key
//
// A frame of at most one page that would straddle a page boundary starts
// at the next boundary instead, so a buffered commit dirties one page, not
// two; replay follows it there. Frames do straddle sector boundaries.
const (
	walPage        = 4096
	walHeaderLen   = 48
	walFrameHeader = 24
	walVersion     = 1

	walOpEvent  = 1
	walOpAck    = 2
	walOpPut    = 3
	walOpDelete = 4

	defaultWALSize      = 2 << 20
	defaultWALFoldEvery = 30 * time.Second
	defaultWALFoldBytes = 1 << 20
	// Batches bigger than this skip the journal: bbolt already writes them
	// cheaply per event, and the journal would write them twice.
	defaultWALMaxEvents = 64
	defaultWALMaxBytes  = 64 << 10
)

var walMagic = []byte("LNTLWAL\x00")

var (
	errWALFull     = errors.New("journal full")
	errWALNotHere  = errors.New("batch needs a bbolt commit")
	errWALFrameEnd = errors.New("end of journal")
)

type walHeader struct {
	gen   uint64
	size  int64
	epoch string
}

func encodeWALHeader(h walHeader) []byte {
	b := make([]byte, walPage)
	copy(b, walMagic)
	binary.BigEndian.PutUint32(b[8:], walVersion)
	binary.BigEndian.PutUint64(b[12:], h.gen)
	binary.BigEndian.PutUint64(b[20:], uint64(h.size))
	copy(b[28:44], h.epoch)
	binary.BigEndian.PutUint32(b[44:], crc32.Checksum(b[:44], castagnoli))
	return b
}

func decodeWALHeader(b []byte) (walHeader, error) {
	if len(b) < walHeaderLen {
		return walHeader{}, fmt.Errorf("journal header: %d bytes", len(b))
	}
	if !bytes.Equal(b[:8], walMagic) {
		return walHeader{}, errors.New("journal header: bad magic")
	}
	if got, want := crc32.Checksum(b[:44], castagnoli), binary.BigEndian.Uint32(b[44:]); got != want {
		return walHeader{}, fmt.Errorf("journal header: checksum %08x, want %08x", got, want)
	}
	if v := binary.BigEndian.Uint32(b[8:]); v != walVersion {
		return walHeader{}, fmt.Errorf("journal header: format version %d, want %d", v, walVersion)
	}
	h := walHeader{gen: binary.BigEndian.Uint64(b[12:]), size: int64(binary.BigEndian.Uint64(b[20:])), epoch: string(b[28:44])}
	if h.gen == 0 || h.size < 2*walPage || h.size > 1<<30 {
		return walHeader{}, fmt.Errorf("journal header: generation %d size %d", h.gen, h.size)
	}
	return h, nil
}

// walOp is one operation of a frame.
type walOp struct {
	kind    byte
	seq     uint64
	val     []byte // event record value or state value
	sink    string
	ns, key string
	version uint32
}

func appendStr16(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendWALOp(b []byte, op walOp) []byte {
	b = append(b, op.kind)
	switch op.kind {
	case walOpEvent:
		b = binary.BigEndian.AppendUint64(b, op.seq)
		b = binary.BigEndian.AppendUint32(b, uint32(len(op.val)))
		b = append(b, op.val...)
	case walOpAck:
		b = appendStr16(b, op.sink)
		b = binary.BigEndian.AppendUint64(b, op.seq)
	case walOpPut:
		b = appendStr16(b, op.ns)
		b = appendStr16(b, op.key)
		b = binary.BigEndian.AppendUint32(b, op.version)
		b = binary.BigEndian.AppendUint32(b, uint32(len(op.val)))
		b = append(b, op.val...)
	case walOpDelete:
		b = appendStr16(b, op.ns)
		b = appendStr16(b, op.key)
	}
	return b
}

func encodeWALFrame(gen, index uint64, payload []byte) []byte {
	b := make([]byte, walFrameHeader, walFrameHeader+len(payload))
	binary.BigEndian.PutUint32(b[0:], uint32(len(payload)))
	binary.BigEndian.PutUint64(b[8:], gen)
	binary.BigEndian.PutUint64(b[16:], index)
	b = append(b, payload...)
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
	return b
}

// decodeWALFrame parses the frame at the start of b, which must be of
// generation gen with the given index. It returns the operations and the
// frame length. Damage gives an error, never a panic (FuzzDecodeWALFrame).
func decodeWALFrame(b []byte, gen, index uint64) ([]walOp, int, error) {
	if len(b) < walFrameHeader {
		return nil, 0, errWALFrameEnd
	}
	n := int(binary.BigEndian.Uint32(b[0:])) // negative on 32-bit for a huge value
	if n <= 0 || n > len(b)-walFrameHeader {
		return nil, 0, errWALFrameEnd
	}
	if g, i := binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:]); g != gen || i != index {
		return nil, 0, errWALFrameEnd
	}
	if crc32.Checksum(b[8:walFrameHeader+n], castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, errWALFrameEnd
	}
	p := b[walFrameHeader : walFrameHeader+n]
	var ops []walOp
	r := walReader{b: p}
	for len(r.b) > 0 && r.err == nil {
		op := walOp{kind: r.byte()}
		switch op.kind {
		case walOpEvent:
			op.seq = r.u64()
			op.val = r.bytes(int(r.u32()))
			if r.err == nil {
				if _, err := decodeHeader(op.seq, op.val); err != nil {
					return nil, 0, fmt.Errorf("journal frame %d: %w", index, err)
				}
			}
		case walOpAck:
			op.sink = r.str16()
			op.seq = r.u64()
		case walOpPut:
			op.ns, op.key = r.str16(), r.str16()
			op.version = r.u32()
			op.val = r.bytes(int(r.u32()))
		case walOpDelete:
			op.ns, op.key = r.str16(), r.str16()
		default:
			return nil, 0, fmt.Errorf("journal frame %d: unknown operation %d", index, op.kind)
		}
		ops = append(ops, op)
	}
	if r.err != nil {
		return nil, 0, fmt.Errorf("journal frame %d: %w", index, r.err)
	}
	return ops, walFrameHeader + n, nil
}

// walReader reads big-endian fields, remembering the first overrun.
type walReader struct {
	b   []byte
	err error
}

func (r *walReader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b) {
		r.err = io.ErrUnexpectedEOF
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *walReader) byte() byte {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *walReader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *walReader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func (r *walReader) str16() string {
	v := r.take(2)
	if v == nil {
		return ""
	}
	return string(r.take(int(binary.BigEndian.Uint16(v))))
}

func (r *walReader) bytes(n int) []byte {
	v := r.take(n)
	if v == nil {
		return nil
	}
	return append([]byte{}, v...)
}

// journal is the open journal file; owned by the writer goroutine.
type journal struct {
	f       *os.File
	path    string
	size    int64
	epoch   string
	gen     uint64
	off     int64  // where the next frame goes
	index   uint64 // frames written in this generation
	lastOff int64  // where the last frame went (tests)
	unit    int64  // write unit: the logical sector under O_DIRECT, else walPage
	direct  bool   // f was opened with O_DIRECT
	last    []byte // this generation's bytes in the unit holding off, up to off
	buf     []byte // memory-aligned write buffer (O_DIRECT needs one)
	broken  bool   // a write failed: commit to bbolt only until reopen
}

// nextOffset places a frame of n bytes: a frame of at most a page that
// would straddle a page boundary starts on the next one. Placement is by
// page whatever the write unit, so replay needs no knowledge of it.
func (j *journal) nextOffset(n int) int64 {
	off := j.off
	if in := off % walPage; n <= walPage && in+int64(n) > walPage {
		off += walPage - in
	}
	return off
}

// scratch returns n zeroed bytes of the aligned write buffer.
func (j *journal) scratch(n int) []byte {
	if cap(j.buf) < n {
		j.buf = alignedBuf(max(n, walPage))
	}
	b := j.buf[:n]
	clear(b)
	return b
}

// append writes one frame of the current generation and fdatasyncs it.
//
// It writes whole, aligned units (512-byte sectors under O_DIRECT, 4 KiB
// pages through the page cache): the frames already in the first unit
// (kept in j.last), the frame, zeros to the end of the last unit. Under
// O_DIRECT only those sectors go to the block layer; through the page
// cache a full page overwrite needs no read of the old block, and it
// dirties exactly the pages the frame touches (see dropCache for why that
// needs care). Either way a unit rewritten under a power cut holds the
// same earlier frames in its old and its new version.
func (j *journal) append(payload []byte) error {
	frame := encodeWALFrame(j.gen, j.index+1, payload)
	off := j.nextOffset(len(frame))
	end := off + int64(len(frame))
	if end > j.size {
		return errWALFull
	}
	u := j.unit
	start := off - off%u
	buf := j.scratch(int((end - start + u - 1) / u * u))
	if start == j.off-j.off%u {
		copy(buf, j.last)
	}
	copy(buf[off-start:], frame)
	if _, err := j.f.WriteAt(buf, start); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	last := end - end%u // the unit holding the new off; empty if end is aligned
	j.last = append(j.last[:0], buf[last-start:end-start]...)
	j.lastOff = off
	j.off = end
	j.index++
	return nil
}

// startGeneration makes gen the current generation: header rewritten and
// synced before any frame of it is written. Only the header's first unit
// is written: the rest of page 0 is zeros from creation.
func (j *journal) startGeneration(gen uint64) error {
	b := j.scratch(int(j.unit))
	copy(b, encodeWALHeader(walHeader{gen: gen, size: j.size, epoch: j.epoch}))
	if _, err := j.f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write journal header: %w", err)
	}
	if err := fdatasync(j.f); err != nil {
		return fmt.Errorf("sync journal header: %w", err)
	}
	j.gen, j.off, j.index, j.lastOff, j.last = gen, walPage, 0, 0, j.last[:0]
	return nil
}

func (j *journal) close() error {
	if j == nil || j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

// alignedBuf returns n bytes starting at a walPage-aligned address, as
// O_DIRECT needs for any logical sector size up to a page. The Go heap
// does not move heap objects, so the alignment holds; noinline keeps the
// buffer on the heap (a goroutine stack can move).
//
//go:noinline
func alignedBuf(n int) []byte {
	b := make([]byte, n+walPage)
	o := int(-uintptr(unsafe.Pointer(&b[0])) & (walPage - 1))
	return b[o : o+n : o+n]
}

// openJournalWriter opens the journal for writing: with O_DIRECT in
// logical-sector units when the filesystem and device allow it (see
// openDirect), else through the page cache in whole pages. buffered
// forces the latter (tests of that path).
func openJournalWriter(path string, buffered bool) (f *os.File, unit int64, direct bool, err error) {
	if !buffered {
		if f, unit, err = openDirect(path); err == nil {
			return f, unit, true, nil
		}
	}
	f, err = os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, false, err
	}
	return f, walPage, false, nil
}

// createJournal writes a fresh zero-filled journal under a temporary name
// and renames it into place. It writes with O_DIRECT where it can, in
// page-aligned chunks, so the zeros do not pass through (and stay in) the
// page cache.
func createJournal(path string, size int64, gen uint64, epoch string, buffered bool) error {
	tmp := path + ".init"
	_ = os.Remove(tmp)
	var f *os.File
	var err error
	if !buffered {
		f, err = openCreateDirect(tmp)
	}
	if f == nil {
		f, err = os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	}
	if err != nil {
		return fmt.Errorf("create journal: %w", err)
	}
	err = func() error {
		chunk := alignedBuf(64 << 10)
		copy(chunk, encodeWALHeader(walHeader{gen: gen, size: size, epoch: epoch}))
		for off := int64(0); off < size; off += int64(len(chunk)) {
			// size is a multiple of walPage (Options), so every chunk is
			// aligned for O_DIRECT.
			if _, err := f.Write(chunk[:min(int64(len(chunk)), size-off)]); err != nil {
				return err
			}
			if off == 0 {
				clear(chunk[:walPage])
			}
		}
		if err := f.Sync(); err != nil {
			return err
		}
		dropCache(f)
		return nil
	}()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("create journal: %w", err)
	}
	return nil
}

// walState is a state value held by the journal; deleted is a tombstone.
type walState struct {
	version uint32
	val     []byte
	deleted bool
}

// walEvent is a journal-resident record: its stored value, as bbolt
// would hold it.
type walEvent struct {
	seq uint64
	v   []byte
}

// overlay is what the journal holds that bbolt does not yet; owned by
// the writer. evs only grows between folds (readers share its prefix);
// state is replaced, never modified, once published.
type overlay struct {
	evs    []walEvent
	state  map[string]map[string]walState
	acked  bool // cursors moved
	frames int
	bytes  int
	since  time.Time // first frame since the last fold
}

// readView is the published, immutable part of the overlay readers use.
type readView struct {
	evs   []walEvent
	state map[string]map[string]walState
	low   uint64 // records with seq <= low are deleted (acked by every sink)
}

func (v *readView) find(seq uint64) ([]byte, bool) {
	if len(v.evs) == 0 || seq < v.evs[0].seq {
		return nil, false
	}
	lo, hi := 0, len(v.evs)
	for lo < hi {
		m := (lo + hi) / 2
		if v.evs[m].seq < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(v.evs) && v.evs[lo].seq == seq {
		return v.evs[lo].v, true
	}
	return nil, false
}

// firstSeq is the lowest journal-resident seq, or 0.
func (v *readView) firstSeq() uint64 {
	if len(v.evs) == 0 {
		return 0
	}
	return v.evs[0].seq
}

func cloneWALState(m map[string]map[string]walState, ns string) map[string]map[string]walState {
	c := make(map[string]map[string]walState, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	inner := make(map[string]walState, len(m[ns])+1)
	for k, v := range m[ns] {
		inner[k] = v
	}
	c[ns] = inner
	return c
}

// journalPath is where the journal of the store at path lives.
func journalPath(path string) string { return path + ".wal" }

// openJournal opens the journal beside the store, replays what it holds
// that bbolt does not (see recover.go for what a damaged or unclean
// journal gives), folds it together with the declarations of anything
// skipped or lost, and starts a new generation. A journal whose header is
// unreadable or belongs to another store is moved aside.
func (s *Store) openJournal() error {
	path := journalPath(s.opts.Path)
	size := s.opts.walSize
	data, err := readJournal(path)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	keep := data != nil // the file stays; else a fresh one is made
	limit := s.seqLimit(int64(len(data)))
	var h walHeader
	if data != nil {
		var herr error
		h, herr = decodeWALHeader(data)
		if herr == nil && h.epoch != s.epoch {
			herr = fmt.Errorf("journal of another store (epoch %q)", h.epoch)
			s.rec.note("the journal belongs to another store (epoch %q): this store's own journal is missing", h.epoch)
		} else if herr != nil {
			// The header is rewritten only once everything is folded, so
			// a torn header loses nothing; but damage can strike at any
			// time: recover what the generation bbolt expects next holds.
			s.rec.note("journal header unreadable (%v)", herr)
			s.recoverJournal(data, s.walFolded+1, limit)
		}
		if herr != nil {
			keep = false
			moved, qerr := quarantine(path, s.opts.Now())
			if qerr != nil {
				return fmt.Errorf("open store: move journal aside after %v: %w", herr, qerr)
			}
			s.log.Error("store journal unreadable, moved aside", "path", path, "moved_to", moved, "reason", herr.Error())
			s.walQuarantined, s.walReason = moved, herr.Error()
			s.rec.JournalQuarantined = moved
			s.internal(event.New(event.StoreQuarantined).WithData(map[string]string{
				"file": "journal", "moved_to": moved, "reason": herr.Error(),
			}))
		} else {
			if int64(len(data)) < h.size {
				s.rec.note("journal truncated to %d of %d bytes", len(data), h.size)
			}
			if h.gen > s.walFolded {
				s.recoverJournal(data, h.gen, limit)
			}
		}
	}
	if err := s.settleRecovery(limit); err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if s.disk.full { // started on a full disk: pin the quota over all that is stored
		s.disk.fullQuota = s.w.storedBytes + fullHeadroom
		s.disk.limits(s)
	}
	gen := max(h.gen, s.walFolded+1)
	if !keep {
		gen = s.walFolded + 1
		if err := createJournal(path, size, gen, s.epoch, s.opts.walBuffered); err != nil {
			// A full disk must not stop the gateway: commit to bbolt only.
			s.log.Error("store journal cannot be created, committing to bbolt only", "path", path, "err", err)
			s.j = &journal{path: path, size: size, epoch: s.epoch, gen: gen, broken: true}
			return s.foldAtOpen()
		}
	}
	wf, unit, direct, err := openJournalWriter(path, s.opts.walBuffered)
	if err != nil {
		return fmt.Errorf("open store: journal: %w", err)
	}
	if !direct && !s.opts.walBuffered {
		s.log.Info("store journal written through the page cache: O_DIRECT not available here", "path", path)
	}
	jsize := size
	if keep {
		jsize = h.size
	}
	j := &journal{f: wf, path: path, size: jsize, epoch: s.epoch, gen: gen, unit: unit, direct: direct}
	s.j = j
	if err := s.foldAtOpen(); err != nil {
		return err
	}
	if keep && (int64(len(data)) != h.size || h.size != size) && !j.broken {
		// Truncated, or another size configured: everything is folded,
		// so a fresh file loses nothing.
		gen := j.gen
		_ = j.close()
		if err := createJournal(path, size, gen, s.epoch, s.opts.walBuffered); err != nil {
			s.log.Error("store journal cannot be recreated, committing to bbolt only", "path", path, "err", err)
			j.broken = true
			return nil
		}
		if j.f, j.unit, j.direct, err = openJournalWriter(path, s.opts.walBuffered); err != nil {
			return fmt.Errorf("open store: journal: %w", err)
		}
		j.size = size
	}
	return nil
}

// readJournal reads the whole journal, or returns nil if there is none.
func readJournal(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("journal: %w", err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("journal %s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("read journal: %w", err)
	}
	dropCache(f) // clean after a clean close or a crash: nothing to lose
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// foldAtOpen commits what recovery put in the overlay, and the events
// that declare it, in one bbolt transaction; with nothing to commit it
// starts the next journal generation. A store that cannot record its own
// recovery must not hand out seqs: that is the one failure Open returns.
func (s *Store) foldAtOpen() error {
	j := s.j
	if s.ov.frames == 0 && len(s.pending) == 0 && !s.seqBumped {
		if j.broken {
			return nil
		}
		if err := j.startGeneration(max(j.gen, s.walFolded) + 1); err != nil {
			return fmt.Errorf("open store: %w", err)
		}
		return nil
	}
	s.forceMeta = true
	err := s.commitBatch(nil) // folds and starts the next generation
	s.forceMeta = false
	if err == nil && s.ov.frames > 0 {
		err = errors.New("journal still holds frames")
	}
	if err != nil {
		return fmt.Errorf("open store: could not record the journal's recovery in the store: %w", err)
	}
	if !j.broken && j.off == 0 {
		// Nothing was folded (only declarations were committed): the
		// generation has not been started yet.
		if err := j.startGeneration(max(j.gen, s.walFolded) + 1); err != nil {
			return fmt.Errorf("open store: %w", err)
		}
	}
	return nil
}

// replay applies the frames of generation gen to the writer state, in
// order, up to the first that is missing, torn or damaged. It returns
// where the next frame would have started and its index.
func (s *Store) replay(data []byte, gen uint64) (stop int64, next uint64) {
	off := int64(walPage)
	index := uint64(1)
	for ; ; index++ {
		ops, n, err := decodeWALFrame(tail(data, off), gen, index)
		if err != nil && off%walPage != 0 {
			// A frame that would have straddled a page starts on the next.
			next := off + walPage - off%walPage
			if ops2, n2, err2 := decodeWALFrame(tail(data, next), gen, index); err2 == nil {
				ops, n, err, off = ops2, n2, nil, next
			}
		}
		if err != nil {
			if !errors.Is(err, errWALFrameEnd) {
				s.log.Warn("store journal frame unreadable, replay stops", "index", index, "err", err)
			}
			break
		}
		if !s.replayFrame(ops) {
			s.log.Error("store journal frame does not follow the store, replay stops", "index", index)
			break
		}
		s.walReplayed++
		off += int64(n)
	}
	if s.walReplayed > 0 {
		s.log.Info("store journal replayed", "frames", s.walReplayed, "events", len(s.ov.evs), "last_seq", s.w.lastSeq)
	}
	return off, index
}
func tail(b []byte, off int64) []byte {
	if off >= int64(len(b)) {
		return nil
	}
	return b[off:]
}

// replayFrame applies one frame, all or nothing; false if it does not
// chain onto what is stored.
func (s *Store) replayFrame(ops []walOp) bool {
	next := s.w.lastSeq + 1
	for _, op := range ops {
		if op.kind == walOpEvent {
			if op.seq != next {
				return false
			}
			next++
		}
	}
	s.applyOps(ops, true)
	return true
}

// applyOps applies a frame's operations to the writer state, its events
// too when withEvents (applyLoose adds those itself).
func (s *Store) applyOps(ops []walOp, withEvents bool) {
	if s.ov.frames == 0 {
		s.ov.since = time.Now()
	}
	s.ov.frames++
	for _, op := range ops {
		switch op.kind {
		case walOpEvent:
			if !withEvents {
				continue
			}
			h, _ := decodeHeader(op.seq, op.val) // checked by decodeWALFrame
			s.account(op.seq, h, int64(keySize+len(op.val)))
			s.ov.evs = append(s.ov.evs, walEvent{seq: op.seq, v: op.val})
			s.ov.bytes += len(op.val)
			s.elapsedBase = max(s.elapsedBase, h.monoMS)
		case walOpAck:
			if s.sinks[op.sink] && op.seq > s.w.cursors[op.sink] {
				s.w.cursors[op.sink] = min(op.seq, s.w.lastSeq)
				s.ov.acked = true
			}
		case walOpPut, walOpDelete:
			// No reader exists yet: no copy-on-write needed.
			if s.ov.state == nil {
				s.ov.state = map[string]map[string]walState{}
			}
			if s.ov.state[op.ns] == nil {
				s.ov.state[op.ns] = map[string]walState{}
			}
			s.ov.state[op.ns][op.key] = walState{version: op.version, val: op.val, deleted: op.kind == walOpDelete}
		}
	}
}

package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/lintel-edge/lintel/edge/event"
)

// lockTimeout is how long Open waits for another process's file lock.
const lockTimeout = time.Second

// corruptError marks a file that must be quarantined.
type corruptError struct{ reason string }

func (e *corruptError) Error() string { return "corrupt store: " + e.reason }

// Open opens or creates the store at opts.Path. A corrupt file is
// quarantined and replaced (see the package doc); a file locked by another
// process is an error, not corruption.
func Open(opts Options) (*Store, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(opts.Path), 0o750); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{
		opts:       opts,
		log:        opts.Logger,
		sinks:      map[string]bool{},
		reqs:       make(chan *request, 1024),
		writerDone: make(chan struct{}),
		subs:       map[*subscriber]struct{}{},
	}
	for _, sink := range opts.Sinks {
		s.sinks[sink] = true
	}
	s.disk.open(s) // free space, reserve, journal size: before anything is written
	err := s.openFile()
	var ce *corruptError
	if errors.As(err, &ce) {
		moved, qerr := quarantine(opts.Path, opts.Now())
		if qerr != nil {
			return nil, fmt.Errorf("open store: quarantine after %v: %w", err, qerr)
		}
		s.quarantined = moved
		s.rec.Quarantined = moved
		s.log.Error("store file corrupt, quarantined", "path", opts.Path, "moved_to", moved, "reason", ce.reason)
		// The journal belongs to the corrupt file: it goes with it.
		if err := os.Rename(journalPath(opts.Path), moved+".wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open store: quarantine journal: %w", err)
		}
		s.internal(event.New(event.StoreQuarantined).WithData(map[string]string{
			"file": "store", "moved_to": moved, "reason": ce.reason,
		}))
		err = s.openFile()
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("open store: fresh file after quarantine: %w", err)
		}
	}
	if err != nil {
		return nil, err
	}
	s.disk.limits(s)
	if err := s.openJournal(); err != nil {
		_ = s.db.Close()
		_ = s.j.close()
		return nil, err
	}
	s.publish(nil)
	s.publishDisk()
	go s.run()
	s.log.Info("store opened", "path", opts.Path, "epoch", s.epoch, "boot_count", s.boots,
		"records", s.pub.records, "last_seq", s.lastSeq.Load(), "quota_bytes", s.disk.quota)
	return s, nil
}

// quarantine moves a corrupt file aside under a name that says when.
func quarantine(path string, now time.Time) (string, error) {
	base := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	moved := base
	for i := 1; ; i++ {
		if _, err := os.Lstat(moved); errors.Is(err, fs.ErrNotExist) {
			break
		}
		moved = fmt.Sprintf("%s.%d", base, i)
	}
	if err := os.Rename(path, moved); err != nil {
		return "", err
	}
	return moved, syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

func (s *Store) boltOptions() *bolt.Options {
	return &bolt.Options{
		Timeout:  lockTimeout,
		PageSize: 4096,
		MaxSize:  int(min(s.disk.maxFileFor(s.opts.MaxBytes), int64(^uint(0)>>1))),
	}
}

// openFile opens (creating if absent) and verifies the file, loads the
// writer state and bumps the boot counter. Corruption comes back as a
// *corruptError with nothing left open.
func (s *Store) openFile() (err error) {
	path := s.opts.Path
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := s.createFresh(); err != nil {
			return err
		}
	case err != nil:
		return fmt.Errorf("open store: %w", err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("open store: %s is not a regular file", path)
	case fi.Size() == 0:
		return &corruptError{"empty file"}
	case fi.Size() < 2*4096:
		return &corruptError{fmt.Sprintf("file of %d bytes is shorter than two meta pages", fi.Size())}
	}
	db, err := guardedOpen(path, s.boltOptions())
	if err != nil {
		return err
	}
	db.AllocSize = s.disk.allocSize()
	if err := guarded(func() error { return s.verify(db) }); err != nil {
		_ = db.Close()
		var ce *corruptError
		if !errors.As(err, &ce) {
			err = &corruptError{err.Error()}
		}
		return err
	}
	if err := s.load(db); err != nil {
		_ = db.Close()
		return err
	}
	s.db = db
	return nil
}

// guardedOpen opens bbolt, turning its panics and memory faults on a bad
// file into corruption errors. The lock timeout and OS errors stay plain
// errors: a file that is busy or unreadable is not corrupt.
func guardedOpen(path string, o *bolt.Options) (db *bolt.DB, err error) {
	err = guarded(func() error {
		var oerr error
		db, oerr = bolt.Open(path, 0o600, o)
		return oerr
	})
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open store %s: locked by another process (waited %s): %w", path, lockTimeout, err)
	case isOSError(err):
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var ce *corruptError
	if errors.As(err, &ce) {
		return nil, err
	}
	return nil, &corruptError{err.Error()}
}

func isOSError(err error) bool {
	var pe *fs.PathError
	var errno syscall.Errno
	return errors.As(err, &pe) || errors.As(err, &errno)
}

// guarded runs f with memory faults turned into panics and recovers them:
// bbolt trusts page contents, and a damaged file can send it out of
// bounds or past the end of the mapping.
func guarded(f func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = &corruptError{fmt.Sprintf("panic reading file: %v", r)}
		}
	}()
	return f()
}

// createFresh makes a new store file: built under a temporary name and
// renamed into place, so a power cut during the very first bbolt
// initialisation cannot leave a half-made file at path.
func (s *Store) createFresh() error {
	tmp := s.opts.Path + ".init"
	_ = os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, s.boltOptions())
	if err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	var raw [8]byte
	if _, err := rand.Read(raw[:]); err != nil {
		_ = db.Close()
		return fmt.Errorf("create store: epoch: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketEvents, bucketCursors, bucketState} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		m := tx.Bucket(bucketMeta)
		for k, v := range map[string][]byte{
			string(keyFormat):    binary.BigEndian.AppendUint32(nil, fileFormat),
			string(keyEpoch):     []byte(hex.EncodeToString(raw[:])),
			string(keyBoots):     binary.BigEndian.AppendUint64(nil, 0),
			string(keyElapsed):   binary.BigEndian.AppendUint64(nil, 0),
			string(keyLastSeq):   binary.BigEndian.AppendUint64(nil, 0),
			string(keyReserved):  binary.BigEndian.AppendUint64(nil, seqReserve),
			string(keyClean):     binary.BigEndian.AppendUint64(nil, 0),
			string(keyCreatedMS): binary.BigEndian.AppendUint64(nil, uint64(s.opts.Now().UnixMilli())),
		} {
			if err := m.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("create store: %w", err)
	}
	if err := os.Rename(tmp, s.opts.Path); err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	if err := syncDir(filepath.Dir(s.opts.Path)); err != nil {
		return fmt.Errorf("create store: %w", err)
	}
	return nil
}

// verify checks the structure: the file is as long as its meta says, our
// buckets and meta keys are there, every record's checksum holds, and
// bbolt's own tx.Check passes.
func (s *Store) verify(db *bolt.DB) error {
	fi, err := os.Stat(s.opts.Path)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	return db.View(func(tx *bolt.Tx) error {
		if tx.Size() > fi.Size() {
			return &corruptError{fmt.Sprintf("truncated: meta needs %d bytes, file has %d", tx.Size(), fi.Size())}
		}
		for _, name := range [][]byte{bucketMeta, bucketEvents, bucketCursors, bucketState} {
			if tx.Bucket(name) == nil {
				return &corruptError{fmt.Sprintf("bucket %s missing", name)}
			}
		}
		m := tx.Bucket(bucketMeta)
		if f := m.Get(keyFormat); len(f) != 4 {
			return &corruptError{"format key missing"}
		} else if v := binary.BigEndian.Uint32(f); v != fileFormat {
			if v > fileFormat {
				return fmt.Errorf("open store: file format %d is newer than this build (%d)", v, fileFormat)
			}
			return &corruptError{fmt.Sprintf("unknown file format %d", v)}
		}
		if e := m.Get(keyEpoch); len(e) != 16 || !isLowerHex(e) {
			return &corruptError{"bad epoch"}
		}
		for _, k := range [][]byte{keyBoots, keyElapsed, keyLastSeq} {
			if len(m.Get(k)) != 8 {
				return &corruptError{fmt.Sprintf("meta %s missing", k)}
			}
		}
		if err := tx.Bucket(bucketCursors).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return &corruptError{fmt.Sprintf("cursor %q: %d bytes", k, len(v))}
			}
			return nil
		}); err != nil {
			return err
		}
		if err := tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			if len(k) != keySize {
				return &corruptError{fmt.Sprintf("event key of %d bytes", len(k))}
			}
			if _, err := decodeHeader(keySeq(k), v); err != nil {
				return &corruptError{err.Error()}
			}
			return nil
		}); err != nil {
			return err
		}
		var errs []error
		for err := range tx.Check() {
			if len(errs) < 5 {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return &corruptError{"tx check: " + errors.Join(errs...).Error()}
		}
		return nil
	})
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// load reads the meta and scans the records into the writer state, sets
// up the sink cursors and bumps the boot counter.
func (s *Store) load(db *bolt.DB) error {
	w := state{cursors: map[string]uint64{}, dropped: map[string]uint64{}}
	var boots uint64
	err := db.Update(func(tx *bolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		s.epoch = string(m.Get(keyEpoch))
		boots = binary.BigEndian.Uint64(m.Get(keyBoots)) + 1
		s.elapsedBase = binary.BigEndian.Uint64(m.Get(keyElapsed))
		w.lastSeq = binary.BigEndian.Uint64(m.Get(keyLastSeq))
		if v := m.Get(keyWALGen); len(v) == 8 {
			s.walFolded = binary.BigEndian.Uint64(v)
		}
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			seq := keySeq(k)
			h, err := decodeHeader(seq, v)
			if err != nil {
				return &corruptError{err.Error()}
			}
			if w.records == 0 {
				w.firstSeq, w.firstMono = seq, h.monoMS
			}
			n := int64(len(k) + len(v))
			w.records++
			w.storedBytes += n
			w.count[h.class]++
			w.bytes[h.class] += n
			w.lastSeq = max(w.lastSeq, seq)
			// A crash can only lose the elapsed counter together with
			// the records of the same commit, but take no chances.
			s.elapsedBase = max(s.elapsedBase, h.monoMS)
		}
		// Seqs up to the reservation may have been handed out by journal
		// commits; a clean stop leaves its last seq under keyClean, which
		// this open consumes (a crash from here on is an unclean stop).
		if v := m.Get(keyReserved); len(v) == 8 {
			s.reserved = binary.BigEndian.Uint64(v)
		}
		if v := m.Get(keyClean); len(v) == 8 {
			s.cleanClose = binary.BigEndian.Uint64(v) == w.lastSeq
			if err := m.Delete(keyClean); err != nil {
				return err
			}
		}
		cb := tx.Bucket(bucketCursors)
		var stale [][]byte
		if err := cb.ForEach(func(k, v []byte) error {
			if !s.sinks[string(k)] {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range stale {
			s.log.Info("store forgets cursor of removed sink", "sink", string(k))
			if err := cb.Delete(k); err != nil {
				return err
			}
		}
		for sink := range s.sinks {
			var cur uint64
			if v := cb.Get([]byte(sink)); v != nil {
				cur = min(binary.BigEndian.Uint64(v), w.lastSeq)
			} else if err := cb.Put([]byte(sink), binary.BigEndian.AppendUint64(nil, 0)); err != nil {
				return err
			}
			w.cursors[sink] = cur
		}
		if err := m.Put(keyElapsed, binary.BigEndian.AppendUint64(nil, s.elapsedBase)); err != nil {
			return err
		}
		return m.Put(keyBoots, binary.BigEndian.AppendUint64(nil, boots))
	})
	if err != nil {
		var ce *corruptError
		if errors.As(err, &ce) {
			return err
		}
		return fmt.Errorf("open store: load: %w", err)
	}
	s.boots = boots
	s.savedElapsed = s.elapsedBase
	w.low = w.lastSeq // nothing stored at or below: records are deleted from the front
	if w.records > 0 {
		w.low = w.firstSeq - 1
	}
	s.elapsedStart = s.opts.Elapsed()
	s.w = w
	s.pub = w.clone()
	s.lastSeq.Store(w.lastSeq)
	return nil
}

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// Disk space is a resource the store manages, not an error it meets.
//
// The quota on record bytes is the configured MaxBytes or what the free
// space allows, whichever is smaller, re-read every diskCheckEvery: a
// bbolt file needs about twice its record bytes (half-full pages, branch
// pages, the freelist), so the quota is half the room the file may take,
// the file's size now plus the free space less a margin for the rest of
// the gateway. bbolt's MaxSize is set to that room, so growth past it is
// ErrMaxSizeReached (old records are dropped, telemetry first, and the
// drop is declared) rather than a write failing half way.
//
// A reserve file (<path>.reserve) is kept beside the store, written at
// full size when there is room. When the disk is nearly full anyway
// (another program filled it, or a write failed with ENOSPC), the store
// deletes the reserve and runs on it: a storage.disk_full alarm is
// recorded at once, the quota is pinned just above what is stored now, so
// new records push out old telemetry first, in chunks of 5 % (declared by
// store.dropped), and alerts keep being recorded; the file may grow into
// the reserve's room. Once the free space is back the reserve is written again and
// storage.disk_ok is recorded. A start on a full disk works the same way:
// the reserve is released before the first write, so the open, the
// journal's fold and the alarm can commit.
//
// On a small disk the journal (2 MiB by default) shrinks to a sixteenth
// of it, and folds at half its size, so that what one fold writes fits in
// the reserve.

const (
	defaultDiskCheckEvery = 2 * time.Second
	minReserve            = 1 << 20
	maxReserve            = 16 << 20
	minMargin             = 256 << 10
	smallDisk             = 64 << 20
	// fullHeadroom is what the quota allows above what is stored when the
	// disk fills: the alarm and the first alerts fit without a drop, so a
	// gateway restarting on a full disk does not lose records each time.
	fullHeadroom = 64 << 10
	// fullLowWater is the share of the quota a drop goes down to while
	// the disk is full: small chunks, since every byte is precious.
	fullLowWater = 95
)

// diskState is owned by the writer (and by Open before it starts).
type diskState struct {
	dir         string
	reservePath string
	reserveSize int64 // what the reserve file is written to
	reserveHeld bool  // the reserve file exists at full size
	known       bool  // free space could be read
	avail       int64 // bytes free for an unprivileged user at the last reading
	total       int64
	full        bool
	fullSince   time.Time
	fullCause   string
	quota       int64 // record bytes allowed now
	fullQuota   int64 // the quota pinned when the disk filled
	maxFile     int64 // the bbolt file may grow to this
}

// DiskStats is the store's view of its disk.
type DiskStats struct {
	Known        bool // free space could be read
	FreeBytes    int64
	TotalBytes   int64
	QuotaBytes   int64 // record bytes allowed now (MaxBytes or less)
	ReserveBytes int64 // held in the reserve file now
	Full         bool
	FullSince    time.Time
	FullCause    string
}

func (d *diskState) stats() DiskStats {
	st := DiskStats{Known: d.known, FreeBytes: d.avail, TotalBytes: d.total, QuotaBytes: d.quota,
		Full: d.full, FullSince: d.fullSince, FullCause: d.fullCause}
	if d.reserveHeld {
		st.ReserveBytes = d.reserveSize
	}
	return st
}

// margin is room left free for everything else the gateway writes.
func (d *diskState) margin() int64 { return max(minMargin, d.reserveSize/4) }

// open reads the disk before the store writes anything: it sizes the
// reserve and, on a small disk, the journal; it releases the reserve if
// the disk is nearly full, and writes it if it is missing and fits.
func (d *diskState) open(s *Store) {
	d.dir = filepath.Dir(s.opts.Path)
	d.reservePath = s.opts.Path + ".reserve"
	d.read(s)
	d.reserveSize = minReserve
	if d.known {
		if d.total < smallDisk {
			ws := max(16*walPage, min(s.opts.walSize, d.total/16/walPage*walPage))
			s.opts.walSize = ws
			s.opts.walFoldBytes = min(s.opts.walFoldBytes, int(ws/2))
		}
		d.reserveSize = max(minReserve, min(maxReserve, d.total/32), int64(2*s.opts.walFoldBytes)+minMargin)
	}
	if fi, err := os.Stat(d.reservePath); err == nil && fi.Size() >= d.reserveSize {
		d.reserveHeld = true
	}
	switch {
	case d.known && d.avail < d.margin()/2:
		s.diskFull(fmt.Sprintf("disk full at start: %d bytes free", d.avail))
	case !d.reserveHeld && !d.holdReserve(s) && d.lacksReserveRoom():
		// Running on the reserve's room already (a restart while full).
		s.diskFull(fmt.Sprintf("no room for the disk reserve at start: %d bytes free", d.avail))
	}
	d.limits(s)
}

// lacksReserveRoom: the reserve could not be written for want of space.
func (d *diskState) lacksReserveRoom() bool {
	return d.known && d.avail < d.reserveSize+2*d.margin()
}

// read takes a free-space reading.
func (d *diskState) read(s *Store) {
	avail, total, err := s.opts.diskSpace(d.dir)
	d.known = err == nil && total > 0
	if d.known {
		d.avail, d.total = avail, total
	}
}

// holdReserve writes the reserve file if it fits beside a margin.
func (d *diskState) holdReserve(s *Store) bool {
	if d.known && d.avail < d.reserveSize+2*d.margin() {
		return false
	}
	if err := writeReserve(d.reservePath, d.reserveSize); err != nil {
		s.log.Warn("store cannot write its disk reserve", "path", d.reservePath, "err", err)
		_ = os.Remove(d.reservePath)
		return false
	}
	d.reserveHeld = true
	d.read(s)
	return true
}

// limits sets the quota and bbolt's size limits from the last reading.
func (d *diskState) limits(s *Store) {
	cfg := s.opts.MaxBytes
	d.quota, d.maxFile = cfg, maxFileSize(cfg)
	if d.known {
		var size int64
		if fi, err := os.Stat(s.opts.Path); err == nil {
			size = fi.Size()
		}
		room := size + d.avail - d.margin()
		if d.full {
			room = size + d.avail - minMargin/4
		}
		room = max(room, size)
		d.maxFile = min(d.maxFile, room)
		d.quota = min(cfg, max(room/2, 64<<10))
	}
	if d.full && d.fullQuota > 0 {
		d.quota = min(d.quota, d.fullQuota)
	}
	if s.db != nil {
		s.db.MaxSize = int(min(d.maxFile, int64(^uint(0)>>1)))
		s.db.AllocSize = d.allocSize()
	}
}

// maxFile is the bbolt MaxSize for Open: the disk's limit once known.
func (d *diskState) maxFileFor(quota int64) int64 {
	if d.maxFile > 0 {
		return d.maxFile
	}
	return maxFileSize(quota)
}

// allocSize is how much bbolt grows the file by at a time: its default
// 16 MiB would make a small disk's limit refuse growth long before the
// file reaches it.
func (d *diskState) allocSize() int {
	const def = 16 << 20
	if d.maxFile <= 0 {
		return def
	}
	return int(max(64<<10, min(def, d.maxFile/16)))
}

// checkDisk re-reads the free space, enters or leaves the full state and
// renews the limits. The writer calls it on its tick.
func (s *Store) checkDisk() {
	d := &s.disk
	d.read(s)
	if !d.known {
		return
	}
	switch {
	case !d.full && d.avail < d.margin()/2:
		s.diskFull(fmt.Sprintf("%d bytes free on the data disk", d.avail))
	case d.full && d.avail >= d.reserveSize+3*d.margin():
		if d.reserveHeld || d.holdReserve(s) {
			since := d.fullSince
			d.full, d.fullQuota, d.fullCause = false, 0, ""
			s.log.Info("data disk has room again: the store records everything", "free_bytes", d.avail,
				"full_for", time.Since(since).Round(time.Second).String())
			s.internal(event.New(event.StorageDiskOK).WithData(map[string]any{
				"path": d.dir, "free_bytes": d.avail, "total_bytes": d.total,
				"full_s": int64(time.Since(since).Seconds()),
			}))
		}
	case !d.full && !d.reserveHeld:
		if !d.holdReserve(s) && d.lacksReserveRoom() {
			s.diskFull(fmt.Sprintf("no room for the disk reserve: %d bytes free", d.avail))
		}
	}
	d.limits(s)
	s.publishDisk()
}

// diskFull enters the full state: the reserve is released for the alerts
// and the fold, the quota pinned below what is stored, and the alarm queued
// for the next commit.
func (s *Store) diskFull(cause string) {
	d := &s.disk
	if d.full {
		return
	}
	d.full, d.fullSince, d.fullCause = true, time.Now(), cause
	freed := int64(0)
	if d.reserveHeld {
		if err := os.Remove(d.reservePath); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Error("store cannot release its disk reserve", "path", d.reservePath, "err", err)
		} else {
			freed, d.reserveHeld = d.reserveSize, false
		}
	}
	d.read(s)
	if s.db != nil { // at Open, set once the records are counted
		d.fullQuota = s.w.storedBytes + fullHeadroom
	}
	d.limits(s)
	s.log.Error("data disk full: telemetry is dropped first, alerts are kept from the reserve",
		"path", d.dir, "cause", cause, "free_bytes", d.avail, "reserve_released", freed, "quota_bytes", d.quota)
	s.internal(event.New(event.StorageDiskFull).WithData(map[string]any{
		"path": d.dir, "cause": cause, "free_bytes": d.avail, "total_bytes": d.total,
		"reserve_bytes": freed, "quota_bytes": d.quota, "stored_bytes": s.w.storedBytes,
	}))
	s.publishDisk()
}

// publishDisk makes the disk state visible to Stats.
func (s *Store) publishDisk() {
	st := s.disk.stats()
	s.diskPub.Store(&st)
}

// isNoSpace reports whether err is the filesystem being full.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// writeZeros writes size zero bytes at the start of f.
func writeZeros(f *os.File, size int64) error {
	buf := make([]byte, 64<<10)
	for off := int64(0); off < size; off += int64(len(buf)) {
		if _, err := f.WriteAt(buf[:min(int64(len(buf)), size-off)], off); err != nil {
			return err
		}
	}
	return nil
}

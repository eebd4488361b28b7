package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// fdatasync flushes f's data, and metadata only where reading the data
// back needs it (a size change): the journal is preallocated, so it costs
// no filesystem journal commit.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

// dropCache evicts f's clean cached pages. Recent kernels cache file data
// in large folios (16 KiB and more) when it is written or read in big
// chunks, and dirtying one byte of a folio then dirties, and accounts in
// write_bytes, the whole folio. Once the zero-filled journal or its replay
// read is out of the cache, each page-sized frame write makes a 4 KiB folio
// of its own. Advisory: an error changes nothing but the cost.
func dropCache(f *os.File) { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) }

// openDirect opens the journal at path with O_DIRECT and finds its write
// unit: the logical sector size, which a file does not reveal (BLKSSZGET
// needs the device), so a probe reads the first 512 bytes and writes them
// back unchanged; EINVAL means a bigger sector, and 4096 is tried. The
// probe changes no byte, so a crash or power cut during it loses nothing.
// An error (EINVAL at open on filesystems without O_DIRECT, such as some
// FUSE or older tmpfs) sends the caller to the page cache.
func openDirect(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT, 0)
	if err != nil {
		return nil, 0, err
	}
	for _, unit := range []int64{512, 4096} {
		b := alignedBuf(int(unit))
		if _, err = f.ReadAt(b, 0); err == nil {
			if _, err = f.WriteAt(b, 0); err == nil {
				return f, unit, nil
			}
		}
		if !errors.Is(err, unix.EINVAL) {
			break
		}
	}
	_ = f.Close()
	return nil, 0, fmt.Errorf("journal O_DIRECT probe: %w", err)
}

// openCreateDirect creates (truncating) path for O_DIRECT writes.
func openCreateDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, 0o600)
}

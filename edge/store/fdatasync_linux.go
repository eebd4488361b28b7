package store

import (
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

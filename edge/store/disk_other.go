//go:build !linux

package store

import (
	"errors"
	"os"
)

func diskSpace(string) (avail, total int64, err error) {
	return 0, 0, errors.New("free space not readable on this system")
}

func writeReserve(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	err = writeZeros(f, size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

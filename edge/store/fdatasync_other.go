//go:build !linux

package store

import (
	"errors"
	"os"
)

func fdatasync(f *os.File) error { return f.Sync() }

func dropCache(*os.File) {}

var errNoDirect = errors.New("O_DIRECT not supported on this platform")

func openDirect(string) (*os.File, int64, error) { return nil, 0, errNoDirect }

func openCreateDirect(string) (*os.File, error) { return nil, errNoDirect }

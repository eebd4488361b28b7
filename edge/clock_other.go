//go:build !linux

package edge

func kernelSynced() bool { return true }

//go:build !linux

package main

import "syscall"

// relChildAttr: only Linux can tie a child's life to its parent's.
func relChildAttr() *syscall.SysProcAttr { return nil }

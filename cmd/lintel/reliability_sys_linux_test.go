package main

import "syscall"

// relChildAttr makes a child of the reliability suite (broker, daemon,
// simulator) die with the test process, also when the test binary is
// killed by its -timeout, instead of running on as an orphan.
func relChildAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

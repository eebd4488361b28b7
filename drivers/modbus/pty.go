package modbus

import (
	"fmt"
	"os"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// OpenPTY returns a pseudo-terminal pair for an RTU simulator: the
// simulator serves the master; a Modbus master (the gateway, mbpoll)
// opens the slave's path. The slave is put in raw mode so nothing echoes
// or translates bytes before the client configures it; keep it open
// while the simulator runs, or the master reads EIO whenever no client
// has the port open.
func OpenPTY() (master, slave *os.File, err error) {
	master, slave, err = pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	t, err := unix.IoctlGetTermios(int(slave.Fd()), unix.TCGETS)
	if err == nil {
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		err = unix.IoctlSetTermios(int(slave.Fd()), unix.TCSETS, t)
	}
	if err != nil {
		master.Close()
		slave.Close()
		return nil, nil, fmt.Errorf("raw pty: %w", err)
	}
	// A blocking master fd cannot be interrupted: Close would wait for a
	// pending Read forever. A non-blocking duplicate goes through Go's
	// poller, so deadlines and Close work.
	nb, err := nonBlocking(master)
	if err != nil {
		slave.Close()
		return nil, nil, err
	}
	return nb, slave, nil
}

func nonBlocking(f *os.File) (*os.File, error) {
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var dup int
	var derr error
	if err := rc.Control(func(fd uintptr) { dup, derr = unix.Dup(int(fd)) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("dup pty: %w", derr)
	}
	if err := unix.SetNonblock(dup, true); err != nil {
		unix.Close(dup)
		return nil, fmt.Errorf("pty non-blocking: %w", err)
	}
	return os.NewFile(uintptr(dup), f.Name()), nil
}

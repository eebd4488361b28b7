package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	bugst "go.bug.st/serial"
)

// PortSpec says how to reach a receiver.
type PortSpec struct {
	// Address is a device path (/dev/serial/by-id/…), serial:///dev/…,
	// or tcp://host:port for a receiver behind a serial server.
	Address string
	Baud    int
	Parity  string
}

// Conn is an open receiver port.
type Conn interface {
	io.ReadWriteCloser
}

// ErrFDLimit is returned instead of opening a serial port whose file
// descriptor go.bug.st/serial could not use: its select() panics for
// fds ≥ 1024 (upstream issue #128).
var ErrFDLimit = errors.New("too many open files for a serial port (fd ≥ 1000); restart lintel")

// DevicePath returns the device path of a serial address, or "" for tcp.
func DevicePath(addr string) string {
	if strings.HasPrefix(addr, "/") {
		return addr
	}
	if u, err := url.Parse(addr); err == nil && u.Scheme == "serial" {
		return u.Path
	}
	return ""
}

// OpenPort opens a receiver port. Serial ports are opened raw, 8 data bits,
// one stop bit, with no modem-line changes (ptys reject those).
func OpenPort(ctx context.Context, spec PortSpec) (Conn, error) {
	if strings.HasPrefix(spec.Address, "tcp://") {
		u, err := url.Parse(spec.Address)
		if err != nil {
			return nil, fmt.Errorf("parse %q: %w", spec.Address, err)
		}
		d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
		c, err := d.DialContext(ctx, "tcp", u.Host)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", u.Host, err)
		}
		return c, nil
	}
	path := DevicePath(spec.Address)
	if path == "" {
		return nil, fmt.Errorf("address %q: want a /dev path, serial:///dev/… or tcp://host:port", spec.Address)
	}
	if err := checkFDHeadroom(); err != nil {
		return nil, err
	}
	mode := &bugst.Mode{BaudRate: spec.Baud, DataBits: 8, StopBits: bugst.OneStopBit}
	switch spec.Parity {
	case "even":
		mode.Parity = bugst.EvenParity
	case "odd":
		mode.Parity = bugst.OddParity
	default:
		mode.Parity = bugst.NoParity
	}
	p, err := bugst.Open(path, mode)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &serialConn{p: p}, nil
}

// checkFDHeadroom opens /dev/null to learn the lowest free descriptor:
// the port will get it or one just above, and go.bug.st/serial panics on
// fds ≥ 1024 (it also needs two for its signalling pipe).
func checkFDHeadroom() error {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return nil // nothing to learn; let Open report its own error
	}
	fd := f.Fd()
	_ = f.Close()
	if fd >= 1000 {
		return ErrFDLimit
	}
	return nil
}

// serialConn adapts a go.bug.st port: it turns the library's panics on a
// bad fd into errors so one port cannot take the daemon down.
type serialConn struct {
	p bugst.Port
}

func (c *serialConn) Read(b []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, fmt.Errorf("serial read: %v", r)
		}
	}()
	n, err = c.p.Read(b)
	if n == 0 && err == nil {
		// go.bug.st reports a read timeout as (0, nil); no timeout is set
		// here, so treat it as the device going away.
		return 0, io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *serialConn) Write(b []byte) (int, error) { return c.p.Write(b) }
func (c *serialConn) Close() error                { return c.p.Close() }

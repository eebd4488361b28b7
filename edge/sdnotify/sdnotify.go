// Package sdnotify tells systemd how the daemon is doing (sd_notify(3):
// READY=1, STOPPING=1, STATUS=…, WATCHDOG=1) over $NOTIFY_SOCKET, in pure
// Go so the binary stays static, and keeps a liveness registry so the
// watchdog is fed only while the daemon's critical loops make progress.
//
// A watchdog ping sent from a plain ticker proves only that the ticker
// runs; it keeps pinging through a deadlock in the poller or the store
// writer (research/reliability.md §4.4). Here each critical loop calls
// [Beat] with its name, and [Watchdog] sends WATCHDOG=1 only while every
// registered loop has beaten within its own deadline. When one has not,
// the pings stop, systemd's WatchdogSec expires, and the unit's
// Restart=on-failure restarts the daemon.
//
// Outside systemd (no $NOTIFY_SOCKET) every call is a cheap no-op, so
// code can notify unconditionally.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Messages defined by sd_notify(3).
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Ping     = "WATCHDOG=1"
)

// Notifier sends notifications to the service manager. The zero value and
// a nil *Notifier are disabled and drop every message.
type Notifier struct {
	socket string
}

// New returns a Notifier for socket, a path or an abstract name starting
// with "@" (what systemd puts in $NOTIFY_SOCKET). An empty socket gives a
// disabled Notifier.
func New(socket string) *Notifier { return &Notifier{socket: socket} }

// FromEnv returns a Notifier for $NOTIFY_SOCKET; disabled when the
// variable is unset (not started by systemd, or not Type=notify).
func FromEnv() *Notifier { return New(os.Getenv("NOTIFY_SOCKET")) }

// Enabled reports whether messages go anywhere.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// Notify sends one datagram holding the given assignments, one per line
// (e.g. Ready, "STATUS=draining backlog"). A disabled Notifier returns nil.
func (n *Notifier) Notify(states ...string) error {
	if !n.Enabled() || len(states) == 0 {
		return nil
	}
	for _, s := range states {
		if !strings.Contains(s, "=") || strings.ContainsRune(s, '\n') {
			return fmt.Errorf("sd_notify: %q is not one VAR=value line", s)
		}
	}
	if strings.HasPrefix(n.socket, "vsock:") {
		return errors.New("sd_notify: vsock notify sockets are not supported")
	}
	if !strings.HasPrefix(n.socket, "/") && !strings.HasPrefix(n.socket, "@") {
		return fmt.Errorf("sd_notify: NOTIFY_SOCKET %q is neither a path nor an abstract name", n.socket)
	}
	// Go maps a leading "@" to Linux's abstract namespace (a leading NUL).
	// A fresh socket per message is what libsystemd does too: messages are
	// rare and systemd may re-create its end after a daemon-reexec.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(states, "\n") + "\n")); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Status returns the STATUS= line that `systemctl status` shows.
func Status(s string) string {
	return "STATUS=" + strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// WatchdogInterval returns the watchdog timeout systemd set for this
// process (WatchdogSec=, passed as $WATCHDOG_USEC), or 0 when the
// watchdog is off or meant for another process ($WATCHDOG_PID differs, as
// after a fork). Pings are due at half of it.
func WatchdogInterval() (time.Duration, error) {
	return watchdogInterval(os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"), os.Getpid())
}

func watchdogInterval(usec, pid string, self int) (time.Duration, error) {
	if usec == "" {
		return 0, nil
	}
	if pid != "" {
		p, err := strconv.Atoi(pid)
		if err != nil {
			return 0, fmt.Errorf("WATCHDOG_PID %q is not a number", pid)
		}
		if p != self {
			return 0, nil
		}
	}
	us, err := strconv.ParseInt(usec, 10, 64)
	if err != nil || us <= 0 {
		return 0, fmt.Errorf("WATCHDOG_USEC %q is not a positive number of microseconds", usec)
	}
	return time.Duration(us) * time.Microsecond, nil
}

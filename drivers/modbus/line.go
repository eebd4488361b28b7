package modbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Keeping an RTU line in step (issue 17; tech.md §2.4, §2.6).
//
// An RTU reply carries no transaction id: it answers whatever request
// went out last. simonvetter/modbus checks a reply's unit, function code,
// byte count and CRC, but it flushes its port only after a bad CRC or a
// short frame, never after a timeout or a reply from the wrong unit or
// with the wrong function code; and a stale reply with the same shape as
// the current request passes every check. Once a reply is left over on
// the line, each request reads the previous one's answer, forever. The
// bus therefore watches the line itself:
//
//   - Before a request, anything already received is stray: it is read
//     and discarded, and the line is given its silence (below) before the
//     request goes out. Stray bytes are never held against the device
//     about to be asked.
//   - After a reply, the line must stay quiet for t3.5. Bytes that follow
//     a reply at once mean it may have answered an earlier request: its
//     values are dropped and the exchange counts as a mismatch.
//   - After a timeout or a mismatch (any reply the library rejects, or
//     one followed by stray bytes) the bus drains the line until it has
//     been silent for the device's late_reply, so a late reply, the rest
//     of a burst, or the answer that a stale reply hid arrives and is
//     thrown away. A mismatched request is then asked once more; only if
//     that fails too does the poll count as failed.
//   - After reopenAfter resyncs in a row with no exchange in step between
//     them, the port is closed and opened again: draining did not help, so
//     the cause is below the framing (port settings changed behind the
//     gateway's back, a wedged USB adapter or device server).
//
// simonvetter/modbus gives no access to its port, so on rtu:// the bus
// opens the tty a second time (an rxTap): both descriptors share the
// kernel's input queue, and what the tap reads the library never sees.
// RTU over TCP has no such side door: there a resync waits the silence
// and reconnects, which drops whatever the old connection had buffered.

// reopenAfter is how many resyncs in a row, with no exchange in step
// between them, make the bus reopen its port. One resync is normally
// enough (a garbled frame, a late reply); two in a row happen when a
// burst of replies spans two exchanges; a third means draining is not
// restoring step, and a reopen costs only about 10 ms on a serial port.
// A dead device alone on its bus reaches it from its third attempt on;
// that is what the bus did after every timeout before it could drain.
const reopenAfter = 3

// maxRTUFrame is the longest RTU frame in characters (tech.md §4.1); its
// wire time is part of the silence after a failure.
const maxRTUFrame = 256

// minSilence is the least silence after a failed exchange unless the
// device's late_reply says otherwise. A slave built on libmodbus that
// sees a request for another unit takes the next frame on the line for
// that unit's reply, waiting up to its response timeout, 500 ms by
// default: a request sent sooner after one that got no answer is
// swallowed, and the slave answers nothing (or falls out of step itself
// and, like libmodbus's unit-test-server, quits). The other 100 ms are a
// margin for a slave that is slow to start its wait: with 500 ms and a
// 100 ms timeout, the libmodbus scan test lost that race once in five
// runs on a 2-core machine with both cores busy.
const minSilence = 600 * time.Millisecond

// keepStray is how many discarded bytes are kept for the log line that
// says what they were.
const keepStray = 512

// errTrailing marks a reply that other bytes followed at once: it may
// have answered an earlier request, so its values are not used.
var errTrailing = errors.New("reply followed by stray bytes")

// drainLimit bounds one drain: a line that does not fall silent within
// it (another master, a babbling device, noise) is reopened instead.
func drainLimit(quiet time.Duration) time.Duration { return 2*quiet + time.Second }

// rxTap is a second, read-only descriptor on an RTU port.
type rxTap struct {
	fd int
}

func openRxTap(path string) (*rxTap, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s for draining: %w", path, err)
	}
	return &rxTap{fd: fd}, nil
}

func (t *rxTap) close() {
	if t != nil && t.fd >= 0 {
		_ = unix.Close(t.fd)
		t.fd = -1
	}
}

// take reads what the port has received, without waiting, appending up
// to keepStray bytes of it to keep. The library leaves VMIN and VTIME at
// zero, so an empty queue reads as 0 bytes rather than EAGAIN.
func (t *rxTap) take(keep []byte) ([]byte, int, error) {
	var buf [256]byte
	n := 0
	for n < 1<<16 { // a line that never stops talking still ends a take
		m, err := unix.Read(t.fd, buf[:])
		switch {
		case m > 0:
			n += m
			keep = append(keep, buf[:min(m, max(keepStray-len(keep), 0))]...)
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err == nil, errors.Is(err, unix.EAGAIN):
			return keep, n, nil
		}
		return keep, n, fmt.Errorf("drain: %w", err)
	}
	return keep, n, nil
}

// wait blocks until the port has input or d has passed; it reports
// whether input is waiting.
func (t *rxTap) wait(d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left < 0 {
			left = 0
		}
		ts := unix.NsecToTimespec(left.Nanoseconds())
		fds := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}}
		n, err := unix.Ppoll(fds, &ts, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("drain: poll: %w", err)
		}
		if n == 0 {
			return false, nil
		}
		if fds[0].Revents&unix.POLLIN != 0 {
			return true, nil
		}
		return false, fmt.Errorf("drain: port hung up (poll events %#x)", fds[0].Revents)
	}
}

// drained is what a drain or a take found on the line.
type drained struct {
	n      int       // bytes discarded
	kept   []byte    // the first keepStray of them
	first  time.Time // when the first of them was seen
	silent bool      // the line fell silent for the whole quiet period
}

// drain discards input until the line has been silent for quiet, or
// until limit has passed or ctx ends (silent false).
func (t *rxTap) drain(ctx context.Context, quiet, limit time.Duration) (drained, error) {
	var out drained
	start := time.Now()
	last := start
	for {
		kept, n, err := t.take(out.kept)
		out.kept = kept
		if n > 0 {
			last = time.Now()
			if out.n == 0 {
				out.first = last
			}
			out.n += n
		}
		if err != nil {
			return out, err
		}
		now := time.Now()
		if now.Sub(last) >= quiet {
			out.silent = true
			return out, nil
		}
		if now.Sub(start) >= limit || ctx.Err() != nil {
			return out, nil
		}
		// Wake at least every 50 ms to notice ctx.
		if _, err := t.wait(min(quiet-now.Sub(last), limit-now.Sub(start), 50*time.Millisecond)); err != nil {
			return out, err
		}
	}
}

// lineGuard applies the rules above to one link. The bus and the probe
// each own one; both call it from a single goroutine.
type lineGuard struct {
	lc linkConfig
	l  link
	// outOfStep counts resyncs since the last exchange in step.
	outOfStep int
}

// framed reports whether the link carries RTU framing, with no
// transaction id to match replies (rtu:// and rtuovertcp://).
func (g *lineGuard) framed() bool { return g.lc.scheme == "rtu" || g.lc.scheme == "rtuovertcp" }

// stray reads and discards whatever arrived before a request. The caller
// resyncs when it found anything.
func (g *lineGuard) stray() (drained, error) {
	tap := g.l.rx()
	if tap == nil {
		return drained{}, nil
	}
	kept, n, err := tap.take(nil)
	d := drained{n: n, kept: kept}
	if n > 0 {
		d.first = time.Now()
	}
	return d, err
}

// trailing checks the line after an exchange that got a reply: anything
// arriving within t3.5 of it turns err into an errTrailing mismatch.
func (g *lineGuard) trailing(err error) (drained, error) {
	tap := g.l.rx()
	if tap == nil || (err != nil && classify(err) != exceptionClass) {
		return drained{}, err
	}
	tc := charTime(g.lc.baud, g.lc.parity, g.lc.stopBits)
	waiting, werr := tap.wait(t35(g.lc.baud, tc))
	if werr != nil {
		return drained{}, fmt.Errorf("after reply: %w", werr)
	}
	if !waiting {
		return drained{}, err
	}
	kept, n, terr := tap.take(nil)
	if terr != nil {
		return drained{}, fmt.Errorf("after reply: %w", terr)
	}
	return drained{n: n, kept: kept, first: time.Now()}, fmt.Errorf("%w (%d bytes)", errTrailing, n)
}

// resynced is what one resync did.
type resynced struct {
	drained
	reopened bool
}

// resync lets the line fall silent for quiet, draining it, and reopens
// the link after reopenAfter resyncs in a row, when the line would not
// fall silent, or always when it cannot be drained (RTU over TCP). An
// error means the reopen failed: the link is down.
func (g *lineGuard) resync(ctx context.Context, quiet time.Duration) (resynced, error) {
	g.outOfStep++
	var r resynced
	reopen := g.outOfStep >= reopenAfter
	if tap := g.l.rx(); tap != nil {
		d, err := tap.drain(ctx, quiet, drainLimit(quiet))
		r.drained = d
		reopen = reopen || err != nil || !d.silent
	} else {
		// No way to read the line beside the library: let a late reply
		// arrive, then drop it with the connection (or, for a port that
		// could not be opened twice, with the port: Open discards).
		sleepCtx(ctx, quiet)
		reopen = true
	}
	if !reopen || ctx.Err() != nil {
		return r, nil
	}
	_ = g.l.close()
	r.reopened = true
	return r, g.l.open()
}

// inStep records an exchange that got the reply it asked for; it returns
// how many resyncs preceded it.
func (g *lineGuard) inStep() int {
	n := g.outOfStep
	g.outOfStep = 0
	return n
}

// strayFrame is an RTU reply frame found among discarded bytes.
type strayFrame struct {
	unit, fc byte // fc has bit 7 set for an exception
	n        int  // length in bytes
}

// scanFrames splits discarded bytes into the well-formed RTU reply frames
// they hold, in order, and a count of bytes that belong to none (noise, a
// frame cut off by a drain, requests echoed by an adapter). It decides
// nothing on the bus; it says in the log what was thrown away, and lets
// a scan recognise a late answer. Invariants, checked by FuzzScanFrames:
// frame lengths plus junk add up to len(b), and every frame decodes.
func scanFrames(b []byte) (frames []strayFrame, junk int) {
	for i := 0; i < len(b); {
		if n := replyLen(b[i:]); n > 0 && n <= len(b)-i {
			if _, err := decodeRTUReply(b[i : i+n]); err == nil {
				frames = append(frames, strayFrame{unit: b[i], fc: b[i+1], n: n})
				i += n
				continue
			}
		}
		junk++
		i++
	}
	return frames, junk
}

// replyLen is the length of the RTU reply that would start b, from its
// function code (and byte count), or 0 if b cannot start one.
func replyLen(b []byte) int {
	if len(b) < 3 || b[0] == 0 || (b[0] > 247 && b[0] != 255) {
		return 0
	}
	switch fc := b[1]; {
	case fc >= 1 && fc <= 4:
		return 5 + int(b[2])
	case fc == 5 || fc == 6 || fc == 15 || fc == 16:
		return 8
	case fc&0x80 != 0:
		return 5
	}
	return 0
}

// describeStray says what discarded bytes were, for the log.
func describeStray(d drained) string {
	if d.n == 0 {
		return ""
	}
	frames, junk := scanFrames(d.kept)
	junk += d.n - len(d.kept)
	var parts []string
	for i, f := range frames {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("… %d more", len(frames)-i))
			break
		}
		if f.fc&0x80 != 0 {
			parts = append(parts, fmt.Sprintf("exception from unit %d fc %d", f.unit, f.fc&0x7F))
		} else {
			parts = append(parts, fmt.Sprintf("reply from unit %d fc %d", f.unit, f.fc))
		}
	}
	if junk > 0 {
		parts = append(parts, fmt.Sprintf("%d other bytes", junk))
	}
	return strings.Join(parts, ", ")
}

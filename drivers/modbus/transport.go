package modbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	mb "github.com/simonvetter/modbus"
)

// link is one bus connection: a serial port, a TCP connection to a
// device or gateway, or an RTU-over-TCP serial server. Only the bus
// goroutine calls it.
type link interface {
	open() error
	close() error
	// setTimeout selects the reply timeout for the next transactions
	// (0: the bus default).
	setTimeout(t time.Duration) error
	readRegs(unit uint8, t Table, addr, n uint16) ([]uint16, error)
	readBits(unit uint8, t Table, addr, n uint16) ([]bool, error)
	write(unit uint8, t Table, addr, v uint16) error
	// rx returns the tap on an open RTU port's receive queue (line.go),
	// or nil when the link cannot be read beside the library.
	rx() *rxTap
}

// linkConfig is what a bus needs to reach its devices.
type linkConfig struct {
	scheme   string // rtu, tcp, rtuovertcp
	key      string // device path or host:port
	baud     int
	parity   string
	stopBits int
	timeout  time.Duration
}

// mbLink drives simonvetter/modbus. The library fixes the timeout per
// client, so the link keeps one client per timeout its devices use and
// has exactly one of them open at a time: a bus keeps one port or one
// connection. Devices sharing a timeout (the usual case) never switch;
// switching costs a reopen (about 10 ms on a serial port).
type mbLink struct {
	lc      linkConfig
	log     *slog.Logger
	clients map[time.Duration]*mb.ModbusClient
	cur     *mb.ModbusClient
	curT    time.Duration
	isOpen  bool
	tap     *rxTap // rtu:// only, while open
	noTap   bool   // the port could not be opened twice: logged once
}

func newMBLink(lc linkConfig, log *slog.Logger) (*mbLink, error) {
	l := &mbLink{lc: lc, log: log, clients: map[time.Duration]*mb.ModbusClient{}}
	c, err := l.client(lc.timeout)
	if err != nil {
		return nil, err
	}
	l.cur, l.curT = c, lc.timeout
	return l, nil
}

func (l *mbLink) client(t time.Duration) (*mb.ModbusClient, error) {
	if c := l.clients[t]; c != nil {
		return c, nil
	}
	lc := l.lc
	conf := &mb.ClientConfiguration{
		URL:     lc.scheme + "://" + lc.key,
		Timeout: t,
		// The library logs every error at its own level; route it to
		// debug so a dead device does not flood the journal.
		Logger: slog.NewLogLogger(l.log.Handler(), slog.LevelDebug),
	}
	if lc.scheme == "rtu" || lc.scheme == "rtuovertcp" {
		conf.Speed = uint(lc.baud)
		conf.DataBits = 8
		conf.StopBits = uint(lc.stopBits) // the library defaults 8N to 2 stop bits
		switch lc.parity {
		case "even":
			conf.Parity = mb.PARITY_EVEN
		case "odd":
			conf.Parity = mb.PARITY_ODD
		default:
			conf.Parity = mb.PARITY_NONE
		}
	}
	c, err := mb.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("modbus client %s://%s: %w", lc.scheme, lc.key, err)
	}
	l.clients[t] = c
	return c, nil
}

// open opens the port or connection and, on a serial port, the tap the
// bus drains it through.
func (l *mbLink) open() error {
	if err := l.cur.Open(); err != nil {
		return err
	}
	l.isOpen = true
	if l.lc.scheme == "rtu" && l.tap == nil {
		t, err := openRxTap(l.lc.key)
		switch {
		case err == nil:
			l.tap = t
		case !l.noTap:
			l.noTap = true
			l.log.Info("modbus port cannot be drained; resyncs reopen it instead", "err", err)
		}
	}
	return nil
}

// close is idempotent: closing a serial port twice would close whatever
// file reused its descriptor number in between.
func (l *mbLink) close() error {
	l.tap.close()
	l.tap = nil
	if !l.isOpen {
		return nil
	}
	l.isOpen = false
	return l.cur.Close()
}

func (l *mbLink) rx() *rxTap {
	if !l.isOpen {
		return nil
	}
	return l.tap
}

func (l *mbLink) setTimeout(t time.Duration) error {
	if t == 0 {
		t = l.lc.timeout
	}
	if t == l.curT {
		return nil
	}
	next, err := l.client(t)
	if err != nil {
		return err
	}
	// Swap clients only: the tap stays on the port.
	wasOpen := l.isOpen
	if wasOpen {
		l.isOpen = false
		_ = l.cur.Close()
	}
	l.cur, l.curT = next, t
	if wasOpen {
		if err := l.cur.Open(); err != nil {
			l.tap.close()
			l.tap = nil
			return err
		}
		l.isOpen = true
	}
	return nil
}

func (l *mbLink) readRegs(unit uint8, t Table, addr, n uint16) ([]uint16, error) {
	if err := l.cur.SetUnitId(unit); err != nil {
		return nil, err
	}
	rt := mb.HOLDING_REGISTER
	if t == Input {
		rt = mb.INPUT_REGISTER
	}
	return l.cur.ReadRegisters(addr, n, rt)
}

func (l *mbLink) readBits(unit uint8, t Table, addr, n uint16) ([]bool, error) {
	if err := l.cur.SetUnitId(unit); err != nil {
		return nil, err
	}
	if t == Coil {
		return l.cur.ReadCoils(addr, n)
	}
	return l.cur.ReadDiscreteInputs(addr, n)
}

func (l *mbLink) write(unit uint8, t Table, addr, v uint16) error {
	if err := l.cur.SetUnitId(unit); err != nil {
		return err
	}
	if t == Coil {
		return l.cur.WriteCoil(addr, v != 0)
	}
	return l.cur.WriteRegister(addr, v)
}

// errClass sorts a transaction's outcome for statistics and recovery.
type errClass uint8

const (
	okClass errClass = iota
	timeoutClass
	// mismatchClass: a reply that does not match its request: bad CRC,
	// short frame, wrong unit, function code, byte count or length
	// (the library's "unexpected response code" is a protocol error), or
	// a reply followed by stray bytes. On RTU framing it means the line
	// may be out of step (line.go).
	mismatchClass
	exceptionClass // the device answered with an exception
	ioClass        // the link itself failed (EOF, reset, port gone)
	// unreachableClass: a TCP gateway says the device behind it did not
	// answer (exceptions 0A/0B): a failed poll, but the link is fine.
	unreachableClass
)

func classify(err error) errClass {
	switch {
	case err == nil:
		return okClass
	case errors.Is(err, mb.ErrRequestTimedOut):
		return timeoutClass
	case errors.Is(err, mb.ErrBadCRC), errors.Is(err, mb.ErrShortFrame), errors.Is(err, mb.ErrProtocolError),
		errors.Is(err, mb.ErrBadUnitId), errors.Is(err, mb.ErrBadTransactionId), errors.Is(err, mb.ErrUnknownProtocolId),
		errors.Is(err, errTrailing):
		return mismatchClass
	case errors.Is(err, mb.ErrGWTargetFailedToRespond), errors.Is(err, mb.ErrGWPathUnavailable):
		return unreachableClass
	case isException(err):
		return exceptionClass
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return timeoutClass
	}
	return ioClass
}

func isException(err error) bool {
	for _, e := range []error{mb.ErrIllegalFunction, mb.ErrIllegalDataAddress, mb.ErrIllegalDataValue,
		mb.ErrServerDeviceFailure, mb.ErrAcknowledge, mb.ErrServerDeviceBusy, mb.ErrMemoryParityError,
		mb.ErrGWPathUnavailable, mb.ErrGWTargetFailedToRespond} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// frameBytes is the size on the wire of a read of n items of t and its
// reply, for the statistics (exception replies are 5 bytes on RTU).
func frameBytes(scheme string, t Table, n int, c errClass) (tx, rx int) {
	data := 2 * n
	if t.bits() {
		data = (n + 7) / 8
	}
	tx, rx = 8, 5+data
	switch c {
	case exceptionClass:
		rx = 5
	case timeoutClass, ioClass:
		rx = 0
	case unreachableClass:
		rx = 5
	}
	if scheme == "tcp" {
		// MBAP header (7) replaces address and CRC (3).
		tx += 4
		if rx > 0 {
			rx += 4
		}
	}
	return tx, rx
}

// idealTime is the wire time of an exchange of tx and rx bytes with the
// silences the protocol requires (tech.md §4.4); zero for TCP.
func idealTime(lc linkConfig, tx, rx int) time.Duration {
	if lc.scheme == "tcp" {
		return 0
	}
	tc := charTime(lc.baud, lc.parity, lc.stopBits)
	d := time.Duration(tx+rx) * tc
	if rx > 0 {
		d += 2 * t35(lc.baud, tc)
	}
	return d
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

package modbus

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// ProbeTarget is a bus to probe: an address as in the config
// (rtu:///dev/ttyUSB0, tcp://host:502, rtuovertcp://host:4001) and, for
// serial lines, the settings to try.
type ProbeTarget struct {
	Address  string
	Baud     int
	Parity   string // none, even, odd
	StopBits int
	Timeout  time.Duration
}

// ProbeCounts are what a probe saw on the wire.
type ProbeCounts struct {
	Requests, Answers, Timeouts, CRCErrors, Exceptions, IOErrors int
}

// UnitFound is a unit id that answered a scan.
type UnitFound struct {
	Unit      int
	Exception string // the device answered, with this exception
	RTT       time.Duration
}

// prober wraps a link with the probe's counting and the stale-reply
// recovery.
type prober struct {
	lc  linkConfig
	l   link
	cnt ProbeCounts
}

func newProber(t ProbeTarget, log *slog.Logger) (*prober, error) {
	scheme, key, err := busKey(t.Address)
	if err != nil {
		return nil, fmt.Errorf("address %q: %w", t.Address, err)
	}
	lc := linkConfig{scheme: scheme, key: key, baud: t.Baud, parity: t.Parity, stopBits: t.StopBits, timeout: t.Timeout}
	if lc.baud == 0 {
		lc.baud = DefaultBaud
	}
	if lc.parity == "" {
		lc.parity = "none"
	}
	if lc.stopBits == 0 {
		lc.stopBits = 1
	}
	if lc.timeout == 0 {
		lc.timeout = 300 * time.Millisecond
	}
	l, err := newMBLink(lc, log)
	if err != nil {
		return nil, err
	}
	if err := l.open(); err != nil {
		return nil, fmt.Errorf("open %s: %w", t.Address, err)
	}
	return &prober{lc: lc, l: l}, nil
}

func (p *prober) close() { _ = p.l.close() }

// after applies the same recovery as the bus: reopen after a timeout on
// RTU framing so a late reply cannot answer the next question.
func (p *prober) after(ctx context.Context, err error) {
	p.cnt.Requests++
	switch classify(err) {
	case okClass:
		p.cnt.Answers++
	case exceptionClass:
		p.cnt.Answers++
		p.cnt.Exceptions++
	case timeoutClass, unreachableClass:
		p.cnt.Timeouts++
		if p.lc.scheme != "tcp" {
			sleepCtx(ctx, p.lc.timeout)
			_ = p.l.close()
			_ = p.l.open()
		}
	case crcClass:
		p.cnt.CRCErrors++
	case ioClass:
		p.cnt.IOErrors++
		_ = p.l.close()
		_ = p.l.open()
	}
}

// ScanUnits asks each unit id for holding register 0 and reports those
// that answer at all: a normal reply or an exception both prove a device
// is there.
func ScanUnits(ctx context.Context, t ProbeTarget, units []int, log *slog.Logger, progress func(unit int)) ([]UnitFound, ProbeCounts, error) {
	p, err := newProber(t, log)
	if err != nil {
		return nil, ProbeCounts{}, err
	}
	defer p.close()
	var found []UnitFound
	for _, u := range units {
		if ctx.Err() != nil {
			break
		}
		if progress != nil {
			progress(u)
		}
		t0 := time.Now()
		_, err := p.l.readRegs(uint8(u), Holding, 0, 1)
		rtt := time.Since(t0)
		p.after(ctx, err)
		switch classify(err) {
		case okClass:
			found = append(found, UnitFound{Unit: u, RTT: rtt})
		case exceptionClass:
			found = append(found, UnitFound{Unit: u, Exception: err.Error(), RTT: rtt})
		}
	}
	return found, p.cnt, ctx.Err()
}

// PointReading is one point's value as read by ReadOnce.
type PointReading struct {
	Point   *Point
	Value   float64
	Raw     []uint16 // registers (or one 0/1 for bits)
	Err     error
	Request string // the read that served it, e.g. "holding 0+4"
}

// ReadOnce reads every point of a profile from one unit once, with the
// same plan the driver would use, and decodes the values.
func ReadOnce(ctx context.Context, t ProbeTarget, unit int, prof *Profile, log *slog.Logger) ([]PointReading, ProbeCounts, error) {
	p, err := newProber(t, log)
	if err != nil {
		return nil, ProbeCounts{}, err
	}
	defer p.close()
	// One plan over all points: a probe reads everything once, so the
	// driver's split between event and telemetry schedules does not apply.
	dv := &device{prof: prof, opts: defaultOptions()}
	var spans []span
	for i, pt := range prof.Points {
		spans = append(spans, span{table: pt.table, addr: pt.Address, n: pt.words(), id: i})
	}
	reqs := plan(spans, dv.limits())
	out := make([]PointReading, len(prof.Points))
	for i, pt := range prof.Points {
		out[i].Point = pt
	}
	for _, r := range reqs {
		if ctx.Err() != nil {
			break
		}
		desc := fmt.Sprintf("%s %d+%d", r.table, r.start, r.count)
		var regs []uint16
		var bits []bool
		var err error
		if r.table.bits() {
			bits, err = p.l.readBits(uint8(unit), r.table, uint16(r.start), uint16(r.count))
		} else {
			regs, err = p.l.readRegs(uint8(unit), r.table, uint16(r.start), uint16(r.count))
		}
		p.after(ctx, err)
		for _, id := range r.ids {
			pr := &out[id]
			pr.Request = desc
			if err != nil {
				pr.Err = err
				continue
			}
			pt := pr.Point
			if r.table.bits() {
				if bits[pt.Address-r.start] {
					pr.Value = 1
				}
				pr.Raw = []uint16{uint16(pr.Value)}
				continue
			}
			i := pt.Address - r.start
			pr.Raw = regs[i : i+pt.words()]
			pr.Value, pr.Err = decodeRegs(pt, r.start, regs)
		}
	}
	return out, p.cnt, ctx.Err()
}

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
	// Resyncs counts silences with draining after timeouts and
	// mismatched replies; StrayBytes the bytes they discarded.
	Resyncs, StrayBytes int
}

// UnitFound is a unit id that answered a scan.
type UnitFound struct {
	Unit      int
	Exception string // the device answered, with this exception
	RTT       time.Duration
	// Late: the reply came only after the timeout (RTT is when it was
	// seen); the device is there, but polling it needs a longer timeout.
	Late bool
}

// prober runs a probe's exchanges with the same RTU line rules as the bus
// (line.go) and counts them.
type prober struct {
	lc      linkConfig
	l       link
	g       lineGuard
	silence time.Duration
	cnt     ProbeCounts
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
	return &prober{lc: lc, l: l, g: lineGuard{lc: lc, l: l},
		silence: silenceAfter(lc.timeout, lc.baud, lc.parity, lc.stopBits)}, nil
}

func (p *prober) close() { _ = p.l.close() }

// exchange runs one request: the line is drained of stray bytes first
// (with a silence if there were any), a reply followed by stray bytes is
// a mismatch, a timeout or mismatch lets the line fall silent, and a
// mismatched request is asked once more. Between the units of a scan this
// is the flush that keeps one unit's late reply, or a libmodbus slave
// still waiting for an absent unit's answer, from hiding the next unit.
// sent is when the request (of the last attempt) went out; late holds
// what the silence after a timeout drained, for ScanUnits to recognise a
// late answer.
func (p *prober) exchange(ctx context.Context, do func() error) (sent time.Time, rtt time.Duration, late drained, err error) {
	for attempt := 1; ; attempt++ {
		err = nil
		if st, serr := p.g.stray(); serr != nil {
			err = serr
		} else if st.n > 0 {
			p.cnt.StrayBytes += st.n
			p.resync(ctx)
		}
		sent = time.Now()
		if err == nil {
			err = do()
			var tr drained
			tr, err = p.g.trailing(err)
			p.cnt.StrayBytes += tr.n
		}
		rtt = time.Since(sent)
		p.cnt.Requests++
		late = drained{}
		switch classify(err) {
		case okClass:
			p.cnt.Answers++
			p.g.inStep()
		case exceptionClass:
			p.cnt.Answers++
			p.cnt.Exceptions++
			p.g.inStep()
		case timeoutClass, unreachableClass:
			p.cnt.Timeouts++
			if p.g.framed() {
				late = p.resync(ctx)
			}
		case mismatchClass:
			p.cnt.CRCErrors++
			if p.g.framed() {
				p.resync(ctx)
				if attempt == 1 && ctx.Err() == nil {
					continue
				}
			}
		case ioClass:
			p.cnt.IOErrors++
			_ = p.l.close()
			_ = p.l.open()
		}
		return sent, rtt, late, err
	}
}

func (p *prober) resync(ctx context.Context) drained {
	r, _ := p.g.resync(ctx, p.silence)
	p.cnt.Resyncs++
	p.cnt.StrayBytes += r.n
	return r.drained
}

// ScanUnits asks each unit id for holding register 0 and reports those
// that answer at all: a normal reply or an exception both prove a device
// is there, and so does a well-formed reply from the unit that arrives
// after the timeout (Late). On RTU the line is flushed between units
// (see prober.exchange), so what one unit did cannot hide the next.
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
		sent, rtt, late, err := p.exchange(ctx, func() error {
			_, err := p.l.readRegs(uint8(u), Holding, 0, 1)
			return err
		})
		switch classify(err) {
		case okClass:
			found = append(found, UnitFound{Unit: u, RTT: rtt})
		case exceptionClass:
			found = append(found, UnitFound{Unit: u, Exception: err.Error(), RTT: rtt})
		case timeoutClass:
			frames, _ := scanFrames(late.kept)
			for _, f := range frames {
				if int(f.unit) == u && f.fc&0x7F == 3 {
					found = append(found, UnitFound{Unit: u, RTT: late.first.Sub(sent), Late: true})
					break
				}
			}
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
		_, _, _, err := p.exchange(ctx, func() (err error) {
			regs, bits = nil, nil
			if r.table.bits() {
				bits, err = p.l.readBits(uint8(unit), r.table, uint16(r.start), uint16(r.count))
			} else {
				regs, err = p.l.readRegs(uint8(unit), r.table, uint16(r.start), uint16(r.count))
			}
			return err
		})
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

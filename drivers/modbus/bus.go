package modbus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/sdnotify"
	mb "github.com/simonvetter/modbus"
)

// Bus is one Modbus bus: an RS-485 port, or one TCP connection (a device,
// or a serial gateway whose devices all sit behind one host:port). One
// goroutine owns it, because RTU allows one transaction at a time and a
// TCP gateway usually forwards to a serial line anyway.
//
// Scheduling, highest priority first: command writes and their
// read-backs, event-bearing points (door and gate states, alarms) on each
// device's poll_interval, then telemetry on telemetry_interval. A device
// that stops answering is retried with exponential backoff so it costs
// the bus at most one timeout per attempt.
type Bus struct {
	lc      linkConfig
	log     *slog.Logger
	emit    edge.Emitter
	devs    []*devState
	byID    map[string]*devState
	cmds    chan *cmdJob
	newLink func(linkConfig) (link, error)
	now     func() time.Time

	link     link
	linkDown bool
	reopenAt time.Time
	reopenN  int
	evq      chan *event.Event
	watch    []*cmdJob // commands waiting for read-back or pulse release

	// guard keeps an RTU line in step (line.go); episode follows one run
	// of resyncs that involved a mismatch or stray bytes, for the log.
	guard   lineGuard
	episode struct {
		active, warned bool
		start          time.Time
		resyncs, raw   int
	}
	lastWarn time.Time // of "out of step", at most every outOfStepWarnEvery

	mu    sync.Mutex
	stats busCounters
}

type busCounters struct {
	since                                             time.Time
	transactions, timeouts, crc, exceptions, ioErrors uint64
	bytesTx, bytesRx, usefulItems, readItems, reopens uint64
	resyncs, strayBytes                               uint64
	wire, busy                                        time.Duration
}

type devState struct {
	*device
	lastOK time.Time // when the device last answered (the page's "last seen")
	b      eventBuilder
	unit   uint8
	pts    []*Point
	spans  map[int]span
	breaks map[Table]map[int]bool
	dead   map[int]bool
	evPlan []request
	tlPlan []request
	ps     []pointState

	nextEv, nextTel time.Time
	cycs            [2]*cycle // in progress: [0] event points, [1] telemetry
	fails, goods    int       // consecutive failed / good polls, for online/offline
	evFails         int       // consecutive failures per schedule, for backoff
	telFails        int
	state           string // "", online, offline
	lastErr         string

	requests, failures uint64
	rttLast, rttAvg    time.Duration
	rttMax             time.Duration
}

type cycle struct {
	reqs   []request
	i      int
	tel    bool
	failed bool
	cause  string
	start  time.Time
}

// newBus builds a bus for devices that share one link.
func newBus(lc linkConfig, devs []*device, emit edge.Emitter, log *slog.Logger) *Bus {
	b := &Bus{
		lc: lc, log: log, emit: emit, byID: map[string]*devState{},
		cmds: make(chan *cmdJob), now: time.Now,
		newLink: func(lc linkConfig) (link, error) { return newMBLink(lc, log) },
	}
	for _, d := range devs {
		ds := &devState{device: d, b: eventBuilder{device: d.cfg.ID}, unit: uint8(d.opts.Unit), pts: d.prof.Points,
			breaks: map[Table]map[int]bool{}, dead: map[int]bool{}, ps: make([]pointState, len(d.prof.Points))}
		ds.replan()
		b.devs = append(b.devs, ds)
		b.byID[d.cfg.ID] = ds
	}
	return b
}

// replan builds the event and telemetry read plans from the points that
// still answer and the splits learned so far.
func (d *devState) replan() {
	d.spans = map[int]span{}
	var ev, tl []span
	for i, p := range d.pts {
		if d.dead[i] {
			continue
		}
		s := span{table: p.table, addr: p.Address, n: p.words(), id: i}
		d.spans[i] = s
		if p.event {
			ev = append(ev, s)
		} else {
			tl = append(tl, s)
		}
	}
	lim := d.limits()
	lim.breaks = d.breaks
	d.evPlan, d.tlPlan = plan(ev, lim), plan(tl, lim)
}

// Name identifies the bus ("rtu:/dev/ttyUSB0", "tcp:10.0.0.5:502").
func (b *Bus) Name() string { return b.lc.scheme + ":" + b.lc.key }

// Run polls the bus until ctx ends.
func (b *Bus) Run(ctx context.Context) error {
	b.mu.Lock()
	b.stats.since = b.now()
	b.mu.Unlock()
	registerLive(b)
	defer unregisterLive(b)
	// The poll loop beats the watchdog on every iteration, failed polls
	// and reconnect waits included: a dead device is not a hung loop.
	loop := "poll/" + b.Name()
	sdnotify.Register(loop, b.livenessDeadline())
	defer sdnotify.Unregister(loop)
	b.evq = make(chan *event.Event, 1024)
	var wg sync.WaitGroup
	wg.Go(func() { b.emitLoop(ctx) })
	defer wg.Wait()
	defer close(b.evq)

	l, err := b.newLink(b.lc)
	if err != nil {
		return err
	}
	b.link = l
	b.guard = lineGuard{lc: b.lc, l: l}
	b.linkDown = true
	defer func() {
		for _, j := range b.watch {
			if !b.linkDown {
				b.releaseNow(context.WithoutCancel(ctx), j)
			}
			j.finish(b, "cancelled", errors.New("gateway stopping"))
		}
		if !b.linkDown {
			_ = b.link.close()
		}
	}()
	now := b.now()
	for i, d := range b.devs {
		// Spread the first polls so devices do not all start at once.
		d.nextEv = now.Add(time.Duration(i) * time.Millisecond)
		d.nextTel = now.Add(time.Duration(i) * time.Millisecond)
	}
	b.log.Info("modbus bus starting", "devices", len(b.devs))
	for ctx.Err() == nil {
		sdnotify.Beat(loop)
		if b.linkDown {
			if !b.reconnect(ctx) {
				continue
			}
		}
		select {
		case j := <-b.cmds:
			b.startCommand(ctx, j)
			continue
		default:
		}
		if b.step(ctx) {
			continue
		}
		b.idle(ctx)
	}
	b.log.Info("modbus bus stopped")
	return nil
}

// reconnect opens the link, backing off while it fails; devices count
// each failed attempt as a failed poll so they go offline.
func (b *Bus) reconnect(ctx context.Context) bool {
	now := b.now()
	if now.Before(b.reopenAt) {
		b.waitUntil(ctx, b.reopenAt)
		return false
	}
	if err := b.link.open(); err != nil {
		b.reopenN++
		delay := min(time.Second<<min(b.reopenN-1, 5), reopenMax)
		b.reopenAt = now.Add(delay)
		if b.reopenN == 1 {
			b.log.Warn("modbus link down", "err", err)
		}
		for _, d := range b.devs {
			b.failDevice(d, "link: "+err.Error(), true, true)
		}
		return false
	}
	if b.reopenN > 0 {
		b.log.Info("modbus link up")
	}
	b.reopenN = 0
	b.linkDown = false
	return true
}

// reopenMax caps the wait between attempts to reopen a failed link.
const reopenMax = 30 * time.Second

// livenessDeadline is the longest one iteration of the poll loop may
// legitimately take: a reconnect wait (reopenMax), a TCP dial (the
// library's fixed 5 s), one transaction and its retry with their
// timeouts, a drain before the request and after each attempt, the
// reopens after them (more dials), plus a minute for an event queue held
// up by a slow flash commit and a loaded CPU.
func (b *Bus) livenessDeadline() time.Duration {
	const dial = 5 * time.Second
	var worst time.Duration
	for _, d := range b.devs {
		worst = max(worst, 2*d.timeout+3*drainLimit(d.lateReply()))
	}
	return reopenMax + 4*dial + worst + time.Minute
}

// The running buses, for Snapshots: the status page and the metrics are
// wired in cmd/lintel and cannot reach the components edge runs.
var live struct {
	sync.Mutex
	m map[*Bus]bool
}

func registerLive(b *Bus) {
	live.Lock()
	defer live.Unlock()
	if live.m == nil {
		live.m = map[*Bus]bool{}
	}
	live.m[b] = true
}

func unregisterLive(b *Bus) {
	live.Lock()
	defer live.Unlock()
	delete(live.m, b)
}

// Snapshots returns the statistics of every running bus, by name.
func Snapshots() []BusStats {
	live.Lock()
	bs := make([]*Bus, 0, len(live.m))
	for b := range live.m {
		bs = append(bs, b)
	}
	live.Unlock()
	out := make([]BusStats, 0, len(bs))
	for _, b := range bs {
		out = append(out, b.Stats())
	}
	slices.SortFunc(out, func(x, y BusStats) int { return cmp.Compare(x.Bus, y.Bus) })
	return out
}

// waitUntil sleeps until t, a command arrives, or ctx ends.
func (b *Bus) waitUntil(ctx context.Context, t time.Time) {
	timer := time.NewTimer(t.Sub(b.now()))
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	case j := <-b.cmds:
		if b.linkDown {
			j.finish(b, "failed", errors.New("bus link is down"))
			return
		}
		b.startCommand(ctx, j)
	}
}

// idle waits for the next due poll or watched command.
func (b *Bus) idle(ctx context.Context) {
	next := b.now().Add(time.Second)
	for _, d := range b.devs {
		if len(d.evPlan) > 0 && d.nextEv.Before(next) {
			next = d.nextEv
		}
		if len(d.tlPlan) > 0 && d.nextTel.Before(next) {
			next = d.nextTel
		}
	}
	for _, j := range b.watch {
		if j.nextAt.Before(next) {
			next = j.nextAt
		}
	}
	b.waitUntil(ctx, next)
}

// step runs the highest-priority transaction that is due, if any.
func (b *Bus) step(ctx context.Context) bool {
	now := b.now()
	for i, j := range b.watch {
		if !j.nextAt.After(now) {
			if b.advanceCommand(ctx, j) {
				b.watch = append(b.watch[:i], b.watch[i+1:]...)
			}
			return true
		}
	}
	pick := func(tel, inProgress bool) *devState {
		var best *devState
		for _, d := range b.devs {
			c := d.cycs[kindIndex(tel)]
			if inProgress {
				if c != nil {
					return d
				}
				continue
			}
			if c != nil {
				continue
			}
			due, reqs := d.nextEv, d.evPlan
			if tel {
				due, reqs = d.nextTel, d.tlPlan
			}
			if len(reqs) == 0 || due.After(now) {
				continue
			}
			if best == nil || due.Before(bestDue(best, tel)) {
				best = d
			}
		}
		return best
	}
	for _, c := range []struct{ tel, inProgress bool }{{false, true}, {false, false}, {true, true}, {true, false}} {
		d := pick(c.tel, c.inProgress)
		if d == nil {
			continue
		}
		k := kindIndex(c.tel)
		if hold := b.holdFor(); !hold.IsZero() {
			// A command is waiting for its read-back: do not start a
			// read that would still be on the wire when it is due.
			reqs := d.evPlan
			if c.tel {
				reqs = d.tlPlan
			}
			if cy := d.cycs[k]; cy != nil {
				reqs = cy.reqs[min(cy.i, len(cy.reqs)-1):]
			}
			if len(reqs) > 0 && now.Add(b.estimate(reqs[0])).After(hold) {
				b.waitUntil(ctx, hold)
				return true
			}
		}
		if d.cycs[k] == nil {
			reqs := d.evPlan
			if c.tel {
				reqs = d.tlPlan
			}
			d.cycs[k] = &cycle{reqs: reqs, tel: c.tel, start: now}
		}
		b.runRequest(ctx, d, k)
		return true
	}
	return false
}

// holdFor is when the earliest pending command read-back is due.
func (b *Bus) holdFor() time.Time {
	var t time.Time
	for _, j := range b.watch {
		if t.IsZero() || j.nextAt.Before(t) {
			t = j.nextAt
		}
	}
	return t
}

// estimate is how long a read should take on this bus: its wire time and
// a few milliseconds of turnaround (0 on TCP, where reads are quick).
func (b *Bus) estimate(r request) time.Duration {
	if b.lc.scheme == "tcp" {
		return 0
	}
	tx, rx := frameBytes(b.lc.scheme, r.table, r.count, okClass)
	return idealTime(b.lc, tx, rx) + 5*time.Millisecond
}

func kindIndex(tel bool) int {
	if tel {
		return 1
	}
	return 0
}

func bestDue(d *devState, tel bool) time.Time {
	if tel {
		return d.nextTel
	}
	return d.nextEv
}

// runRequest performs the next read of d's cycle and, when the cycle is
// over, settles the device's health and schedule.
func (b *Bus) runRequest(ctx context.Context, d *devState, k int) {
	c := d.cycs[k]
	if c.i < len(c.reqs) { // a replan may have ended the cycle early
		r := c.reqs[c.i]
		c.i++
		vals, err := b.read(ctx, d, r)
		switch classify(err) {
		case okClass:
			b.apply(d, r, vals)
		case exceptionClass:
			b.onException(d, r, err)
		default:
			c.failed, c.cause = true, err.Error()
			c.i = len(c.reqs) // one failure ends the cycle: a dead device costs one timeout
		}
	}
	if c.i < len(c.reqs) {
		return
	}
	d.cycs[k] = nil
	now := b.now()
	if c.failed {
		b.failDevice(d, c.cause, !c.tel, c.tel)
		return
	}
	b.goodDevice(d)
	if c.tel {
		d.telFails = 0
		d.nextTel = later(c.start.Add(d.opts.TelemetryInterval.Std()), now)
	} else {
		d.evFails = 0
		d.nextEv = later(c.start.Add(d.opts.PollInterval.Std()), now)
	}
}

func later(t, floor time.Time) time.Time {
	if t.Before(floor) {
		return floor
	}
	return t
}

// readResult carries a read's values: registers or bits.
type readResult struct {
	regs []uint16
	bits []bool
}

// read performs one read through exchange and returns its values only if
// the exchange was in step.
func (b *Bus) read(ctx context.Context, d *devState, r request) (readResult, error) {
	useful := 0
	for _, id := range r.ids {
		useful += d.spans[id].n
	}
	var res readResult
	what := fmt.Sprintf("read %s %d+%d unit %d", r.table, r.start, r.count, d.unit)
	err := b.exchange(ctx, d, what, r.table, r.count, useful, func() (err error) {
		res = readResult{}
		if r.table.bits() {
			res.bits, err = b.link.readBits(d.unit, r.table, uint16(r.start), uint16(r.count))
		} else {
			res.regs, err = b.link.readRegs(d.unit, r.table, uint16(r.start), uint16(r.count))
		}
		return err
	})
	if err != nil {
		return readResult{}, fmt.Errorf("%s: %w", what, err)
	}
	return res, nil
}

// exchange performs one transaction with d, keeping an RTU line in step
// (line.go): stray bytes are drained before the request, a reply must
// not be followed by more bytes, and a reply that does not match its
// request is asked again once after the line has fallen silent. Each
// attempt is recorded. what names the request for the log; do runs the
// library call, and its values may be used only when exchange returns
// nil.
func (b *Bus) exchange(ctx context.Context, d *devState, what string, t Table, n, useful int, do func() error) error {
	for attempt := 1; ; attempt++ {
		if err := b.settle(ctx, d); err != nil {
			return err
		}
		t0 := b.now()
		err := b.link.setTimeout(d.timeout)
		if err != nil {
			err = fmt.Errorf("reopen for timeout %s: %w", d.timeout, err)
		} else {
			err = do()
			var tr drained
			tr, err = b.guard.trailing(err)
			b.countStray(tr.n)
		}
		u := 0
		if err == nil {
			u = useful
		}
		b.record(ctx, d, what, t, n, u, t0, err)
		if attempt == 1 && classify(err) == mismatchClass && b.guard.framed() && !b.linkDown && ctx.Err() == nil {
			b.log.Debug("modbus request asked again after a mismatched reply", "device", d.cfg.ID, "request", what, "err", err)
			continue
		}
		return err
	}
}

// settle makes sure nothing is waiting on an RTU line before a request:
// whatever is, arrived when no reply was due, so the line is out of step
// and gets its silence first. It is not held against d.
func (b *Bus) settle(ctx context.Context, d *devState) error {
	st, err := b.guard.stray()
	b.countStray(st.n)
	if err != nil {
		b.linkFailed(err)
		return fmt.Errorf("before request: %w", err)
	}
	if st.n == 0 {
		return nil
	}
	b.resync(ctx, d, st, fmt.Errorf("%d stray bytes before the request (%s)", st.n, describeStray(st)), true)
	if b.linkDown {
		return errors.New("link down after resync")
	}
	return nil
}

func (b *Bus) countStray(n int) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.stats.strayBytes += uint64(n)
	b.mu.Unlock()
}

func (b *Bus) linkFailed(err error) {
	_ = b.link.close()
	b.linkDown = true
	b.log.Warn("modbus link failed", "err", err)
}

// record updates the statistics for one transaction and applies the link
// recovery its outcome calls for.
func (b *Bus) record(ctx context.Context, d *devState, what string, t Table, n, useful int, t0 time.Time, err error) {
	rtt := b.now().Sub(t0)
	cl := classify(err)
	tx, rx := frameBytes(b.lc.scheme, t, n, cl)
	b.mu.Lock()
	s := &b.stats
	s.transactions++
	s.bytesTx += uint64(tx)
	s.bytesRx += uint64(rx)
	s.wire += idealTime(b.lc, tx, rx)
	s.busy += rtt
	s.readItems += uint64(n)
	s.usefulItems += uint64(useful)
	switch cl {
	case timeoutClass, unreachableClass:
		s.timeouts++
	case mismatchClass:
		s.crc++
	case exceptionClass:
		s.exceptions++
	case ioClass:
		s.ioErrors++
	}
	d.requests++
	if cl != okClass && cl != exceptionClass {
		d.failures++
	} else {
		d.rttLast = rtt
		d.lastOK = t0.Add(rtt)
		if d.rttAvg == 0 {
			d.rttAvg = rtt
		} else {
			d.rttAvg += (rtt - d.rttAvg) / 8
		}
		d.rttMax = max(d.rttMax, rtt)
	}
	b.mu.Unlock()

	switch cl {
	case okClass, exceptionClass:
		b.inStep()
	case timeoutClass, mismatchClass:
		if b.guard.framed() {
			b.resync(ctx, d, drained{}, fmt.Errorf("%s: %w", what, err), cl == mismatchClass)
		}
	case ioClass:
		b.linkFailed(err)
	}
}

// resync lets the line fall silent after a failed exchange with d (or
// stray bytes before one), draining it, and reopens the port when the
// guard says so (line.go). The first mismatch of an episode is logged as
// a warning; the episode's end, at the next exchange in step, at info.
func (b *Bus) resync(ctx context.Context, d *devState, found drained, cause error, mismatch bool) {
	if mismatch && !b.episode.active {
		now := b.now()
		b.episode.active, b.episode.start = true, now
		b.episode.resyncs, b.episode.raw = 0, 0
		b.episode.warned = b.lastWarn.IsZero() || now.Sub(b.lastWarn) >= outOfStepWarnEvery
		if b.episode.warned {
			b.lastWarn = now
			b.log.Warn("modbus line out of step, resyncing", "device", d.cfg.ID, "err", cause)
		} else {
			b.log.Debug("modbus line out of step, resyncing", "device", d.cfg.ID, "err", cause)
		}
	}
	r, err := b.guard.resync(ctx, d.lateReply())
	b.mu.Lock()
	b.stats.resyncs++
	b.stats.strayBytes += uint64(r.n)
	if r.reopened {
		b.stats.reopens++
	}
	b.mu.Unlock()
	if b.episode.active {
		b.episode.resyncs++
		b.episode.raw += found.n + r.n
	}
	if r.n > 0 {
		b.log.Debug("modbus stray bytes drained", "device", d.cfg.ID, "bytes", r.n, "what", describeStray(r.drained),
			"silent", r.silent, "reopened", r.reopened)
	}
	if err != nil {
		b.linkDown = true
		b.log.Warn("modbus reopen after resync failed", "err", err)
	}
}

// inStep notes an exchange that got its own reply.
func (b *Bus) inStep() {
	b.guard.inStep()
	if !b.episode.active {
		return
	}
	b.episode.active = false
	lvl := slog.LevelDebug
	if b.episode.warned {
		lvl = slog.LevelInfo
	}
	b.log.Log(context.Background(), lvl, "modbus line back in step", "resyncs", b.episode.resyncs,
		"stray_bytes", b.episode.raw, "took", b.now().Sub(b.episode.start).Round(time.Millisecond).String())
}

// outOfStepWarnEvery rate-limits the "out of step" warning per bus: a
// device that always answers after late_reply would otherwise warn on
// every attempt. Episodes in between are logged at debug level; the
// statistics count them all.
const outOfStepWarnEvery = 10 * time.Minute

// apply decodes the points a read served and queues their events.
func (b *Bus) apply(d *devState, r request, res readResult) {
	now := b.now()
	for _, id := range r.ids {
		p := d.pts[id]
		var v float64
		if r.table.bits() {
			i := p.Address - r.start
			if i < 0 || i >= len(res.bits) {
				continue
			}
			if res.bits[i] {
				v = 1
			}
		} else {
			var err error
			v, err = decodeRegs(p, r.start, res.regs)
			if err != nil {
				b.log.Debug("modbus point not decoded", "device", d.cfg.ID, "point", p.Name, "err", err)
				continue
			}
		}
		for _, ev := range d.ps[id].update(d.b, p, v, now, d.opts.TelemetryReport.Std()) {
			b.queue(ev)
		}
	}
}

// onException handles a device's exception reply. An illegal-address
// answer to a merged read means the bridged hole holds addresses the
// device does not map: split the read there and remember it; a point
// refused on its own is dropped from polling and reported once.
func (b *Bus) onException(d *devState, r request, err error) {
	if !errors.Is(err, mb.ErrIllegalDataAddress) {
		b.log.Debug("modbus exception", "device", d.cfg.ID, "err", err)
		return
	}
	if a, ok := splitPoint(r, d.spans); ok {
		if d.breaks[r.table] == nil {
			d.breaks[r.table] = map[int]bool{}
		}
		d.breaks[r.table][a] = true
		b.log.Info("modbus read split after illegal address", "device", d.cfg.ID, "table", r.table.String(), "at", a)
	} else {
		for _, id := range r.ids {
			d.dead[id] = true
			p := d.pts[id]
			b.log.Warn("modbus point refused by device, no longer polled", "device", d.cfg.ID, "point", p.Name, "address", p.Address)
			b.queue(d.b.make(p, &EventSpec{Kind: string(event.DeviceFault), Severity: string(event.Warning)}, 0,
				map[string]any{"reason": "illegal data address", "address": p.Address, "table": p.Table}, b.now()))
		}
	}
	b.mu.Lock()
	d.replan()
	b.mu.Unlock()
	for _, c := range d.cycs {
		if c != nil {
			c.i = len(c.reqs) // the plan changed under the cycle; the next one uses the new plan
		}
	}
}

// failDevice counts a failed poll and backs off the schedule (event
// points, telemetry, or both) that failed: each retries after its
// interval doubled per consecutive failure, up to max_backoff, so a dead
// device costs the bus one timeout per schedule and backoff period.
func (b *Bus) failDevice(d *devState, cause string, ev, tel bool) {
	now := b.now()
	b.mu.Lock()
	d.fails++
	d.goods = 0
	d.lastErr = cause
	backoff := func(base time.Duration, n int) time.Duration {
		return min(base<<min(n-1, 16), max(d.opts.MaxBackoff.Std(), base))
	}
	if ev {
		d.evFails++
		d.nextEv = now.Add(backoff(d.opts.PollInterval.Std(), d.evFails))
	}
	if tel {
		d.telFails++
		d.nextTel = now.Add(backoff(d.opts.TelemetryInterval.Std(), d.telFails))
	}
	wentOff := d.fails >= d.opts.OfflineAfter && d.state != "offline"
	if wentOff {
		d.state = "offline"
	}
	b.mu.Unlock()
	if wentOff {
		b.log.Warn("modbus device offline", "device", d.cfg.ID, "unit", d.unit, "err", cause)
		ev := event.New(event.DeviceOffline)
		ev.Device, ev.Time = d.cfg.ID, now
		b.queue(ev.WithData(map[string]any{"reason": cause, "failed_polls": d.fails, "bus": b.Name(), "unit": d.unit}))
	}
}

// goodDevice counts a good poll; the device is online again after
// online_after of them in a row (at once on the first poll after start).
func (b *Bus) goodDevice(d *devState) {
	b.mu.Lock()
	d.fails = 0
	d.goods++
	was := d.state
	up := was == "" || (was == "offline" && d.goods >= d.opts.OnlineAfter)
	if up {
		d.state = "online"
	}
	b.mu.Unlock()
	if !up {
		return
	}
	if was == "offline" {
		b.log.Warn("modbus device online", "device", d.cfg.ID, "unit", d.unit)
	}
	ev := event.New(event.DeviceOnline)
	ev.Device, ev.Time = d.cfg.ID, b.now()
	b.queue(ev.WithData(map[string]any{"bus": b.Name(), "unit": d.unit, "model": d.prof.Model}))
}

// queue hands an event to the emitter goroutine, so a slow disk never
// holds the bus (backpressure only when 1024 events are pending).
func (b *Bus) queue(ev *event.Event) { b.evq <- ev }

func (b *Bus) emitLoop(ctx context.Context) {
	var batch []*event.Event
	flush := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		if err := b.emit.Emit(ctx, batch...); err != nil {
			b.log.Warn("modbus events not recorded", "events", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	for ev := range b.evq {
		batch = append(batch, ev)
	more:
		for len(batch) < 256 {
			select {
			case e, ok := <-b.evq:
				if !ok {
					break more
				}
				batch = append(batch, e)
			default:
				break more
			}
		}
		ectx := ctx
		if ctx.Err() != nil {
			// Record what the bus saw before it stopped.
			var cancel context.CancelFunc
			ectx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			flush(ectx)
			cancel()
			continue
		}
		flush(ectx)
	}
}

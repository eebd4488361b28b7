package modbus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	mb "github.com/simonvetter/modbus"
)

// Sim simulates Modbus devices, one per unit id, each serving a profile:
// over Modbus TCP (the library's server), as an RTU slave on any byte
// stream (a pty, or a TCP connection for RTU-over-TCP), with optional
// realistic wire timing and late or missing replies. It backs
// `lintel sim modbus`, the driver's tests and its benchmark.
type Sim struct {
	mu    sync.Mutex
	units map[uint8]*SimDevice
	wire  SimWire
	log   *slog.Logger
	rng   *rand.Rand

	// Counters, for tests.
	requests int
}

// SimWire shapes the simulated RTU line.
type SimWire struct {
	// Baud, Parity and StopBits give the character time; Baud 0 means
	// replies go out as fast as the stream takes them.
	Baud     int
	Parity   string
	StopBits int
	// Turnaround is the slave's think time after the request's t3.5.
	Turnaround time.Duration
}

// SimDevice is one simulated device.
type SimDevice struct {
	Unit    uint8
	Profile *Profile
	// Strict makes reads that touch an address no point maps fail with
	// "illegal data address", as many real devices do.
	Strict bool
	// Late delays every reply by this much (the stale-reply trap);
	// Silent drops every request (a dead device).
	Late      time.Duration
	LateEvery int // only every LateEvery-th request is late (0: all)
	Silent    bool
	// Garble spoils the RTU reply to every GarbleEvery-th request (0:
	// all) in one of the ways a line falls out of step (issue 17).
	Garble      Garble
	GarbleEvery int
	// CommandDelay is how long a command takes to show in its confirm
	// point (a barrier's travel time).
	CommandDelay time.Duration

	served int
	regs   [4]map[int]uint16 // coil and discrete hold 0/1
	maps   [4]map[int]bool   // addresses some point maps
	last   []byte            // the previous RTU reply, for GarbleStale
}

// Garble is a way an RTU reply goes wrong on the wire.
type Garble uint8

// Garbles. The library rejects GarbleUnit to GarbleNoise itself;
// GarbleDup, GarbleStale and GarbleEcho pass its checks, and only the
// bus's own watch on the line (line.go) catches them.
const (
	GarbleNone  Garble = iota
	GarbleUnit         // the reply names another unit
	GarbleFunc         // the reply has another read's function code ("unexpected response code")
	GarbleCount        // one register too many, byte count and CRC consistent
	GarbleCRC          // the last CRC byte is wrong
	GarbleNoise        // three junk bytes, then the reply
	GarbleDup          // the reply, twice
	GarbleStale        // the device's previous reply, then this one
	GarbleEcho         // the reply, and the same again 200 ms later, between requests
)

// NewSim returns an empty simulator.
func NewSim(wire SimWire, log *slog.Logger) *Sim {
	if wire.Parity == "" {
		wire.Parity = "none"
	}
	if wire.StopBits == 0 {
		wire.StopBits = 1
	}
	return &Sim{units: map[uint8]*SimDevice{}, wire: wire, log: log, rng: rand.New(rand.NewPCG(1, 2))}
}

// Add serves profile p as unit and returns the device for tuning.
func (s *Sim) Add(unit uint8, p *Profile) *SimDevice {
	d := &SimDevice{Unit: unit, Profile: p, CommandDelay: 300 * time.Millisecond}
	for t := range d.regs {
		d.regs[t] = map[int]uint16{}
		d.maps[t] = map[int]bool{}
	}
	for _, pt := range p.Points {
		for i := 0; i < pt.words(); i++ {
			d.maps[pt.table][pt.Address+i] = true
		}
		if pt.Sim != nil {
			d.set(pt, pt.Sim.Initial)
		}
	}
	s.mu.Lock()
	s.units[unit] = d
	s.mu.Unlock()
	return d
}

// Device returns the simulated device at unit.
func (s *Sim) Device(unit uint8) *SimDevice {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.units[unit]
}

// Configure changes a device's behaviour (Late, Silent, Strict,
// CommandDelay) safely while the simulator serves.
func (s *Sim) Configure(unit uint8, f func(*SimDevice)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.units[unit]
	if d == nil {
		return fmt.Errorf("no unit %d", unit)
	}
	f(d)
	return nil
}

// Set changes a point's value on a device.
func (s *Sim) Set(unit uint8, point string, v float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.units[unit]
	if d == nil {
		return fmt.Errorf("no unit %d", unit)
	}
	p := d.Profile.Point(point)
	if p == nil {
		return fmt.Errorf("unit %d has no point %q", unit, point)
	}
	d.set(p, v)
	return nil
}

// Get reads a point's value as the device holds it.
func (s *Sim) Get(unit uint8, point string) (float64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.units[unit]
	if d == nil || d.Profile.Point(point) == nil {
		return 0, false
	}
	p := d.Profile.Point(point)
	if p.table.bits() {
		return float64(d.regs[p.table][p.Address]), true
	}
	regs := make([]uint16, p.words())
	for i := range regs {
		regs[i] = d.regs[p.table][p.Address+i]
	}
	v, err := decodeRegs(p, p.Address, regs)
	return v, err == nil
}

// Requests is how many requests the simulator answered or dropped.
func (s *Sim) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (d *SimDevice) set(p *Point, v float64) {
	if p.table.bits() {
		d.regs[p.table][p.Address] = b2u(v != 0)
		return
	}
	if p.typ == tBool {
		r := d.regs[p.table][p.Address]
		mask := uint16(1) << uint(*p.Bit)
		if v != 0 {
			r |= mask
		} else {
			r &^= mask
		}
		d.regs[p.table][p.Address] = r
		return
	}
	for i, r := range encodeRegs(p, v) {
		d.regs[p.table][p.Address+i] = r
	}
}

func b2u(b bool) uint16 {
	if b {
		return 1
	}
	return 0
}

// Animate makes random state changes every interval until ctx ends: an
// event point moves to another of its sim.values, a telemetry point
// walks within sim.min–max. It returns what it changed, for logs.
func (s *Sim) Animate(ctx context.Context, every time.Duration, changed func(unit uint8, point string, v float64)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		units := make([]uint8, 0, len(s.units))
		for u := range s.units {
			units = append(units, u)
		}
		slices.Sort(units)
		if len(units) == 0 {
			s.mu.Unlock()
			continue
		}
		d := s.units[units[s.rng.IntN(len(units))]]
		var cands []*Point
		for _, p := range d.Profile.Points {
			if p.Sim != nil && (len(p.Sim.Values) > 0 || p.Sim.Max > p.Sim.Min) {
				cands = append(cands, p)
			}
		}
		if len(cands) == 0 {
			s.mu.Unlock()
			continue
		}
		p := cands[s.rng.IntN(len(cands))]
		var v float64
		if len(p.Sim.Values) > 0 {
			v = p.Sim.Values[s.rng.IntN(len(p.Sim.Values))]
		} else {
			span := p.Sim.Max - p.Sim.Min
			v = math.Round((p.Sim.Min+s.rng.Float64()*span)*10) / 10
		}
		d.set(p, v)
		s.mu.Unlock()
		if changed != nil {
			changed(d.Unit, p.Name, v)
		}
	}
}

// exception codes.
const (
	excIllegalFunction = 1
	excIllegalAddress  = 2
	excIllegalValue    = 3
)

// handle serves one request PDU and returns the reply PDU (without unit
// id), or nil to stay silent. delay is how late the reply should go out.
func (s *Sim) handle(unit uint8, pdu []byte) (reply []byte, delay time.Duration) {
	reply, delay, _ = s.handleRTU(unit, pdu)
	return reply, delay
}

// handleRTU is handle, also saying how to garble the reply on an RTU
// line.
func (s *Sim) handleRTU(unit uint8, pdu []byte) (reply []byte, delay time.Duration, g Garble) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	d := s.units[unit]
	if d == nil || d.Silent || len(pdu) < 5 {
		return nil, 0, GarbleNone
	}
	d.served++
	if d.GarbleEvery == 0 || d.served%d.GarbleEvery == 0 {
		g = d.Garble
	}
	reply, delay = d.serve(s, pdu)
	return reply, delay, g
}

// serve answers one request PDU. Called with s.mu held.
func (d *SimDevice) serve(s *Sim, pdu []byte) (reply []byte, delay time.Duration) {
	late := d.Late
	if d.LateEvery > 0 && d.served%d.LateEvery != 0 {
		late = 0
	}
	fc := pdu[0]
	addr := int(binary.BigEndian.Uint16(pdu[1:]))
	qty := int(binary.BigEndian.Uint16(pdu[3:]))
	exc := func(code byte) []byte { return []byte{fc | 0x80, code} }
	switch fc {
	case 1, 2, 3, 4:
		t := map[byte]Table{1: Coil, 2: Discrete, 3: Holding, 4: Input}[fc]
		limit := 125
		if t.bits() {
			limit = 2000
		}
		if qty < 1 || qty > limit || addr+qty > 0x10000 {
			return exc(excIllegalValue), late
		}
		if d.Strict {
			for a := addr; a < addr+qty; a++ {
				if !d.maps[t][a] {
					return exc(excIllegalAddress), late
				}
			}
		}
		if t.bits() {
			out := make([]byte, (qty+7)/8)
			for i := 0; i < qty; i++ {
				if d.regs[t][addr+i] != 0 {
					out[i/8] |= 1 << uint(i%8)
				}
			}
			return append([]byte{fc, byte(len(out))}, out...), late
		}
		out := []byte{fc, byte(2 * qty)}
		for i := 0; i < qty; i++ {
			out = binary.BigEndian.AppendUint16(out, d.regs[t][addr+i])
		}
		return out, late
	case 5, 6:
		t := Coil
		v := uint16(qty)
		if fc == 5 {
			if v != 0 && v != 0xFF00 {
				return exc(excIllegalValue), late
			}
			v = b2u(v == 0xFF00)
		} else {
			t = Holding
		}
		d.regs[t][addr] = v
		d.onWrite(s, t, addr, v)
		return slices.Clone(pdu[:5]), late
	}
	return exc(excIllegalFunction), late
}

// onWrite plays a profile command: a write matching a command's write
// moves its confirm point to the first confirmed value after the
// device's command delay. Called with s.mu held.
func (d *SimDevice) onWrite(s *Sim, t Table, addr int, v uint16) {
	for _, c := range d.Profile.Commands {
		if c.Write.table != t || c.Write.Address != addr || int(v) != c.Write.Value || c.Confirm == nil {
			continue
		}
		p := d.Profile.Point(c.Confirm.Point)
		target := c.Confirm.Values[0]
		time.AfterFunc(d.CommandDelay, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			d.set(p, target)
		})
	}
}

// ServeTCP serves Modbus TCP on addr ("127.0.0.1:1502") with the
// library's server until ctx ends.
func (s *Sim) ServeTCP(ctx context.Context, addr string) error {
	srv, err := mb.NewServer(&mb.ServerConfiguration{
		URL: "tcp://" + addr, Timeout: 5 * time.Minute, MaxClients: 16,
		Logger: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}, &simHandler{s})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	<-ctx.Done()
	return srv.Stop()
}

// simHandler adapts the simulator to the library's server.
type simHandler struct{ s *Sim }

func (h *simHandler) do(unit uint8, fc byte, addr, qty uint16) ([]byte, error) {
	pdu := []byte{fc}
	pdu = binary.BigEndian.AppendUint16(pdu, addr)
	pdu = binary.BigEndian.AppendUint16(pdu, qty)
	rep, delay := h.s.handle(unit, pdu)
	if rep == nil {
		// Behind a TCP gateway a dead device shows as "target failed to
		// respond" after the gateway's own serial timeout.
		time.Sleep(100 * time.Millisecond)
		return nil, mb.ErrGWTargetFailedToRespond
	}
	time.Sleep(delay)
	if rep[0]&0x80 != 0 {
		return nil, map[byte]error{excIllegalFunction: mb.ErrIllegalFunction, excIllegalAddress: mb.ErrIllegalDataAddress, excIllegalValue: mb.ErrIllegalDataValue}[rep[1]]
	}
	return rep, nil
}

func (h *simHandler) HandleCoils(r *mb.CoilsRequest) ([]bool, error) {
	if r.IsWrite {
		if len(r.Args) != 1 {
			return nil, mb.ErrIllegalFunction
		}
		v := uint16(0)
		if r.Args[0] {
			v = 0xFF00
		}
		_, err := h.do(r.UnitId, 5, r.Addr, v)
		return nil, err
	}
	rep, err := h.do(r.UnitId, 1, r.Addr, r.Quantity)
	if err != nil {
		return nil, err
	}
	return rtuReply{data: rep[2:]}.bits(int(r.Quantity)), nil
}

func (h *simHandler) HandleDiscreteInputs(r *mb.DiscreteInputsRequest) ([]bool, error) {
	rep, err := h.do(r.UnitId, 2, r.Addr, r.Quantity)
	if err != nil {
		return nil, err
	}
	return rtuReply{data: rep[2:]}.bits(int(r.Quantity)), nil
}

func (h *simHandler) HandleHoldingRegisters(r *mb.HoldingRegistersRequest) ([]uint16, error) {
	if r.IsWrite {
		if len(r.Args) != 1 {
			return nil, mb.ErrIllegalFunction
		}
		_, err := h.do(r.UnitId, 6, r.Addr, r.Args[0])
		return nil, err
	}
	rep, err := h.do(r.UnitId, 3, r.Addr, r.Quantity)
	if err != nil {
		return nil, err
	}
	return rtuReply{data: rep[2:]}.registers(), nil
}

func (h *simHandler) HandleInputRegisters(r *mb.InputRegistersRequest) ([]uint16, error) {
	rep, err := h.do(r.UnitId, 4, r.Addr, r.Quantity)
	if err != nil {
		return nil, err
	}
	return rtuReply{data: rep[2:]}.registers(), nil
}

// ServeRTU answers RTU requests on a byte stream (the master side of a
// pty, or an RTU-over-TCP connection) until it fails or ctx ends. Frames
// with a bad CRC are dropped silently, as a real slave does.
func (s *Sim) ServeRTU(ctx context.Context, rw io.ReadWriter) error {
	stop := context.AfterFunc(ctx, func() {
		if c, ok := rw.(io.Closer); ok {
			_ = c.Close()
		}
	})
	defer stop()
	tc := time.Duration(0)
	if s.wire.Baud > 0 {
		tc = charTime(s.wire.Baud, s.wire.Parity, s.wire.StopBits)
	}
	buf := make([]byte, 0, 260)
	one := make([]byte, 256)
	for {
		// Read a frame: unit, fc, then a length fixed by the fc.
		buf = buf[:0]
		need := 8
		for len(buf) < need {
			n, err := rw.Read(one[:need-len(buf)])
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			buf = append(buf, one[:n]...)
			if len(buf) >= 7 && (buf[1] == 15 || buf[1] == 16) {
				need = 9 + int(buf[6])
			}
		}
		t0 := time.Now()
		if crc16(buf[:need-2]) != binary.LittleEndian.Uint16(buf[need-2:]) {
			s.log.Debug("sim dropped a frame with a bad crc")
			drain(rw)
			continue
		}
		rep, late, g := s.handleRTU(buf[0], buf[1:need-2])
		if rep == nil {
			continue
		}
		frame := s.garble(buf[0], appendCRC(append([]byte{buf[0]}, rep...)), g)
		// The request took its wire time to arrive, then the slave waits
		// t3.5 to see its end and thinks for the turnaround.
		start := t0.Add(late + s.wire.Turnaround)
		if tc > 0 {
			start = start.Add(time.Duration(need)*tc + t35(s.wire.Baud, tc))
		}
		err := writePaced(ctx, rw, frame, start, tc)
		if err == nil && g == GarbleEcho {
			err = writePaced(ctx, rw, frame, time.Now().Add(200*time.Millisecond), tc)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// garble spoils an RTU reply frame as g says, and remembers the frame as
// sent for the unit's next GarbleStale.
func (s *Sim) garble(unit uint8, frame []byte, g Garble) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.units[unit]
	prev := d.last
	d.last = frame
	body := slices.Clone(frame[:len(frame)-2])
	switch g {
	case GarbleUnit:
		body[0]++
		return appendCRC(body)
	case GarbleFunc:
		if body[1]&0x80 == 0 && body[1] >= 1 && body[1] <= 4 {
			body[1] = map[byte]byte{1: 2, 2: 1, 3: 4, 4: 3}[body[1]]
		}
		return appendCRC(body)
	case GarbleCount:
		if (body[1] == 3 || body[1] == 4) && len(body) > 2 {
			body[2] += 2
			return appendCRC(append(body, 0x12, 0x34))
		}
	case GarbleCRC:
		out := slices.Clone(frame)
		out[len(out)-1] ^= 0xFF
		return out
	case GarbleNoise:
		return append([]byte{0x00, 0xFF, 0x55}, frame...)
	case GarbleDup:
		return append(slices.Clone(frame), frame...)
	case GarbleStale:
		if prev != nil {
			return append(slices.Clone(prev), frame...)
		}
	}
	return frame
}

// writePaced sends frame starting at start, one character time per byte,
// in chunks so the timer resolution does not dominate.
func writePaced(ctx context.Context, w io.Writer, frame []byte, start time.Time, tc time.Duration) error {
	if !sleepCtx(ctx, time.Until(start)) {
		return ctx.Err()
	}
	if tc == 0 {
		_, err := w.Write(frame)
		return err
	}
	sent := 0
	for sent < len(frame) {
		due := min(int(time.Since(start)/tc)+1, len(frame))
		if due > sent {
			if _, err := w.Write(frame[sent:due]); err != nil {
				return err
			}
			sent = due
		}
		if sent < len(frame) {
			next := min(sent+8, len(frame))
			sleepCtx(ctx, time.Until(start.Add(time.Duration(next)*tc)))
		}
	}
	return nil
}

// drain discards input until the line has been quiet a moment, to find
// the next frame boundary after garbage.
func drain(r io.Reader) {
	type deadliner interface{ SetReadDeadline(time.Time) error }
	dl, ok := r.(deadliner)
	if !ok {
		return
	}
	b := make([]byte, 256)
	for {
		_ = dl.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		n, err := r.Read(b)
		if n == 0 || err != nil {
			break
		}
	}
	_ = dl.SetReadDeadline(time.Time{})
}

// ServeRTUOverTCP accepts connections on ln and serves RTU framing on
// each, like a serial device server, until ctx ends.
func (s *Sim) ServeRTUOverTCP(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		wg.Go(func() {
			defer c.Close()
			_ = s.ServeRTU(ctx, c)
		})
	}
}

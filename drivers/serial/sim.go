package serial

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// This file is the receiver simulator behind `lintel sim serial` and the
// end-to-end tests: it speaks any codec on a pty or a TCP socket, with RF
// repeats, noise bytes and dropped frames.

// PTY is a pseudo-terminal pair: the simulator writes the master, the
// driver opens the slave by its path.
type PTY struct {
	master, slave *os.File
}

// OpenPTY opens a pty pair with the slave in raw mode (no echo, no CR/LF
// translation), as a USB receiver's tty would be once opened.
func OpenPTY() (*PTY, error) {
	m, s, err := pty.Open()
	if err != nil {
		return nil, fmt.Errorf("open pty: %w", err)
	}
	t, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err == nil {
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB
		t.Cflag |= unix.CS8
		err = unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, t)
	}
	if err != nil {
		_ = m.Close()
		_ = s.Close()
		return nil, fmt.Errorf("set pty raw: %w", err)
	}
	// pty.Open used the master's Fd, which leaves it in blocking mode: a
	// write to a pty nobody reads would then block for good, and Close
	// could not end it. A non-blocking duplicate goes through Go's poller.
	nfd, err := unix.Dup(int(m.Fd()))
	if err == nil {
		if err = unix.SetNonblock(nfd, true); err != nil {
			_ = unix.Close(nfd)
		}
	}
	if err != nil {
		_ = m.Close()
		_ = s.Close()
		return nil, fmt.Errorf("pty master: %w", err)
	}
	master := os.NewFile(uintptr(nfd), m.Name())
	_ = m.Close()
	return &PTY{master: master, slave: s}, nil
}

// Path is the slave's device path (/dev/pts/N) for the driver to open.
func (p *PTY) Path() string { return p.slave.Name() }

// Write sends bytes to whoever has the slave open.
func (p *PTY) Write(b []byte) (int, error) { return p.master.Write(b) }

// Close "unplugs" the receiver: the driver's reads fail and /dev/pts/N
// goes away.
func (p *PTY) Close() error {
	return errors.Join(p.master.Close(), p.slave.Close())
}

// Sim writes radio frames the way a receiver would report them.
type Sim struct {
	Codec Codec
	// Out is where bytes go; it may be swapped between frames (replug)
	// under the caller's own synchronisation.
	Out io.Writer
	// Repeats is how many copies of each frame are sent (RF repeats that
	// reach the receiver); 0 means 3.
	Repeats int
	// Gap separates the repeats (EV1527 words take ~45 ms each).
	Gap time.Duration
	// Noise is the chance of noise bytes before each copy; Drop the
	// chance a copy is lost; both 0–1.
	Noise, Drop float64
	// Chunk, when > 0, splits each write into pieces of at most Chunk
	// bytes, so the reader sees split frames.
	Chunk int
	Rand  *rand.Rand

	mu   sync.Mutex
	sent uint64
}

func (s *Sim) rnd() *rand.Rand {
	if s.Rand == nil {
		s.Rand = rand.New(rand.NewPCG(1, 2))
	}
	return s.Rand
}

// Send writes f with repeats, noise and drops.
func (s *Sim) Send(ctx context.Context, f Frame) error {
	b, err := s.Codec.Encode(f)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	reps := s.Repeats
	if reps <= 0 {
		reps = 3
	}
	r := s.rnd()
	for i := range reps {
		if i > 0 && s.Gap > 0 && !sleep(ctx, s.Gap) {
			return ctx.Err()
		}
		var out []byte
		if s.Noise > 0 && r.Float64() < s.Noise {
			out = append(out, noise(r, s.Codec)...)
		}
		if s.Drop > 0 && r.Float64() < s.Drop {
			// A lost copy often leaves half a frame behind.
			out = append(out, b[:r.IntN(len(b))]...)
		} else {
			out = append(out, b...)
		}
		if err := s.write(out); err != nil {
			return err
		}
	}
	s.sent++
	return nil
}

// SetOut swaps the writer between frames (a replugged pty).
func (s *Sim) SetOut(w io.Writer) {
	s.mu.Lock()
	s.Out = w
	s.mu.Unlock()
}

// Raw writes bytes as they are (garbage, half frames).
func (s *Sim) Raw(b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.write(b)
}

func (s *Sim) write(b []byte) error {
	step := s.Chunk
	if step <= 0 {
		step = len(b)
	}
	for len(b) > 0 {
		n := min(step, len(b))
		if _, err := s.Out.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// noise returns 1–8 bytes of line noise that cannot be mistaken for a
// whole frame of the codec but may look like the start of one.
func noise(r *rand.Rand, c Codec) []byte {
	n := 1 + r.IntN(8)
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	if c.Name() == CodecLine {
		// Line noise on an ASCII link ends up as a garbled line.
		for i := range b {
			b[i] = '!' + b[i]%90
		}
		b = append(b, '\n')
	}
	return b
}

// SplitFrames reports whether a codec sends sensor address and data apart
// for table t (else it sends the whole radio word).
func SplitFrames(c Codec, t *Table) bool {
	switch c := c.(type) {
	case *Framed:
		return c.opt.DataBytes > 0
	case *Line:
		return true
	case *RFXtrx:
		return t.AddressBits == 0
	}
	return false
}

// SensorFrame builds the frame a sensor with table t and address addr
// sends for meaning m, as codec c reports it.
func SensorFrame(c Codec, t *Table, addr uint64, m Meaning) (Frame, error) {
	data, ok := t.DataFor(m)
	if !ok {
		return Frame{}, fmt.Errorf("code table %s has no %s code", t.Name, m)
	}
	bits := t.AddressBits
	if bits == 0 {
		bits = 24
	}
	if SplitFrames(c, t) {
		return Frame{Code: addr, Bits: bits, Data: data, HasData: true}, nil
	}
	if t.AddressBits == 0 {
		return Frame{}, fmt.Errorf("code table %s cannot be sent as a whole word", t.Name)
	}
	return Frame{Code: addr<<t.DataBits | uint64(data), Bits: t.AddressBits + t.DataBits}, nil
}

// SimSensor is a sensor the simulator plays.
type SimSensor struct {
	ID, Kind, Household string
	Table               *Table
	Addr                uint64
	Heartbeat           time.Duration
}

// Script is a list of timed steps:
//
//	# comment
//	wait 2s                      pause
//	send A1B2CE                  a whole word (4 bits per hex digit)
//	send 123456 02               address and data apart
//	sensor door-301 open         a sensor of the sim's set, by meaning
//	noise 5                      five random bytes
//	raw AA A4 01                 bytes as they are
type Script []ScriptStep

// ScriptStep is one line of a Script.
type ScriptStep struct {
	Line    int
	Op      string // wait, send, sensor, noise, raw
	Wait    time.Duration
	Frame   Frame
	Sensor  string
	Meaning Meaning
	Bytes   []byte
	N       int
}

// ParseScript reads a script.
func ParseScript(r io.Reader) (Script, error) {
	var out Script
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		st := ScriptStep{Line: n, Op: f[0]}
		bad := func(format string, a ...any) error {
			return fmt.Errorf("script line %d: %s", n, fmt.Sprintf(format, a...))
		}
		switch f[0] {
		case "wait":
			if len(f) != 2 {
				return nil, bad("want: wait 2s")
			}
			d, err := time.ParseDuration(f[1])
			if err != nil || d < 0 {
				return nil, bad("%q is not a duration", f[1])
			}
			st.Wait = d
		case "send":
			if len(f) < 2 || len(f) > 3 {
				return nil, bad("want: send CODE [DATA]")
			}
			code := trimHex(f[1])
			c, err := strconv.ParseUint(code, 16, 64)
			if err != nil || len(code) > 16 {
				return nil, bad("%q is not a hex code", f[1])
			}
			st.Frame = Frame{Code: c, Bits: 4 * len(code)}
			if len(f) == 3 {
				d, err := strconv.ParseUint(trimHex(f[2]), 16, 32)
				if err != nil {
					return nil, bad("%q is not hex data", f[2])
				}
				st.Frame.Data, st.Frame.HasData = uint32(d), true
			}
		case "sensor":
			if len(f) != 3 || !containsMeaning(Meaning(f[2])) {
				return nil, bad("want: sensor ID MEANING (%s)", meaningList())
			}
			st.Sensor, st.Meaning = f[1], Meaning(f[2])
		case "noise":
			st.N = 8
			if len(f) == 2 {
				v, err := strconv.Atoi(f[1])
				if err != nil || v < 1 || v > 4096 {
					return nil, bad("want: noise N (1–4096)")
				}
				st.N = v
			}
		case "raw":
			b, err := parseHexBytes(strings.Join(f[1:], ""))
			if err != nil || len(b) == 0 {
				return nil, bad("want: raw HEX BYTES")
			}
			st.Bytes = b
		default:
			return nil, bad("unknown step %q: want wait, send, sensor, noise or raw", f[0])
		}
		out = append(out, st)
	}
	return out, sc.Err()
}

// RunScript plays a script. sensors resolves "sensor" steps.
func (s *Sim) RunScript(ctx context.Context, sc Script, sensors []SimSensor) error {
	byID := map[string]SimSensor{}
	for _, x := range sensors {
		byID[x.ID] = x
	}
	for _, st := range sc {
		var err error
		switch st.Op {
		case "wait":
			if !sleep(ctx, st.Wait) {
				return nil
			}
		case "send":
			err = s.Send(ctx, st.Frame)
		case "sensor":
			x, ok := byID[st.Sensor]
			if !ok {
				return fmt.Errorf("script line %d: no sensor %q", st.Line, st.Sensor)
			}
			var f Frame
			if f, err = SensorFrame(s.Codec, x.Table, x.Addr, st.Meaning); err == nil {
				err = s.Send(ctx, f)
			}
		case "noise":
			b := make([]byte, st.N)
			for i := range b {
				b[i] = byte(s.rnd().IntN(256))
			}
			err = s.Raw(b)
		case "raw":
			err = s.Raw(st.Bytes)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("script line %d: %w", st.Line, err)
		}
	}
	return nil
}

// Happening is one scheduled sensor report of a simulated routine.
type Happening struct {
	At      time.Duration // since midnight of day 0, simulated time
	Sensor  SimSensor
	Meaning Meaning
	Why     string
}

// Routine schedules `days` days of an elder's life from the sensors of
// one household: wake-up movement, going out and returning through the
// door, movement during the day, a night toilet trip, and heartbeats of
// supervised sensors. Times are jittered by r.
func Routine(r *rand.Rand, sensors []SimSensor, days int) []Happening {
	var door, pir, sos []SimSensor
	for _, s := range sensors {
		switch s.Kind {
		case "door":
			door = append(door, s)
		case "motion":
			pir = append(pir, s)
		case "sos":
			sos = append(sos, s)
		}
	}
	var out []Happening
	at := func(day int, h, m float64, spreadMin float64) time.Duration {
		base := time.Duration(day)*24*time.Hour + time.Duration((h*60+m)*float64(time.Minute))
		return base + time.Duration((r.Float64()-0.5)*spreadMin*float64(time.Minute))
	}
	add := func(t time.Duration, ss []SimSensor, m Meaning, why string) {
		for _, s := range ss {
			out = append(out, Happening{At: t, Sensor: s, Meaning: m, Why: why})
		}
	}
	for day := range days {
		wake := at(day, 6, 30, 40)
		add(wake, pir, Motion, "wake")
		add(wake+7*time.Minute, pir, Motion, "wake")
		out0 := at(day, 9, 0, 60)
		add(out0, pir, Motion, "go out")
		add(out0+2*time.Minute, door, Open, "go out")
		add(out0+2*time.Minute+20*time.Second, door, Close, "go out")
		back := out0 + time.Duration(90+r.IntN(90))*time.Minute
		add(back, door, Open, "return")
		add(back+15*time.Second, door, Close, "return")
		add(back+time.Minute, pir, Motion, "return")
		for _, hh := range []float64{13, 15.5, 18, 20} {
			add(at(day, hh, 0, 50), pir, Motion, "day")
		}
		if r.IntN(3) > 0 {
			night := at(day, 2, 10, 60)
			add(night, pir, Motion, "night toilet")
			add(night+6*time.Minute, pir, Motion, "night toilet")
		}
		if len(sos) > 0 && r.IntN(20) == 0 {
			add(at(day, 16, 0, 120), sos, Alarm, "sos drill")
		}
	}
	for _, s := range sensors {
		if s.Heartbeat <= 0 {
			continue
		}
		// Firmware without a heartbeat code re-sends its state (a door's
		// "closed"); either way the gateway hears it is alive.
		var beat Meaning
		for _, m := range []Meaning{Heartbeat, Close, Restore} {
			if _, ok := s.Table.DataFor(m); ok {
				beat = m
				break
			}
		}
		if beat == "" {
			continue
		}
		for t := s.Heartbeat; t < time.Duration(days)*24*time.Hour; t += s.Heartbeat {
			out = append(out, Happening{At: t, Sensor: s, Meaning: beat, Why: "heartbeat"})
		}
	}
	sortHappenings(out)
	return out
}

func sortHappenings(h []Happening) {
	// Insertion sort keeps equal times in schedule order; lists are small.
	for i := 1; i < len(h); i++ {
		for j := i; j > 0 && h[j].At < h[j-1].At; j-- {
			h[j], h[j-1] = h[j-1], h[j]
		}
	}
}

// RunRoutine plays happenings from simulated time `from`, `speed` times
// faster than real time. log, if set, is told each happening.
func (s *Sim) RunRoutine(ctx context.Context, hs []Happening, from time.Duration, speed float64, log func(Happening)) error {
	if speed <= 0 {
		speed = 1
	}
	start := time.Now()
	for _, h := range hs {
		if h.At < from {
			continue
		}
		due := start.Add(time.Duration(float64(h.At-from) / speed))
		if !sleep(ctx, time.Until(due)) {
			return nil
		}
		f, err := SensorFrame(s.Codec, h.Sensor.Table, h.Sensor.Addr, h.Meaning)
		if err != nil {
			continue // the model has no code for this (a door without tamper, …)
		}
		if log != nil {
			log(h)
		}
		if err := s.Send(ctx, f); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
	return nil
}

// TCPServer is a serial server stand-in: every connected client gets the
// bytes written to it.
type TCPServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	recv  []byte // what clients sent (start-up commands), bounded
	wg    sync.WaitGroup
}

// maxRecv bounds what a TCPServer keeps of client input.
const maxRecv = 4096

// ListenTCP starts a TCPServer on addr ("127.0.0.1:0").
func ListenTCP(addr string) (*TCPServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &TCPServer{ln: ln, conns: map[net.Conn]bool{}}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.mu.Unlock()
			// Keep the start of what the client sends (an RFXtrx driver's
			// reset and start commands) and notice when it leaves.
			s.wg.Go(func() {
				buf := make([]byte, 256)
				for {
					n, err := c.Read(buf)
					s.mu.Lock()
					if room := maxRecv - len(s.recv); room > 0 {
						s.recv = append(s.recv, buf[:min(n, room)]...)
					}
					s.mu.Unlock()
					if err != nil {
						break
					}
				}
				s.drop(c)
			})
		}
	})
	return s, nil
}

// Addr is the listening address.
func (s *TCPServer) Addr() string { return s.ln.Addr().String() }

// Received returns what clients have sent so far (at most 4 KiB).
func (s *TCPServer) Received() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.recv...)
}

// Clients is the number of connected clients.
func (s *TCPServer) Clients() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *TCPServer) drop(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	_ = c.Close()
}

// Write sends b to every client; a client that fails is dropped.
func (s *TCPServer) Write(b []byte) (int, error) {
	s.mu.Lock()
	cs := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write(b); err != nil {
			s.drop(c)
		}
	}
	return len(b), nil
}

// Kick disconnects every client (a serial server rebooting).
func (s *TCPServer) Kick() {
	s.mu.Lock()
	cs := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		s.drop(c)
	}
}

// Close stops the server and waits for its goroutines.
func (s *TCPServer) Close() error {
	err := s.ln.Close()
	s.Kick()
	s.wg.Wait()
	return err
}

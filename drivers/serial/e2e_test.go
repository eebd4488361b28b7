package serial

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// noPTY skips a test on a machine without ptys, except in CI, where the
// end-to-end tests must run.
func noPTY(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("open a pty: %v (CI must run the pty tests)", err)
	}
	t.Skipf("no pty here (%v): the pty end-to-end tests need /dev/ptmx", err)
}

// recorder is an edge.Emitter that keeps events for the test.
type recorder struct {
	mu  sync.Mutex
	evs []*event.Event
	ch  chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) Emit(_ context.Context, evs ...*event.Event) error {
	for _, e := range evs {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.evs = append(r.evs, evs...)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) kinds() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return kinds(r.evs)
}

// waitFor waits until the recorded kinds end with want (in order, after
// the first n already seen) and returns the new count.
func (r *recorder) waitFor(t *testing.T, from int, want ...string) int {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		got := r.kinds()
		if len(got) >= from+len(want) {
			rest := got[from:]
			for i, w := range want {
				if rest[i] != w {
					t.Fatalf("events after #%d = %v, want %v", from, rest, want)
				}
			}
			return from + len(want)
		}
		select {
		case <-r.ch:
		case <-deadline:
			t.Fatalf("timed out: events after #%d = %v, want %v", from, got[from:], want)
		}
	}
}

// e2eCase is one codec set-up for the end-to-end tests.
type e2eCase struct {
	name  string
	opts  ReceiverOptions
	table string
	addr  uint64
	kind  string
}

func e2eCases() []e2eCase {
	base := func(codec string) ReceiverOptions {
		o := DefaultReceiverOptions()
		o.Codec = codec
		o.DedupWindow = config.Duration(time.Second)
		o.ReconnectMin = config.Duration(50 * time.Millisecond)
		o.ReconnectMax = config.Duration(200 * time.Millisecond)
		return o
	}
	framed := base(CodecFramed)
	framed.Framed = FramedOptions{Header: "FD", Trailer: "DF", CodeBytes: 3, DataBytes: 0, Checksum: SumCRC16}
	framedSplit := base(CodecFramed)
	framedSplit.Framed = FramedOptions{Header: "55AA", CodeBytes: 2, DataBytes: 1, Checksum: SumSum8}
	kv := base(CodecLine)
	kv.Line = LineOptions{Format: LineKV}
	csv := base(CodecLine)
	csv.Line = LineOptions{Format: LineCSV, Fields: []string{"code", "data", "rssi"}}
	return []e2eCase{
		{"sonoff", base(CodecSonoff), "kerui-d026", 0xA1B2C, "door"},
		{"rfxtrx-lighting4", base(CodecRFXtrx), "kerui-d026", 0xA1B2C, "door"},
		{"rfxtrx-security1", base(CodecRFXtrx), "rfxtrx-security1", 0x123456, "door"},
		{"framed-word-crc16", framed, "kerui-d026", 0xA1B2C, "door"},
		{"framed-split-sum8", framedSplit, "stc15w-generic", 0x8065, "door"},
		{"line-kv", kv, "kerui-d026", 0xA1B2C, "door"},
		{"line-csv", csv, "stc15w-generic", 0x8065, "door"},
	}
}

// TestEndToEndPTY runs sim → pty → driver → events for every codec:
// garbage between frames, frames split across reads, RF repeats, unplug
// (the pty closes) and replug (a new pty behind the same by-id style link).
func TestEndToEndPTY(t *testing.T) {
	for _, tc := range e2eCases() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			link := filepath.Join(dir, "usb-receiver-if00")
			p1, err := OpenPTY()
			if err != nil {
				noPTY(t, err)
			}
			if err := os.Symlink(p1.Path(), link); err != nil {
				t.Fatal(err)
			}
			tb := shippedTable(t, tc.table)
			sensor := Sensor{ID: "door-1", Kind: tc.kind, Household: "h-1", Profile: tc.table, Table: tb, Addr: tc.addr}
			rec := newRecorder()
			rx, err := NewReceiver("rx-1", link, tc.opts, []Sensor{sensor}, rec, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			codec, _ := NewCodec(tc.opts.CodecOptions())
			sim := &Sim{Codec: codec, Out: p1, Repeats: 4, Chunk: 3}

			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- rx.Run(ctx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			})
			n := rec.waitFor(t, 0, "device.online@rx-1")

			send := func(m Meaning) {
				t.Helper()
				f, err := SensorFrame(codec, tb, tc.addr, m)
				if err != nil {
					t.Fatal(err)
				}
				if err := sim.Send(ctx, f); err != nil {
					t.Fatal(err)
				}
			}
			// Garbage, then an opening sent 4 times in 3-byte writes.
			if err := sim.Raw([]byte{0x00, 0xAA, 0x13, 0xFD, 0x55, 'x', '\n', 0xFF}); err != nil {
				t.Fatal(err)
			}
			open, closed := Open, Close
			if tc.table == "rfxtrx-security1" {
				open, closed = Alarm, Restore
			}
			send(open)
			n = rec.waitFor(t, n, "door.opened@door-1")

			// Unplug: the pty goes away, the link dangles.
			if err := p1.Close(); err != nil {
				t.Fatal(err)
			}
			n = rec.waitFor(t, n, "device.offline@rx-1")

			// Replug: a new pty behind the same link.
			p2, err := OpenPTY()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p2.Close() })
			tmp := link + ".new"
			if err := os.Symlink(p2.Path(), tmp); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, link); err != nil {
				t.Fatal(err)
			}
			n = rec.waitFor(t, n, "device.online@rx-1")
			sim.Out = p2
			send(closed)
			n = rec.waitFor(t, n, "door.closed@door-1")
			// A second close after the window is the same state: nothing.
			// Then an opening proves the stream is still in sync.
			time.Sleep(1100 * time.Millisecond)
			send(closed)
			send(open)
			rec.waitFor(t, n, "door.opened@door-1")

			st := rx.Snapshot()
			if !st.Online || st.Reconnects != 1 || len(st.Sensors) != 1 || st.Sensors[0].Door != DoorOpen || st.Sensors[0].LastSeen == nil {
				t.Errorf("snapshot = %+v", st)
			}
			if st.Sensors[0].Repeats == 0 {
				t.Error("no repeats counted")
			}
			found := false
			for _, s := range Snapshots() {
				found = found || s.ID == "rx-1"
			}
			if !found {
				t.Error("receiver missing from Snapshots")
			}
		})
	}
}

// TestEndToEndTCP runs the same path through a serial server stand-in.
func TestEndToEndTCP(t *testing.T) {
	srv, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	o := e2eCases()[0].opts
	tb := shippedTable(t, "kerui-d026")
	rec := newRecorder()
	rx, err := NewReceiver("rx-tcp", "tcp://"+srv.Addr(), o,
		[]Sensor{{ID: "pir-1", Kind: "motion", Household: "h-1", Profile: "kerui-d026", Table: tb, Addr: 0x12345}}, rec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rx.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	n := rec.waitFor(t, 0, "device.online@rx-tcp")
	waitClients(t, srv, 1)
	sim := &Sim{Codec: &Sonoff{}, Out: srv, Repeats: 5, Chunk: 5}
	f, _ := SensorFrame(sim.Codec, tb, 0x12345, Motion)
	if err := sim.Send(ctx, f); err != nil {
		t.Fatal(err)
	}
	n = rec.waitFor(t, n, "motion.detected@pir-1")
	srv.Kick()
	n = rec.waitFor(t, n, "device.offline@rx-tcp", "device.online@rx-tcp")
	waitClients(t, srv, 1)
	time.Sleep(1100 * time.Millisecond) // past the dedup window
	if err := sim.Send(ctx, f); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, n, "motion.detected@pir-1")
}

// TestRFXtrxInitSequence: after connecting, the driver resets and starts
// the RFXtrx receiver, and the replies do not disturb decoding.
func TestRFXtrxInitSequence(t *testing.T) {
	srv, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	o := e2eCases()[1].opts
	tb := shippedTable(t, "kerui-d026")
	rec := newRecorder()
	rx, err := NewReceiver("rx-rfx", "tcp://"+srv.Addr(), o,
		[]Sensor{{ID: "door-1", Kind: "door", Household: "h-1", Profile: "kerui-d026", Table: tb, Addr: 0xA1B2C}}, rec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rx.Run(ctx) }()
	defer func() { cancel(); <-done }()
	n := rec.waitFor(t, 0, "device.online@rx-rfx")
	want := unhex(t, "0D00000000000000000000000000 0D00000102000000000000000000 0D00000207000000000000000000")
	// The server reads on its own goroutine: give it a moment.
	got := srv.Received()
	for i := 0; i < 200 && len(got) < len(want); i++ {
		time.Sleep(10 * time.Millisecond)
		got = srv.Received()
	}
	if !bytes.Equal(got, want) {
		t.Errorf("sent % X, want % X", got, want)
	}
	// Status reply, a transmitter ACK, then a sensor.
	sim := &Sim{Codec: &RFXtrx{}, Out: srv}
	if err := sim.Raw(unhex(t, "0D 01 00 01 02 53 45 0C 2F 01 01 00 00 00 04 02 01 02 00")); err != nil {
		t.Fatal(err)
	}
	if err := sim.Send(ctx, word(0xA1B2CE)); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, n, "door.opened@door-1")
	if st := rx.Snapshot().Stats; st.Skipped != 2 || st.Garbage != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func waitClients(t *testing.T, srv *TCPServer, n int) {
	t.Helper()
	for i := 0; srv.Clients() < n; i++ {
		if i > 500 {
			t.Fatal("client did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestPortMissingAtStart: a receiver unplugged at boot is reported
// offline once, then online when it appears.
func TestPortMissingAtStart(t *testing.T) {
	dir := t.TempDir()
	link := filepath.Join(dir, "usb-late")
	o := e2eCases()[0].opts
	rec := newRecorder()
	rx, err := NewReceiver("rx-late", "serial://"+link, o, nil, rec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rx.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	n := rec.waitFor(t, 0, "device.offline@rx-late")
	time.Sleep(300 * time.Millisecond) // several failed retries: still one offline
	p, err := OpenPTY()
	if err != nil {
		noPTY(t, err)
	}
	defer p.Close()
	if err := os.Symlink(p.Path(), link); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, n, "device.online@rx-late")
	got := strings.Join(rec.kinds(), " ")
	if strings.Count(got, "device.offline") != 1 {
		t.Errorf("events = %s", got)
	}
}

// TestFactoryFromSample builds the driver from sample.yaml (its port
// pointed at a pty) the way `lintel run` does, and checks a sensor's event
// carries its device and household.
func TestFactoryFromSample(t *testing.T) {
	p, err := OpenPTY()
	if err != nil {
		noPTY(t, err)
	}
	defer p.Close()
	y := strings.ReplaceAll(string(sampleYAML), "/dev/serial/by-id/usb-1a86_USB_Serial-if00-port0", p.Path())
	c, err := config.Parse("sample.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	env := edge.Env{Config: c, Logger: slog.New(slog.DiscardHandler), Emit: rec}
	comps, err := newDrivers(env, c.DevicesFor("serial"))
	if err != nil || len(comps) != 1 {
		t.Fatalf("newDrivers = %d components, %v", len(comps), err)
	}
	rx := comps[0].(*Receiver)
	if len(rx.sensors) != 4 || !rx.Supervised("door2-3-1-301") {
		t.Fatalf("sensors = %+v", rx.sensors)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rx.Run(ctx) }()
	defer func() { cancel(); <-done }()
	n := rec.waitFor(t, 0, "device.online@rf-b3")
	sim := &Sim{Codec: &Sonoff{}, Out: p}
	for _, w := range []uint64{0xA1B2CE, 0x5A5A51} {
		if err := sim.Send(ctx, word(w)); err != nil {
			t.Fatal(err)
		}
	}
	rec.waitFor(t, n, "door.opened@door-3-1-301", "sos.pressed@sos-3-1-301")
	rec.mu.Lock()
	defer rec.mu.Unlock()
	last := rec.evs[len(rec.evs)-1]
	if last.Household != "h-3-1-301" || last.Severity != event.Critical {
		t.Errorf("sos event = %+v", last)
	}
}

// TestFDLimit: go.bug.st/serial panics in Read when its fds are ≥ 1024
// (tech notes §3.3). With a thousand files open, OpenPort refuses with
// ErrFDLimit instead, and the receiver reports the port offline.
func TestFDLimit(t *testing.T) {
	p, err := OpenPTY()
	if err != nil {
		noPTY(t, err)
	}
	defer p.Close()
	var files []*os.File
	defer func() {
		for _, f := range files {
			_ = f.Close()
		}
	}()
	for {
		f, err := os.Open(os.DevNull)
		if err != nil {
			t.Skipf("cannot open enough files (%d): %v", len(files), err)
		}
		files = append(files, f)
		if f.Fd() >= 1010 {
			break
		}
	}
	_, err = OpenPort(context.Background(), PortSpec{Address: p.Path(), Baud: 9600})
	if !errors.Is(err, ErrFDLimit) {
		t.Fatalf("OpenPort with fd ≥ 1000 = %v, want ErrFDLimit", err)
	}
}

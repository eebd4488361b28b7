package main

// The processes of the reliability suite: broker, the gateway's path to
// it, the daemon, the load (see reliability_harness_test.go).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// Broker.

// relBroker is a mosquitto on a fixed loopback port that the test can
// SIGKILL and start again on the same port, with nothing persisted: like
// a broker that lost its state, it forgets every session and queue.
type relBroker struct {
	t                  *testing.T
	bin, conf, logPath string
	port               int
	mu                 sync.Mutex
	cmd                *exec.Cmd
	exited             chan struct{}
}

func startRelBroker(t *testing.T, bin, dir string) *relBroker {
	t.Helper()
	b := &relBroker{t: t, bin: bin, port: relFreePort(t), logPath: filepath.Join(dir, "mosquitto.log")}
	var conf strings.Builder
	if os.Geteuid() == 0 {
		// Started as root, mosquitto would drop to user mosquitto.
		conf.WriteString("user root\n")
	}
	fmt.Fprintf(&conf, `listener %d 127.0.0.1
allow_anonymous true
persistence false
log_dest stdout
log_type error
log_type warning
log_type notice
connection_messages true
max_queued_messages 10000000
max_inflight_messages 1000
`, b.port)
	b.conf = filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.kill)
	return b
}

func (b *relBroker) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.port) }

// start runs mosquitto and waits until its port accepts connections.
func (b *relBroker) start() {
	b.t.Helper()
	lf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	fmt.Fprintf(lf, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = relChildAttr()
	err = cmd.Start()
	lf.Close()
	if err != nil {
		b.t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	b.mu.Lock()
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()
	addr := fmt.Sprintf("127.0.0.1:%d", b.port)
	if !relPoll(20*time.Second, 20*time.Millisecond, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		return false
	}) || b.dead(exited) {
		log, _ := os.ReadFile(b.logPath)
		b.t.Fatalf("mosquitto did not start on %s:\n%s", addr, log)
	}
}

func (b *relBroker) dead(exited chan struct{}) bool {
	select {
	case <-exited:
		return true
	default:
		return false
	}
}

// kill SIGKILLs the broker and waits for it to be gone.
func (b *relBroker) kill() {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		b.t.Errorf("mosquitto did not exit after SIGKILL")
	}
}

// ---------------------------------------------------------------------------
// Gate: the gateway's path to the broker.

// relGate relays the gateway's MQTT connections to the broker on a port of
// its own, and can shut that path: it closes its listening socket (new
// connections are refused, as by a dead broker) and every relayed
// connection. The outage test reopens it only once the listener is
// subscribed to the restarted broker, so that what the gateway publishes
// after "the platform is back" has a consumer: a broker restarted with
// no state would otherwise drop the alert lane's messages published in
// the moment before the listener reconnects.
type relGate struct {
	t      *testing.T
	port   int
	target string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startRelGate(t *testing.T, target string) *relGate {
	t.Helper()
	g := &relGate{t: t, port: relFreePort(t), target: target, conns: map[net.Conn]struct{}{}}
	if err := g.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.shut(); g.wg.Wait() })
	return g
}

func (g *relGate) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", g.port) }

// open listens on the gate's port again (the port was free a moment ago;
// another program taking it in between is retried for a while).
func (g *relGate) open() error {
	var ln net.Listener
	var err error
	relPoll(10*time.Second, 20*time.Millisecond, func() bool {
		ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", g.port))
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("gate: %w", err)
	}
	g.mu.Lock()
	g.ln = ln
	g.mu.Unlock()
	g.wg.Add(1)
	go g.accept(ln)
	return nil
}

// shut refuses new connections and cuts the relayed ones.
func (g *relGate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ln != nil {
		g.ln.Close()
		g.ln = nil
	}
	for c := range g.conns {
		c.Close()
		delete(g.conns, c)
	}
}

func (g *relGate) accept(ln net.Listener) {
	defer g.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.DialTimeout("tcp", g.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		g.mu.Lock()
		if g.ln != ln {
			g.mu.Unlock()
			c.Close()
			u.Close()
			return
		}
		g.conns[c], g.conns[u] = struct{}{}, struct{}{}
		g.mu.Unlock()
		g.wg.Add(2)
		go g.pipe(u, c)
		go g.pipe(c, u)
	}
}

func (g *relGate) pipe(dst, src net.Conn) {
	defer g.wg.Done()
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	g.mu.Lock()
	delete(g.conns, dst)
	delete(g.conns, src)
	g.mu.Unlock()
}

// ---------------------------------------------------------------------------
// Daemon.

type relDaemon struct {
	t                          *testing.T
	bin, cfg, tapPath, logPath string
	readyURL                   string
	mu                         sync.Mutex
	cmd                        *exec.Cmd
	exited                     chan struct{}
	exitErr                    error
	starts                     int
	startedAt                  time.Time
	ready                      []time.Duration
}

// start runs `lintel run` with the tap on; stdout and stderr go to the
// daemon log, each start marked.
func (d *relDaemon) start() {
	d.t.Helper()
	lf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	d.starts++
	fmt.Fprintf(lf, "=== start %d at %s\n", d.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(d.bin, "run", "-c", d.cfg)
	env := []string{"LINTEL_DURABLE_TAP=" + d.tapPath}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOTIFY_SOCKET=") && !strings.HasPrefix(kv, "WATCHDOG_") && !strings.HasPrefix(kv, "LINTEL_DURABLE_TAP=") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = relChildAttr()
	d.startedAt = time.Now()
	err = cmd.Start()
	lf.Close()
	if err != nil {
		d.t.Fatal(err)
	}
	exited := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.exited, d.exitErr = cmd, exited, nil
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.exitErr = err
		d.mu.Unlock()
		close(exited)
	}()
}

func (d *relDaemon) running() bool {
	d.mu.Lock()
	exited := d.exited
	d.mu.Unlock()
	if exited == nil {
		return false
	}
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

func (d *relDaemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// waitReady polls /readyz until it answers 200 and returns the time since
// the process started.
func (d *relDaemon) waitReady(timeout time.Duration) (time.Duration, error) {
	client := &http.Client{Timeout: time.Second}
	var took time.Duration
	var lastErr error
	ok := relPoll(timeout, 10*time.Millisecond, func() bool {
		if !d.running() {
			lastErr = fmt.Errorf("daemon exited: %v", d.exitErr)
			return true
		}
		resp, err := client.Get(d.readyURL)
		if err != nil {
			lastErr = err
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			lastErr = fmt.Errorf("/readyz: %s", resp.Status)
			return false
		}
		took, lastErr = time.Since(d.startedAt), nil
		return true
	})
	if !ok {
		return 0, fmt.Errorf("not ready within %s: %v", timeout, lastErr)
	}
	if lastErr != nil {
		return 0, lastErr
	}
	d.mu.Lock()
	d.ready = append(d.ready, took)
	d.mu.Unlock()
	return took, nil
}

func (d *relDaemon) readyTimes() []time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.ready)
}

// kill SIGKILLs the daemon and waits until it is gone.
func (d *relDaemon) kill() {
	d.t.Helper()
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		d.t.Fatalf("daemon did not die after SIGKILL")
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (d *relDaemon) stop(timeout time.Duration) error {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return errors.New("not started")
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(timeout):
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		return fmt.Errorf("no exit within %s of SIGTERM", timeout)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exitErr != nil {
		return fmt.Errorf("exit: %v", d.exitErr)
	}
	return nil
}

func (d *relDaemon) cleanup() {
	if d.running() {
		d.mu.Lock()
		cmd, exited := d.cmd, d.exited
		d.mu.Unlock()
		_ = cmd.Process.Signal(syscall.SIGKILL)
		<-exited
	}
}

// logTail returns the last n lines of the daemon's log.
func (d *relDaemon) logTail(n int) string {
	b, _ := os.ReadFile(d.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logSince returns what the daemon logged from its start number n on.
func (d *relDaemon) logSince(n int) string {
	b, _ := os.ReadFile(d.logPath)
	s := string(b)
	if i := strings.Index(s, fmt.Sprintf("=== start %d at ", n)); i >= 0 {
		return s[i:]
	}
	return ""
}

// rss reads the daemon's resident memory from /proc: all of it (VmRSS)
// and the anonymous part (RssAnon: heap, stacks). The rest is mostly
// bbolt's mmap of the event log, file pages the kernel can drop at will.
// Zeros if unknown.
func (d *relDaemon) rss() (total, anon int64) {
	pid := d.pid()
	if pid == 0 {
		return 0, 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	kb := func(v string) int64 {
		f := strings.Fields(v)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n << 10
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			total = kb(v)
		} else if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			anon = kb(v)
		}
	}
	return total, anon
}

// ---------------------------------------------------------------------------
// Load: `lintel sim serial` playing scripts of PIR reports and SOS presses.

// relLoad runs the simulator on a pty linked at link, one process per
// script segment (the simulator reads a whole script before it plays it,
// so a long run is cut into segments; between two the pty is replugged,
// which the receiver rides out with its reconnect). Each report rotates
// to the next PIR, so one PIR reports every PIRs/Rate seconds, far above
// the dedup window: every report is its own event, with its own time.
type relLoad struct {
	t         *testing.T
	bin, cfg  string
	link, dir string
	o         relRigOptions
	pirs, sos []string

	startOnce sync.Once
	stopOnce  sync.Once
	ctx       context.Context
	cancel    context.CancelFunc
	done      chan struct{}
	mu        sync.Mutex
	errs      []string
	pos       int // next event index, across segments
	began     time.Time
	ended     time.Time
}

// ran is how long the load ran (so far).
func (l *relLoad) ran() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.began.IsZero():
		return 0
	case l.ended.IsZero():
		return time.Since(l.began)
	}
	return l.ended.Sub(l.began)
}

func (l *relLoad) start() {
	l.t.Helper()
	l.startOnce.Do(func() {
		l.ctx, l.cancel = context.WithCancel(context.Background())
		l.done = make(chan struct{})
		ready := make(chan error, 1)
		go l.run(ready)
		if err := <-ready; err != nil {
			l.t.Fatalf("load: %v", err)
		}
		l.mu.Lock()
		l.began = time.Now()
		l.mu.Unlock()
	})
}

// stop ends the load and waits for the simulator to exit.
func (l *relLoad) stop() {
	l.stopOnce.Do(func() {
		if l.cancel == nil {
			return
		}
		l.cancel()
		<-l.done
		l.mu.Lock()
		l.ended = time.Now()
		l.mu.Unlock()
	})
}

func (l *relLoad) errors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

func (l *relLoad) fail(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, fmt.Sprintf(format, a...))
}

// script writes the next segment: per 10 ms tick, Rate/100 events.
func (l *relLoad) script(path string) error {
	perTick := max(1, l.o.Rate/100)
	var b strings.Builder
	for n := 0; n < l.o.Segment; n++ {
		i := l.pos
		l.pos++
		if l.o.SOSEvery > 0 && i%l.o.SOSEvery == l.o.SOSEvery-1 {
			fmt.Fprintf(&b, "sensor %s alarm\n", l.sos[(i/l.o.SOSEvery)%len(l.sos)])
		} else {
			fmt.Fprintf(&b, "sensor %s motion\n", l.pirs[i%len(l.pirs)])
		}
		if n%perTick == perTick-1 {
			b.WriteString("wait 10ms\n")
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

func (l *relLoad) run(ready chan<- error) {
	defer close(l.done)
	first := true
	signalReady := func(err error) {
		if first {
			first = false
			ready <- err
		}
	}
	for seg := 0; l.ctx.Err() == nil; seg++ {
		path := filepath.Join(l.dir, "load.script")
		if err := l.script(path); err != nil {
			signalReady(err)
			return
		}
		lf, err := os.OpenFile(filepath.Join(l.dir, "sim.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			signalReady(err)
			return
		}
		cmd := exec.Command(l.bin, "sim", "serial", "-c", l.cfg, "--receiver", "rf-0", "--link", l.link,
			"--script", path, "--repeats", "1", "--noise", "0", "--drop", "0", "--seed", "1")
		cmd.Stderr = lf
		cmd.SysProcAttr = relChildAttr()
		out, err := cmd.StdoutPipe()
		if err == nil {
			err = cmd.Start()
		}
		if err != nil {
			lf.Close()
			signalReady(err)
			return
		}
		scriptDone := make(chan struct{})
		copied := make(chan struct{})
		go func() {
			defer close(copied)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				fmt.Fprintln(lf, sc.Text())
				if strings.Contains(sc.Text(), "script done") {
					close(scriptDone)
				}
			}
		}()
		exited := make(chan error, 1)
		go func() { <-copied; exited <- cmd.Wait() }()
		if first {
			// The daemon opens the pty by its link: wait for it.
			if !relPoll(20*time.Second, 10*time.Millisecond, func() bool { _, err := os.Stat(l.link); return err == nil }) {
				_ = cmd.Process.Kill()
				<-exited
				lf.Close()
				signalReady(fmt.Errorf("simulator made no pty link at %s", l.link))
				return
			}
			signalReady(nil)
		}
		var stopped bool
		select {
		case <-scriptDone:
		case <-l.ctx.Done():
			stopped = true
		case err := <-exited:
			l.fail("simulator segment %d exited early: %v", seg, err)
			lf.Close()
			return
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			l.fail("simulator segment %d ignored SIGTERM", seg)
		}
		lf.Close()
		if stopped {
			return
		}
	}
}

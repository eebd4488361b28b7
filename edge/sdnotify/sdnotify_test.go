package sdnotify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// listen opens a real unixgram socket like the one systemd gives a
// Type=notify service and returns its name and a receive function.
func listen(t *testing.T, abstract bool) (string, func(time.Duration) (string, bool)) {
	t.Helper()
	var name string
	if abstract {
		name = fmt.Sprintf("@lintel-sdnotify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	} else {
		// t.TempDir paths can exceed sun_path's 108 bytes; keep it short.
		dir, err := os.MkdirTemp("", "sdn")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	recv := func(wait time.Duration) (string, bool) {
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(wait))
		n, _, err := conn.ReadFromUnix(buf)
		if err != nil {
			return "", false
		}
		return string(buf[:n]), true
	}
	return name, recv
}

func TestNotifyRealSocket(t *testing.T) {
	for _, abstract := range []bool{false, true} {
		t.Run(fmt.Sprintf("abstract=%v", abstract), func(t *testing.T) {
			name, recv := listen(t, abstract)
			n := New(name)
			if !n.Enabled() {
				t.Fatal("notifier with a socket is disabled")
			}
			if err := n.Notify(Ready, Status("running")); err != nil {
				t.Fatal(err)
			}
			got, ok := recv(2 * time.Second)
			if !ok {
				t.Fatal("no datagram received")
			}
			if want := "READY=1\nSTATUS=running\n"; got != want {
				t.Errorf("got %q, want %q", got, want)
			}
			if err := n.Notify(Stopping); err != nil {
				t.Fatal(err)
			}
			if got, _ := recv(2 * time.Second); got != "STOPPING=1\n" {
				t.Errorf("got %q", got)
			}
		})
	}
}

func TestNotifyDisabledAndErrors(t *testing.T) {
	var nilN *Notifier
	if nilN.Enabled() || nilN.Notify(Ready) != nil {
		t.Error("nil notifier must be a silent no-op")
	}
	t.Setenv("NOTIFY_SOCKET", "")
	if n := FromEnv(); n.Enabled() || n.Notify(Ready) != nil {
		t.Error("FromEnv without NOTIFY_SOCKET must be disabled")
	}
	for _, tc := range []struct{ socket, state string }{
		{"/nonexistent/dir/notify", Ready},
		{"relative/notify", Ready},
		{"vsock:2:1234", Ready},
		{"/tmp/x", "READY=1\nSTOPPING=1"},
		{"/tmp/x", "READY"},
	} {
		if err := New(tc.socket).Notify(tc.state); err == nil {
			t.Errorf("Notify(%q) to %q: want an error", tc.state, tc.socket)
		}
	}
	if got := Status("a\nb"); got != "STATUS=a b" {
		t.Errorf("Status flattens newlines: got %q", got)
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
		err       bool
	}{
		{"", "", 0, false},
		{"30000000", "", 30 * time.Second, false},
		{"30000000", "42", 30 * time.Second, false},
		{"30000000", "43", 0, false}, // meant for another process
		{"abc", "", 0, true},
		{"-5", "", 0, true},
		{"30000000", "x", 0, true},
	} {
		got, err := watchdogInterval(tc.usec, tc.pid, 42)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("watchdogInterval(%q, %q) = %v, %v; want %v, err=%v", tc.usec, tc.pid, got, err, tc.want, tc.err)
		}
	}
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", fmt.Sprint(os.Getpid()))
	if d, err := WatchdogInterval(); err != nil || d != 2*time.Second {
		t.Errorf("WatchdogInterval() = %v, %v", d, err)
	}
}

// fakeClock drives a Liveness deterministically.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLiveness(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := NewLiveness()
	l.now = clk.now
	if len(l.Stale()) != 0 {
		t.Fatal("empty registry is alive")
	}
	l.Register("poll/bus-1", 10*time.Second)
	l.Register("store", 30*time.Second)
	l.Beat("never-registered")
	if got := l.Names(); strings.Join(got, ",") != "poll/bus-1,store" {
		t.Fatalf("names = %v (a stray Beat must not register)", got)
	}
	clk.add(9 * time.Second)
	if s := l.Stale(); len(s) != 0 {
		t.Fatalf("stale too early: %v", s)
	}
	clk.add(2 * time.Second) // poll silent 11 s > 10 s
	s := l.Stale()
	if len(s) != 1 || s[0].Name != "poll/bus-1" || s[0].Silent != 11*time.Second || s[0].Deadline != 10*time.Second {
		t.Fatalf("stale = %+v", s)
	}
	l.Beat("poll/bus-1")
	if s := l.Stale(); len(s) != 0 {
		t.Fatalf("a beat must revive the loop: %v", s)
	}
	clk.add(31 * time.Second)
	if s := l.Stale(); len(s) != 2 || s[0].Name != "poll/bus-1" || s[1].Name != "store" {
		t.Fatalf("both stale, sorted: %+v", s)
	}
	l.Unregister("poll/bus-1")
	l.Register("store", time.Minute) // new deadline, counts as a beat
	if s := l.Stale(); len(s) != 0 {
		t.Fatalf("after unregister and re-register: %v", s)
	}
}

func TestWatchdogWithholdsPingWhileALoopIsStalled(t *testing.T) {
	name, recv := listen(t, false)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := NewLiveness()
	l.now = clk.now
	var logs bytes.Buffer
	w := &Watchdog{Notifier: New(name), Liveness: l, Interval: time.Second,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}

	expect := func(step, want string) {
		t.Helper()
		got, ok := recv(2 * time.Second)
		if !ok || got != want {
			t.Fatalf("%s: got %q (received=%v), want %q", step, got, ok, want)
		}
	}
	expectNothing := func(step string) {
		t.Helper()
		if got, ok := recv(50 * time.Millisecond); ok {
			t.Fatalf("%s: unexpected datagram %q", step, got)
		}
	}

	l.Register("uplink", 20*time.Second)
	if !w.Tick() {
		t.Fatal("fresh loop: want a ping")
	}
	expect("alive", "WATCHDOG=1\n")

	clk.add(25 * time.Second)
	if w.Tick() {
		t.Fatal("stalled loop: want no ping")
	}
	got, _ := recv(2 * time.Second)
	if !strings.HasPrefix(got, "STATUS=watchdog withheld: uplink silent 25s") || strings.Contains(got, "WATCHDOG=1") {
		t.Fatalf("stalled: got %q", got)
	}
	if w.Tick() {
		t.Fatal("still stalled: want no ping")
	}
	expectNothing("still stalled (status sent once)")
	if n := strings.Count(logs.String(), "watchdog ping withheld"); n != 1 {
		t.Errorf("logged the stall %d times, want once:\n%s", n, logs.String())
	}

	l.Beat("uplink")
	if !w.Tick() {
		t.Fatal("revived: want a ping")
	}
	expect("revived", "WATCHDOG=1\nSTATUS=running\n")
	if !strings.Contains(logs.String(), "watchdog pings resumed") {
		t.Errorf("resume not logged:\n%s", logs.String())
	}
}

// TestWatchdogRunRealTime runs the pinger on a real ticker: pings flow
// while the loop beats, stop within one deadline after it hangs, and Run
// returns nil on cancellation.
func TestWatchdogRunRealTime(t *testing.T) {
	name, recv := listen(t, true)
	l := NewLiveness()
	l.Register("poll", 150*time.Millisecond)
	w := &Watchdog{Notifier: New(name), Liveness: l, Interval: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v on cancellation, want nil", err)
		}
	}()

	// The loop beats for 300 ms: pings keep arriving.
	stopBeating := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopBeating:
				return
			case <-tk.C:
				l.Beat("poll")
			}
		}
	})
	deadline := time.Now().Add(300 * time.Millisecond)
	pings := 0
	for time.Now().Before(deadline) {
		if msg, ok := recv(100 * time.Millisecond); ok && msg == "WATCHDOG=1\n" {
			pings++
		}
	}
	close(stopBeating)
	wg.Wait()
	if pings < 3 {
		t.Fatalf("only %d pings in 300 ms at a 20 ms interval", pings)
	}

	// Hung: after the deadline the only message is the STATUS, then silence.
	sawStatus := false
	end := time.Now().Add(600 * time.Millisecond)
	lastPing := time.Now()
	for time.Now().Before(end) {
		msg, ok := recv(50 * time.Millisecond)
		switch {
		case !ok:
		case msg == "WATCHDOG=1\n":
			lastPing = time.Now()
		case strings.HasPrefix(msg, "STATUS=watchdog withheld"):
			sawStatus = true
		}
	}
	if !sawStatus {
		t.Error("no STATUS explaining the withheld ping")
	}
	if time.Since(lastPing) < 300*time.Millisecond {
		t.Errorf("pings continued after the loop hung (last %v ago)", time.Since(lastPing))
	}
}

func TestWatchdogOffWaitsForCancel(t *testing.T) {
	w := &Watchdog{Liveness: NewLiveness(), Logger: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestDefaultRegistry(t *testing.T) {
	name := fmt.Sprintf("test/%d", time.Now().UnixNano())
	Register(name, time.Hour)
	Beat(name)
	found := false
	for _, n := range Default.Names() {
		found = found || n == name
	}
	Unregister(name)
	if !found {
		t.Fatal("Register did not reach Default")
	}
}

// A critical loop reports progress on every iteration, failed ones
// included, and stops being watched when it returns normally.
func ExampleRegister() {
	const loop = "poll/bus-1"
	// Deadline: poll interval + I/O timeout + backoff cap, with margin.
	Register(loop, 2*time.Minute)
	defer Unregister(loop)
	for range 3 {
		Beat(loop)
		// ... one poll of the bus, or one backoff wait ...
	}
	fmt.Println(len(Default.Stale()))
	// Output: 0
}

package store

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// crashChildEnv selects the crash-test child mode of the test binary; its
// value is the store path.
const crashChildEnv = "LINTEL_STORE_CRASH_CHILD"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashChildEnv); path != "" {
		os.Exit(crashChild(path))
	}
	os.Exit(m.Run())
}

const (
	crashAppenders = 4
	crashSink      = "uplink"
	crashAckLag    = 300
)

func crashDevice(g, n, j int) string { return fmt.Sprintf("g%d-n%d-%d", g, n, j) }

// crashData ties an event's data to its device, so the parent can tell an
// intact record from one with mixed-up content.
func crashData(device string) []byte {
	return fmt.Appendf(nil, `{"chk":%d,"pad":%q}`, crc32.ChecksumIEEE([]byte(device)), strings.Repeat("x", 120))
}

// crashChild appends at full speed from several goroutines and acks now
// and then; after each Append or Ack returns it writes one line to stdout:
// "A first last g n" or "K seq". The parent kills it with SIGKILL.
func crashChild(path string) int {
	s, err := Open(Options{
		Path: path, Gateway: "gw-crash", Compound: "c", Sinks: []string{crashSink},
		FlushWindow: 3 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 3
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format+"\n", args...)
		outMu.Lock()
		_, _ = os.Stdout.WriteString(line) // one write per line: no partial lines but the last
		outMu.Unlock()
	}
	say("E %s", s.Epoch())
	for g := range crashAppenders {
		go func() {
			for n := 0; ; n++ {
				evs := make([]*event.Event, 1+n%3)
				for j := range evs {
					dev := crashDevice(g, n, j)
					evs[j] = &event.Event{Kind: event.Telemetry, Severity: event.Info, Device: dev,
						Time: time.Now(), TimeQuality: event.Synced, Data: crashData(dev)}
					if (n+j)%7 == 0 {
						evs[j].Kind, evs[j].Severity = event.DoorOpened, event.Alert
					}
				}
				if err := s.Append(context.Background(), evs...); err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					os.Exit(4)
				}
				say("A %d %d %d %d", evs[0].Seq, evs[len(evs)-1].Seq, g, n)
			}
		}()
	}
	for {
		time.Sleep(15 * time.Millisecond)
		if last := s.LastSeq(); last > crashAckLag {
			if err := s.Ack(context.Background(), crashSink, last-crashAckLag); err != nil {
				fmt.Fprintln(os.Stderr, "ack:", err)
				os.Exit(5)
			}
			say("K %d", last-crashAckLag)
		}
	}
}

// TestCrashKill9 runs the child, SIGKILLs it at random moments and after
// every kill proves on the same file: every seq reported appended is
// there with its content, seqs are contiguous, acks survived, Check passes.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test spawns processes")
	}
	const cycles = 32
	path := filepath.Join(t.TempDir(), "crash.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	expected := map[uint64]string{} // seq -> device, for every reported append
	var epoch string
	var maxAck, maxReported uint64
	var totalReported int
	start := time.Now()
	for cycle := range cycles {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan []string, 1)
		firstLine := make(chan struct{})
		go func() {
			var out []string
			r := bufio.NewReader(stdout)
			for {
				l, err := r.ReadString('\n')
				if err != nil { // a torn last line was never fully reported
					break
				}
				if len(out) == 0 {
					close(firstLine)
				}
				out = append(out, strings.TrimSuffix(l, "\n"))
			}
			_, _ = io.Copy(io.Discard, r)
			lines <- out
		}()
		if cycle%3 != 0 { // two kills in three land while appending; the rest may hit Open
			select {
			case <-firstLine:
			case <-time.After(20 * time.Second):
				t.Fatalf("cycle %d: child printed nothing: %s", cycle, stderr.String())
			}
		}
		time.Sleep(time.Duration(3+rng.IntN(300)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		werr := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("cycle %d: child exited on its own (%v): %s", cycle, werr, stderr.String())
		}
		out := <-lines
		for _, l := range out {
			f := strings.Fields(l)
			switch f[0] {
			case "E":
				if epoch == "" {
					epoch = f[1]
				} else if f[1] != epoch {
					t.Fatalf("cycle %d: epoch changed %s -> %s: the file was recreated", cycle, epoch, f[1])
				}
			case "K":
				maxAck = max(maxAck, atou(t, f[1]))
			case "A":
				first, last, g, n := atou(t, f[1]), atou(t, f[2]), int(atou(t, f[3])), int(atou(t, f[4]))
				for seq := first; seq <= last; seq++ {
					dev := crashDevice(g, n, int(seq-first))
					if old, dup := expected[seq]; dup && old != dev {
						t.Fatalf("cycle %d: seq %d reported for %s and earlier for %s: seq reused after a crash", cycle, seq, dev, old)
					}
					expected[seq] = dev
					maxReported = max(maxReported, seq)
					totalReported++
				}
			}
		}
		verifyAfterCrash(t, cycle, path, epoch, expected, maxAck, maxReported)
	}
	t.Logf("%d kill/reopen cycles, %d appends reported durable, last seq %d, last ack %d, %s",
		cycles, totalReported, maxReported, maxAck, time.Since(start).Round(time.Millisecond))
}

func atou(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("child line: %v", err)
	}
	return v
}

func verifyAfterCrash(t *testing.T, cycle int, path, epoch string, expected map[uint64]string, maxAck, maxReported uint64) {
	t.Helper()
	s, err := Open(Options{Path: path, Gateway: "gw-crash", Compound: "c", Sinks: []string{crashSink}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("cycle %d: reopen: %v", cycle, err)
	}
	defer s.Close()
	if q := s.Quarantined(); q != "" {
		t.Fatalf("cycle %d: store quarantined after kill -9 (moved to %s)", cycle, q)
	}
	if epoch != "" && s.Epoch() != epoch {
		t.Fatalf("cycle %d: epoch %s, want %s", cycle, s.Epoch(), epoch)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	cur := s.Cursor(crashSink)
	if cur < maxAck {
		t.Fatalf("cycle %d: cursor %d, but an ack of %d was reported durable", cycle, cur, maxAck)
	}
	if s.LastSeq() < maxReported {
		t.Fatalf("cycle %d: last seq %d < reported %d", cycle, s.LastSeq(), maxReported)
	}
	evs, err := s.ReadRange(cur, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) > 0 && evs[0].Seq != cur+1 {
		t.Fatalf("cycle %d: first record %d, cursor %d: records missing after the cursor", cycle, evs[0].Seq, cur)
	}
	for i, ev := range evs {
		if i > 0 && ev.Seq != evs[i-1].Seq+1 {
			t.Fatalf("cycle %d: hole between seq %d and %d", cycle, evs[i-1].Seq, ev.Seq)
		}
		if ev.ID != event.FormatID("gw-crash", s.Epoch(), ev.Seq) {
			t.Fatalf("cycle %d: seq %d id %q", cycle, ev.Seq, ev.ID)
		}
		if ev.Kind == event.StoreDropped || ev.Kind == event.StoreQuarantined {
			t.Fatalf("cycle %d: unexpected %s", cycle, ev.Kind)
		}
		if string(ev.Data) != string(crashData(ev.Device)) {
			t.Fatalf("cycle %d: seq %d data does not match device %s", cycle, ev.Seq, ev.Device)
		}
		if want, ok := expected[ev.Seq]; ok && want != ev.Device {
			t.Fatalf("cycle %d: seq %d holds %s, the child reported %s", cycle, ev.Seq, ev.Device, want)
		}
	}
	n := uint64(len(evs))
	for seq := range expected {
		if seq > cur && seq > cur+n {
			t.Fatalf("cycle %d: reported seq %d is missing (records %d..%d)", cycle, seq, cur+1, cur+n)
		}
		if seq <= cur {
			delete(expected, seq) // acked and deleted: nothing left to check
		}
	}
}

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

// crashModeEnv selects how the child writes: "fast" (closed-loop
// appenders, batches of a few requests) or "trickle" (paced appenders, a
// 20 ms window); with a "+foldkill" suffix the child also SIGKILLs itself
// now and then between the steps of a journal fold.
const crashModeEnv = "LINTEL_STORE_CRASH_MODE"

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

// crashChild appends from several goroutines, acks and puts state now
// and then; after each Append, Ack or PutState returns it writes one line
// to stdout: "A first last g n", "K seq" or "S version". The parent kills
// it with SIGKILL. The journal is small and folds every 40 ms, so kills
// land in journal writes, in folds and in a full journal.
func crashChild(path string) int {
	mode := os.Getenv(crashModeEnv)
	trickle := strings.HasPrefix(mode, "trickle")
	if strings.HasSuffix(mode, "+foldkill") {
		rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
		var folds int
		foldHook = func(stage int) {
			if stage == 1 {
				folds++
			}
			// Never in the first fold, which may be Open's replay: the
			// child must print its epoch first.
			if folds > 1 && rng.IntN(4) == 0 {
				_, _ = fmt.Fprintf(os.Stdout, "F %d\n", stage)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}
	}
	o := Options{
		Path: path, Gateway: "gw-crash", Compound: "c", Sinks: []string{crashSink},
		FlushWindow: 3 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		walSize: 64 << 10, walFoldEvery: 40 * time.Millisecond,
	}
	if trickle {
		o.FlushWindow = 20 * time.Millisecond
	}
	o.walBuffered = strings.Contains(mode, "+buffered")
	s, err := Open(o)
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
	say("E %s %t %d", s.Epoch(), s.j.direct, s.j.unit)
	appenders := crashAppenders
	if trickle {
		appenders = 8
	}
	for g := range appenders {
		go func() {
			for n := 0; ; n++ {
				if trickle {
					time.Sleep(time.Duration(5+(g*7+n*13)%40) * time.Millisecond)
				}
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
	ver, _, _, err := s.GetState("crash", "k")
	if err != nil {
		fmt.Fprintln(os.Stderr, "get state:", err)
		return 6
	}
	for {
		time.Sleep(15 * time.Millisecond)
		ver++
		if err := s.PutState(context.Background(), "crash", "k", ver, fmt.Appendf(nil, "v%d", ver)); err != nil {
			fmt.Fprintln(os.Stderr, "put state:", err)
			os.Exit(7)
		}
		say("S %d", ver)
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
	t.Parallel() // mostly waits on its children: overlaps with TestModel
	const cycles = 32
	path := filepath.Join(t.TempDir(), "crash.db")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	expected := map[uint64]string{} // seq -> device, for every reported append
	var epoch string
	var maxAck, maxReported, maxState uint64
	selfKills, replayed := 0, 0
	// The children must write the journal with O_DIRECT wherever the
	// test directory allows it (every eighth one through the page cache).
	wantDirect := directWorks(t, filepath.Dir(path))
	directChildren, bufferedChildren := 0, 0
	var totalReported int
	start := time.Now()
	for cycle := range cycles {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		mode := []string{"fast", "trickle", "fast+foldkill", "trickle+foldkill"}[cycle%4]
		buffered := cycle%8 == 5
		if buffered {
			mode += "+buffered"
		}
		cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashModeEnv+"="+mode)
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
				_ = cmd.Process.Kill()
				<-lines
				_ = cmd.Wait()
				t.Fatalf("cycle %d (%s): child printed nothing: %s", cycle, mode, stderr.String())
			}
		}
		time.Sleep(time.Duration(3+rng.IntN(300)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		// Read to EOF (the dead child's end of the pipe closes) before
		// Wait, which closes ours and would drop unread lines.
		out := <-lines
		werr := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("cycle %d (%s): child exited on its own (%v): %s", cycle, mode, werr, stderr.String())
		}
		for _, l := range out {
			f := strings.Fields(l)
			switch f[0] {
			case "E":
				if epoch == "" {
					epoch = f[1]
				} else if f[1] != epoch {
					t.Fatalf("cycle %d: epoch changed %s -> %s: the file was recreated", cycle, epoch, f[1])
				}
				if direct := f[2] == "true"; direct != (wantDirect && !buffered) {
					t.Fatalf("cycle %d (%s): child journal direct=%v unit %s, want direct=%v", cycle, mode, direct, f[3], wantDirect && !buffered)
				} else if direct {
					directChildren++
				} else {
					bufferedChildren++
				}
			case "K":
				maxAck = max(maxAck, atou(t, f[1]))
			case "S":
				maxState = max(maxState, atou(t, f[1]))
			case "F":
				selfKills++
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
		replayed += verifyAfterCrash(t, cycle, path, epoch, expected, maxAck, maxReported, maxState)
	}
	if replayed == 0 {
		t.Fatal("no journal frame was ever replayed: the test did not exercise the journal")
	}
	t.Logf("%d kill/reopen cycles (%d self-kills inside a fold, %d journal frames replayed; children writing with O_DIRECT %d, through the page cache %d), %d appends reported durable, last seq %d, last ack %d, state version %d, %s",
		cycles, selfKills, replayed, directChildren, bufferedChildren, totalReported, maxReported, maxAck, maxState, time.Since(start).Round(time.Millisecond))
}

func atou(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("child line: %v", err)
	}
	return v
}

func verifyAfterCrash(t *testing.T, cycle int, path, epoch string, expected map[uint64]string, maxAck, maxReported, maxState uint64) (replayed int) {
	t.Helper()
	s, err := Open(Options{Path: path, Gateway: "gw-crash", Compound: "c", Sinks: []string{crashSink},
		Logger: slog.New(slog.DiscardHandler), walSize: 64 << 10})
	if err != nil {
		t.Fatalf("cycle %d: reopen: %v", cycle, err)
	}
	defer s.Close()
	replayed = s.walReplayed
	if q := s.Quarantined(); q != "" {
		t.Fatalf("cycle %d: store quarantined after kill -9 (moved to %s)", cycle, q)
	}
	if epoch != "" && s.Epoch() != epoch {
		t.Fatalf("cycle %d: epoch %s, want %s", cycle, s.Epoch(), epoch)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	if ver, val, ok, err := s.GetState("crash", "k"); err != nil || uint64(ver) < maxState || ok && string(val) != fmt.Sprintf("v%d", ver) {
		t.Fatalf("cycle %d: state version %d %q %v %v, but version %d was reported durable", cycle, ver, val, ok, err, maxState)
	}
	if s.walQuarantined != "" {
		t.Fatalf("cycle %d: journal moved aside after kill -9: %s", cycle, s.walReason)
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
	// Seqs run on without holes except where the store declared a skip
	// (after each unclean stop); a kill -9 never loses anything.
	declared := declaredRanges(t, evs)
	present := map[uint64]bool{}
	prev := cur
	for _, ev := range evs {
		if ev.Seq != prev+1 && !covered(declared, prev+1, ev.Seq-1) {
			t.Fatalf("cycle %d: undeclared hole between seq %d and %d (declared %v)", cycle, prev, ev.Seq, declared)
		}
		prev = ev.Seq
		present[ev.Seq] = true
		if ev.ID != event.FormatID("gw-crash", s.Epoch(), ev.Seq) {
			t.Fatalf("cycle %d: seq %d id %q", cycle, ev.Seq, ev.ID)
		}
		switch ev.Kind {
		case event.StoreSeqSkipped:
			continue
		case event.StoreDropped, event.StoreQuarantined, event.StoreLost:
			t.Fatalf("cycle %d: unexpected %s: %s", cycle, ev.Kind, ev.Data)
		}
		if string(ev.Data) != string(crashData(ev.Device)) {
			t.Fatalf("cycle %d: seq %d data does not match device %s", cycle, ev.Seq, ev.Device)
		}
		if want, ok := expected[ev.Seq]; ok && want != ev.Device {
			t.Fatalf("cycle %d: seq %d holds %s, the child reported %s", cycle, ev.Seq, ev.Device, want)
		}
	}
	for seq := range expected {
		if seq > cur && !present[seq] {
			t.Fatalf("cycle %d: reported seq %d is missing", cycle, seq)
		}
		if seq <= cur {
			delete(expected, seq) // acked and deleted: nothing left to check
		}
	}
	return replayed
}

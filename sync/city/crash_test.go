package city

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

const crashEnv = "LINTEL_CITY_CRASH_CHILD" // dir|broker|target

// TestCrashChild is the gateway process of TestCrashRestart: it runs the
// store and the sink, appending until the log holds target events, until
// it is killed or told to stop.
func TestCrashChild(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("helper process of TestCrashRestart")
	}
	parts := strings.Split(spec, "|")
	target, _ := strconv.ParseUint(parts[2], 10, 64)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	st := openStore(t, parts[0])
	defer st.Close()
	fmt.Printf("EPOCH %s %d\n", st.Epoch(), st.LastSeq())
	o := testOptions(parts[1])
	o.AckMode = AckApplication
	o.AckTimeout = 1e9
	o.Window = 4
	runSink(t, ctx, st, o, nil)
	// Until the log reaches target, and at least 1000 events of this run:
	// after a kill the store skips the seqs it had reserved, and those
	// alone may pass target.
	for n := 0; (st.LastSeq() < target || n < 1000) && ctx.Err() == nil; n += 100 {
		evs := make([]*event.Event, 100)
		for i := range evs {
			evs[i] = event.New(event.DoorOpened)
			evs[i].Device = "door-1"
		}
		if err := st.Append(ctx, evs...); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond) // a paced source, not a synchronisation
	}
	if ctx.Err() == nil {
		fmt.Printf("LAST %d\n", st.LastSeq())
	}
	<-ctx.Done()
}

func TestCrashRestart(t *testing.T) {
	b := startBroker(t, nil)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	r := startReceiver(t, ctx, b, true, col)
	const target = 6000
	start := func() (*exec.Cmd, chan string, chan uint64) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s|%s|%d", crashEnv, dir, b.url(), target))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// A failing test must not leave a gateway running.
		t.Cleanup(func() { _ = cmd.Process.Kill() })
		epoch, last := make(chan string, 1), make(chan uint64, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				switch {
				case len(f) == 3 && f[0] == "EPOCH":
					epoch <- f[1]
				case len(f) == 2 && f[0] == "LAST":
					n, _ := strconv.ParseUint(f[1], 10, 64)
					last <- n
				}
			}
		}()
		return cmd, epoch, last
	}
	var epoch string
	kills := 0
	for i := 0; i < 5; i++ {
		cmd, ep, _ := start()
		select {
		case epoch = <-ep:
		case <-time.After(30 * time.Second):
			t.Fatal("child did not open the store")
		}
		time.Sleep(time.Duration(300+rand.IntN(500)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		kills++
	}
	cmd, ep, lastc := start()
	select {
	case e := <-ep:
		if epoch != "" && e != epoch {
			t.Fatalf("store epoch changed across kills (%s → %s): the file was quarantined", epoch, e)
		}
		epoch = e
	case <-time.After(30 * time.Second):
		t.Fatal("child did not open the store")
	}
	var last uint64
	select {
	case last = <-lastc:
	case <-time.After(2 * time.Minute):
		t.Fatal("the final child did not reach the target")
	}
	// After a kill the store skips the seqs it had reserved and declares
	// them (store.seq_skipped): every seq up to the last is delivered or
	// declared, and nothing else is missing.
	waitProgress(t, "every event after kills", func() uint64 { return r.Received.Load() }, func() bool {
		return r.Received.Load()+r.Declared.Load() >= last
	})
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("final child: %v", err)
	}
	rep := checkStream(t, r, epoch, last, "skipped/unclean_stop")
	var ids []string
	col.mu.Lock()
	for id := range col.ids {
		ids = append(ids, id)
	}
	col.mu.Unlock()
	if uint64(len(ids)) != rep.Received {
		t.Errorf("%d events written, the receiver holds %d seqs", len(ids), rep.Received)
	}
	checkDelivery(t, ids, col, r)
	t.Logf("%d SIGKILLs, last seq %d: %d events, %d seqs declared skipped, %d duplicates dropped by the receiver, %d gap refusals",
		kills, last, rep.Received, rep.Declared, r.Duplicates.Load(), r.Gaps.Load())
}

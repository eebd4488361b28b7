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
	for st.LastSeq() < target && ctx.Err() == nil {
		evs := make([]*event.Event, 100)
		for i := range evs {
			evs[i] = event.New(event.DoorOpened)
			evs[i].Device = "door-1"
		}
		if err := st.Append(ctx, evs...); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
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
	start := func() (*exec.Cmd, chan string) {
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
		epoch := make(chan string, 1)
		go func() {
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "EPOCH" {
					epoch <- f[1]
				}
			}
		}()
		return cmd, epoch
	}
	var epoch string
	kills := 0
	for i := 0; i < 5; i++ {
		cmd, ep := start()
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
	cmd, ep := start()
	select {
	case e := <-ep:
		if epoch != "" && e != epoch {
			t.Fatalf("store epoch changed across kills (%s → %s): the file was quarantined", epoch, e)
		}
		epoch = e
	case <-time.After(30 * time.Second):
		t.Fatal("child did not open the store")
	}
	ids := make([]string, target)
	for i := range ids {
		ids[i] = event.FormatID("gw-01", epoch, uint64(i+1))
	}
	waitFor(t, 60*time.Second, "every event after kills", func() bool { return col.count() >= target })
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Errorf("final child: %v", err)
	}
	checkDelivery(t, ids, col, r)
	t.Logf("%d SIGKILLs, %d duplicates dropped by the receiver, %d gap refusals", kills, r.Duplicates.Load(), r.Gaps.Load())
}

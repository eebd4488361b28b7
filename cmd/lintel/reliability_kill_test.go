package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestReliabilityKill9 is T1 of research/reliability.md §1.9 (goal G1):
// SIGKILL the daemon at a random time while it ingests several hundred
// radio events per second and syncs them to the city platform, restart it,
// and repeat. At the end the oracle (reliability_harness_test.go) must
// find every event the daemon reported durable at the listener, no id with
// two contents, a consistent store, and every restart ready.
//
// Short form (go test, make test): 50 cycles, each kill 50 ms–1.5 s after
// /readyz (about a minute; T1's 5 s range would double it). LINTEL_SOAK=1
// (make soak): 1,000 cycles, 50 ms–3 s. LINTEL_SOAK_CYCLES and
// LINTEL_SOAK_RATE (script events/s, default 500) override either form.
// Every 10th (soak: 100th) kill the store is dumped as the crash left it.
func TestReliabilityKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon crash test: not with -short")
	}
	cycles, rate := 50, 500
	killMin, killMax := 50*time.Millisecond, 1500*time.Millisecond
	history := "168h"
	dumpEvery := 10
	if relSoak() {
		cycles, killMax, history, dumpEvery = 1000, 3*time.Second, "10m", 100
	}
	cycles = relEnvInt(t, "LINTEL_SOAK_CYCLES", cycles)
	rate = relEnvInt(t, "LINTEL_SOAK_RATE", rate)

	r := newRelRig(t, "kill9", relRigOptions{Rate: rate, SOSEvery: 250, History: history})
	r.load.start()
	r.daemon.start()
	r.mustReady()
	seed := uint64(relEnvInt(t, "LINTEL_REL_SEED", int(time.Now().UnixNano()%(1<<62))))
	rnd := rand.New(rand.NewPCG(seed, 17))
	t.Logf("work directory %s; %d cycles, kill %s–%s after ready, LINTEL_REL_SEED=%d", r.dir, cycles, killMin, killMax, seed)
	hist, err := os.Create(filepath.Join(r.dir, "cycles.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Close()
	for i := 1; i <= cycles; i++ {
		// A fault injected at a random time, not a wait for a condition.
		after := killMin + time.Duration(rnd.Int64N(int64(killMax-killMin)))
		time.Sleep(after)
		r.kill()
		if i%dumpEvery == 0 {
			// The file as a crash left it (the journal not yet folded):
			// bbolt's own check and every record's CRC must hold.
			d, err := relDumpStore(r.storePath)
			if err != nil {
				t.Fatalf("cycle %d: dump after SIGKILL: %v", i, err)
			}
			if len(d.corrupt)+len(d.checkErrs) > 0 {
				t.Fatalf("cycle %d: store after SIGKILL: %v %v", i, d.corrupt, d.checkErrs)
			}
		}
		r.daemon.start()
		ready := r.mustReady()
		fmt.Fprintf(hist, "cycle %d: SIGKILL %s after ready; restart ready in %s\n", i, after, ready)
	}
	rep := r.finish(&relReport{Scenario: "kill9", Cycles: cycles})
	if rep.Starts != cycles+1 {
		t.Errorf("%d starts, want %d", rep.Starts, cycles+1)
	}
	if rep.Acked < 10*cycles {
		t.Errorf("only %d events acked over %d cycles: the load did not reach the daemon", rep.Acked, cycles)
	}
}

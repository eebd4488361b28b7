package city

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

// memLog is a Log of events 1..n held in memory.
type memLog struct{ evs []*event.Event }

func newMemLog(n int) *memLog {
	l := &memLog{}
	for i := 1; i <= n; i++ {
		e := event.New(event.DoorOpened)
		e.Seq, e.ID, e.Gateway, e.Compound = uint64(i), event.FormatID("gw-01", testEpoch, uint64(i)), "gw-01", "c-01"
		e.Time, e.TimeQuality = time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC), event.Synced
		l.evs = append(l.evs, e)
	}
	return l
}

func (l *memLog) Read(_ string, after uint64, max int) ([]*event.Event, error) {
	if after >= uint64(len(l.evs)) {
		return nil, nil
	}
	return l.evs[after:min(len(l.evs), int(after)+max)], nil
}
func (l *memLog) Ack(context.Context, string, uint64) error { return nil }
func (l *memLog) Cursor(string) uint64                      { return 0 }
func (l *memLog) Epoch() string                             { return testEpoch }
func (l *memLog) BootCount() uint64                         { return 1 }
func (l *memLog) LastSeq() uint64                           { return uint64(len(l.evs)) }
func (l *memLog) Subscribe(int) (<-chan *event.Event, func()) {
	return make(chan *event.Event), func() {}
}
func (l *memLog) Stats() store.Stats { return store.Stats{} }

// doneToken is a completed publish: the broker PUBACKed at once.
type doneToken struct{ c chan struct{} }

func newDoneToken() doneToken {
	t := doneToken{make(chan struct{})}
	close(t.c)
	return t
}
func (t doneToken) Wait() bool                     { return true }
func (t doneToken) WaitTimeout(time.Duration) bool { return true }
func (t doneToken) Done() <-chan struct{}          { return t.c }
func (t doneToken) Error() error                   { return nil }

// pubClient is an mqtt.Client whose publishes go to a channel.
type pubClient struct {
	mqtt.Client // unused methods panic
	pubs        chan []byte
}

func (c pubClient) Publish(_ string, _ byte, _ bool, payload interface{}) mqtt.Token {
	c.pubs <- payload.([]byte)
	return newDoneToken()
}

// TestSlowPlatformNoResendStorm drains 20 batches to a platform that acks
// every batch but needs 400 ms for each, so a window of 4 takes 1.6 s
// against an ack_timeout of 1 s: slow, not lossy. On synctest's fake
// clock. With a fixed timeout the sink resent a window every second into
// a queue that drains 2.5 batches a second (measured: 98 duplicate
// batches for 20, 46 s for an 8 s drain); the adaptive wait must keep the
// drain at the platform's pace. A platform that also loses a batch must
// still get it again, after at most the longest wait.
func TestSlowPlatformNoResendStorm(t *testing.T) {
	const batches, perBatch = 20, 400 * time.Millisecond
	for _, tc := range []struct {
		name     string
		lose     uint64 // last seq of a batch the platform loses once; 0 none
		maxDups  int
		maxDrain time.Duration
	}{
		{"slow", 0, 0, batches * perBatch},
		// The lost batch comes again after the wait (≤ 8 × ack_timeout),
		// with the window behind it as duplicates.
		{"slow and lossy", 500, 4, batches*perBatch + maxAckBackoff*time.Second + 4*perBatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				o := testOptions("tcp://platform.invalid:1883")
				o.AckMode, o.AckTimeout, o.Window, o.Batch.MaxEvents, o.Gzip = AckApplication, 1e9, 4, 100, false
				s, err := New(Deps{Name: "city", Gateway: "gw-01", Compound: "c-01", Log: newMemLog(batches * 100), Logger: testLogger(t)}, o)
				if err != nil {
					t.Fatal(err)
				}
				c := pubClient{pubs: make(chan []byte, 10000)}
				acks := make(chan appAck, 1024)
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Add(2)
				go func() { defer wg.Done(); _ = s.pump(ctx, c, nil, acks) }()
				seen := map[uint64]bool{}
				dups, lost := 0, false
				done := make(chan struct{})
				start := time.Now()
				go func() { // the platform: one batch at a time
					defer wg.Done()
					closed := false
					for {
						var p []byte
						select {
						case <-ctx.Done():
							return
						case p = <-c.pubs:
						}
						time.Sleep(perBatch)
						b, _, err := DecodeBatch(EncJSON, p)
						if err != nil {
							t.Error(err)
							return
						}
						if b.LastSeq == tc.lose && !lost {
							lost = true
							continue
						}
						if seen[b.LastSeq] {
							dups++
						}
						seen[b.LastSeq] = true
						acks <- appAck{Epoch: b.Epoch, Seq: b.LastSeq}
						if len(seen) == batches && !closed {
							close(done)
							closed = true
						}
					}
				}()
				finished := true
				select {
				case <-done:
				case <-time.After(10 * time.Minute):
					finished = false
				}
				took := time.Since(start)
				cancel()
				wg.Wait()
				if !finished {
					t.Errorf("drain not done after 10 min of fake time: %d of %d batches, %d duplicates, %d rewinds", len(seen), batches, dups, s.Rewinds.Load())
				}
				t.Logf("%d batches at %s each: done after %s, %d duplicates, %d rewinds", batches, perBatch, took, dups, s.Rewinds.Load())
				if dups > tc.maxDups || took > tc.maxDrain {
					t.Errorf("%d duplicate batches (want ≤ %d), drain %s (want ≤ %s)", dups, tc.maxDups, took, tc.maxDrain)
				}
			})
		})
	}
}

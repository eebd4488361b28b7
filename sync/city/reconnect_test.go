package city

import (
	"context"
	"testing"
	"time"
)

// TestBrokerReturnEndsLongBackoff is issue 17's outage: the broker is
// gone long enough for the reconnect back-off to have grown past 60 s,
// and comes back on the same port. The backlog must move within 10 s of
// its return, not when the back-off ends. reconnect.min = max = 2m makes
// the first wait already a grown one (60–120 s) instead of spending
// minutes of failed attempts to get there; the probe interval is the
// default. In puback mode the first PUBACKed batch is timed; in
// application mode the first batch the reference receiver acked, which
// also takes in the receiver's own reconnect (so one ack_timeout more is
// allowed there).
func TestBrokerReturnEndsLongBackoff(t *testing.T) {
	for _, mode := range []string{AckPuback, AckApplication} {
		t.Run(mode, func(t *testing.T) {
			b := startBroker(t, nil)
			st := openStore(t, t.TempDir())
			t.Cleanup(func() { st.Close() })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			col := newCollector()
			app := mode == AckApplication
			r := startReceiver(t, ctx, b, app, col)
			o := testOptions(b.url())
			o.AckMode = mode
			o.Reconnect.Min, o.Reconnect.Max = 2*60e9, 2*60e9
			o.Reconnect.Probe = DefaultOptions().Reconnect.Probe
			s := runSink(t, ctx, st, o, nil)
			ids := appendEvents(t, st, 500, 0)
			waitFor(t, 20*time.Second, "events before the outage", func() bool { return s.Confirmed() == st.LastSeq() })

			b.kill()
			ids = append(ids, appendEvents(t, st, 5000, 0)...) // the backlog
			waitFor(t, 30*time.Second, "a long back-off with failed probes", func() bool {
				return s.Reconnects.Load() == 1 && s.probe.probes.Load() >= 2
			})
			if w := time.Duration(s.retryIn.Load()); w < 60*time.Second {
				t.Fatalf("back-off %s, want one past 60 s", w)
			}
			before, nrecv := s.Confirmed(), col.count()
			t0 := time.Now()
			b.start() // same port
			listening := time.Since(t0)
			// The gateway's property: its backlog moves within 10 s. In
			// application mode the platform's receiver must be back too,
			// and a window published before it was is lost to it and sent
			// again after ack_timeout.
			budget := 10 * time.Second
			if app {
				budget += o.AckTimeout.Std()
			}
			waitFor(t, time.Until(t0.Add(budget)), "the first batch confirmed after the broker's return", func() bool { return s.Confirmed() > before })
			moved := time.Since(t0)
			waitProgress(t, "the whole backlog", s.Confirmed, func() bool { return s.Confirmed() == st.LastSeq() })
			if app {
				// Application acks: the receiver had the first confirmed
				// batch, and nothing was confirmed that it does not have,
				// so everything arrived, once and in order. (In puback mode
				// a batch the broker took before the receiver was back is
				// confirmed and gone: that is what puback means.)
				if col.count() <= nrecv {
					t.Error("a batch was confirmed in application mode that the receiver does not have")
				}
				waitProgress(t, "every event at the receiver", col.progress, func() bool { return col.count() >= len(ids) })
				checkDelivery(t, ids, col, r)
			}
			if s.Reconnects.Load() != 1 || s.probe.wakes.Load() != 1 {
				t.Errorf("connections ended %d, waits cut short by a probe %d: want one each", s.Reconnects.Load(), s.probe.wakes.Load())
			}
			t.Logf("%s: back-off %s; from the broker's restart: listening %s, probe saw it %s, first confirmed batch %s; %d probes",
				mode, time.Duration(s.retryIn.Load()).Round(time.Millisecond), listening.Round(time.Millisecond),
				time.Unix(0, s.probe.wokeAt.Load()).Sub(t0).Round(time.Millisecond), moved.Round(time.Millisecond), s.probe.probes.Load())
		})
	}
}

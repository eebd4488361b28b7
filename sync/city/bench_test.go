package city

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/lintel-edge/lintel/edge/event"
)

func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkDrain measures how fast a backlog drains with the default
// batch shape (500 events / 256 KiB, window 8) and the bytes each event
// costs on the wire (TCP payload up, counted by a relay in front of the
// broker). gateway/*: until every batch is PUBACKed (the uplink's own
// rate; no subscriber). e2e/*: until the reference receiver, on the same
// two cores, has written every event.
func BenchmarkDrain(b *testing.B) {
	n := benchEnv("LINTEL_BENCH_EVENTS", 200_000)
	for _, tc := range []struct {
		name    string
		gz, e2e bool
	}{{"gateway/json", false, false}, {"gateway/gzip", true, false}, {"e2e/gzip", true, true}} {
		b.Run(tc.name, func(b *testing.B) {
			br := startBroker(b, nil)
			for range b.N {
				b.StopTimer()
				st := openStore(b, b.TempDir())
				b.Cleanup(func() { st.Close() })
				appendEvents(b, st, n, 0)
				p := startProxy(b, strings.TrimPrefix(br.url(), "tcp://"))
				ctx, cancel := context.WithCancel(context.Background())
				col := newCollector()
				if tc.e2e {
					startReceiver(b, ctx, br, false, col)
				}
				o := testOptions(p.url())
				d := DefaultOptions()
				o.Batch, o.Window, o.Gzip = d.Batch, d.Window, tc.gz
				b.StartTimer()
				t0 := time.Now()
				s := runSink(b, ctx, st, o, nil)
				last := st.LastSeq()
				waitFor(b, 10*time.Minute, "drain", func() bool {
					if tc.e2e {
						return col.count() >= n
					}
					return s.Confirmed() >= last
				})
				el := time.Since(t0)
				b.StopTimer()
				p.mu.Lock()
				up := p.up
				p.mu.Unlock()
				b.ReportMetric(float64(n)/el.Seconds(), "events/s")
				b.ReportMetric(float64(s.BytesSent.Load())/float64(s.EventsSent.Load()), "payload_B/event")
				b.ReportMetric(float64(up)/float64(s.EventsSent.Load()), "wire_B/event")
				cancel()
			}
		})
	}
}

// BenchmarkOnePerMessage is the baseline: each event its own QoS 1
// message, waiting for the PUBACK before the next.
func BenchmarkOnePerMessage(b *testing.B) {
	n := benchEnv("LINTEL_BENCH_BASELINE_EVENTS", 20_000)
	br := startBroker(b, nil)
	for range b.N {
		b.StopTimer()
		st := openStore(b, b.TempDir())
		appendEvents(b, st, n, 0)
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(br.url()).SetClientID("baseline").SetAutoReconnect(false))
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		b.StartTimer()
		t0 := time.Now()
		var bytes int
		for after := uint64(0); ; {
			evs, err := st.Read("city", after, 500)
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				js, _ := json.Marshal(e)
				bytes += len(js)
				if tok := c.Publish("lintel/v1/c-01/gw-01/event", 1, false, js); tok.Wait() && tok.Error() != nil {
					b.Fatal(tok.Error())
				}
				after = e.Seq
			}
		}
		el := time.Since(t0)
		b.StopTimer()
		b.ReportMetric(float64(n)/el.Seconds(), "events/s")
		b.ReportMetric(float64(bytes)/float64(n), "payload_B/event")
		c.Disconnect(100)
		st.Close()
	}
}

// BenchmarkAlertLatencyDuringDrain appends a critical alert every 20 ms
// while a large backlog (LINTEL_BENCH_BACKLOG, default 1 000 000) drains
// and reports the append-to-receiver latency of the alert lane.
func BenchmarkAlertLatencyDuringDrain(b *testing.B) {
	n := benchEnv("LINTEL_BENCH_BACKLOG", 1_000_000)
	br := startBroker(b, nil)
	for range b.N {
		b.StopTimer()
		st := openStore(b, b.TempDir())
		b.Cleanup(func() { st.Close() })
		appendEvents(b, st, n, 0)
		ctx, cancel := context.WithCancel(context.Background())
		col := newCollector()
		startReceiver(b, ctx, br, false, col)
		o := testOptions(br.url())
		d := DefaultOptions()
		o.Batch, o.Window, o.Gzip = d.Batch, d.Window, true
		b.StartTimer()
		t0 := time.Now()
		runSink(b, ctx, st, o, nil)
		var mu sync.Mutex
		sent := map[string]time.Time{}
		for col.count() < n*9/10 {
			ev := event.New(event.ElderAlertRaised)
			ev.Device = "sos-1"
			if err := st.Append(ctx, ev); err != nil {
				b.Fatal(err)
			}
			mu.Lock()
			sent[ev.ID] = time.Now()
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
		drained := col.count()
		el := time.Since(t0)
		b.StopTimer()
		// The last alerts may still be on their way: wait for them (a
		// bounded poll), so that "lost" means lost.
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			col.mu.Lock()
			all := true
			for id := range sent {
				if _, ok := col.alerts[id]; !ok {
					all = false
					break
				}
			}
			col.mu.Unlock()
			if all {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		var lat []time.Duration
		col.mu.Lock()
		lost := 0
		for id, at := range sent {
			if got, ok := col.alerts[id]; ok {
				lat = append(lat, got.Sub(at))
			} else {
				lost++
			}
		}
		col.mu.Unlock()
		slices.Sort(lat)
		if len(lat) == 0 {
			b.Fatal("no alert arrived on the lane")
		}
		q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
		b.ReportMetric(q(0.5), "p50_ms")
		b.ReportMetric(q(0.99), "p99_ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
		b.ReportMetric(float64(len(lat)), "alerts")
		b.ReportMetric(float64(drained)/el.Seconds(), "drain_events/s")
		if lost > 0 {
			b.Logf("%d alerts not (yet) on the lane at the end", lost)
		}
		fmt.Fprintf(os.Stderr, "alert lane: %d alerts during a %d-event drain: p50 %.1f ms p99 %.1f ms max %.1f ms\n", len(lat), n, q(0.5), q(0.99), float64(lat[len(lat)-1].Microseconds())/1000)
		cancel()
	}
}

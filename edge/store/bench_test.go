package store

import (
	"bufio"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lintel-edge/lintel/edge/event"
)

// benchEvent is a typical ~330-byte telemetry event.
func benchEvent() *event.Event { return telemetryEvent(42) }

func benchOptions(b *testing.B, window time.Duration) Options {
	return Options{
		Path: filepath.Join(b.TempDir(), "bench.db"), Gateway: "gw-bench", Compound: "c-hf-001",
		FlushWindow: window, Logger: slog.New(slog.DiscardHandler),
	}
}

// BenchmarkAppendGroupCommit: many concurrent appenders, one event per
// Append, default options. Closed-loop callers can never fill more than
// one batch each, so events per commit equals the number of appenders.
func BenchmarkAppendGroupCommit(b *testing.B) {
	for _, par := range []int{64, 512} {
		b.Run("appenders="+strconv.Itoa(par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			s, err := Open(benchOptions(b, DefaultFlushWindow))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			b.SetParallelism(par) // par × GOMAXPROCS goroutines
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Append(ctx, benchEvent()); err != nil {
						b.Error(err)
						return
					}
				}
			})
			el := time.Since(start)
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
			b.ReportMetric(float64(st.Appended)/float64(max(st.Commits, 1)), "events/commit")
			b.ReportMetric(float64(s.walFrames.Load()), "journal_frames")
			b.ReportMetric(float64(s.folds.Load()), "folds")
		})
	}
}

// BenchmarkAppendNaive is the baseline: one plain bbolt Update (one
// commit) per event of the same size.
func BenchmarkAppendNaive(b *testing.B) {
	db, v := naiveDB(b)
	defer db.Close()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		naivePut(b, db, uint64(i+1), v)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}

func naiveDB(b *testing.B) (*bolt.DB, []byte) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "naive.db"), 0o600, &bolt.Options{PageSize: 4096, Timeout: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucketEvents); return err }); err != nil {
		b.Fatal(err)
	}
	ev := benchEvent()
	ev.Gateway, ev.Compound = "gw-bench", "c-hf-001"
	ev.ID, ev.Seq = event.FormatID("gw-bench", "0123456789abcdef", 123456), 123456
	js, _ := ev.MarshalJSON()
	return db, encodeRecord(1, header{class: classTelemetry}, js)
}

func naivePut(b *testing.B, db *bolt.DB, seq uint64, v []byte) {
	if err := db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucketEvents)
		bk.FillPercent = 0.9
		return bk.Put(seqKey(seq), v)
	}); err != nil {
		b.Fatal(err)
	}
}

// procIO reads this process's I/O counters.
func procIO(b *testing.B) (writeBytes, wchar int64) {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ": ")
		n, _ := strconv.ParseInt(v, 10, 64)
		switch k {
		case "write_bytes":
			writeBytes = n
		case "wchar":
			wchar = n
		}
	}
	return writeBytes, wchar
}

const (
	trickleRate = 10 // events/s
	// One full journal cycle: the default fold interval.
	trickleRun = defaultWALFoldEvery
)

// BenchmarkTrickleBytesPerEvent: a steady 10 events/s, each from its own
// goroutine as independent drivers would (a lone sequential appender can
// never share a commit), measuring bytes sent to storage per event.
// "naive" is one plain bbolt commit per event at the same rate.
//
// The run lasts one fold interval and ends with the fold (Flush), so
// write_bytes/event is the steady-state cost: journal commits plus one
// fold of trickleRun's events into bbolt (fold_write_bytes/event is that
// fold's share, journal_write_bytes/event the rest).
func BenchmarkTrickleBytesPerEvent(b *testing.B) {
	for _, tc := range []struct {
		name   string
		window time.Duration
	}{{"window=200ms", 200 * time.Millisecond}, {"window=1s", time.Second}, {"naive", 0}} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				var s *Store
				var db *bolt.DB
				var v []byte
				var seq uint64
				var mu sync.Mutex
				if tc.window > 0 {
					o := benchOptions(b, tc.window)
					o.walFoldEvery = time.Hour // the one fold is the Flush at the end
					var err error
					if s, err = Open(o); err != nil {
						b.Fatal(err)
					}
				} else {
					db, v = naiveDB(b)
				}
				wb0, wc0 := procIO(b)
				var wg sync.WaitGroup
				n := int(trickleRun.Seconds() * trickleRate)
				next := time.Now()
				for range n {
					time.Sleep(time.Until(next))
					next = next.Add(time.Second / trickleRate)
					wg.Go(func() {
						if s != nil {
							if err := s.Append(ctx, benchEvent()); err != nil {
								b.Error(err)
							}
							return
						}
						mu.Lock()
						seq++
						naivePut(b, db, seq, v)
						mu.Unlock()
					})
				}
				wg.Wait()
				wbj, _ := procIO(b)
				if s != nil {
					if err := s.Flush(ctx); err != nil {
						b.Fatal(err)
					}
				}
				wb1, wc1 := procIO(b)
				commits := float64(n)
				if s != nil {
					commits = float64(s.walFrames.Load())
					_ = s.Close()
					b.ReportMetric(float64(wbj-wb0)/float64(n), "journal_write_bytes/event")
					b.ReportMetric(float64(wb1-wbj)/float64(n), "fold_write_bytes/event")
				} else {
					_ = db.Close()
				}
				b.ReportMetric(float64(wb1-wb0)/float64(n), "write_bytes/event")
				b.ReportMetric(float64(wc1-wc0)/float64(n), "wchar/event")
				b.ReportMetric(float64(n)/commits, "events/commit")
			}
		})
	}
}

// BenchmarkAppendLatencyP99: 1000 events/s paced, each Append from its own
// goroutine; latency is call to durable return.
func BenchmarkAppendLatencyP99(b *testing.B) {
	for _, window := range []time.Duration{20 * time.Millisecond, 10 * time.Millisecond} {
		b.Run("window="+window.String(), func(b *testing.B) {
			for range b.N {
				s, err := Open(benchOptions(b, window))
				if err != nil {
					b.Fatal(err)
				}
				const rate, run = 1000, 3 * time.Second
				n := int(run.Seconds() * rate)
				lat := make([]time.Duration, n)
				var wg sync.WaitGroup
				next := time.Now()
				for i := range n {
					time.Sleep(time.Until(next))
					next = next.Add(time.Second / rate)
					wg.Go(func() {
						t0 := time.Now()
						if err := s.Append(ctx, benchEvent()); err != nil {
							b.Error(err)
						}
						lat[i] = time.Since(t0)
					})
				}
				wg.Wait()
				st := s.Stats()
				_ = s.Close()
				slices.Sort(lat)
				ms := func(q float64) float64 { return float64(lat[int(q*float64(n-1))]) / 1e6 }
				b.ReportMetric(ms(0.50), "p50_ms")
				b.ReportMetric(ms(0.99), "p99_ms")
				b.ReportMetric(ms(1), "max_ms")
				b.ReportMetric(float64(st.Appended)/float64(max(st.Commits, 1)), "events/commit")
			}
		})
	}
}

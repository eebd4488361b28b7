package main

import (
	"context"
	"hash/crc32"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/store"
)

// BenchmarkStartupPhases splits start-to-ready on the 1M-event store into
// the steps edge/store's Open and the status page take, each timed alone
// on a fresh copy of the cached store (page cache warm):
//
//	bolt_open    bbolt's open: meta pages and the freelist
//	walk_records a read transaction over every record touching its bytes
//	             (a CRC over each value: what verify and load each do)
//	tx_check     bbolt's own consistency check (tx.Check) over every page
//	store_open   the whole store.Open: all of the above plus the journal
//	read_all     ReadRange over the whole log in pages of 512, decoding
//	             each event: what the status page does before /readyz
//
//	LINTEL_PERF=1 go test -run '^$' -bench StartupPhases -benchtime 3x ./cmd/lintel
//
// LINTEL_PROFILE=DIR also writes DIR/startup.cpu.pprof: a CPU profile of
// an in-process start (serve) until /readyz answers.
func BenchmarkStartupPhases(b *testing.B) {
	if os.Getenv("LINTEL_PERF") != "1" {
		b.Skip("set LINTEL_PERF=1: needs the cached 1,000,000-event store")
	}
	src, err := perfStore(1_000_000)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "events.db")
	if err := copyStore(src, path); err != nil {
		b.Fatal(err)
	}
	boltOpts := &bolt.Options{Timeout: time.Second, PageSize: 4096, ReadOnly: true}
	b.Run("bolt_open", func(b *testing.B) {
		for range b.N {
			db, err := bolt.Open(path, 0o600, boltOpts)
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
	b.Run("walk_records", func(b *testing.B) {
		db, err := bolt.Open(path, 0o600, boltOpts)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		b.ResetTimer()
		for range b.N {
			n := 0
			db.View(func(tx *bolt.Tx) error {
				return tx.Bucket([]byte("events")).ForEach(func(k, v []byte) error {
					_ = crc32.ChecksumIEEE(v)
					n++
					return nil
				})
			})
			b.ReportMetric(float64(n), "records")
		}
	})
	b.Run("tx_check", func(b *testing.B) {
		db, err := bolt.Open(path, 0o600, boltOpts)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		b.ResetTimer()
		for range b.N {
			db.View(func(tx *bolt.Tx) error {
				for err := range tx.Check() {
					b.Fatal(err)
				}
				return nil
			})
		}
	})
	b.Run("store_open", func(b *testing.B) {
		for range b.N {
			st, err := store.Open(store.Options{Path: path, Gateway: "gw-perf", Compound: "c-perf",
				Sinks: []string{"history"}, MaxBytes: 2 << 30, Logger: discard()})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			st.Close()
			b.StartTimer()
		}
	})
	b.Run("read_all", func(b *testing.B) {
		st, err := store.Open(store.Options{Path: path, Gateway: "gw-perf", Compound: "c-perf",
			Sinks: []string{"history"}, MaxBytes: 2 << 30, Logger: discard()})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		b.ResetTimer()
		for range b.N {
			var after uint64
			n := 0
			for {
				evs, err := st.ReadRange(after, 512)
				if err != nil {
					b.Fatal(err)
				}
				if len(evs) == 0 {
					break
				}
				n += len(evs)
				after = evs[len(evs)-1].Seq
			}
			b.ReportMetric(float64(n), "events")
		}
	})
	if pdir := os.Getenv("LINTEL_PROFILE"); pdir != "" {
		profileServe(b, dir, filepath.Join(pdir, "startup.cpu.pprof"))
	}
}

// profileServe runs the gateway in-process on the store in dir under the
// CPU profiler until /readyz answers 200.
func profileServe(b *testing.B, dir, out string) {
	port, err := freePort()
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse("perf.yaml", []byte("gateway: {id: gw-perf, compound: c-perf, data_dir: "+dir+"}\n"+
		"storage: {max_bytes: 2GiB}\nstatus: {listen: \"127.0.0.1:"+itoa(port)+"\"}\n"))
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(out)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	t0 := time.Now()
	pprof.StartCPUProfile(f)
	go func() { done <- serve(ctx, cfg, discard(), nil) }()
	for {
		resp, err := http.Get("http://127.0.0.1:" + itoa(port) + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	pprof.StopCPUProfile()
	b.Logf("in-process start to ready: %v; profile in %s", time.Since(t0), out)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

package city

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	bolt "go.etcd.io/bbolt"
)

// What the user gets from a drain is a durable cursor: events the
// platform has acknowledged at the application level and the gateway has
// recorded as delivered (a restart will not send them again). The
// benchmarks below count that, beside two baselines that stop at PUBACK
// and use no project code between bbolt and paho, in the same run:
//
//	go test -run '^$' -bench 'DrainDurable|BaselineRawBatcher|BaselineAsyncPaho' -benchtime 1x ./sync/city/

// BenchmarkDrainDurable drains a backlog (LINTEL_BENCH_EVENTS, default
// 200 000) with the default batch shape in ack_mode application, until the
// store's durable cursor equals the last seq. ackonly/*: the platform side
// is appAcker (checks each envelope's CRC, count and seqs, then acks
// {epoch, last_seq}); receiver/*: the reference Receiver with Ack and
// GapCheck, which also decodes and de-duplicates every event, on the same
// two cores.
func BenchmarkDrainDurable(b *testing.B) {
	n := benchEnv("LINTEL_BENCH_EVENTS", 200_000)
	for _, tc := range []struct {
		name             string
		gz, ref, nodelay bool
	}{
		{"ackonly/json", false, false, false}, {"ackonly/gzip", true, false, false}, {"receiver/json", false, true, false},
		{"nodelay/ackonly/json", false, false, true}, {"nodelay/ackonly/gzip", true, false, true}, {"nodelay/receiver/json", false, true, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			// nodelay/*: the broker sets TCP_NODELAY on its sockets. Without
			// it mosquitto's small packets (PUBACKs, the platform's acks on
			// their way to the gateway) wait for Nagle's algorithm behind
			// the peer's delayed ACK, ~40 ms, whenever the gateway's window
			// is full and it has nothing to send.
			if tc.nodelay {
				brokerExtra = "set_tcp_nodelay true"
			}
			br := startBroker(b, nil)
			brokerExtra = ""
			for range b.N {
				b.StopTimer()
				st := openStore(b, b.TempDir())
				appendEvents(b, st, n, 0)
				ctx, cancel := context.WithCancel(context.Background())
				if tc.ref {
					startReceiver(b, ctx, br, true, newCollector())
				} else {
					startAppAcker(b, ctx, br.url())
				}
				o := testOptions(br.url())
				d := DefaultOptions()
				o.Batch, o.Window, o.Gzip = d.Batch, d.Window, tc.gz
				o.AckMode = AckApplication
				o.AckTimeout = d.AckTimeout
				last := st.LastSeq()
				b.StartTimer()
				t0 := time.Now()
				s := runSink(b, ctx, st, o, nil)
				waitFor(b, 10*time.Minute, "durable cursor", func() bool { return st.Cursor("city") >= last })
				el := time.Since(t0)
				b.StopTimer()
				b.ReportMetric(float64(n)/el.Seconds(), "events/s")
				b.ReportMetric(float64(s.BytesSent.Load())/float64(s.EventsSent.Load()), "payload_B/event")
				b.ReportMetric(float64(s.Rewinds.Load()), "rewinds")
				cancel()
				st.Close()
			}
		})
	}
}

// startAppAcker is a platform that acknowledges at the application level
// without storing: for each events batch it finds the events array, checks
// its CRC-32 and the envelope's count and seqs (without decoding the
// events), and publishes {epoch, last_seq} on the gateway's ack topic.
func startAppAcker(t testing.TB, ctx context.Context, broker string) {
	t.Helper()
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(broker).SetClientID("app-acker").SetAutoReconnect(false).SetOrderMatters(false))
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("acker connect: %v", tok.Error())
	}
	var bad atomic.Uint64
	tok := c.Subscribe("lintel/v1/+/+/events/+", 1, func(_ mqtt.Client, m mqtt.Message) {
		p := m.Payload()
		if strings.HasSuffix(m.Topic(), "/"+EncGzip) {
			zr, err := gzip.NewReader(bytes.NewReader(p))
			if err != nil {
				bad.Add(1)
				return
			}
			if p, err = io.ReadAll(zr); err != nil {
				bad.Add(1)
				return
			}
		}
		epoch, last, err := checkEnvelope(p)
		if err != nil {
			bad.Add(1)
			t.Errorf("acker: %v", err)
			return
		}
		prefix := m.Topic()[:strings.LastIndex(m.Topic(), "/events/")]
		a, _ := json.Marshal(appAck{Epoch: epoch, Seq: last})
		c.Publish(prefix+"/ack", 1, false, a)
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("acker subscribe: %v", tok.Error())
	}
	t.Cleanup(func() {
		c.Disconnect(100)
		if n := bad.Load(); n > 0 {
			t.Errorf("acker: %d bad batches", n)
		}
	})
	go func() { <-ctx.Done(); c.Disconnect(0) }()
}

// checkEnvelope checks a batch's integrity the cheap way: the head decoded
// alone, the CRC over the exact bytes of the events array, the count of
// top-level objects in it and the seqs of the first and the last.
func checkEnvelope(p []byte) (epoch string, last uint64, err error) {
	i := bytes.Index(p, []byte(`,"events":[`))
	j := bytes.LastIndex(p, []byte(`],"crc32":`))
	if i < 0 || j < i {
		return "", 0, fmt.Errorf("no events array")
	}
	var head Batch
	if err := json.Unmarshal(append(append([]byte(nil), p[:i]...), '}'), &head); err != nil {
		return "", 0, err
	}
	arr := p[i+len(`,"events":`) : j+1]
	sum, err := strconv.ParseUint(string(bytes.TrimSuffix(p[j+len(`],"crc32":`):], []byte("}"))), 10, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE(arr) {
		return "", 0, fmt.Errorf("crc32 mismatch")
	}
	if head.Schema != BatchSchema || head.Count != bytes.Count(arr, []byte(`{"id":`)) {
		return "", 0, fmt.Errorf("schema %q or count %d wrong", head.Schema, head.Count)
	}
	if !bytes.HasPrefix(arr, []byte(`[{"id":`)) || !bytes.Contains(arr[:min(len(arr), 200)], []byte(`"seq":`+strconv.FormatUint(head.FirstSeq, 10)+`,`)) {
		return "", 0, fmt.Errorf("first seq %d not at the start", head.FirstSeq)
	}
	if !bytes.Contains(arr[bytes.LastIndex(arr, []byte(`{"id":`)):], []byte(`"seq":`+strconv.FormatUint(head.LastSeq, 10)+`,`)) {
		return "", 0, fmt.Errorf("last seq %d not at the end", head.LastSeq)
	}
	return head.Epoch, head.LastSeq, nil
}

// storedJSON opens a closed store file with bbolt alone and returns every
// record's stored JSON, parsed from the layout documented in
// edge/store/record.go (versions 1 and 2), not with the store's code.
func storedJSON(b *testing.B, path string) [][]byte {
	b.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var out [][]byte
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("events")).ForEach(func(k, v []byte) error {
			body := 22
			if v[0] == 2 {
				body = 24 + int(v[23])
			}
			out = append(out, append([]byte(nil), v[body:]...))
			_ = binary.BigEndian.Uint64(k)
			return nil
		})
	})
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// baselineBacklog builds the backlog as BenchmarkDrain does and returns
// the path of the closed store file (every record folded into bbolt).
func baselineBacklog(b *testing.B, n int) string {
	b.Helper()
	dir := b.TempDir()
	st := openStore(b, dir)
	appendEvents(b, st, n, 0)
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	return filepath.Join(dir, "events.db")
}

// BenchmarkBaselineRawBatcher is the ceiling for a batcher: it reads the
// stored JSON straight from bbolt (inside the timed part), wraps 500
// events at a time in an envelope of the same shape with a CRC-32 over the
// events array, and publishes with paho, QoS 1, 8 batches in flight, until
// every batch is PUBACKed. No cursor, no platform ack.
func BenchmarkBaselineRawBatcher(b *testing.B) {
	n := benchEnv("LINTEL_BENCH_EVENTS", 200_000)
	br := startBroker(b, nil)
	path := baselineBacklog(b, n)
	for range b.N {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(br.url()).SetClientID("raw-batcher").SetAutoReconnect(false).SetCleanSession(true))
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			b.Fatal(tok.Error())
		}
		b.ResetTimer()
		t0 := time.Now()
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		var window []mqtt.Token
		var buf []byte
		sent := 0
		flush := func(first, last uint64, k int) {
			buf = append(buf, ']')
			sum := crc32.ChecksumIEEE(buf[bytes.IndexByte(buf, '['):])
			buf = strconv.AppendUint(append(buf, `,"crc32":`...), uint64(sum), 10)
			buf = append(buf, '}')
			window = append(window, c.Publish("lintel/v1/c-01/gw-01/events/json", 1, false, buf))
			if len(window) == 8 {
				if window[0].Wait(); window[0].Error() != nil {
					b.Fatal(window[0].Error())
				}
				window = window[1:]
			}
			sent += k
			buf = nil
		}
		err = db.View(func(tx *bolt.Tx) error {
			var first, last uint64
			k := 0
			cur := tx.Bucket([]byte("events")).Cursor()
			for key, v := cur.First(); key != nil; key, v = cur.Next() {
				seq := binary.BigEndian.Uint64(key)
				if k == 0 {
					first = seq
					buf = fmt.Appendf(make([]byte, 0, 256<<10), `{"schema":"%s","lane":"events","first_seq":%d,"events":[`, BatchSchema, first)
				} else {
					buf = append(buf, ',')
				}
				body := 22
				if v[0] == 2 {
					body = 24 + int(v[23])
				}
				buf = append(buf, v[body:]...)
				last = seq
				if k++; k == 500 {
					flush(first, last, k)
					k = 0
				}
			}
			if k > 0 {
				flush(first, last, k)
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range window {
			if t.Wait(); t.Error() != nil {
				b.Fatal(t.Error())
			}
		}
		el := time.Since(t0)
		b.StopTimer()
		db.Close()
		if sent != n {
			b.Fatalf("sent %d of %d", sent, n)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "events/s")
		c.Disconnect(100)
	}
}

// BenchmarkBaselineAsyncPaho is a plain unbatched publisher: each stored
// event (its JSON bytes, read from bbolt before the timer) its own QoS 1
// message, with up to inflight messages awaiting their PUBACK, until all
// are PUBACKed.
func BenchmarkBaselineAsyncPaho(b *testing.B) {
	n := benchEnv("LINTEL_BENCH_EVENTS", 200_000)
	br := startBroker(b, nil)
	msgs := storedJSON(b, baselineBacklog(b, n))
	for _, inflight := range []int{100, 1000} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			for range b.N {
				c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(br.url()).SetClientID("async-paho").SetAutoReconnect(false).SetCleanSession(true).SetMaxResumePubInFlight(inflight))
				if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					b.Fatal(tok.Error())
				}
				b.ResetTimer()
				t0 := time.Now()
				sem := make(chan struct{}, inflight)
				var wg sync.WaitGroup
				var failed atomic.Uint64
				for _, m := range msgs {
					sem <- struct{}{}
					tok := c.Publish("lintel/v1/c-01/gw-01/event", 1, false, m)
					wg.Add(1)
					go func() {
						defer wg.Done()
						if tok.Wait(); tok.Error() != nil {
							failed.Add(1)
						}
						<-sem
					}()
				}
				wg.Wait()
				el := time.Since(t0)
				b.StopTimer()
				if failed.Load() > 0 {
					b.Fatalf("%d publishes failed", failed.Load())
				}
				b.ReportMetric(float64(len(msgs))/el.Seconds(), "events/s")
				c.Disconnect(100)
			}
		})
	}
}

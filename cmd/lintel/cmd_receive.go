package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/sync/city"
)

func init() {
	register(command{name: "receive", summary: "reference city-platform receiver: subscribe, check, de-duplicate, write JSON lines, ack", run: runReceive})
}

// runReceive is what a platform engineer runs to see the uplink contract
// end to end (docs/city-platform.md).
func runReceive(ctx context.Context, args []string, io stdio) error {
	fs := newFlags("receive", io)
	broker := fs.String("broker", "", "broker URL: mqtts://host:8883 or tcp://host:1883 (required)")
	filter := fs.String("topic-prefix", "lintel/v1/+/+", "gateway topic prefix filter (+ matches one level)")
	group := fs.String("share-group", "lintel-receivers", "MQTT shared subscription group ($share/<group>/…); empty = plain subscription")
	out := fs.String("out", "-", "JSON lines output file (appended; - = stdout)")
	ack := fs.Bool("ack", false, "send application acks {epoch, seq} after each batch is written and synced")
	gapCheck := fs.Bool("gap-check", true, "with -ack: refuse (no ack) a batch that follows a lost one, so each gateway's stream stays complete and in order")
	clientID := fs.String("client-id", "", "MQTT client id (default: random)")
	user := fs.String("username", "", "MQTT username")
	passFile := fs.String("password-file", "", "file holding the MQTT password")
	ca := fs.String("ca-file", "", "CA bundle (PEM) for the broker certificate")
	cert := fs.String("cert-file", "", "client certificate (mTLS)")
	key := fs.String("key-file", "", "client key (mTLS)")
	insecure := fs.Bool("insecure-skip-verify", false, "do not verify the broker certificate (testing only)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *broker == "" {
		return usageErr("-broker is required")
	}
	log := slog.New(slog.NewTextHandler(io.err, nil))
	o := city.ReceiverOptions{
		Broker: *broker, Filter: *filter, ShareGroup: *group, ClientID: *clientID,
		Username: *user, Ack: *ack, GapCheck: *gapCheck, Logger: log,
	}
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		if err != nil {
			return fmt.Errorf("read password file: %w", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	if strings.HasPrefix(*broker, "mqtts://") || strings.HasPrefix(*broker, "ssl://") || strings.HasPrefix(*broker, "tls://") {
		tc, err := city.TLSOptions{CAFile: *ca, CertFile: *cert, KeyFile: *key, InsecureSkipVerify: *insecure}.Config()
		if err != nil {
			return err
		}
		if *insecure {
			fmt.Fprintln(io.err, "警告：未验证服务器证书 WARNING: broker certificate NOT verified")
		}
		o.TLS = tc
	}
	var (
		mu sync.Mutex
		w  *bufio.Writer
	)
	if *out == "-" {
		w = bufio.NewWriter(io.out)
		o.Sync = func() error { mu.Lock(); defer mu.Unlock(); return w.Flush() }
	} else {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o640)
		if err != nil {
			return fmt.Errorf("open output: %w", err)
		}
		defer f.Close()
		w = bufio.NewWriterSize(f, 256<<10)
		o.Sync = func() error {
			mu.Lock()
			defer mu.Unlock()
			if err := w.Flush(); err != nil {
				return err
			}
			return f.Sync() // an application ack promises the events are on disk
		}
		defer func() { _ = o.Sync() }()
		o.Out = lockedWriter{&mu, w}
		r, err := city.NewReceiver(o)
		if err != nil {
			return err
		}
		if _, err := f.Seek(0, 0); err == nil {
			if err := r.LoadSeen(f); err != nil {
				return fmt.Errorf("read existing output: %w", err)
			}
		}
		return receive(ctx, r, o, io)
	}
	o.Out = lockedWriter{&mu, w}
	defer func() { _ = o.Sync() }()
	r, err := city.NewReceiver(o)
	if err != nil {
		return err
	}
	return receive(ctx, r, o, io)
}

func receive(ctx context.Context, r *city.Receiver, o city.ReceiverOptions, io stdio) error {
	fmt.Fprintf(io.err, "接收中 receiving from %s, topics %s/{events,alerts}/+ (share group %q, ack %v)\n",
		config.RedactURL(o.Broker), o.Filter, o.ShareGroup, o.Ack)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(10 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				fmt.Fprintf(io.err, "批次 batches %d, 新事件 new events %d, 重复 duplicates %d, 坏批次 bad batches %d, 缺口 gaps %d, 确认 acks %d\n",
					r.Batches.Load(), r.Events.Load(), r.Duplicates.Load(), r.BadBatches.Load(), r.Gaps.Load(), r.AcksSent.Load())
			}
		}
	}()
	err := r.Run(ctx)
	close(done)
	wg.Wait()
	return err
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bufio.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

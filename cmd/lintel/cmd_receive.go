package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/sync/city"
)

func init() {
	register(command{name: "receive", summary: "reference city-platform receiver: subscribe, check, de-duplicate, write JSON lines, ack; keygen and sign for signed commands", run: runReceive})
}

// runReceive is what a platform engineer runs to see the uplink contract
// end to end (docs/city-platform.md).
func runReceive(ctx context.Context, args []string, io stdio) error {
	if len(args) > 0 {
		if sc, ok := receiveCommands[args[0]]; ok {
			return sc.run(ctx, args[1:], io)
		}
	}
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
		return usageErr("-broker is required, e.g. -broker mqtts://platform.example:8883 or -broker tcp://127.0.0.1:1883")
	}
	// Ctrl-C or SIGTERM ends the run cleanly: the output is flushed and
	// synced, and the final summary line says what was received.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The logger (the receiver's goroutines) and the progress lines share
	// stderr: one lock keeps their lines whole.
	io.err = &syncWriter{w: io.err}
	log := slog.New(slog.NewTextHandler(io.err, nil))
	o := city.ReceiverOptions{
		Broker: *broker, Filter: *filter, ShareGroup: *group, ClientID: *clientID,
		Username: *user, Ack: *ack, GapCheck: *gapCheck, Logger: log,
	}
	seqs := &gatewaySeqs{last: map[string]uint64{}}
	o.OnEvent = seqs.onEvent
	if *passFile != "" {
		b, err := os.ReadFile(*passFile)
		if err != nil {
			return fmt.Errorf("read password file: %w (check the -password-file path and its permissions)", err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
	}
	if strings.HasPrefix(*broker, "mqtts://") || strings.HasPrefix(*broker, "ssl://") || strings.HasPrefix(*broker, "tls://") {
		tc, err := city.TLSOptions{CAFile: *ca, CertFile: *cert, KeyFile: *key, InsecureSkipVerify: *insecure}.Config()
		if err != nil {
			return fmt.Errorf("%w (check -ca-file, -cert-file and -key-file: PEM files, the key matching the certificate)", err)
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
			return fmt.Errorf("open output: %w (check the -out path, or use -out - for stdout)", err)
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
				return fmt.Errorf("read existing output: %w (is -out a JSON lines file written by lintel receive? give a new file otherwise)", err)
			}
		}
		return receive(ctx, r, o, io, seqs)
	}
	o.Out = lockedWriter{&mu, w}
	defer func() { _ = o.Sync() }()
	r, err := city.NewReceiver(o)
	if err != nil {
		return err
	}
	return receive(ctx, r, o, io, seqs)
}

func receive(ctx context.Context, r *city.Receiver, o city.ReceiverOptions, io stdio, seqs *gatewaySeqs) error {
	fmt.Fprintf(io.err, "接收中 receiving from %s, topics %s/{events,alerts}/+ (share group %q, ack %v)\n",
		config.RedactURL(o.Broker), o.Filter, o.ShareGroup, o.Ack)
	done := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(receiveProgressEvery)
		defer t.Stop()
		prevAt, prevEvents := start, r.Events.Load()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			now, evs := time.Now(), r.Events.Load()
			rate := float64(evs-prevEvents) / now.Sub(prevAt).Seconds()
			prevAt, prevEvents = now, evs
			fmt.Fprintf(io.err, "%s; 网关 gateways: %s\n", receiveSummary(r, rate), seqs.String())
			if r.Batches.Load() == 0 {
				fmt.Fprintln(io.err, "  尚未收到任何批次：检查 -broker、用户名/证书和 -topic-prefix，并确认网关在运行 no batch yet: check -broker, credentials/certificates and -topic-prefix, and that gateways are running")
			}
		}
	}()
	err := r.Run(ctx)
	close(done)
	wg.Wait()
	// The final line: what this run received and whether each stream is
	// complete, with where the undeclared holes are.
	rate := float64(r.Events.Load()) / max(time.Since(start).Seconds(), 1e-3)
	fmt.Fprintf(io.err, "结束 final: %s; 网关 gateways: %s\n", receiveSummary(r, rate), seqs.String())
	for _, st := range r.Streams() {
		if st.Holes == 0 {
			continue
		}
		var b strings.Builder
		for i, h := range st.HoleRanges {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%d..%d", h[0], h[1])
		}
		if st.HoleRangesCapped {
			b.WriteString(", …")
		}
		fmt.Fprintf(io.err, "  未声明缺口 undeclared holes %s epoch %s: %d seqs in %d..%d: %s\n",
			st.Gateway, st.Epoch, st.Holes, st.FirstSeq, st.LastSeq, b.String())
	}
	return err
}

// receiveSummary is the counters part of the progress and final lines.
// "gap refusals" are batches the gap check refused (resent later); the
// seq accounting says whether each stream is complete: seqs received,
// seqs the gateway declared missing (by reason), and undeclared holes,
// which stay 0 on a healthy gateway once its stream has caught up.
func receiveSummary(r *city.Receiver, rate float64) string {
	reasons := r.DeclaredByReason()
	keys := make([]string, 0, len(reasons))
	for k := range reasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	by := ""
	for i, k := range keys {
		if i == 0 {
			by = " ("
		} else {
			by += ", "
		}
		by += fmt.Sprintf("%s %d", k, reasons[k])
	}
	if by != "" {
		by += ")"
	}
	return fmt.Sprintf("批次 batches %d, 新事件 new events %d (%.0f/s), 重复 duplicates %d, 坏批次 bad batches %d, 断链拒收 gap refusals %d, 确认 acks %d; "+
		"序号 seqs: 收到 received %d, 声明缺失 declared missing %d%s, 未声明缺口 undeclared holes %d",
		r.Batches.Load(), r.Events.Load(), rate, r.Duplicates.Load(), r.BadBatches.Load(), r.Gaps.Load(), r.AcksSent.Load(),
		r.Received.Load(), r.Declared.Load(), by, r.Holes.Load())
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

// receiveProgressEvery paces the progress line: a platform engineer
// watching a backlog drain sees the rate and each gateway's position.
var receiveProgressEvery = 10 * time.Second

// gatewaySeqs keeps each gateway's highest seq received on the events
// lane, for the progress line.
type gatewaySeqs struct {
	mu   sync.Mutex
	last map[string]uint64
}

func (g *gatewaySeqs) onEvent(lane string, ev *event.Event, _ time.Time) {
	if lane != city.LaneEvents {
		return
	}
	g.mu.Lock()
	g.last[ev.Gateway] = max(g.last[ev.Gateway], ev.Seq)
	g.mu.Unlock()
}

// String lists "gw seq N" for up to 8 gateways, then how many more.
func (g *gatewaySeqs) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.last) == 0 {
		return "—"
	}
	names := make([]string, 0, len(g.last))
	for n := range g.last {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for i, n := range names {
		if i == 8 {
			fmt.Fprintf(&b, ", +%d more", len(names)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s seq %d", n, g.last[n])
	}
	return b.String()
}

package city

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

// mosquittoPath finds the broker or skips (fails in CI).
func mosquittoPath(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("mosquitto not found (CI installs it: apt-get install mosquitto)")
	}
	t.Skip("mosquitto not found: apt-get install mosquitto mosquitto-clients")
	return ""
}

// freePort returns a port a broker can listen on. Ports are taken below
// the kernel's ephemeral range (32768 and up on Linux): a port from
// Listen(":0") is free only until some client's outgoing connection gets
// it as its source port, and then mosquitto fails with "Address already
// in use" (seen in CI with many tests connecting at once).
func freePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		p := 20000 + int(portNext.Add(1)%12000)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port between 20000 and 32000")
	return 0
}

// portNext walks the port range from a random start, so that test
// binaries running at once rarely try the same ports.
var portNext = func() *atomic.Int64 {
	var a atomic.Int64
	a.Store(mrand.Int64N(12000))
	return &a
}()

// certs holds a test PKI written to dir.
type certs struct {
	dir                           string
	ca, serverCrt, serverKey      string
	clientCrt, clientKey, otherCA string
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newCA(t testing.TB, cn string) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key, der
}

func issue(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, server bool, crt, keyPath string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tpl.DNSNames = []string{"localhost"}
		tpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, crt, "CERTIFICATE", der)
	kd, _ := x509.MarshalECPrivateKey(key)
	writePEM(t, keyPath, "EC PRIVATE KEY", kd)
}

func newCerts(t testing.TB) *certs {
	t.Helper()
	dir := t.TempDir()
	c := &certs{dir: dir}
	ca, caKey, der := newCA(t, "lintel-test-ca")
	c.ca = filepath.Join(dir, "ca.crt")
	writePEM(t, c.ca, "CERTIFICATE", der)
	c.serverCrt, c.serverKey = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	issue(t, ca, caKey, "localhost", true, c.serverCrt, c.serverKey)
	c.clientCrt, c.clientKey = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	issue(t, ca, caKey, "gw-01", false, c.clientCrt, c.clientKey)
	_, _, oder := newCA(t, "some-other-ca")
	c.otherCA = filepath.Join(dir, "other-ca.crt")
	writePEM(t, c.otherCA, "CERTIFICATE", oder)
	return c
}

// broker is a mosquitto run by a test.
type broker struct {
	t                   testing.TB
	bin, conf, logPath  string
	port, tlsPort, mtls int
	authPort            int // TLS + username/password, 0 without mosquitto_passwd
	mu                  sync.Mutex
	cmd                 *exec.Cmd
}

func (b *broker) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", b.port) }

// startBroker starts mosquitto with a plain listener and, given certs, a
// TLS listener and an mTLS listener (client certificate required).
// brokerExtra is added to every test broker's configuration (a
// benchmark sets set_tcp_nodelay to compare).
var brokerExtra = ""

func startBroker(t testing.TB, c *certs) *broker {
	t.Helper()
	b := &broker{t: t, bin: mosquittoPath(t), port: freePort(t)}
	dir := t.TempDir()
	var conf strings.Builder
	if os.Geteuid() == 0 {
		// Started as root, mosquitto drops to user mosquitto and then
		// cannot read the keys in the test's temp dir.
		conf.WriteString("user root\n")
	}
	// Per-listener settings: the password listener refuses anonymous
	// clients while the others accept them.
	fmt.Fprintf(&conf, `per_listener_settings true
persistence false
log_dest stdout
log_type error
log_type warning
log_type notice
connection_messages true
max_queued_messages 1000000
max_inflight_messages 100
%s
listener %d 127.0.0.1
allow_anonymous true
`, brokerExtra, b.port)
	if c != nil {
		b.tlsPort, b.mtls = freePort(t), freePort(t)
		fmt.Fprintf(&conf, "listener %d 127.0.0.1\nallow_anonymous true\ncafile %s\ncertfile %s\nkeyfile %s\ntls_version tlsv1.2\n", b.tlsPort, c.ca, c.serverCrt, c.serverKey)
		fmt.Fprintf(&conf, "listener %d 127.0.0.1\nallow_anonymous true\ncafile %s\ncertfile %s\nkeyfile %s\ntls_version tlsv1.2\nrequire_certificate true\n", b.mtls, c.ca, c.serverCrt, c.serverKey)
		if pw, err := exec.LookPath("mosquitto_passwd"); err == nil {
			pwFile := filepath.Join(dir, "passwd")
			if out, err := exec.Command(pw, "-c", "-b", pwFile, "gw-01", "s3cret-pw").CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v %s", err, out)
			}
			b.authPort = freePort(t)
			fmt.Fprintf(&conf, "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\ncafile %s\ncertfile %s\nkeyfile %s\ntls_version tlsv1.2\n", b.authPort, pwFile, c.ca, c.serverCrt, c.serverKey)
		}
	}
	b.conf = filepath.Join(dir, "mosquitto.conf")
	b.logPath = filepath.Join(dir, "mosquitto.log")
	if err := os.WriteFile(b.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.kill)
	return b
}

func (b *broker) start() {
	b.t.Helper()
	lf, err := os.OpenFile(b.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		b.t.Fatal(err)
	}
	cmd := exec.Command(b.bin, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	lf.Close()
	go cmd.Wait() //nolint:errcheck // reaped; kill waits via ProcessState
	b.mu.Lock()
	b.cmd = cmd
	b.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(b.logPath)
			b.t.Fatalf("mosquitto did not start: %v\n%s", err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill SIGKILLs the broker: no clean session end, no will suppression.
func (b *broker) kill() {
	b.mu.Lock()
	cmd := b.cmd
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", b.port), 100*time.Millisecond); err != nil {
			return
		} else {
			conn.Close()
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// proxy is a TCP relay between the sink and the broker that the test
// can sever, at once or after a number of client→broker bytes (to cut a
// connection in the middle of a batch).
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	budget int64 // client→broker bytes left before a cut; <0 = unlimited
	cuts   int
	up     int64 // client→broker bytes relayed
	wg     sync.WaitGroup
}

func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, budget: -1}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) url() string { return "tcp://" + p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[u] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go func() { defer p.wg.Done(); p.pipe(u, c, true) }()
		go func() { defer p.wg.Done(); p.pipe(c, u, false) }()
	}
}

func (p *proxy) pipe(dst, src net.Conn, up bool) {
	defer func() { dst.Close(); src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && up {
			p.mu.Lock()
			p.up += int64(n)
			if p.budget >= 0 {
				if int64(n) >= p.budget {
					n = int(p.budget)
					p.budget = -1
					p.mu.Unlock()
					dst.Write(buf[:n]) //nolint:errcheck
					p.cut()
					return
				}
				p.budget -= int64(n)
			}
			p.mu.Unlock()
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes every relayed connection now.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.cuts++
}

// cutAfter severs the connections once n more bytes went up.
func (p *proxy) cutAfter(n int64) {
	p.mu.Lock()
	p.budget = n
	p.mu.Unlock()
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("LINTEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openStore(t testing.TB, dir string, sinks ...string) *store.Store {
	t.Helper()
	// The city sink alone, as on a real gateway: acked records are deleted,
	// so resends and crash restarts see only what was not confirmed.
	st, err := store.Open(store.Options{
		Path: filepath.Join(dir, "events.db"), Gateway: "gw-01", Compound: "c-01",
		Sinks: append([]string{"city"}, sinks...), Logger: testLogger(t), MaxBytes: 2 << 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// appendEvents appends n events in chunks; every alertEvery-th is a
// critical alert (0 = none). It returns their ids.
func appendEvents(t testing.TB, st *store.Store, n, alertEvery int) []string {
	t.Helper()
	ids := make([]string, 0, n)
	const chunk = 1000
	for done := 0; done < n; {
		k := min(chunk, n-done)
		evs := make([]*event.Event, k)
		for i := range evs {
			idx := done + i + 1
			if alertEvery > 0 && idx%alertEvery == 0 {
				evs[i] = event.New(event.GateForcedOpen)
				evs[i].Severity = event.Critical
			} else {
				evs[i] = event.New(event.DoorOpened)
			}
			evs[i].Device = "door-3-1-301"
			evs[i].Place = &event.Place{Building: "3", Unit: "1", Room: "301"}
			evs[i].WithData(map[string]any{"contact": "open", "battery_mv": 2950 + idx%50})
		}
		if err := st.Append(context.Background(), evs...); err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			ids = append(ids, e.ID)
		}
		done += k
	}
	return ids
}

// collector gathers what a receiver wrote.
type collector struct {
	mu       sync.Mutex
	ids      map[string]int
	order    []uint64 // new events-lane seqs, in arrival order
	alerts   map[string]time.Time
	lastSeen time.Time
}

func newCollector() *collector {
	return &collector{ids: map[string]int{}, alerts: map[string]time.Time{}}
}

func (c *collector) onEvent(lane string, ev *event.Event, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids[ev.ID]++
	if lane == LaneEvents {
		c.order = append(c.order, ev.Seq)
	} else {
		c.alerts[ev.ID] = at
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.ids)
}

// progress is count for waitProgress.
func (c *collector) progress() uint64 { return uint64(c.count()) }

func startReceiver(t testing.TB, ctx context.Context, b *broker, ack bool, col *collector) *Receiver {
	t.Helper()
	r, err := NewReceiver(ReceiverOptions{
		Broker: b.url(), Filter: "lintel/v1/+/+", ShareGroup: "platform", Ack: ack, GapCheck: true,
		OnEvent: col.onEvent, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(wg.Wait)
	recvDiag = func() string {
		return fmt.Sprintf("(receiver: subscribed %v batches %d events %d dups %d bad %d gap refusals %d acks %d)",
			r.Subscribed(), r.Batches.Load(), r.Events.Load(), r.Duplicates.Load(), r.BadBatches.Load(), r.Gaps.Load(), r.AcksSent.Load())
	}
	t.Cleanup(func() { recvDiag = nil })
	// Until both lanes are subscribed, the broker drops what a gateway
	// publishes (and in puback mode the gateway counts it as delivered).
	waitFor(t, 10*time.Second, "receiver subscribed", r.Subscribed)
	return r
}

// diag and recvDiag, if set by a test, add the sink's and the
// receiver's state to waitFor's failure message.
var diag, recvDiag func() string

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			extra := ""
			if diag != nil {
				extra = diag()
			}
			if recvDiag != nil {
				extra += " " + recvDiag()
			}
			t.Fatalf("timed out after %s waiting for %s %s", timeout, what, extra)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitProgress polls done until it holds, like waitFor, but bounds the
// wait by progress rather than by a rate: it fails only when progress has
// not grown for stallTimeout (or after drainLimit in all). A drain on a
// loaded machine may be slow; it must not stop.
func waitProgress(t testing.TB, what string, progress func() uint64, done func() bool) {
	t.Helper()
	start := time.Now()
	last, lastAt := progress(), start
	for !done() {
		now := time.Now()
		if p := progress(); p != last {
			last, lastAt = p, now
		}
		if now.Sub(lastAt) > stallTimeout || now.Sub(start) > drainLimit {
			extra := ""
			if diag != nil {
				extra = diag()
			}
			if recvDiag != nil {
				extra += " " + recvDiag()
			}
			t.Fatalf("waiting for %s: no progress for %s (at %d, after %s in all) %s", what, now.Sub(lastAt).Round(time.Millisecond), last, now.Sub(start).Round(time.Millisecond), extra)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stallTimeout is longer than anything the sink may legitimately wait
// through without delivering: a stuck write (30 s write timeout) and a
// reconnect. drainLimit catches a drain that creeps forever.
const (
	stallTimeout = 45 * time.Second
	drainLimit   = 10 * time.Minute
)

// checkStream checks the receiver's seq accounting of a gateway's one
// stream: seqs 1..last all received or declared (by the given reasons
// only), no undeclared hole.
func checkStream(t testing.TB, r *Receiver, epoch string, last uint64, reasons ...string) StreamReport {
	t.Helper()
	streams := r.Streams()
	if len(streams) != 1 || streams[0].Epoch != epoch {
		t.Fatalf("streams %+v, want one of epoch %s", streams, epoch)
	}
	rep := streams[0]
	if rep.FirstSeq != 1 || rep.LastSeq != last || rep.Holes != 0 || rep.Received+rep.Declared != last {
		t.Errorf("stream %+v: want seqs 1..%d received or declared, no hole", rep, last)
	}
	for k := range rep.ByReason {
		if !slices.Contains(reasons, k) {
			t.Errorf("seqs declared missing for %q (%d), want only %v", k, rep.ByReason[k], reasons)
		}
	}
	if r.BadDeclarations.Load() != 0 {
		t.Errorf("%d malformed declarations", r.BadDeclarations.Load())
	}
	return rep
}

// checkDelivery is the pass criterion: every id arrived, each new event
// exactly once (duplicates were only ever the same id, dropped by the
// receiver), and the events lane in increasing seq order.
func checkDelivery(t testing.TB, ids []string, col *collector, r *Receiver) {
	t.Helper()
	col.mu.Lock()
	defer col.mu.Unlock()
	missing := 0
	for _, id := range ids {
		if col.ids[id] == 0 {
			if missing < 5 {
				t.Errorf("event %s never reached the receiver", id)
			}
			missing++
		}
	}
	for id, n := range col.ids {
		if n != 1 {
			t.Errorf("event %s written %d times", id, n)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d events missing", missing, len(ids))
	}
	for i := 1; i < len(col.order); i++ {
		if col.order[i] <= col.order[i-1] {
			t.Fatalf("events lane out of order at %d: seq %d after %d", i, col.order[i], col.order[i-1])
		}
	}
	if v := r.OrderViolations.Load(); v != 0 {
		t.Errorf("receiver saw %d order violations", v)
	}
	if v := r.BadBatches.Load(); v != 0 {
		t.Errorf("receiver saw %d bad batches", v)
	}
}

func testOptions(brokerURL string) Options {
	o := DefaultOptions()
	o.Broker = brokerURL
	o.Batch.MaxEvents = 200
	o.Batch.MaxBytes = 64 << 10
	o.Batch.Linger = 0
	o.Reconnect.Min = 20e6
	o.Reconnect.Max = 300e6
	o.AckTimeout = 2e9
	o.StatusInterval = 1e9
	o.KeepAlive = 5e9
	return o
}

func runSink(t testing.TB, ctx context.Context, st Log, o Options, mod func(*Deps)) *Sink {
	t.Helper()
	d := Deps{Name: "city", Gateway: "gw-01", Compound: "c-01", Log: st, Logger: testLogger(t), Version: "test"}
	if mod != nil {
		mod(&d)
	}
	s, err := New(d, o)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.Run(ctx); err != nil {
			t.Error(err)
		}
	}()
	t.Cleanup(wg.Wait)
	diag = func() string {
		return fmt.Sprintf("(sink: batches %d events %d confirmed %d reconnects %d rewinds %d; log last %d cursor %d)",
			s.BatchesSent.Load(), s.EventsSent.Load(), s.Confirmed(), s.Reconnects.Load(), s.Rewinds.Load(), st.LastSeq(), st.Cursor("city"))
	}
	return s
}

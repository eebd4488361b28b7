package main

// The harness of the whole-daemon reliability suite (issue 17, item 8;
// research/reliability.md §1.9). It runs the real lintel binary, built once
// per test run with -tags faulttest so that it writes its durability tap
// (edge/tap_faulttest.go), against a real mosquitto, with `lintel sim
// serial` as the load, and checks what reached a listener of the test's own
// that shares no code with sync/city. Scenarios live in the other
// reliability_*_test.go files and combine these helpers:
//
//	r := newRelRig(t, "name", relRigOptions{Rate: 500})
//	r.load.start()
//	r.daemon.start()
//	r.mustReady()
//	… inject faults: r.kill() (SIGKILL the daemon), r.broker.kill(),
//	  r.gate.shut() (cut the gateway's path to the broker), …
//	rep := r.finish(&relReport{Scenario: "name"})  // drain, SIGTERM, oracle
//
// Files: reliability_procs_test.go (broker, gate, daemon, load),
// reliability_listener_test.go, reliability_oracle_test.go (oracle, tap,
// store dump), reliability_selfcheck_test.go (the checker's own tests:
// each fault the oracle must catch), and the scenarios
// reliability_kill_test.go (T1), reliability_outage_test.go (T6) and
// reliability_storage_test.go (journal damage, full disks).
//
// The oracle, after Kafka's validate_delivery and Jepsen's set workload:
//
//   - the tap is the "ok" set: events the daemon reported durable. Every one
//     of them reached the listener on the events lane, or is still in the
//     store behind the sink's cursor; only events made durable after the
//     final SIGTERM (gateway.stopped) may be;
//   - no id ever carries two contents: not in the tap (an id reused after
//     a crash), not at the listener, not in the store;
//   - an independent dump of the store (bbolt opened directly, the record
//     layout decoded here from edge/store/record.go's comment) passes
//     bbolt's own consistency check and every record's CRC-32C, agrees with
//     the listener on every id, and holds nothing at or below the sink's
//     cursor that the listener did not receive;
//   - seqs are contiguous within the epoch except where a store event
//     (store.dropped, store.seq_skipped) declares the range, and no
//     store.lost arrives — unless the scenario damages the journal itself
//     (LossExpected): there a store.lost may declare ranges too, and a
//     tapped event may be missing only inside one;
//   - every start reached /readyz.
//
// Events the listener got but the tap never listed (durable, not yet
// reported when the process died) are "unknown": allowed either way.
//
// The work directory (tap, the listener's raw history, daemon, simulator
// and broker logs, the store) is kept when a test fails, or always with
// LINTEL_REL_KEEP=1, so that a failure can be replayed.

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"
)

const (
	relGateway  = "gw-rel"
	relCompound = "c-rel"
	relHint     = "apt-get install -y mosquitto mosquitto-clients"
)

// relSoak reports whether the long forms run (make soak).
func relSoak() bool { return os.Getenv("LINTEL_SOAK") == "1" }

// relEnvInt reads a positive integer override from the environment.
func relEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// relTool finds a peer program (mosquitto lives in /usr/sbin, which is
// often not on a user's PATH). Missing, it skips, or fails under CI.
func relTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed (CI installs it: %s)", name, relHint)
	}
	t.Skipf("%s not installed; %s", name, relHint)
	return ""
}

// relFreePort returns a port for a broker or the page, below the
// kernel's ephemeral range: a Listen(":0") port can become some client's
// source port before the broker binds it ("Address already in use").
func relFreePort(t *testing.T) int {
	t.Helper()
	for range 200 {
		p := 32000 - 1 - int(relPortNext.Add(1)%6000) // 26000–31999, apart from sync/city's walk
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port between 26000 and 32000")
	return 0
}

var relPortNext atomic.Int64

func init() { relPortNext.Store(int64(os.Getpid() % 6000)) }

// relPoll calls cond every step until it is true or timeout passes.
func relPoll(timeout, step time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(step)
	}
}

// relBuildOnce builds lintel with its durability tap once per test
// process, into a directory named after the process; directories left by
// processes that are gone are removed first.
var relBuildOnce = sync.OnceValues(func() (string, error) {
	stale, _ := filepath.Glob(filepath.Join(os.TempDir(), "lintel-faulttest-*"))
	for _, d := range stale {
		pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "lintel-faulttest-"))
		if _, alive := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil && pid != os.Getpid() && errors.Is(alive, os.ErrNotExist) {
			os.RemoveAll(d)
		}
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("lintel-faulttest-%d", os.Getpid()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lintel")
	if out, err := exec.Command("go", "build", "-tags", "faulttest", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", errorString(err.Error() + "\n" + string(out))
	}
	return bin, nil
})

func faulttestBinary(t *testing.T) string {
	t.Helper()
	bin, err := relBuildOnce()
	if err != nil {
		t.Fatalf("build lintel -tags faulttest: %v", err)
	}
	return bin
}

// ---------------------------------------------------------------------------
// The rig: everything one scenario runs.

// relRigOptions size the load and the gateway's store.
type relRigOptions struct {
	Rate     int    // script events per second (PIR reports and SOS presses)
	PIRs     int    // PIR sensors the reports rotate over (default 300)
	SOS      int    // SOS buttons (default 4)
	SOSEvery int    // one SOS press in this many events; 0: none
	Segment  int    // events per simulator script (default 50,000)
	MaxBytes string // storage.max_bytes (default 256MiB)
	History  string // storage.history (default 168h)
	// LossExpected: the scenario destroys durable events itself (journal
	// damage); see relOracle's lossOK.
	LossExpected bool
	// DataDir mounts the gateway's data directory before the daemon
	// starts (a small loop disk); nil: a plain directory.
	DataDir func(path string)
}

type relRig struct {
	t         *testing.T
	dir       string
	bin       string
	cfgPath   string
	storePath string
	dataDir   string
	statusURL string // http://addr of the status page
	o         relRigOptions
	broker    *relBroker
	gate      *relGate // the gateway's path to the broker
	listener  *relListener
	load      *relLoad
	daemon    *relDaemon
	tap       *relTap
	drained   int // tap entries before this one all reached the listener
}

// newRelRig starts the broker and the listener and writes the gateway's
// configuration; the load and the daemon are the scenario's to start.
func newRelRig(t *testing.T, name string, o relRigOptions) *relRig {
	t.Helper()
	mosq := relTool(t, "mosquitto")
	bin := faulttestBinary(t)
	if o.PIRs == 0 {
		o.PIRs = 300
	}
	if o.SOS == 0 {
		o.SOS = 4
	}
	if o.Segment == 0 {
		o.Segment = 50_000
	}
	if o.MaxBytes == "" {
		o.MaxBytes = "256MiB"
	}
	if o.History == "" {
		o.History = "168h"
	}
	// A PIR's reports must be further apart than the receiver's 100 ms
	// dedup window, or the driver takes them for RF repeats.
	if float64(o.PIRs)/float64(o.Rate) < 0.25 {
		t.Fatalf("%d PIRs at %d events/s report every %.0f ms: want ≥ 250 ms", o.PIRs, o.Rate, 1000*float64(o.PIRs)/float64(o.Rate))
	}
	dir, err := os.MkdirTemp("", "lintel-rel-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs after every process is gone.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("LINTEL_REL_KEEP") != "" {
			t.Logf("work directory kept: %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	r := &relRig{t: t, dir: dir, bin: bin, cfgPath: filepath.Join(dir, "lintel.yaml"), storePath: filepath.Join(dir, "data", "events.db"),
		dataDir: filepath.Join(dir, "data"), o: o}
	if o.DataDir != nil {
		if err := os.Mkdir(r.dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		o.DataDir(r.dataDir)
	}
	r.broker = startRelBroker(t, mosq, dir)
	r.gate = startRelGate(t, fmt.Sprintf("127.0.0.1:%d", r.broker.port))
	r.listener = startRelListener(t, r.broker.url(), filepath.Join(dir, "listener.history"))
	r.listener.lossOK = o.LossExpected
	t.Cleanup(r.listener.close)

	var pirs, sos []string
	var sensors []map[string]string
	households := make([]string, 0, 16)
	for h := range 16 {
		households = append(households, fmt.Sprintf("h-rel-%02d", h))
	}
	for i := range o.PIRs {
		id := fmt.Sprintf("pir-%03d", i)
		pirs = append(pirs, id)
		sensors = append(sensors, map[string]string{"ID": id, "Kind": "motion", "Household": households[i%len(households)],
			"Profile": "kerui-d026", "Code": fmt.Sprintf("%05X", 0x10000+i)})
	}
	for i := range o.SOS {
		id := fmt.Sprintf("sos-%d", i)
		sos = append(sos, id)
		sensors = append(sensors, map[string]string{"ID": id, "Kind": "sos", "Household": households[i%len(households)],
			"Profile": "ev1527-sos", "Code": fmt.Sprintf("%05X", 0x20000+i)})
	}
	statusAddr := fmt.Sprintf("127.0.0.1:%d", relFreePort(t))
	r.statusURL = "http://" + statusAddr
	link := filepath.Join(dir, "rf0")
	tpl := template.Must(template.ParseFiles(filepath.Join("testdata", "reliability", "gateway.yaml.tmpl")))
	var cfg bytes.Buffer
	if err := tpl.Execute(&cfg, map[string]any{
		"Gateway": relGateway, "Compound": relCompound, "DataDir": filepath.Join(dir, "data"),
		"Households": households, "Sensors": sensors, "Port": link,
		"Broker": r.gate.url(), "StatusAddr": statusAddr, "MaxBytes": o.MaxBytes, "History": o.History,
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.cfgPath, cfg.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "-c", r.cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("lintel check: %v\n%s", err, out)
	}
	tapPath := filepath.Join(dir, "durable.tap")
	r.tap = &relTap{path: tapPath, byID: map[string]int{}}
	r.daemon = &relDaemon{t: t, bin: bin, cfg: r.cfgPath, tapPath: tapPath, logPath: filepath.Join(dir, "daemon.log"),
		readyURL: "http://" + statusAddr + "/readyz"}
	t.Cleanup(r.daemon.cleanup)
	r.load = &relLoad{t: t, bin: bin, cfg: r.cfgPath, link: link, dir: dir, o: o, pirs: pirs, sos: sos}
	t.Cleanup(r.load.stop)
	return r
}

// mustReady waits for /readyz of the daemon just started, records the
// time it took and fails the test if it never came.
func (r *relRig) mustReady() time.Duration {
	r.t.Helper()
	d, err := r.daemon.waitReady(60 * time.Second)
	if err != nil {
		r.t.Fatalf("start %d: %v\n%s", r.daemon.starts, err, r.daemon.logTail(30))
	}
	return d
}

// kill SIGKILLs the daemon and mends the tap's torn last line, if any.
func (r *relRig) kill() {
	r.t.Helper()
	r.daemon.kill()
	torn, err := r.tap.repair()
	if err != nil {
		r.t.Fatal(err)
	}
	if torn {
		r.tap.torn++
	}
}

// waitDrained polls until the listener holds every tapped id (all of them
// when upTo < 0, else the first upTo), or timeout, or until nothing moved
// for a minute (many ack_timeouts: a missing event that no resend brings
// is lost, no need to wait longer). It returns how many are still missing.
func (r *relRig) waitDrained(upTo int, timeout time.Duration) int {
	r.t.Helper()
	missing, last := -1, -1
	moved := time.Now()
	relPoll(timeout, 50*time.Millisecond, func() bool {
		if err := r.tap.refresh(); err != nil {
			r.t.Fatal(err)
		}
		n := len(r.tap.entries)
		if upTo >= 0 {
			n = min(n, upTo)
		}
		r.drained, missing = r.listener.advance(r.tap.entries[:n], r.drained)
		if missing != last {
			last, moved = missing, time.Now()
		}
		return missing == 0 || time.Since(moved) > time.Minute
	})
	return missing
}

// waitTapQuiet waits until the tap has not grown for quiet (at most max).
func (r *relRig) waitTapQuiet(quiet, max time.Duration) {
	r.t.Helper()
	n, grew := -1, time.Now()
	relPoll(max, 100*time.Millisecond, func() bool {
		if err := r.tap.refresh(); err != nil {
			r.t.Fatal(err)
		}
		if len(r.tap.entries) != n {
			n, grew = len(r.tap.entries), time.Now()
		}
		return time.Since(grew) >= quiet
	})
}

// finish ends a scenario: it stops the load, lets the daemon drain to the
// listener, stops it with SIGTERM (exit 0 expected), dumps the store and
// runs the oracle. Failures are reported on t; the filled report is
// logged and returned.
func (r *relRig) finish(rep *relReport) *relReport {
	t := r.t
	t.Helper()
	r.load.stop()
	if errs := r.load.errors(); len(errs) > 0 {
		t.Errorf("load: %s", strings.Join(errs, "; "))
	}
	if !r.daemon.running() {
		t.Fatalf("daemon not running before the final drain\n%s", r.daemon.logTail(40))
	}
	// What the daemon had read before the load stopped is still being
	// made durable: wait until the tap stops growing, then drain; again
	// if it grew meanwhile.
	drainStart := time.Now()
	var beforeStop int
	for round := 0; ; round++ {
		r.waitTapQuiet(2*time.Second, time.Minute)
		n := len(r.tap.entries)
		if missing := r.waitDrained(-1, 3*time.Minute); missing > 0 {
			t.Errorf("final drain: %d tapped events still not at the listener after %s", missing, time.Since(drainStart).Round(time.Second))
			beforeStop = n
			break
		}
		if err := r.tap.refresh(); err != nil {
			t.Fatal(err)
		}
		if beforeStop = len(r.tap.entries); beforeStop == n || round == 5 {
			break
		}
	}
	rep.FinalDrain = time.Since(drainStart)
	if err := r.daemon.stop(60 * time.Second); err != nil {
		t.Errorf("final SIGTERM: %v\n%s", err, r.daemon.logTail(40))
	}
	if _, err := r.tap.repair(); err != nil {
		t.Fatal(err)
	}
	if err := r.tap.refresh(); err != nil {
		t.Fatal(err)
	}
	// Let redeliveries in flight at the stop land before counting.
	r.listener.quiesce(500*time.Millisecond, 10*time.Second)
	dump, err := relDumpStore(r.storePath)
	if err != nil {
		t.Fatalf("independent store dump: %v", err)
	}
	problems := relOracle(rep, r.tap, r.listener, dump, beforeStop, r.o.LossExpected)
	if logs, err := os.ReadFile(r.daemon.logPath); err == nil && bytes.Contains(logs, []byte("durable tap write failed")) {
		problems = append(problems, "the daemon could not write its durability tap (see daemon.log)")
	}
	if len(problems) > 0 {
		t.Errorf("oracle:\n  %s", strings.Join(problems, "\n  "))
	}
	rep.ReadyP50, rep.ReadyP99, rep.ReadyMax = relPercentiles(r.daemon.readyTimes())
	rep.Starts = r.daemon.starts
	if d := r.load.ran(); d > 0 {
		rep.LoadRate = float64(len(r.tap.byID)) / d.Seconds()
	}
	t.Log(rep.String())
	return rep
}

// ---------------------------------------------------------------------------
// Report.

// relReport is one run's figures, in the shape research/reliability.md §5
// asks for.
type relReport struct {
	Scenario   string
	Cycles     int // SIGKILLs of the daemon
	Starts     int
	Acked      int // distinct ids in the tap
	Received   int // distinct ids on the events lane
	Lost       int
	Retained   int // durable after the final SIGTERM, still in the store for the next start
	Duplicates int // events-lane copies of ids already received (same content)
	Conflicts  int // ids with two contents anywhere
	Unknown    int // received, never tapped (durable but not reported before a kill)
	TapReused  int
	Torn       int // torn tap lines mended after a kill
	BadBatches int
	Batches    int
	AlertMsgs  int
	Acks       int
	Stored     int // records in the final store dump
	Epochs     int
	SeqGaps    int      // gaps in the seqs received (each must be declared)
	Declared   []string // store.dropped / seq_skipped / lost received
	LoadRate   float64  // tapped events per second over the run

	ReadyP50, ReadyP99, ReadyMax time.Duration
	FinalDrain                   time.Duration

	StoreCorrupt int

	// Storage damage and full disks (reliability_storage_test.go).
	// DeclaredLost: tapped, gone, and covered by a store.lost (only where
	// the scenario damages the store itself).
	DeclaredLost int
	Damages      int           // journals damaged before a start
	LostDecl     int           // store.lost events received
	LostSeqs     uint64        // seqs they declare (at most)
	Quarantined  int           // store.quarantined events received
	ToDiskFull   time.Duration // disk filled → storage.disk_full at the listener
	ToDiskOK     time.Duration // space freed → storage.disk_ok at the listener
	FullReady    time.Duration // start on a full disk → /readyz
	FullDropped  int           // records the store dropped (declared) while full
	FullAppended int           // events made durable while the disk was full

	// Broker outage (T6).
	Outage          time.Duration // broker down
	Backlog         int           // events made durable while the broker was down
	ToFirstAck      time.Duration // broker back → first events-lane batch acked by the listener
	ToFirstAlert    time.Duration // broker back → first alert-lane message
	Drain           time.Duration // broker back → every event durable before the return received
	BacklogAlerts   int           // alert/critical events in the backlog
	AlertsLaneFirst int           // … of which the alert lane delivered before their events-lane copy
	LastAlert       time.Duration // broker back → the last backlog alert on the alert lane
	MaxRSS          int64         // VmRSS bytes, sampled during outage and drain
	MaxAnon         int64         // RssAnon bytes (heap, stacks: without the log's mmap)
	StoreBytes      int64         // events.db + journal at the broker's return
}

func (r *relReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "RELIABILITY %s: cycles=%d starts=%d acked=%d received=%d lost=%d declared_lost=%d retained=%d duplicates=%d (%.2f%%) conflicts=%d unknown=%d bad_batches=%d epochs=%d",
		r.Scenario, r.Cycles, r.Starts, r.Acked, r.Received, r.Lost, r.DeclaredLost, r.Retained, r.Duplicates, 100*float64(r.Duplicates)/math.Max(1, float64(r.Received)),
		r.Conflicts, r.Unknown, r.BadBatches, r.Epochs)
	fmt.Fprintf(&b, "\n  time to ready p50=%s p99=%s max=%s; final drain %s; load %.0f events/s; torn tap lines mended %d",
		r.ReadyP50.Round(time.Millisecond), r.ReadyP99.Round(time.Millisecond), r.ReadyMax.Round(time.Millisecond), r.FinalDrain.Round(time.Millisecond), r.LoadRate, r.Torn)
	fmt.Fprintf(&b, "\n  listener: %d batches, %d alert-lane messages, %d acks sent; store dump: %d records, %d corrupt",
		r.Batches, r.AlertMsgs, r.Acks, r.Stored, r.StoreCorrupt)
	if r.SeqGaps > 0 || len(r.Declared) > 0 {
		decl := r.Declared
		if len(decl) > 5 {
			decl = append(slices.Clone(decl[:5]), fmt.Sprintf("… %d in all", len(r.Declared)))
		}
		fmt.Fprintf(&b, "\n  seq gaps %d; declared by the store: %s", r.SeqGaps, strings.Join(decl, ", "))
	}
	if r.Damages > 0 || r.DeclaredLost > 0 || r.LostDecl > 0 {
		fmt.Fprintf(&b, "\n  journal damages %d: store.lost %d (≤ %d seqs), store.quarantined %d; tapped events declared lost %d",
			r.Damages, r.LostDecl, r.LostSeqs, r.Quarantined, r.DeclaredLost)
	}
	if r.ToDiskFull > 0 || r.ToDiskOK > 0 || r.FullReady > 0 {
		b.WriteString("\n  disk:")
		if r.FullReady > 0 {
			fmt.Fprintf(&b, " ready on a full disk %s;", r.FullReady.Round(time.Millisecond))
		}
		fmt.Fprintf(&b, " storage.disk_full upstream %s; freed → storage.disk_ok upstream %s; durable while full %d, dropped (declared) %d",
			r.ToDiskFull.Round(time.Millisecond), r.ToDiskOK.Round(time.Millisecond), r.FullAppended, r.FullDropped)
	}
	if r.Outage > 0 {
		fmt.Fprintf(&b, "\n  outage %s: backlog %d events (%d alerts), store %.1f MiB, max RSS %.1f MiB (anonymous %.1f MiB)",
			r.Outage.Round(time.Millisecond), r.Backlog, r.BacklogAlerts, float64(r.StoreBytes)/(1<<20), float64(r.MaxRSS)/(1<<20), float64(r.MaxAnon)/(1<<20))
		fmt.Fprintf(&b, "\n  broker back → first ack %s, first alert %s, last backlog alert %s, backlog drained %s; alerts ahead of their events-lane copy %d/%d",
			r.ToFirstAck.Round(time.Millisecond), r.ToFirstAlert.Round(time.Millisecond), r.LastAlert.Round(time.Millisecond), r.Drain.Round(time.Millisecond), r.AlertsLaneFirst, r.BacklogAlerts)
	}
	return b.String()
}

func relPercentiles(ds []time.Duration) (p50, p99, max time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[int(math.Ceil(p*float64(len(s))))-1] }
	return at(0.50), at(0.99), s[len(s)-1]
}

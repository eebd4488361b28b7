package main

// Storage faults of the whole daemon (issue 17, items 1, 3, 4 and 8;
// research/reliability.md §1.9): a damaged journal, a data disk full at
// start and while running, and SIGTERM while full. Each runs the real
// daemon under load with the harness of reliability_harness_test.go (an
// independent MQTT listener, the durability tap, an independent bbolt
// dump) and checks what the platform side sees: no id with two contents,
// every hole declared, the alarms upstream, the daemon ready.
//
// The store-level tests (edge/store damage_test.go, disk_test.go) damage
// journals byte by byte; these show that what they promise holds from the
// radio to the platform.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ---------------------------------------------------------------------------
// The journal, read from the layout in edge/store/wal.go's comment alone.

const (
	relWALPage        = 4096
	relWALHeaderLen   = 48
	relWALFrameHeader = 24
)

type relWALFrame struct {
	off, size int64    // where the frame starts and its whole length
	index     uint64   // frame index within the generation
	seqs      []uint64 // seqs of its event operations
}

// relWAL is a journal file as the test sees it: its header, if intact,
// and the frames of the header's generation that hold their checksum, in
// order — the frames not yet folded into bbolt.
type relWAL struct {
	size     int64
	headerOK bool
	gen      uint64
	frames   []relWALFrame
}

func relReadWAL(path string) (*relWAL, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	w := &relWAL{size: int64(len(data))}
	be32, be64 := binary.BigEndian.Uint32, binary.BigEndian.Uint64
	if len(data) < relWALHeaderLen || !bytes.Equal(data[:8], []byte("LNTLWAL\x00")) ||
		crc32.Checksum(data[:44], relCastagnoli) != be32(data[44:]) {
		return w, nil
	}
	w.headerOK, w.gen = true, be64(data[12:])
	frameAt := func(off int64, index uint64) (relWALFrame, bool) {
		if off+relWALFrameHeader > int64(len(data)) {
			return relWALFrame{}, false
		}
		b := data[off:]
		n := int64(be32(b))
		if n == 0 || relWALFrameHeader+n > int64(len(b)) || be64(b[8:]) != w.gen || be64(b[16:]) != index ||
			crc32.Checksum(b[8:relWALFrameHeader+n], relCastagnoli) != be32(b[4:]) {
			return relWALFrame{}, false
		}
		return relWALFrame{off: off, size: relWALFrameHeader + n, index: index, seqs: relWALEventSeqs(b[relWALFrameHeader : relWALFrameHeader+n])}, true
	}
	off := int64(relWALPage)
	for index := uint64(1); ; index++ {
		f, ok := frameAt(off, index)
		if !ok && off%relWALPage != 0 {
			// A frame that would straddle a page starts on the next one.
			f, ok = frameAt(off+relWALPage-off%relWALPage, index)
		}
		if !ok {
			return w, nil
		}
		w.frames = append(w.frames, f)
		off = f.off + f.size
	}
}

// relWALEventSeqs lists the seqs of a frame's event operations.
func relWALEventSeqs(p []byte) []uint64 {
	var seqs []uint64
	str16 := func() bool {
		if len(p) < 2 || len(p) < 2+int(binary.BigEndian.Uint16(p)) {
			return false
		}
		p = p[2+int(binary.BigEndian.Uint16(p)):]
		return true
	}
	for len(p) > 0 {
		kind := p[0]
		p = p[1:]
		switch kind {
		case 1: // event: seq, len, record
			if len(p) < 12 || len(p) < 12+int(binary.BigEndian.Uint32(p[8:])) {
				return seqs
			}
			seqs = append(seqs, binary.BigEndian.Uint64(p))
			p = p[12+int(binary.BigEndian.Uint32(p[8:])):]
		case 2: // ack: sink, seq
			if !str16() || len(p) < 8 {
				return seqs
			}
			p = p[8:]
		case 3: // put: ns, key, version, len, value
			if !str16() || !str16() || len(p) < 8 || len(p) < 8+int(binary.BigEndian.Uint32(p[4:])) {
				return seqs
			}
			p = p[8+int(binary.BigEndian.Uint32(p[4:])):]
		case 4: // delete: ns, key
			if !str16() || !str16() {
				return seqs
			}
		default:
			return seqs
		}
	}
	return seqs
}

// relDamage is one way to damage an unfolded journal. apply changes the
// file and says what it did and which frames it hit (nil: the header).
type relDamage struct {
	name  string
	apply func(path string, w *relWAL, rnd *rand.Rand) (what string, hit []relWALFrame, err error)
}

// relMidFrame picks a frame away from the journal's end where it can
// (the case: durable frames after the damage).
func relMidFrame(w *relWAL, rnd *rand.Rand) relWALFrame {
	n := len(w.frames)
	if n <= 2 {
		return w.frames[0]
	}
	return w.frames[n/4+rnd.IntN(n/2)]
}

func relFlip(path string, off int64, bit uint) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	b[0] ^= 1 << (bit % 8)
	if _, err := f.WriteAt(b, off); err != nil {
		return err
	}
	return f.Sync()
}

var relDamages = []relDamage{
	{"bit in a frame's events", func(path string, w *relWAL, rnd *rand.Rand) (string, []relWALFrame, error) {
		f := relMidFrame(w, rnd)
		off := f.off + relWALFrameHeader + rnd.Int64N(f.size-relWALFrameHeader)
		return fmt.Sprintf("bit flipped at %d, in frame %d of %d", off, f.index, len(w.frames)), []relWALFrame{f}, relFlip(path, off, rnd.UintN(8))
	}},
	{"cut mid-frame", func(path string, w *relWAL, rnd *rand.Rand) (string, []relWALFrame, error) {
		f := relMidFrame(w, rnd)
		off := f.off + 1 + rnd.Int64N(f.size-1)
		hit := []relWALFrame{}
		for _, g := range w.frames {
			if g.index >= f.index {
				hit = append(hit, g)
			}
		}
		return fmt.Sprintf("cut at %d, in frame %d of %d", off, f.index, len(w.frames)), hit, os.Truncate(path, off)
	}},
	{"bit in the journal header", func(path string, w *relWAL, rnd *rand.Rand) (string, []relWALFrame, error) {
		off := rnd.Int64N(relWALHeaderLen)
		return fmt.Sprintf("bit flipped at %d of the header (%d frames behind it)", off, len(w.frames)), nil, relFlip(path, off, rnd.UintN(8))
	}},
	{"bit in a frame header", func(path string, w *relWAL, rnd *rand.Rand) (string, []relWALFrame, error) {
		f := relMidFrame(w, rnd)
		off := f.off + rnd.Int64N(relWALFrameHeader)
		return fmt.Sprintf("bit flipped at %d, header of frame %d of %d", off, f.index, len(w.frames)), []relWALFrame{f}, relFlip(path, off, rnd.UintN(8))
	}},
	{"zeroed sector", func(path string, w *relWAL, rnd *rand.Rand) (string, []relWALFrame, error) {
		f := relMidFrame(w, rnd)
		sector := (f.off + f.size/2) / 512 * 512
		var hit []relWALFrame
		for _, g := range w.frames {
			if g.off < sector+512 && g.off+g.size > sector {
				hit = append(hit, g)
			}
		}
		fh, err := os.OpenFile(path, os.O_RDWR, 0)
		if err == nil {
			_, err = fh.WriteAt(make([]byte, 512), sector)
			if err == nil {
				err = fh.Sync()
			}
			fh.Close()
		}
		return fmt.Sprintf("sector at %d zeroed (frame %d of %d)", sector, f.index, len(w.frames)), hit, err
	}},
	{"cut in the journal header", func(path string, w *relWAL, rnd *rand.Rand) (string, []relWALFrame, error) {
		off := rnd.Int64N(relWALHeaderLen)
		return fmt.Sprintf("cut at %d, inside the header (%d frames lost with it)", off, len(w.frames)), w.frames, os.Truncate(path, off)
	}},
	{"bits in two frames", func(path string, w *relWAL, rnd *rand.Rand) (string, []relWALFrame, error) {
		a, b := w.frames[rnd.IntN(len(w.frames))], w.frames[rnd.IntN(len(w.frames))]
		offA := a.off + relWALFrameHeader + rnd.Int64N(a.size-relWALFrameHeader)
		offB := b.off + relWALFrameHeader + rnd.Int64N(b.size-relWALFrameHeader)
		err := relFlip(path, offA, rnd.UintN(8))
		if err == nil {
			err = relFlip(path, offB, rnd.UintN(8))
		}
		return fmt.Sprintf("bits flipped at %d and %d, frames %d and %d of %d", offA, offB, a.index, b.index, len(w.frames)), []relWALFrame{a, b}, err
	}},
}

// TestReliabilityJournalDamage is the reproduction end to end:
// the daemon runs under load, is SIGKILLed while its journal holds frames
// not yet folded into bbolt, the journal is damaged (a bit flipped in an
// event, in a frame header or in the journal header, a sector zeroed, the
// file cut mid-frame or inside its header), and it starts again. Before
// the store's fix, the events of the damaged tail were dropped silently
// and their seqs handed to new events, which a receiver that had the
// originals dropped as duplicates.
//
// Pass: every start is ready; the listener never gets one id with two
// contents (its id → content map across every restart, the tap and the
// final store dump agree); every seq it never got is declared by a
// store.lost or store.seq_skipped that reached it; every tapped event it
// never got is covered by a store.lost; each damaged start sends a
// store.lost upstream and the overview shows the damage (banner, count)
// while /readyz is 200; the store is never recreated (one epoch).
//
// Short form: each kind of damage once (7 starts on a damaged journal).
// LINTEL_SOAK=1: 60 (each kind 8–9 times, random positions);
// LINTEL_SOAK_CYCLES overrides either; LINTEL_REL_SEED picks the same
// damages and positions again (the kill times follow the load's pace).
func TestReliabilityJournalDamage(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon journal damage test: not with -short")
	}
	cycles := len(relDamages)
	if relSoak() {
		cycles = 60
	}
	cycles = relEnvInt(t, "LINTEL_SOAK_CYCLES", cycles)
	rate := relEnvInt(t, "LINTEL_SOAK_RATE", 300)
	r := newRelRig(t, "journal", relRigOptions{Rate: rate, SOSEvery: 100, LossExpected: true})
	seed := uint64(relEnvInt(t, "LINTEL_REL_SEED", int(time.Now().UnixNano()%(1<<62))))
	rnd := rand.New(rand.NewPCG(seed, 17))
	t.Logf("work directory %s; %d damaged starts at %d events/s, LINTEL_REL_SEED=%d", r.dir, cycles, rate, seed)
	hist, err := os.Create(filepath.Join(r.dir, "damage.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer hist.Close()
	walPath := r.storePath + ".wal"
	token := r.relToken()

	r.load.start()
	r.daemon.start()
	r.mustReady()
	rep := &relReport{Scenario: "journal-damage"}
	var toLost []time.Duration
	var hitEvents, hitReceived int
	for i := 0; rep.Damages < cycles; i++ {
		if i > 3*cycles {
			t.Fatalf("only %d of %d kills found unfolded frames to damage", rep.Damages, cycles)
		}
		// Kill while the journal holds a few frames not yet folded, at a
		// random moment after that.
		if !relPoll(20*time.Second, 50*time.Millisecond, func() bool {
			w, err := relReadWAL(walPath)
			return err == nil && len(w.frames) >= 4
		}) {
			t.Fatalf("the journal never held 4 unfolded frames\n%s", r.daemon.logTail(20))
		}
		time.Sleep(time.Duration(rnd.Int64N(int64(700 * time.Millisecond))))
		r.kill()
		w, err := relReadWAL(walPath)
		if err != nil || !w.headerOK || len(w.frames) == 0 {
			// Folded just before the kill: nothing to damage this time.
			fmt.Fprintf(hist, "kill %d: no unfolded frames (%v); restart undamaged\n", i, err)
			r.daemon.start()
			r.mustReady()
			continue
		}
		dmg := relDamages[rep.Damages%len(relDamages)]
		what, hit, err := dmg.apply(walPath, w, rnd)
		if err != nil {
			t.Fatalf("damage %q: %v", dmg.name, err)
		}
		rep.Damages++
		// The durable events the damage hit, and how many of them the
		// platform already had: the ids the old bug gave to new events.
		if err := r.tap.refresh(); err != nil {
			t.Fatal(err)
		}
		nHit, nRecv := 0, 0
		r.listener.mu.Lock()
		for _, f := range hit {
			for _, seq := range f.seqs {
				nHit++
				if s := r.listener.seen[fmt.Sprintf("%s:%s:%d", relGateway, relEpochOf(r), seq)]; s != nil && s.events > 0 {
					nRecv++
				}
			}
		}
		r.listener.mu.Unlock()
		hitEvents, hitReceived = hitEvents+nHit, hitReceived+nRecv

		restart := time.Now()
		r.daemon.start()
		ready := r.mustReady()
		n, ok := r.listener.waitNotable("store.lost", restart, 30*time.Second)
		if !ok {
			t.Fatalf("damage %d (%s: %s): no store.lost reached the listener within 30s of the restart\n%s",
				rep.Damages, dmg.name, what, r.daemon.logTail(30))
		}
		toLost = append(toLost, n.at.Sub(restart))
		if v := r.storageView(token); v.Lost == 0 || !v.Damage || v.Ready != http.StatusOK {
			t.Errorf("damage %d (%s): the overview does not show the loss: lost %d, banner %v, /readyz %d", rep.Damages, dmg.name, v.Lost, v.Damage, v.Ready)
		}
		fmt.Fprintf(hist, "damage %d (%s): %s; %d events in the frames hit, %d of them already at the listener; ready in %s; store.lost %s %s after the restart\n",
			rep.Damages, dmg.name, what, nHit, nRecv, ready.Round(time.Millisecond), n.data, n.at.Sub(restart).Round(time.Millisecond))
	}
	for _, n := range r.listener.notables("") {
		switch n.kind {
		case "store.lost":
			rep.LostDecl++
			var d struct {
				Count uint64 `json:"count"`
			}
			_ = json.Unmarshal(n.data, &d)
			rep.LostSeqs += d.Count
		case "store.quarantined":
			rep.Quarantined++
		}
	}
	_, p99, worst := relPercentiles(toLost)
	t.Logf("journal damages %d: %d durable events in the frames hit, %d of them at the listener before the kill (ids the old bug reused); store.lost upstream p99 %s, max %s after the restart",
		rep.Damages, hitEvents, hitReceived, p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	r.finish(rep)
	if rep.LostDecl < rep.Damages {
		t.Errorf("%d damaged starts, only %d store.lost upstream", rep.Damages, rep.LostDecl)
	}
	if rep.Epochs != 1 {
		t.Errorf("%d epochs: a damaged journal must not recreate the store", rep.Epochs)
	}
	if hitEvents == 0 {
		t.Errorf("no damage hit an event: the test did not test anything")
	}
}

// relEpochOf is the store's epoch, from what the tap has seen.
func relEpochOf(r *relRig) string {
	for _, e := range r.tap.entries {
		if ep, _, ok := relSplitID(e.id); ok {
			return ep
		}
	}
	return ""
}

// ---------------------------------------------------------------------------
// A small data disk.

// relSmallDisk mounts a loop ext4 image of size bytes at path, with no
// blocks reserved for root (what a gateway's data partition is; see
// testDisk in edge/store/disk_test.go). It needs root: without it the test
// is skipped, and fails under CI.
func relSmallDisk(t *testing.T, size int64) func(path string) {
	return func(path string) {
		t.Helper()
		img := filepath.Join(t.TempDir(), "disk.img")
		fail := func(format string, a ...any) {
			msg := fmt.Sprintf("a loop-mounted ext4 disk is needed (run as root, as CI does): "+format, a...)
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		if os.Geteuid() != 0 {
			fail("not root")
		}
		f, err := os.Create(img)
		if err == nil {
			err = f.Truncate(size)
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
			fail("mkfs.ext4: %v %s", err, out)
		}
		if out, err := exec.Command("mount", "-o", "loop", img, path).CombinedOutput(); err != nil {
			fail("mount -o loop: %v %s", err, out)
		}
		// Lazy: a daemon still running at cleanup keeps its files.
		t.Cleanup(func() { _ = exec.Command("umount", "-l", path).Run() })
	}
}

// relFill writes name in dir until the filesystem refuses more and
// returns its path.
func relFill(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for i := range buf {
		buf[i] = byte(i)
	}
	for n := len(buf); n >= 512; {
		if _, err := f.Write(buf[:n]); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			n /= 2
		}
	}
	_ = f.Sync()
	return path
}

func relFreeBytes(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}

// ---------------------------------------------------------------------------
// The status page as the property manager sees it.

// relToken creates a viewer account and an API token with lintel user.
func (r *relRig) relToken() string {
	r.t.Helper()
	add := exec.Command(r.bin, "user", "add", "-c", r.cfgPath, "-role", "viewer", "rel-viewer")
	add.Stdin = strings.NewReader("a-long-test-password\n")
	if out, err := add.CombinedOutput(); err != nil {
		r.t.Fatalf("lintel user add: %v\n%s", err, out)
	}
	out, err := exec.Command(r.bin, "user", "token", "-c", r.cfgPath, "rel-viewer").Output()
	if err != nil {
		r.t.Fatalf("lintel user token: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func (r *relRig) get(token, path string) (int, []byte) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.statusURL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept-Language", "zh-CN")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// relStorageView is what the status page says about the data disk.
type relStorageView struct {
	Ready    int  // /readyz status
	Full     bool // /api/v1/overview storage.full
	Free     int64
	Banner   bool // the overview page shows the disk-full banner
	Lost     uint64
	Damage   bool // … the banner of storage damage found at start
	Metric   string
	Overview string
}

func (r *relRig) storageView(token string) relStorageView {
	r.t.Helper()
	var v relStorageView
	v.Ready, _ = r.get("", "/readyz")
	code, body := r.get(token, "/api/v1/overview")
	if code != http.StatusOK {
		r.t.Fatalf("/api/v1/overview: %d %s", code, body)
	}
	var ov struct {
		Storage *struct {
			Full      bool   `json:"full"`
			FreeBytes int64  `json:"free_bytes"`
			Lost      uint64 `json:"lost"`
		} `json:"storage"`
	}
	if err := json.Unmarshal(body, &ov); err != nil || ov.Storage == nil {
		r.t.Fatalf("/api/v1/overview without storage: %v %s", err, body)
	}
	v.Full, v.Free, v.Lost, v.Overview = ov.Storage.Full, ov.Storage.FreeBytes, ov.Storage.Lost, string(body)
	code, page := r.get(token, "/")
	if code != http.StatusOK {
		r.t.Fatalf("overview page: %d", code)
	}
	v.Banner = bytes.Contains(page, []byte(`id="storage-full"`)) && bytes.Contains(page, []byte("数据盘已满"))
	v.Damage = bytes.Contains(page, []byte(`id="storage-damage"`))
	if code, m := r.get(token, "/metrics"); code == http.StatusOK {
		for _, line := range strings.Split(string(m), "\n") {
			if strings.HasPrefix(line, "lintel_store_disk_full") {
				v.Metric = line
			}
		}
	}
	return v
}

// waitFlow waits until the listener has n more events than now.
func (r *relRig) waitFlow(n int) {
	r.t.Helper()
	want := r.listener.receivedCount() + n
	if !relPoll(60*time.Second, 50*time.Millisecond, func() bool { return r.listener.receivedCount() >= want }) {
		r.t.Fatalf("no steady flow to the listener (%d of %d events)\n%s", r.listener.receivedCount(), want, r.daemon.logTail(30))
	}
}

// tapLen is the number of tap lines now.
func (r *relRig) tapLen() int {
	r.t.Helper()
	if err := r.tap.refresh(); err != nil {
		r.t.Fatal(err)
	}
	return len(r.tap.entries)
}

// alertsAmong counts the alerts among tap entries from..to that reached
// the listener.
func (r *relRig) alertsAmong(from, to int) int {
	l := r.listener
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range r.tap.entries[from:to] {
		if s := l.seen[e.id]; s != nil && (s.severity == "alert" || s.severity == "critical") {
			n++
		}
	}
	return n
}

// droppedSince sums the counts of the store.dropped events that arrived
// after since.
func (r *relRig) droppedSince(since time.Time) int {
	n := 0
	for _, d := range r.listener.notables("store.dropped") {
		var v struct {
			Count int `json:"count"`
		}
		if !d.at.Before(since) && json.Unmarshal(d.data, &v) == nil {
			n += v.Count
		}
	}
	return n
}

// TestReliabilityDiskFullAtStart: the gateway's 8 MiB data disk is full
// when it starts — it ran, was killed with its journal unfolded, and
// another program filled the disk to the last block. Before, that was a
// crash loop ("could not fold the journal", exit 1 in 80 ms). Pass: ready
// within 5 s; the overview (JSON, page banner, /metrics) shows the
// disk-full alarm while /readyz is 200; storage.disk_full reaches the
// listener; alerts are recorded and sent while full; once the filler is
// deleted, storage.disk_ok reaches the listener within 60 s without a
// restart and the alarm clears; the oracle holds over the whole run
// (nothing lost, no id with two contents, every hole declared).
//
// Short form: one start on a full disk. LINTEL_SOAK=1: 10 in a row, on
// the same store; LINTEL_SOAK_CYCLES overrides either.
func TestReliabilityDiskFullAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon disk test: not with -short")
	}
	rounds := 1
	if relSoak() {
		rounds = 10
	}
	rounds = relEnvInt(t, "LINTEL_SOAK_CYCLES", rounds)
	r := newRelRig(t, "fullstart", relRigOptions{Rate: 200, SOSEvery: 100, DataDir: relSmallDisk(t, 8<<20)})
	token := r.relToken()
	r.load.start()
	r.daemon.start()
	r.mustReady()
	rep := &relReport{Scenario: "disk-full-at-start"}
	alerts := 0
	for round := 1; round <= rounds; round++ {
		r.waitFlow(500)
		if v := r.storageView(token); v.Full || v.Banner || v.Ready != http.StatusOK {
			t.Fatalf("round %d, before the fill: %+v", round, v)
		}
		r.kill()
		filler := relFill(t, r.dataDir, "filler")
		free := relFreeBytes(r.dataDir)

		start := time.Now()
		r.daemon.start()
		ready := r.mustReady()
		rep.FullReady = max(rep.FullReady, ready)
		if ready > 5*time.Second {
			t.Errorf("round %d: ready %s after a start on a full disk, want within 5s", round, ready)
		}
		full, ok := r.listener.waitNotable("storage.disk_full", start, 30*time.Second)
		if !ok {
			t.Fatalf("round %d: no storage.disk_full at the listener within 30s of a start on a full disk (%d bytes free)\n%s", round, free, r.daemon.logTail(30))
		}
		rep.ToDiskFull = max(rep.ToDiskFull, full.at.Sub(start))
		v := r.storageView(token)
		if !v.Full || !v.Banner || v.Ready != http.StatusOK || v.Metric != "lintel_store_disk_full 1" {
			t.Errorf("round %d, status page on a full disk: /readyz %d, overview full=%v, banner %v, metric %q (%s)", round, v.Ready, v.Full, v.Banner, v.Metric, v.Overview)
		}
		t.Logf("round %d: start on a full disk (%d bytes free): ready in %s, storage.disk_full upstream %s after the start %s",
			round, free, ready.Round(time.Millisecond), full.at.Sub(start).Round(time.Millisecond), full.data)

		// Running on the reserve: events are still recorded and sent.
		before := r.tapLen()
		r.waitFlow(400)
		after := r.tapLen()
		rep.FullAppended += after - before
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		freed := time.Now()
		okEv, ok := r.listener.waitNotable("storage.disk_ok", freed, 60*time.Second)
		if !ok {
			t.Fatalf("round %d: no storage.disk_ok at the listener within 60s of freeing the disk\n%s", round, r.daemon.logTail(30))
		}
		rep.ToDiskOK = max(rep.ToDiskOK, okEv.at.Sub(freed))
		rep.FullDropped += r.droppedSince(start) // drops while full, and the first after
		if v := r.storageView(token); v.Full || v.Banner || v.Metric != "lintel_store_disk_full 0" {
			t.Errorf("round %d: after storage.disk_ok the overview still says full: %+v", round, v)
		}
		r.waitFlow(200)
		alerts += r.alertsAmong(before, after)
	}
	r.finish(rep)
	if alerts == 0 {
		t.Errorf("no alert recorded and sent while the disk was full")
	}
	t.Logf("%d rounds (worst figures in the report): %d events made durable while the disk was full, %d of them alerts, all at the listener", rounds, rep.FullAppended, alerts)
	if rep.Starts != rounds+1 {
		t.Errorf("%d starts, want %d: the daemon restarted by itself", rep.Starts, rounds+1)
	}
}

// TestReliabilityDiskFullWhileRunning: another program fills the 8 MiB
// data disk while the daemon runs under load. Before, that was invisible:
// 86 s with nothing recorded, /readyz 200, no alarm. Pass: storage.disk_full
// reaches the listener within 5 s of the disk filling; the overview (JSON,
// page banner, /metrics) shows it while /readyz stays 200 (the gateway
// serves and records alerts: degraded, not down); events, alerts among
// them, keep being made durable and reach the listener while full;
// storage.disk_ok arrives within 60 s of freeing the space and the alarm
// clears; and the oracle holds: nothing the daemon reported durable is
// lost, no id has two contents, every hole is declared.
//
// Short form: one fill. LINTEL_SOAK=1: 10 fills and frees in a row;
// LINTEL_SOAK_CYCLES overrides either.
func TestReliabilityDiskFullWhileRunning(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon disk test: not with -short")
	}
	rounds := 1
	if relSoak() {
		rounds = 10
	}
	rounds = relEnvInt(t, "LINTEL_SOAK_CYCLES", rounds)
	r := newRelRig(t, "fullrun", relRigOptions{Rate: 200, SOSEvery: 100, DataDir: relSmallDisk(t, 8<<20)})
	token := r.relToken()
	r.load.start()
	r.daemon.start()
	r.mustReady()
	rep := &relReport{Scenario: "disk-full-while-running"}
	alerts := 0
	r.waitFlow(1000)
	for round := 1; round <= rounds; round++ {
		fillStart := time.Now()
		filler := relFill(t, r.dataDir, "filler")
		filled := time.Since(fillStart)
		full, ok := r.listener.waitNotable("storage.disk_full", fillStart, 30*time.Second)
		if !ok {
			t.Fatalf("round %d: no storage.disk_full at the listener within 30s of filling the disk\n%s", round, r.daemon.logTail(30))
		}
		toFull := full.at.Sub(fillStart)
		rep.ToDiskFull = max(rep.ToDiskFull, toFull)
		if toFull > 5*time.Second {
			t.Errorf("round %d: storage.disk_full upstream %s after the disk filled, want within 5s", round, toFull)
		}
		v := r.storageView(token)
		if !v.Full || !v.Banner || v.Ready != http.StatusOK || v.Metric != "lintel_store_disk_full 1" {
			t.Errorf("round %d, status page while full: /readyz %d, overview full=%v, banner %v, metric %q (%s)", round, v.Ready, v.Full, v.Banner, v.Metric, v.Overview)
		}
		t.Logf("round %d: disk filled in %s: storage.disk_full upstream %s after the fill began %s",
			round, filled.Round(time.Millisecond), toFull.Round(time.Millisecond), full.data)

		before := r.tapLen()
		r.waitFlow(1000) // about 5 s of load on a full disk
		after := r.tapLen()
		rep.FullAppended += after - before
		if v := r.storageView(token); !v.Full {
			t.Errorf("round %d: the overview forgot the full disk while it is still full: %s", round, v.Overview)
		}
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		freed := time.Now()
		okEv, ok := r.listener.waitNotable("storage.disk_ok", freed, 60*time.Second)
		if !ok {
			t.Fatalf("round %d: no storage.disk_ok at the listener within 60s of freeing the disk\n%s", round, r.daemon.logTail(30))
		}
		rep.ToDiskOK = max(rep.ToDiskOK, okEv.at.Sub(freed))
		rep.FullDropped += r.droppedSince(fillStart)
		if v := r.storageView(token); v.Full || v.Banner || v.Metric != "lintel_store_disk_full 0" {
			t.Errorf("round %d: after storage.disk_ok the overview still says full: %+v", round, v)
		}
		r.waitFlow(500)
		alerts += r.alertsAmong(before, after)
	}
	r.finish(rep)
	if rep.FullAppended == 0 || alerts == 0 {
		t.Errorf("made durable while the disk was full: %d events, %d alerts; want both", rep.FullAppended, alerts)
	}
	t.Logf("%d rounds (worst figures in the report): %d events made durable while the disk was full, %d of them alerts, all at the listener", rounds, rep.FullAppended, alerts)
	if rep.Starts != 1 {
		t.Errorf("%d starts, want 1: the daemon restarted", rep.Starts)
	}
}

// TestReliabilityStopWhileFull: SIGTERM while the data disk is full to
// the last block (also the room the store's released reserve gave back),
// with journal frames to fold. Before, the final fold failed and the
// daemon still logged "stopped cleanly". Pass: the log says "stopped
// cleanly" only with exit 0, and otherwise "stopped, but not cleanly"
// with exit 1; what it said agrees with what the next start finds
// (gateway.started unclean_stop); nothing is lost across it (oracle).
func TestReliabilityStopWhileFull(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon disk test: not with -short")
	}
	r := newRelRig(t, "stopfull", relRigOptions{Rate: 200, SOSEvery: 100, DataDir: relSmallDisk(t, 8<<20)})
	r.load.start()
	r.daemon.start()
	r.mustReady()
	r.waitFlow(1000)
	fillStart := time.Now()
	filler := relFill(t, r.dataDir, "filler")
	if _, ok := r.listener.waitNotable("storage.disk_full", fillStart, 30*time.Second); !ok {
		t.Fatalf("no storage.disk_full at the listener within 30s of filling the disk\n%s", r.daemon.logTail(30))
	}
	// The store released its reserve for the alarm: take that room too.
	time.Sleep(500 * time.Millisecond)
	filler2 := relFill(t, r.dataDir, "filler2")
	time.Sleep(time.Second) // load on a disk with no room at all
	stopErr := r.daemon.stop(60 * time.Second)
	logs := r.daemon.logSince(r.daemon.starts)
	clean := strings.Contains(logs, `"msg":"stopped cleanly"`)
	notClean := strings.Contains(logs, `"msg":"stopped, but not cleanly`)
	closeFailed := strings.Contains(logs, `"msg":"close event log"`)
	// With no room at all (the reserve's room taken too) commits fail and
	// drivers' batches are refused: never accepted, so not a loss by the
	// promise, but recorded here as the known limit it is.
	t.Logf("SIGTERM on a disk with no room left: exit %v; logged stopped cleanly=%v, not cleanly=%v, close failed=%v; %d driver batches refused; %d log lines this run, %s of it full",
		stopErr, clean, notClean, closeFailed, strings.Count(logs, `"msg":"emit radio events"`), strings.Count(logs, "\n"), time.Since(fillStart).Round(100*time.Millisecond))
	switch {
	case clean == notClean:
		t.Errorf("want exactly one of \"stopped cleanly\" / \"stopped, but not cleanly\"; got %v/%v\n%s", clean, notClean, r.daemon.logTail(30))
	case clean && (closeFailed || stopErr != nil):
		t.Errorf("logged \"stopped cleanly\" although the event log's close failed (exit %v)\n%s", stopErr, r.daemon.logTail(30))
	case notClean && stopErr == nil:
		t.Errorf("logged \"stopped, but not cleanly\" and exited 0")
	}

	for _, p := range []string{filler, filler2} {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	restart := time.Now()
	r.daemon.start()
	r.mustReady()
	started, ok := r.listener.waitNotable("gateway.started", restart, 30*time.Second)
	if !ok {
		t.Fatalf("no gateway.started at the listener after the restart")
	}
	var sd struct {
		Unclean bool `json:"unclean_stop"`
	}
	_ = json.Unmarshal(started.data, &sd)
	if sd.Unclean == clean {
		t.Errorf("the stop logged clean=%v, the next start found unclean_stop=%v (%s)", clean, sd.Unclean, started.data)
	}
	rep := &relReport{Scenario: "sigterm-while-full"}
	r.finish(rep)
}

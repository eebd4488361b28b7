package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// testDisk mounts a real filesystem of size bytes for the test: a loop
// ext4 image where the kernel allows it (O_DIRECT, delayed allocation,
// reserved blocks: what a gateway's data partition is), else tmpfs. Both
// need root; without it the test is skipped, and fails under CI.
func testDisk(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "disk.img")
	var errs []string
	// os.Truncate does not create the file: without it every run fell
	// back to tmpfs.
	if err := os.WriteFile(img, nil, 0o600); err == nil && os.Truncate(img, size) == nil {
		if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("mkfs.ext4: %v %s", err, out))
		} else if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Sprintf("mount -o loop: %v %s", err, out))
		} else {
			t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
			return mnt
		}
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", mnt).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Sprintf("mount tmpfs: %v %s", err, out))
		msg := "a small real filesystem is needed (run as root, as CI does): " + strings.Join(errs, "; ")
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	return mnt
}

// fill writes a file in dir until the filesystem refuses more.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
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

func waitKind(t *testing.T, ch <-chan *event.Event, kind event.Kind, within time.Duration) *event.Event {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("subscription closed before %s", kind)
			}
			if ev.Kind == kind {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within %s", kind, within)
		}
	}
}

// smallDiskOptions is a store on a disk of size bytes, with the quota left
// at its default (256 MiB): far more than the disk.
func smallDiskOptions(t *testing.T, size int64) (Options, string) {
	mnt := testDisk(t, size)
	o := testOptions(t, "city")
	o.Path = filepath.Join(mnt, "data", "lintel.db")
	o.walSize = 0 // the default, scaled to the disk
	o.diskCheckEvery = 200 * time.Millisecond
	return o, mnt
}

// The daemon filled an 8 MiB data disk by itself in 60 s: the quota must
// follow the free space. Here 24 MiB of telemetry goes into an 8 MiB disk:
// every append succeeds, the oldest telemetry is dropped and declared, and
// the disk never fills.
func TestQuotaFollowsFreeSpace(t *testing.T) {
	o, mnt := smallDiskOptions(t, 8<<20)
	s := mustOpen(t, o)
	st := s.Stats()
	if !st.Disk.Known || st.Disk.QuotaBytes >= 8<<20 || st.Disk.ReserveBytes == 0 {
		t.Fatalf("disk %+v: quota not limited by the disk, or no reserve", st.Disk)
	}
	pad := strings.Repeat("x", 900)
	for i := 0; i < 24<<10; i += 32 {
		evs := make([]*event.Event, 32)
		for j := range evs {
			evs[j] = telemetryEvent(i + j)
			evs[j].Data = []byte(fmt.Sprintf(`{"value":%d,"pad":%q}`, i+j, pad))
		}
		if err := s.Append(ctx, evs...); err != nil {
			t.Fatalf("append %d: %v (disk %+v)", i, err, s.Stats().Disk)
		}
	}
	st = s.Stats()
	avail, _, _ := diskSpace(mnt)
	if st.Disk.Full || st.Dropped[ReasonQuota] == 0 || avail < minMargin/2 {
		t.Fatalf("after 24 MiB into 8: disk %+v dropped %v, %d bytes free", st.Disk, st.Dropped, avail)
	}
	t.Logf("quota %d bytes on an 8 MiB disk; %d records kept, %d dropped by quota, %d bytes free, file %d bytes",
		st.Disk.QuotaBytes, st.Records, st.Dropped[ReasonQuota], avail, st.FileSize)
}

// Another program fills the disk while the gateway runs: within 5 s the
// alarm is recorded (from the reserve), alerts and telemetry are still
// recorded (old telemetry goes first), nothing fails; once space is freed
// the store recovers by itself within 60 s.
func TestDiskFullWhileRunning(t *testing.T) {
	o, mnt := smallDiskOptions(t, 16<<20)
	s := mustOpen(t, o)
	ch, cancel := s.Subscribe(1 << 16)
	defer cancel()
	for i := 0; i < 2000; i += 20 {
		var evs []*event.Event
		for j := range 20 {
			evs = append(evs, telemetryEvent(i+j))
		}
		if err := s.Append(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}
	filler := fill(t, mnt)
	start := time.Now()
	full := waitKind(t, ch, event.StorageDiskFull, 5*time.Second)
	t.Logf("storage.disk_full after %s: %s", time.Since(start).Round(time.Millisecond), full.Data)
	if !s.Stats().Disk.Full || full.Severity != event.Alert || full.TimeQuality == "" {
		t.Fatalf("disk %+v, event %+v", s.Stats().Disk, full)
	}
	// Go on recording: telemetry and alerts, several times what the disk
	// has left.
	for i := 0; i < 6000; i += 10 {
		evs := []*event.Event{alertEvent(i)}
		for j := 1; j < 10; j++ {
			evs = append(evs, telemetryEvent(10000+i+j))
		}
		if err := s.Append(ctx, evs...); err != nil {
			t.Fatalf("append %d while full: %v (disk %+v)", i, err, s.Stats().Disk)
		}
	}
	st := s.Stats()
	if st.Dropped[ReasonQuota] == 0 || st.DroppedImportant != 0 || st.CommitErrors != 0 {
		t.Fatalf("while full: dropped %v (important %d), commit errors %d", st.Dropped, st.DroppedImportant, st.CommitErrors)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	ok := waitKind(t, ch, event.StorageDiskOK, 60*time.Second)
	t.Logf("storage.disk_ok %s after the space was freed: %s", time.Since(freed).Round(time.Millisecond), ok.Data)
	if st := s.Stats(); st.Disk.Full || st.Disk.ReserveBytes == 0 {
		t.Fatalf("after recovery: %+v", st.Disk)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// A start on a full disk was a crash loop: the journal could not be folded
// ("open store: could not fold the journal into the store", exit 1 in
// 80 ms, every time). Now Open releases the reserve, folds, records the
// alarm and serves; after the space is freed it recovers.
func TestStartOnFullDisk(t *testing.T) {
	o, mnt := smallDiskOptions(t, 8<<20)
	s := mustOpen(t, o)
	appended := map[uint64]string{}
	for i := range 300 {
		ev := telemetryEvent(i)
		if err := s.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		appended[ev.Seq] = mustJSON(t, ev)
	}
	if s.ov.frames == 0 {
		t.Fatal("the journal holds nothing to fold: the test needs it full")
	}
	crashClose(t, s)
	filler := fill(t, mnt)
	for attempt := range 3 { // what systemd's restarts would do
		start := time.Now()
		s, err := Open(o)
		if err != nil {
			t.Fatalf("start %d on a full disk: %v", attempt, err)
		}
		took := time.Since(start)
		st := s.Stats()
		evs, err := s.ReadRange(0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		var alarm bool
		for _, ev := range evs {
			alarm = alarm || ev.Kind == event.StorageDiskFull
		}
		if !st.Disk.Full || !alarm || took > 5*time.Second {
			t.Fatalf("start %d: disk %+v, alarm %v, took %s", attempt, st.Disk, alarm, took)
		}
		alert := alertEvent(attempt)
		if err := s.Append(ctx, alert); err != nil {
			t.Fatalf("start %d: alert not recorded: %v", attempt, err)
		}
		appended[alert.Seq] = mustJSON(t, alert)
		kept, lost := checkNoReuse(t, s, appended)
		if kept+lost != len(appended) || kept < 300 {
			t.Fatalf("kept %d lost %d", kept, lost)
		}
		t.Logf("start %d on a full disk: open in %s, %d events kept", attempt, took.Round(time.Millisecond), kept)
		if err := s.Close(); err != nil {
			t.Logf("close on a full disk: %v", err)
		}
	}
	_ = os.Remove(filler)
	s = mustOpen(t, o)
	ch, cancel := s.Subscribe(64)
	defer cancel()
	if s.Stats().Disk.Full {
		waitKind(t, ch, event.StorageDiskOK, 60*time.Second)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close after recovery: %v", err)
	}
}

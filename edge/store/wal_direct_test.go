package store

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// directWorks reports whether the journal can use O_DIRECT in dir, by the
// same open and probe the store uses.
func directWorks(t *testing.T, dir string) bool {
	t.Helper()
	p := filepath.Join(dir, "direct-probe")
	if err := os.WriteFile(p, make([]byte, walPage), 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	f, _, err := openDirect(p)
	if err != nil {
		t.Logf("O_DIRECT not available in %s: %v", dir, err)
		return false
	}
	_ = f.Close()
	return true
}

func TestJournalWriteUnit(t *testing.T) {
	o := testOptions(t, "city")
	s := mustOpen(t, o)
	want := directWorks(t, filepath.Dir(o.Path))
	if runtime.GOOS == "linux" && !want {
		t.Log("the test directory's filesystem has no O_DIRECT: only the fallback is checked")
	}
	if s.j.direct != want || want && s.j.unit != 512 && s.j.unit != 4096 || !want && s.j.unit != walPage {
		t.Fatalf("journal direct=%v unit %d, want direct=%v", s.j.direct, s.j.unit, want)
	}
	t.Logf("journal direct=%v, write unit %d bytes", s.j.direct, s.j.unit)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	o.walBuffered = true
	s = mustOpen(t, o)
	if s.j.direct || s.j.unit != walPage {
		t.Fatalf("buffered journal: direct=%v unit %d", s.j.direct, s.j.unit)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAlignedBuf(t *testing.T) {
	for _, n := range []int{1, 512, 4096, 5000, 64 << 10} {
		b := alignedBuf(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("alignedBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		if p := uintptr(unsafe.Pointer(&b[0])); p%walPage != 0 {
			t.Fatalf("alignedBuf(%d) at %#x: not page-aligned", n, p)
		}
	}
}

// A journal written one way replays the other way: the format does not
// depend on the write unit.
func TestJournalDirectAndBufferedMix(t *testing.T) {
	o := testOptions(t, "city")
	o.walBuffered = true
	want, _, _ := journalFixture(t, o, 4)
	o.walBuffered = false
	s := mustOpen(t, o)
	if s.walReplayed != 4 {
		t.Fatalf("replayed %d frames of the buffered journal, want 4", s.walReplayed)
	}
	for i := range 3 {
		ev := telemetryEvent(100 + i)
		if err := s.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, mustJSON(t, ev))
	}
	crashClose(t, s)
	o.walBuffered = true
	s = mustOpen(t, o)
	if s.walReplayed != 3 {
		t.Fatalf("replayed %d frames of the direct journal, want 3", s.walReplayed)
	}
	if user, _, _ := splitLog(t, s); !cmp.Equal(want, user) {
		t.Fatalf("(-want +got):\n%s", cmp.Diff(want, user))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// tornFixture appends events one at a time until a frame straddles a
// 512-byte sector boundary with an earlier frame in its first sector, then
// crash-closes. It returns the events' JSON (the last one is that frame's),
// the journal before and after that frame was written, and the frame's span.
func tornFixture(t *testing.T, o Options) (want []string, before, after []byte, off, end int64) {
	t.Helper()
	s := mustOpen(t, o)
	path := journalPath(o.Path)
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("no frame straddled a sector boundary")
		}
		prev, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ev := telemetryEvent(i)
		if err := s.Append(ctx, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, mustJSON(t, ev))
		off, end = s.j.lastOff, s.j.off
		if off%512 != 0 && off/512 != (end-1)/512 {
			before = prev
			break
		}
	}
	if s.walFrames.Load() != uint64(len(want)) {
		t.Fatalf("%d frames for %d appends", s.walFrames.Load(), len(want))
	}
	crashClose(t, s)
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != len(after) {
		t.Fatalf("journal size changed %d -> %d", len(before), len(after))
	}
	return want, before, after, off, end
}

// A power cut during a multi-sector write may leave any subset of its
// sectors written. The frames before the torn one share its first sector
// but are byte for byte the same in its old and new version, so they
// survive; the torn frame fails its CRC and replay stops there, which
// loses only a commit whose Append never returned.
func TestJournalTornSectors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		torn   func(before, after []byte, off, end int64) []byte
		frames int // of the fixture's, replayed
	}{
		{"all sectors landed", func(_, after []byte, _, _ int64) []byte { return after }, 0},
		{"second sector new, first old", func(before, after []byte, off, _ int64) []byte {
			s0 := off - off%512
			copy(after[s0:s0+512], before[s0:s0+512])
			return after
		}, -1},
		{"only the first of two sectors landed", func(before, after []byte, off, end int64) []byte {
			s1 := off - off%512 + 512
			e := (end + 511) / 512 * 512
			copy(after[s1:e], before[s1:e])
			return after
		}, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t, "city")
			want, before, after, off, end := tornFixture(t, o)
			if tt.frames < 0 {
				want = want[:len(want)-1] // the torn frame's event
			}
			file := tt.torn(before, after, off, end)
			if err := os.WriteFile(journalPath(o.Path), file, 0o600); err != nil {
				t.Fatal(err)
			}
			appended := map[uint64]string{}
			for i, js := range want {
				appended[uint64(i+1)] = js
			}
			s := mustOpen(t, o)
			if s.walReplayed != len(want) || s.walQuarantined != "" {
				t.Fatalf("replayed %d frames, want %d (quarantined %q)", s.walReplayed, len(want), s.walQuarantined)
			}
			kept, _ := checkNoReuse(t, s, appended)
			if kept < len(want) {
				t.Fatalf("kept %d of %d", kept, len(want))
			}
			// A torn frame's seq is declared (lost where its header
			// landed, skipped where nothing of it is seen) by
			// checkNoReuse's rule; it is never handed out again.
			// The store goes on above every seq the crash may have used,
			// and the new frame replays after another crash.
			next := s.LastSeq() + 1
			ev := telemetryEvent(999)
			if err := s.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
			if ev.Seq != next || ev.Seq <= seqReserve {
				t.Fatalf("next seq %d, want %d", ev.Seq, next)
			}
			appended[ev.Seq] = mustJSON(t, ev)
			crashClose(t, s)
			s = mustOpen(t, o)
			if k2, _ := checkNoReuse(t, s, appended); k2 != kept+1 {
				t.Fatalf("after the second crash kept %d, want %d", k2, kept+1)
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

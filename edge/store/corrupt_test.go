package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/lintel-edge/lintel/edge/event"
)

// corruptFixture builds a real store with data, closes it and returns its
// options and epoch.
func corruptFixture(t *testing.T) (Options, string) {
	t.Helper()
	o := testOptions(t, "city")
	s, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	for c := range 30 { // 30 commits of 10
		var evs []*event.Event
		for i := c * 10; i < c*10+10; i++ {
			ev := telemetryEvent(i)
			ev.Data = json.RawMessage(fmt.Sprintf(`{"mark":"PAYLOAD-MARK-%04d","pad":"%0200d"}`, i, i))
			evs = append(evs, ev)
		}
		if err := s.Append(ctx, evs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutState(ctx, "elder", "h-1", 1, []byte("x")); err != nil {
		t.Fatal(err)
	}
	epoch := s.Epoch()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return o, epoch
}

func rewrite(t *testing.T, path string, f func([]byte) []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, f(b), 0o600); err != nil {
		t.Fatal(err)
	}
}

func flip(b []byte, off, n int) {
	for i := off; i < off+n && i < len(b); i++ {
		b[i] ^= 0xa5
	}
}

func TestCorruptStoreIsQuarantined(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"both meta pages flipped", func(t *testing.T, p string) {
			rewrite(t, p, func(b []byte) []byte { flip(b, 16, 48); flip(b, 4096+16, 48); return b })
		}},
		{"data page flipped", func(t *testing.T, p string) {
			rewrite(t, p, func(b []byte) []byte {
				i := bytes.Index(b, []byte("PAYLOAD-MARK-0150"))
				if i < 0 {
					t.Fatal("marker not found in the file")
				}
				flip(b, i+13, 1)
				return b
			})
		}},
		{"truncated to half", func(t *testing.T, p string) {
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncated to zero", func(t *testing.T, p string) {
			if err := os.Truncate(p, 0); err != nil {
				t.Fatal(err)
			}
		}},
		{"random garbage", func(t *testing.T, p string) {
			rng := rand.New(rand.NewPCG(1, 2))
			rewrite(t, p, func(b []byte) []byte {
				for i := range b {
					b[i] = byte(rng.Uint32())
				}
				return b
			})
		}},
		{"text file", func(t *testing.T, p string) {
			if err := os.WriteFile(p, []byte("gateway: gw-01\ncompound: c-hf-001\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"leaf page header flipped", func(t *testing.T, p string) {
			rewrite(t, p, func(b []byte) []byte {
				i := bytes.Index(b, []byte("PAYLOAD-MARK-0100"))
				page := i / 4096 * 4096
				flip(b, page+8, 2) // page flags
				return b
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, oldEpoch := corruptFixture(t)
			tt.damage(t, o.Path)
			before, _ := os.ReadFile(o.Path)
			s := mustOpen(t, o)
			moved := s.Quarantined()
			if moved == "" {
				t.Fatal("corrupt file not quarantined")
			}
			kept, err := os.ReadFile(moved)
			if err != nil {
				t.Fatalf("quarantined file: %v", err)
			}
			if !bytes.Equal(kept, before) {
				t.Fatal("quarantined file differs from the corrupt one")
			}
			if s.Epoch() == oldEpoch {
				t.Fatal("fresh store kept the old epoch")
			}
			evs, err := s.ReadRange(0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Kind != event.StoreQuarantined || evs[0].Seq != 1 || evs[0].Severity != event.Alert {
				t.Fatalf("events of the fresh store: %+v", evs)
			}
			var d map[string]string
			if err := json.Unmarshal(evs[0].Data, &d); err != nil {
				t.Fatal(err)
			}
			if d["moved_to"] != moved || d["reason"] == "" {
				t.Fatalf("quarantine data %v", d)
			}
			t.Logf("reason: %s", d["reason"])
			if st := s.Stats(); st.Quarantined != moved {
				t.Fatalf("stats quarantined %q", st.Quarantined)
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			// The fresh store is a normal store: reopen does not quarantine again.
			epoch := s.Epoch()
			_ = s.Close()
			s2 := mustOpen(t, o)
			if s2.Quarantined() != "" || s2.Epoch() != epoch || s2.LastSeq() != 1 {
				t.Fatalf("second open: quarantined %q epoch %s last %d", s2.Quarantined(), s2.Epoch(), s2.LastSeq())
			}
		})
	}
}

// One damaged meta page is not corruption: bbolt keeps two and falls back
// to the other, which loses at most the last commit.
func TestOneMetaPageDamagedRecovers(t *testing.T) {
	o, epoch := corruptFixture(t)
	rewrite(t, o.Path, func(b []byte) []byte { flip(b, 16, 48); return b })
	s := mustOpen(t, o)
	if s.Quarantined() != "" || s.Epoch() != epoch {
		t.Fatalf("quarantined %q epoch %s/%s", s.Quarantined(), s.Epoch(), epoch)
	}
	if s.LastSeq() < 299 {
		t.Fatalf("last seq %d, want at least 299", s.LastSeq())
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// Random damage anywhere must never crash Open or leave it unusable.
func TestRandomDamageNeverCrashes(t *testing.T) {
	t.Parallel()
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			o, _ := corruptFixture(t)
			rng := rand.New(rand.NewPCG(seed, 99))
			rewrite(t, o.Path, func(b []byte) []byte {
				for range 1 + rng.IntN(8) {
					flip(b, rng.IntN(len(b)), 1+rng.IntN(64))
				}
				return b
			})
			s := mustOpen(t, o)
			if err := s.Check(); err != nil {
				t.Fatalf("open passed a file that fails Check: %v", err)
			}
			if _, err := s.ReadRange(0, 1000); err != nil {
				t.Fatal(err)
			}
			if err := s.Append(ctx, telemetryEvent(1)); err != nil {
				t.Fatal(err)
			}
			t.Logf("quarantined=%v last=%d", s.Quarantined() != "", s.LastSeq())
		})
	}
}

package serial

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseTable: code tables are files installers write; a broken one is
// an error with its position, never a panic.
func FuzzParseTable(f *testing.F) {
	files, _ := filepath.Glob("../../configs/radio/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte("name: x\ndata: {E: open, 7: close}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tb, err := ParseTable("fuzz.yaml", b)
		if err != nil {
			return
		}
		for _, m := range []Meaning{Open, Close, Alarm, Motion} {
			if d, ok := tb.DataFor(m); ok {
				if got, ok := tb.Meaning(d); !ok || got == "" {
					t.Fatalf("DataFor(%s) = %x, but Meaning(%x) = %q %v", m, d, d, got, ok)
				}
			}
		}
	})
}

package rtsp

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseProfile: camera profiles are files installers write; a broken
// one is an error, never a panic.
func FuzzParseProfile(f *testing.F) {
	files, _ := filepath.Glob("../../configs/cameras/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte("name: x\ntopics: [{topic: \"a/*\", kind: camera.tamper}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseProfile(b)
	})
}

package config

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestLintQuietOnValidYAML: the syntax-error locator reads every YAML
// file of the repository that go-yaml accepts (configs, samples,
// profiles, code tables, test data) without finding a mistake, so it
// cannot point away from a real one.
func TestLintQuietOnValidYAML(t *testing.T) {
	n := 0
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "dist") {
			return filepath.SkipDir
		}
		if ext := filepath.Ext(p); d.IsDir() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); err == io.EOF {
				break
			} else if err != nil {
				return nil // a deliberately broken file
			}
		}
		n++
		if got, ok := lintYAML(splitLines(b), 1); ok {
			t.Errorf("%s:%d:%d: %s", p, got.line, got.col, got.msg)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("only %d valid YAML files found", n)
	}
}

func TestLintCases(t *testing.T) {
	for _, tt := range []struct {
		src       string
		line, col int // 0: no finding
	}{
		{"a:\n  b: |\n    x: y\n      z\n  c: 1\n", 0, 0},
		{"a: >-\n  text: with colon\n\tand a tab\nb: 1\n", 0, 0},
		{"a: [1,\n  2,\n 3]\nb: 1\n", 0, 0},
		{"a: &x\n  b: 1\nc: *x\n", 0, 0},
		{"a:\n- 1\n- 2\nb: 1\n", 0, 0},
		{"a:\n  - - 1\n    - 2\n  - 3\n", 0, 0},
		{"a: it's fine\nb: \"q \\\" q\"\nc: 'it''s'\n", 0, 0},
		{"a: long text\n  continued here\nb: 1\n", 0, 0},
		{"a:\n  b: 1\n c: 2\n", 3, 2},
		{"a:\n  - b: 1\n     c: 2\n", 3, 6},
		{"a:\n  b: 1\n  - c\n", 3, 3},
		{"a: \"x\nb: 1\n", 1, 4},
		{"a: 'x\nb: 1\n", 1, 4},
		{"a:\n  b: 1\n \t c: 2\n", 3, 2},
	} {
		got, ok := lintYAML(splitLines([]byte(tt.src)), 1)
		if !ok {
			got = lintFinding{}
		}
		if got.line != tt.line || got.col != tt.col {
			t.Errorf("%q: got %d:%d %s, want %d:%d", tt.src, got.line, got.col, got.msg, tt.line, tt.col)
		}
	}
}

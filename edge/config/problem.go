package config

import (
	"bytes"
	"fmt"
	"reflect"

	"go.yaml.in/yaml/v3"
	"sort"
	"strings"
)

// Problem is one thing wrong with a configuration file, located by file,
// line and column and by the dotted path of the offending value.
type Problem struct {
	File string
	Line int
	Col  int
	Path string
	Msg  string
}

func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", p.Line, p.Col)
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one load, in file order. It is the
// error Load returns; its Error joins them one per line.
type Problems []Problem

// MaxListed bounds the problems an error lists: past it, a file is
// broken as a whole (or built to be: an alias bomb) and a reader fixes the
// first ones and checks again.
const MaxListed = 100

func (ps Problems) Error() string {
	n := min(len(ps), MaxListed)
	lines := make([]string, n, n+1)
	for i, p := range ps[:n] {
		lines[i] = p.Error()
	}
	if more := len(ps) - n; more > 0 {
		lines = append(lines, fmt.Sprintf("… and %d more (另有 %d 个问题未列出): fix the ones above and check again", more, more))
	}
	return strings.Join(lines, "\n")
}

func (ps Problems) sorted() Problems {
	out := append(Problems(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Col < out[j].Col
	})
	// The same problem reached twice (e.g. a bad value seen by two checks)
	// is reported once.
	dedup := out[:0]
	for i, p := range out {
		if i > 0 && p == out[i-1] {
			continue
		}
		dedup = append(dedup, p)
	}
	return dedup
}

// Reporter collects problems against the positions of one document. Code
// that validates a section (drivers, sinks, rules) receives one.
type Reporter struct {
	file   string
	dir    string // the file's directory, for relative paths in it
	pos    map[string]pos
	probs  Problems
	failed map[string]bool // paths whose value could not be decoded
}

type pos struct{ line, col int }

// NewReporter returns a reporter for a document named file, for packages
// that validate files of their own (device profiles, code tables) with the
// same file:line:col problems as the config.
func NewReporter(file string) *Reporter { return newReporter(file) }

// Err returns the problems reported so far, sorted, or nil.
func (r *Reporter) Err() error {
	if len(r.probs) == 0 {
		return nil
	}
	return r.probs.sorted()
}

// DecodeYAML decodes a whole YAML document (a profile file) into v with the
// config's strictness, reporting problems to r.
func (r *Reporter) DecodeYAML(data []byte, v any) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		r.probs = append(r.probs, yamlProblem(r.file, data, err))
		return
	}
	r.mark("", 1, 1)
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		r.mark("--", extra.Line, extra.Column)
		r.At("--", "more than one YAML document; put everything in one")
	}
	if len(doc.Content) == 0 {
		r.At("", "empty document")
		return
	}
	d := decoder{r: r}
	d.decode(&doc, reflect.ValueOf(v).Elem(), "")
}

func newReporter(file string) *Reporter {
	return &Reporter{file: file, pos: map[string]pos{}, failed: map[string]bool{}}
}

// At reports a problem at path. The position is that of the value at path,
// or of its nearest ancestor that appears in the file (a missing key is
// reported where its parent mapping starts).
func (r *Reporter) At(path, format string, args ...any) {
	// A value that could not be decoded was reported once already; checks
	// of it or of anything inside it would only repeat the same mistake.
	for q := path; ; {
		if r.failed[q] {
			return
		}
		i := strings.LastIndexAny(q, ".[")
		if i < 0 {
			break
		}
		q = q[:i]
	}
	p := r.lookup(path)
	r.probs = append(r.probs, Problem{File: r.file, Line: p.line, Col: p.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Has reports whether path was present in the file.
func (r *Reporter) Has(path string) bool { _, ok := r.pos[path]; return ok }

// Len is the number of problems reported so far.
func (r *Reporter) Len() int { return len(r.probs) }

func (r *Reporter) lookup(path string) pos {
	for {
		if p, ok := r.pos[path]; ok {
			return p
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return r.pos[""]
		}
		path = path[:i]
	}
}

// fail reports a decoding problem and remembers the path as failed.
func (r *Reporter) fail(path, format string, args ...any) {
	r.At(path, format, args...)
	r.failed[path] = true
}

func (r *Reporter) mark(path string, line, col int) { r.pos[path] = pos{line, col} }

package config

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Node is a piece of the YAML document kept undecoded, for a section whose
// schema belongs to another package (a driver's options, a sink, the
// rules). That package decodes it with [Node.Decode], which applies the
// same strictness and positions as the rest of the file.
type Node struct {
	n    *yaml.Node
	path string
	file string
}

// IsZero reports whether the section was absent.
func (n Node) IsZero() bool { return n.n == nil }

// Path is the dotted path of the section in the file ("sinks.city").
func (n Node) Path() string { return n.path }

// Decode decodes the section into v (a pointer to a struct with yaml tags),
// reporting unknown keys and wrong types to r. Fields absent from the file
// keep the values v already holds, so set defaults first.
func (n Node) Decode(r *Reporter, v any) {
	if n.n == nil {
		return
	}
	d := decoder{r: r}
	// Keep the section's key position: decoding marks the value's.
	keyPos, had := r.pos[n.path]
	d.decode(n.n, reflect.ValueOf(v).Elem(), n.path)
	if had {
		r.pos[n.path] = keyPos
	}
}

// DecodeStrict decodes the section into v on its own, outside a whole-file
// load (a driver building itself from an already validated config). It
// returns the same problems, with positions, as [Node.Decode] reports.
func (n Node) DecodeStrict(v any) error {
	r := NewReporter(n.file)
	n.Decode(r, v)
	return r.Err()
}

// YAML returns the section re-encoded as YAML (for tests and dumps).
func (n Node) YAML() []byte {
	if n.n == nil {
		return nil
	}
	b, _ := yaml.Marshal(n.n)
	return b
}

// Unmarshaler is implemented by config value types that parse a scalar
// themselves (Duration, Size, Secret).
type Unmarshaler interface {
	UnmarshalConfigScalar(s string) error
}

var (
	nodeType     = reflect.TypeFor[Node]()
	durationType = reflect.TypeFor[time.Duration]()
	unmarshaler  = reflect.TypeFor[Unmarshaler]()
)

type decoder struct {
	r *Reporter
	// budget bounds the nodes one load may visit: aliases can make a small
	// file expand exponentially ("billion laughs").
	budget int
	spent  bool
}

// maxNodes is far beyond any real configuration or profile.
const maxNodes = 200_000

func (d *decoder) mark(n *yaml.Node, path string) { d.r.mark(path, n.Line, n.Column) }

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.budget++; d.budget > maxNodes {
		if !d.spent {
			d.spent = true
			d.r.fail(path, "document too large or too deeply aliased (over %d values)", maxNodes)
		}
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.mark(n, path)
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(Node{n: n, path: path, file: d.r.file}))
		d.markAll(n, path)
		return
	}
	if n.Tag == "!!null" {
		// "key:" with no value leaves the default.
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshaler) {
		if n.Kind != yaml.ScalarNode {
			d.r.fail(path, "want a single value, got %s", describe(n))
			return
		}
		if err := v.Addr().Interface().(Unmarshaler).UnmarshalConfigScalar(n.Value); err != nil {
			d.r.fail(path, "%v", err)
		}
		return
	}
	if v.Type() == durationType {
		var dur Duration
		if n.Kind != yaml.ScalarNode {
			d.r.fail(path, "want a duration like \"30s\", got %s", describe(n))
			return
		}
		if err := dur.UnmarshalConfigScalar(n.Value); err != nil {
			d.r.fail(path, "%v", err)
			return
		}
		v.SetInt(int64(dur))
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.r.fail(path, "want a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.r.fail(path, "want a mapping, got %s", describe(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := join(path, k.Value)
			if first, dup := seen[k.Value]; dup {
				d.mark(k, kp)
				d.r.At(kp, "duplicate key %q (first given on line %d): keep one", k.Value, first)
				continue
			}
			seen[k.Value] = k.Line
			key := reflect.New(v.Type().Key()).Elem()
			switch key.Kind() {
			case reflect.String:
				key.SetString(k.Value)
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				i, err := strconv.ParseInt(k.Value, 0, 64)
				if err != nil || key.OverflowInt(i) {
					d.mark(k, kp)
					d.r.fail(kp, "key %q: want a whole number", k.Value)
					continue
				}
				key.SetInt(i)
			default:
				d.r.fail(kp, "cannot decode keys into %s", key.Type())
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, kp)
			d.mark(k, kp)
			v.SetMapIndex(key, e)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.r.fail(path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.r.fail(path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(n.Value == "true" || n.Value == "True" || n.Value == "TRUE")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.r.fail(path, "want a whole number, got %s", describe(n))
			return
		}
		if v.OverflowInt(i) {
			d.r.fail(path, "%d is out of range", i)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.r.fail(path, "want a whole number ≥ 0, got %s", describe(n))
			return
		}
		if v.OverflowUint(u) {
			d.r.fail(path, "%d is out of range", u)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, 64)
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.r.fail(path, "want a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			d.r.fail(path, "%v", err)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.r.fail(path, "cannot decode into %s", v.Type())
	}
}

func (d *decoder) markAll(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			kp := join(path, n.Content[i].Value)
			d.mark(n.Content[i], kp)
			d.markAll(n.Content[i+1], kp)
			d.r.mark(kp, n.Content[i].Line, n.Content[i].Column)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.mark(c, p)
			d.markAll(c, p)
		}
	}
}

type field struct {
	name  string
	index []int
}

func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			for _, sub := range fieldsOf(f.Type) {
				out = append(out, field{sub.name, append([]int{i}, sub.index...)})
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, field{name, []int{i}})
	}
	return out
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.r.fail(path, "want a mapping of keys, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	byName := make(map[string]field, len(fields))
	names := make([]string, 0, len(fields))
	for _, f := range fields {
		byName[f.name] = f
		names = append(names, f.name)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := join(path, k.Value)
		d.mark(k, kp)
		if k.Kind != yaml.ScalarNode {
			d.r.At(path, "keys must be plain names")
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.r.At(kp, "duplicate key %q (first given on line %d): keep one", k.Value, first)
			continue
		}
		seen[k.Value] = k.Line
		f, ok := byName[k.Value]
		if !ok {
			if s := suggest(k.Value, names); s != "" {
				d.r.At(kp, "unknown key %q (did you mean %q?)", k.Value, s)
			} else {
				d.r.At(kp, "unknown key %q; known keys: %s", k.Value, strings.Join(sorted(names), ", "))
			}
			continue
		}
		d.decode(val, v.FieldByIndex(f.index), kp)
		// Problems about a value (or a key missing inside it) point at its
		// key, where a reader looks first.
		d.mark(k, kp)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if len(n.Value) > 40 {
			return strconv.Quote(n.Value[:40] + "…")
		}
		return strconv.Quote(n.Value)
	}
	return "nothing"
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// suggest returns the known name closest to s when it is a likely typo.
func suggest(s string, names []string) string {
	best, bestD := "", 3
	for _, n := range names {
		if d := distance(s, n); d < bestD || (d == bestD && best == "" && d <= len(n)/3) {
			if d <= 2 || d <= len(n)/3 {
				best, bestD = n, d
			}
		}
	}
	return best
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

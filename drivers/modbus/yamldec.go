package modbus

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/lintel-edge/lintel/edge/config"
	"go.yaml.in/yaml/v3"
)

// problems collects what is wrong with one profile file, each at the
// line and column of the offending key or value, in the same shape as
// the gateway configuration's problems so `lintel check` prints both alike.
type problems struct {
	file  string
	pos   map[string][2]int
	probs config.Problems
}

func newProblems(file string) *problems {
	return &problems{file: file, pos: map[string][2]int{"": {1, 1}}}
}

func (p *problems) mark(path string, n *yaml.Node) { p.pos[path] = [2]int{n.Line, n.Column} }

// at reports a problem at path, positioned at the value at path or at its
// nearest ancestor present in the file.
func (p *problems) at(path, format string, args ...any) {
	q := path
	for {
		if lc, ok := p.pos[q]; ok {
			p.probs = append(p.probs, config.Problem{File: p.file, Line: lc[0], Col: lc[1], Path: path, Msg: fmt.Sprintf(format, args...)})
			return
		}
		i := strings.LastIndexAny(q, ".[")
		if i < 0 {
			q = ""
			continue
		}
		q = q[:i]
	}
}

// At implements reporter.
func (p *problems) At(path, format string, args ...any) { p.at(path, format, args...) }

// Len implements reporter.
func (p *problems) Len() int { return len(p.probs) }

func (p *problems) err() error {
	if len(p.probs) == 0 {
		return nil
	}
	out := append(config.Problems(nil), p.probs...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Line != out[j].Line {
			return out[i].Line < out[j].Line
		}
		return out[i].Col < out[j].Col
	})
	return out
}

var yamlLineRE = regexp.MustCompile(`line (\d+): `)

// decodeYAML parses one YAML document into v strictly: unknown keys,
// duplicate keys and wrong types are reported with their positions.
func decodeYAML(p *problems, data []byte, v any) bool {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 1
		if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = strings.Replace(msg, m[0], "", 1)
		}
		p.probs = append(p.probs, config.Problem{File: p.file, Line: line, Col: 1, Msg: "invalid YAML: " + msg})
		return false
	}
	if len(doc.Content) == 0 {
		p.at("", "empty file")
		return false
	}
	var extra yaml.Node
	if dec.Decode(&extra) == nil {
		p.mark("--", &extra)
		p.at("--", "more than one YAML document")
	}
	d := ydec{p: p, depth: 0}
	d.decode(doc.Content[0], reflect.ValueOf(v).Elem(), "")
	return true
}

type ydec struct {
	p     *problems
	depth int
}

var unmarshalerType = reflect.TypeFor[config.Unmarshaler]()

func (d *ydec) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		// Aliases could expand exponentially ("billion laughs"); a profile
		// has no use for them.
		d.p.mark(path, n)
		d.p.at(path, "YAML aliases are not supported in profiles")
		return
	}
	d.depth++
	defer func() { d.depth-- }()
	if d.depth > 20 {
		d.p.at(path, "nested too deeply")
		return
	}
	d.p.mark(path, n)
	if n.Tag == "!!null" {
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			d.p.at(path, "want a single value, got %s", describeNode(n))
			return
		}
		if err := v.Addr().Interface().(config.Unmarshaler).UnmarshalConfigScalar(n.Value); err != nil {
			d.p.at(path, "%v", err)
		}
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
			d.p.at(path, "want a list, got %s", describeNode(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.p.at(path, "want a mapping, got %s", describeNode(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := joinPath(path, k.Value)
			d.p.mark(kp, k)
			key := reflect.New(v.Type().Key()).Elem()
			d.decode(k, key, kp)
			if v.MapIndex(key).IsValid() {
				d.p.at(kp, "duplicate key %q", k.Value)
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, kp)
			v.SetMapIndex(key, e)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.p.at(path, "want a string, got %s", describeNode(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.p.at(path, "want true or false, got %s", describeNode(n))
			return
		}
		v.SetBool(strings.EqualFold(n.Value, "true"))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.p.at(path, "want a whole number, got %s", describeNode(n))
			return
		}
		if v.OverflowInt(i) {
			d.p.at(path, "%d is out of range", i)
			return
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			d.p.at(path, "want a whole number ≥ 0, got %s", describeNode(n))
			return
		}
		if v.OverflowUint(u) {
			d.p.at(path, "%d is out of range", u)
			return
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.p.at(path, "want a number, got %s", describeNode(n))
			return
		}
		v.SetFloat(f)
	case reflect.Interface:
		if n.Kind != yaml.ScalarNode {
			d.p.at(path, "want a plain value, got %s", describeNode(n))
			return
		}
		var x any
		if err := n.Decode(&x); err != nil {
			d.p.at(path, "%v", err)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.p.at(path, "cannot decode into %s", v.Type())
	}
}

func (d *ydec) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.p.at(path, "want a mapping of keys, got %s", describeNode(n))
		return
	}
	byName := map[string][]int{}
	var names []string
	var collect func(t reflect.Type, prefix []int)
	collect = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			idx := append(append([]int(nil), prefix...), i)
			if opts == "inline" && f.Type.Kind() == reflect.Struct {
				collect(f.Type, idx)
				continue
			}
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			byName[name] = idx
			names = append(names, name)
		}
	}
	collect(v.Type(), nil)
	sort.Strings(names)
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		kp := joinPath(path, k.Value)
		d.p.mark(kp, k)
		if seen[k.Value] {
			d.p.at(kp, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		idx, ok := byName[k.Value]
		if !ok {
			d.p.at(kp, "unknown key %q; known keys: %s", k.Value, strings.Join(names, ", "))
			continue
		}
		d.decode(val, v.FieldByIndex(idx), kp)
		if val.Kind == yaml.ScalarNode {
			d.p.mark(kp, k)
		}
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describeNode(n *yaml.Node) string {
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

package city

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Canonical returns the canonical byte form of one JSON value: the JSON
// Canonicalization Scheme of RFC 8785 (JCS). A signature over a command
// envelope is made over these bytes, so the platform's JSON library and
// the gateway's may format the envelope differently on the wire and still
// agree on what was signed.
//
//   - no whitespace between tokens;
//   - object members sorted by their names compared as UTF-16 code units,
//     and no name twice in one object (refused here, not resolved);
//   - strings as UTF-8, escaping only '"', '\\' and the controls below
//     U+0020: \b \t \n \f \r in short form, the rest as \u00xx (lower-case
//     hex); everything else, '/' and U+2028 included, literal;
//   - numbers as IEEE 754 doubles printed the ECMAScript way (the shortest
//     form that reads back the same: 4.50 → 4.5, 1E30 → 1e+30, 2e-3 →
//     0.002, -0 → 0); a number beyond a double is refused;
//   - true, false and null as they are.
//
// Input must be valid UTF-8 and at most maxCanonicalDepth deep.
func Canonical(b []byte) ([]byte, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out bytes.Buffer
	out.Grow(len(b))
	if err := canonValue(dec, &out, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON value")
	}
	return out.Bytes(), nil
}

// maxCanonicalDepth bounds nesting (objects and arrays) in a command.
const maxCanonicalDepth = 32

func canonValue(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	tok, err := dec.Token()
	if err != nil {
		return canonErr(err)
	}
	return canonToken(dec, tok, out, depth)
}

func canonErr(err error) error {
	if err == io.EOF {
		return errors.New("unexpected end of JSON")
	}
	return err
}

func canonToken(dec *json.Decoder, tok json.Token, out *bytes.Buffer, depth int) error {
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxCanonicalDepth {
			return fmt.Errorf("nested deeper than %d", maxCanonicalDepth)
		}
		switch t {
		case '{':
			return canonObject(dec, out, depth+1)
		case '[':
			return canonArray(dec, out, depth+1)
		}
		return fmt.Errorf("unexpected %q", t)
	case string:
		canonString(out, t)
	case json.Number:
		return canonNumber(out, t)
	case bool:
		if t {
			out.WriteString("true")
		} else {
			out.WriteString("false")
		}
	case nil:
		out.WriteString("null")
	default:
		return fmt.Errorf("unexpected token %v", t)
	}
	return nil
}

func canonObject(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	type member struct {
		key  string
		k16  []uint16
		body []byte
	}
	var members []member
	seen := map[string]bool{}
	for {
		tok, err := dec.Token()
		if err != nil {
			return canonErr(err)
		}
		if d, ok := tok.(json.Delim); ok && d == '}' {
			break
		}
		key, ok := tok.(string)
		if !ok {
			return errors.New("object key is not a string")
		}
		if seen[key] {
			return fmt.Errorf("duplicate key %q", trim(key))
		}
		seen[key] = true
		var body bytes.Buffer
		if err := canonValue(dec, &body, depth); err != nil {
			return err
		}
		members = append(members, member{key: key, k16: utf16.Encode([]rune(key)), body: body.Bytes()})
	}
	sort.Slice(members, func(i, j int) bool { return lessUTF16(members[i].k16, members[j].k16) })
	out.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			out.WriteByte(',')
		}
		canonString(out, m.key)
		out.WriteByte(':')
		out.Write(m.body)
	}
	out.WriteByte('}')
	return nil
}

func lessUTF16(a, b []uint16) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}

func canonArray(dec *json.Decoder, out *bytes.Buffer, depth int) error {
	out.WriteByte('[')
	for n := 0; ; n++ {
		tok, err := dec.Token()
		if err != nil {
			return canonErr(err)
		}
		if d, ok := tok.(json.Delim); ok && d == ']' {
			break
		}
		if n > 0 {
			out.WriteByte(',')
		}
		if err := canonToken(dec, tok, out, depth); err != nil {
			return err
		}
	}
	out.WriteByte(']')
	return nil
}

const hexDigits = "0123456789abcdef"

func canonString(out *bytes.Buffer, s string) {
	out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			out.WriteString(`\"`)
		case c == '\\':
			out.WriteString(`\\`)
		case c >= 0x20:
			out.WriteByte(c) // multi-byte UTF-8 passes through byte by byte
		case c == '\b':
			out.WriteString(`\b`)
		case c == '\t':
			out.WriteString(`\t`)
		case c == '\n':
			out.WriteString(`\n`)
		case c == '\f':
			out.WriteString(`\f`)
		case c == '\r':
			out.WriteString(`\r`)
		default:
			out.WriteString(`\u00`)
			out.WriteByte(hexDigits[c>>4])
			out.WriteByte(hexDigits[c&0xf])
		}
	}
	out.WriteByte('"')
}

// canonNumber prints a number as ECMAScript's Number.prototype.toString
// does (RFC 8785 §3.2.2.3), which is also what encoding/json does for a
// float64 apart from negative zero.
func canonNumber(out *bytes.Buffer, n json.Number) error {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return fmt.Errorf("number %s is out of range", trim(string(n)))
	}
	if f == 0 {
		out.WriteByte('0')
		return nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	out.Write(b)
	return nil
}

package serial

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// LineOptions describe an ASCII line protocol, as spoken by MCU bridges
// and LoRa concentrators. Lines end in LF (a CR before it is dropped).
//
//	csv:    "A1B2C,E,-71"            fields: [code, data, rssi]
//	kv:     "RX code=A1B2C data=E rssi=-71"
//	regex:  `^RFRX (?P<code>[0-9A-F]+) (?P<data>[0-9A-F]+)`
//
// Code and data are hex (an optional 0x is accepted); rssi is a decimal
// integer. Without a data field the code is the whole radio word, and its
// length in hex digits sets its width.
type LineOptions struct {
	// Format is csv, kv or regex.
	Format string `yaml:"format"`
	// Fields names the csv columns in order; use "-" for a column to
	// ignore. Known names: code, data, rssi.
	Fields []string `yaml:"fields"`
	// Separator is the csv field separator (default ",").
	Separator string `yaml:"separator"`
	// Pattern is the regex, with named groups code, data and rssi.
	Pattern string `yaml:"pattern"`
	// Keys renames the kv keys: {code: id, data: cmd, rssi: rssi}.
	Keys map[string]string `yaml:"keys"`
	// MaxLine bounds a line (default 256 bytes); longer lines are dropped.
	MaxLine int `yaml:"max_line"`
}

// Line decodes LineOptions lines.
type Line struct {
	opt      LineOptions
	re       *regexp.Regexp
	idx      map[string]int // csv column or regex group of each field
	keys     map[string]string
	skipping bool // inside a line that exceeded MaxLine
}

// Line formats.
const (
	LineCSV   = "csv"
	LineKV    = "kv"
	LineRegex = "regex"
)

// NewLine validates opts and returns the codec.
func NewLine(opts LineOptions) (*Line, error) {
	l := &Line{opt: opts, idx: map[string]int{}, keys: map[string]string{"code": "code", "data": "data", "rssi": "rssi"}}
	if l.opt.MaxLine == 0 {
		l.opt.MaxLine = 256
	}
	if l.opt.Separator == "" {
		l.opt.Separator = ","
	}
	var errs []error
	if l.opt.MaxLine < 8 || l.opt.MaxLine > 4096 {
		errs = append(errs, fmt.Errorf("max_line: %d: want 8–4096", l.opt.MaxLine))
	}
	switch opts.Format {
	case LineCSV:
		if len(opts.Fields) == 0 {
			errs = append(errs, errors.New("fields: list the csv columns, e.g. [code, data, rssi]"))
		}
		for i, f := range opts.Fields {
			switch f {
			case "code", "data", "rssi":
				if _, dup := l.idx[f]; dup {
					errs = append(errs, fmt.Errorf("fields: %q twice", f))
				}
				l.idx[f] = i
			case "-", "":
			default:
				errs = append(errs, fmt.Errorf("fields[%d]: %q: want code, data, rssi or -", i, f))
			}
		}
	case LineKV:
		for k, v := range opts.Keys {
			if _, ok := l.keys[k]; !ok {
				errs = append(errs, fmt.Errorf("keys: %q: want code, data or rssi", k))
				continue
			}
			if v == "" {
				errs = append(errs, fmt.Errorf("keys.%s: empty", k))
			}
			l.keys[k] = v
		}
	case LineRegex:
		re, err := regexp.Compile(opts.Pattern)
		if err != nil {
			errs = append(errs, fmt.Errorf("pattern: %w", err))
			break
		}
		l.re = re
		for i, n := range re.SubexpNames() {
			switch n {
			case "code", "data", "rssi":
				l.idx[n] = i
			}
		}
	default:
		errs = append(errs, fmt.Errorf("format: %q: want csv, kv or regex", opts.Format))
	}
	if opts.Format == LineCSV || opts.Format == LineRegex {
		if _, ok := l.idx["code"]; !ok && len(errs) == 0 {
			errs = append(errs, errors.New("no code field: name one \"code\" (csv fields or a (?P<code>…) group)"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return l, nil
}

// Name implements Codec.
func (*Line) Name() string { return CodecLine }

// MaxFrame implements Decoder.
func (l *Line) MaxFrame() int { return l.opt.MaxLine }

// ErrLine is returned by ParseLine for a line that carries no usable code.
var ErrLine = errors.New("no radio code in line")

// Decode implements Decoder.
func (l *Line) Decode(buf []byte) (Frame, int, Result) {
	i := bytes.IndexByte(buf, '\n')
	if i < 0 {
		if len(buf) >= l.opt.MaxLine {
			// Drop what we have and everything up to the next newline.
			l.skipping = true
			return Frame{}, len(buf), Garbage
		}
		return Frame{}, 0, More
	}
	n := i + 1
	if l.skipping {
		l.skipping = false
		return Frame{}, n, Garbage
	}
	if i > l.opt.MaxLine {
		return Frame{}, n, Garbage
	}
	line := bytes.TrimRight(buf[:i], "\r")
	if len(bytes.TrimSpace(line)) == 0 {
		return Frame{}, n, Skip
	}
	f, err := l.ParseLine(string(line))
	if err != nil {
		// A well-formed line of something else (a banner, a heartbeat of
		// the concentrator itself) is not radio data.
		return Frame{}, n, Skip
	}
	return f, n, Got
}

// ParseLine parses one line without its newline.
func (l *Line) ParseLine(s string) (Frame, error) {
	var code, data, rssi string
	switch l.opt.Format {
	case LineCSV:
		parts := strings.Split(s, l.opt.Separator)
		get := func(k string) string {
			if i, ok := l.idx[k]; ok && i < len(parts) {
				return strings.TrimSpace(parts[i])
			}
			return ""
		}
		code, data, rssi = get("code"), get("data"), get("rssi")
	case LineKV:
		for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' || r == ';' }) {
			k, v, ok := strings.Cut(tok, "=")
			if !ok {
				k, v, ok = strings.Cut(tok, ":")
			}
			if !ok {
				continue
			}
			switch k {
			case l.keys["code"]:
				code = v
			case l.keys["data"]:
				data = v
			case l.keys["rssi"]:
				rssi = v
			}
		}
	case LineRegex:
		m := l.re.FindStringSubmatch(s)
		if m == nil {
			return Frame{}, ErrLine
		}
		get := func(k string) string {
			if i, ok := l.idx[k]; ok {
				return m[i]
			}
			return ""
		}
		code, data, rssi = get("code"), get("data"), get("rssi")
	}
	code = trimHex(code)
	if code == "" || len(code) > 16 {
		return Frame{}, ErrLine
	}
	c, err := strconv.ParseUint(code, 16, 64)
	if err != nil {
		return Frame{}, ErrLine
	}
	f := Frame{Code: c, Bits: 4 * len(code), Proto: CodecLine}
	if data = trimHex(data); data != "" {
		d, err := strconv.ParseUint(data, 16, 32)
		if err != nil {
			return Frame{}, ErrLine
		}
		f.Data, f.HasData = uint32(d), true
	}
	if rssi != "" {
		r, err := strconv.Atoi(strings.TrimSpace(rssi))
		if err != nil || r < -200 || r > 200 {
			return Frame{}, ErrLine
		}
		f.RSSI, f.HasRSSI = r, true
	}
	return f, nil
}

func trimHex(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X") {
		s = s[2:]
	}
	return s
}

// Encode implements Codec. The regex format cannot be inverted in general,
// so it writes "RX code=… data=… rssi=…", which the sample regex matches.
func (l *Line) Encode(f Frame) ([]byte, error) {
	code := f.CodeHex()
	data := ""
	if f.HasData {
		data = strings.ToUpper(strconv.FormatUint(uint64(f.Data), 16))
	}
	rssi := ""
	if f.HasRSSI {
		rssi = strconv.Itoa(f.RSSI)
	}
	switch l.opt.Format {
	case LineCSV:
		cols := make([]string, len(l.opt.Fields))
		for i, name := range l.opt.Fields {
			switch name {
			case "code":
				cols[i] = code
			case "data":
				cols[i] = data
			case "rssi":
				cols[i] = rssi
			}
		}
		return []byte(strings.Join(cols, l.opt.Separator) + "\r\n"), nil
	case LineKV:
		s := "RX " + l.keys["code"] + "=" + code
		if data != "" {
			s += " " + l.keys["data"] + "=" + data
		}
		if rssi != "" {
			s += " " + l.keys["rssi"] + "=" + rssi
		}
		return []byte(s + "\r\n"), nil
	}
	s := "RX code=" + code
	if data != "" {
		s += " data=" + data
	}
	if rssi != "" {
		s += " rssi=" + rssi
	}
	return []byte(s + "\n"), nil
}

package config

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Syntax errors. go-yaml reports the line of the construct it was parsing
// when it failed (libyaml's "context mark"), not the place that is wrong,
// and never a column: a tab indenting line 3 of a mapping that starts on
// line 2 reads "line 2: found a tab character that violates indentation".
// yamlProblem puts the problem where a reader has to fix it, by looking at
// the lines from that context on for the usual mistakes: a tab in the
// indentation, a quote never closed, a line at no indentation level of
// the lines above, an unquoted value containing ": ".

var yamlLineRE = regexp.MustCompile(`^line (\d+): `)

// yamlProblem turns a go-yaml syntax error on data into a problem.
func yamlProblem(file string, data []byte, err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	lines := splitLines(data)
	if line > len(lines) {
		line = max(len(lines), 1)
	}
	if c, ok := lintYAML(lines, line); ok {
		return Problem{File: file, Line: c.line, Col: c.col, Msg: "invalid YAML: " + c.msg}
	}
	col := 1
	if line <= len(lines) {
		col = indentOf(lines[line-1]) + 1
		if strings.Contains(msg, "mapping values are not allowed") {
			// The key's own colon is fine; the next ": " is the problem.
			if i := valueColon(lines[line-1]); i >= 0 {
				return Problem{File: file, Line: line, Col: runeCol(lines[line-1], i),
					Msg: `invalid YAML: a value containing ": " must be quoted, e.g. key: "a: b"`}
			}
		}
	}
	return Problem{File: file, Line: line, Col: col, Msg: "invalid YAML: " + msg}
}

func splitLines(data []byte) []string {
	data = bytes.TrimSuffix(data, []byte("\n"))
	if len(data) == 0 {
		return nil
	}
	out := strings.Split(string(data), "\n")
	for i, l := range out {
		out[i] = strings.TrimSuffix(l, "\r")
	}
	return out
}

// indentOf counts the leading spaces and tabs of l.
func indentOf(l string) int { return len(l) - len(strings.TrimLeft(l, " \t")) }

// runeCol is the 1-based column of byte offset i in l, counted in
// characters as go-yaml counts them.
func runeCol(l string, i int) int { return len([]rune(l[:i])) + 1 }

// lintFinding is a likely cause of a syntax error.
type lintFinding struct {
	line, col int
	msg       string
}

// level is one open block of the document: a mapping's keys or a list's
// "- " items at a column.
type level struct {
	col  int
	list bool
	line int // where the block started, for messages
}

// lintYAML finds the first likely mistake at or after line from (the
// line go-yaml names, which is never after the real one). It reads the
// lines as block YAML, skipping block scalars and flow collections that
// span lines. It gives up at a quote it cannot pair on its line before
// from: nothing after it reads as the author meant.
func lintYAML(lines []string, from int) (lintFinding, bool) {
	stack := []level{}
	opened := false   // the previous content line ended in "key:" or "-"
	prevLine := 0     // the previous content line
	blockScalar := -1 // indentation of the line that started a | or > scalar
	flowDepth := 0
	for i, raw := range lines {
		n := i + 1
		ind := indentOf(raw)
		content := raw[ind:]
		if strings.TrimSpace(content) == "" || strings.HasPrefix(content, "#") {
			continue
		}
		if blockScalar >= 0 {
			if ind > blockScalar {
				continue
			}
			blockScalar = -1
		}
		if tab := strings.IndexByte(raw[:ind], '\t'); tab >= 0 && flowDepth == 0 {
			if n >= from {
				return lintFinding{n, tab + 1, "a tab in the indentation: YAML indents with spaces only; replace the tab with spaces"}, true
			}
			continue
		}
		d, q := scanLine(content)
		if q >= 0 {
			if n >= from {
				return lintFinding{n, runeCol(raw, ind+q), unclosedQuote(content[q])}, true
			}
			return lintFinding{}, false
		}
		if flowDepth > 0 {
			flowDepth += d
			prevLine = n
			continue
		}
		if content == "---" || strings.HasPrefix(content, "--- ") || content == "..." || strings.HasPrefix(content, "%") {
			stack, opened = stack[:0], false
			continue
		}

		// Where the line sits among the open blocks.
		item := content == "-" || strings.HasPrefix(content, "- ")
		var bad string
		switch {
		case len(stack) == 0 || (opened && ind > stack[len(stack)-1].col):
			stack = append(stack, level{col: ind, list: item, line: n})
		case opened && item && ind == stack[len(stack)-1].col && !stack[len(stack)-1].list:
			// "key:" then "- item" at the key's own column.
			stack = append(stack, level{col: ind, list: true, line: n})
		case ind > stack[len(stack)-1].col:
			if !item && !isKeyLine(content) {
				// A plain value continued on the next line.
				prevLine = n
				continue
			}
			bad = fmt.Sprintf("this line is indented more than line %d, whose value is already given there: "+
				"align it with the keys at column %d, or put that value on its own indented lines", prevLine, stack[len(stack)-1].col+1)
		default:
			open := append([]level(nil), stack...)
			for len(stack) > 0 && stack[len(stack)-1].col > ind {
				stack = stack[:len(stack)-1]
			}
			// A list at its parent key's column ends at the next key.
			if len(stack) > 1 && !item && stack[len(stack)-1].list && stack[len(stack)-2].col == ind {
				stack = stack[:len(stack)-1]
			}
			switch top := len(stack) - 1; {
			case top < 0 || stack[top].col != ind:
				bad = fmt.Sprintf("the indentation (column %d) matches no block above: line it up with %s", ind+1, columnsOf(open))
				stack = append(stack, level{col: ind, list: item, line: n})
			case stack[top].list && !item:
				bad = fmt.Sprintf("this line is at the column of the list items above (\"- \", line %d) but is not one: "+
					"indent it to column %d to continue that item, or start a new item with \"- \"", stack[top].line, ind+3)
			case !stack[top].list && item:
				bad = fmt.Sprintf("a list item (\"- \") among the keys of the mapping from line %d: indent the list under its key", stack[top].line)
			}
		}
		if bad != "" && n >= from {
			return lintFinding{n, ind + 1, bad}, true
		}

		// What the line opens for the lines after it.
		rest, off := content, 0
		for rest == "-" || strings.HasPrefix(rest, "- ") {
			top := stack[len(stack)-1]
			if top.col != ind+off || !top.list {
				stack = append(stack, level{col: ind + off, list: true, line: n})
			}
			if rest == "-" {
				break
			}
			after := strings.TrimLeft(rest[1:], " ")
			off += len(rest) - len(after)
			if isKeyLine(after) {
				// "- key: v": the item's keys continue at key's column.
				stack = append(stack, level{col: ind + off, line: n})
			}
			rest = after
		}
		opened = rest == "-"
		if v, ok := keyValue(rest); ok {
			switch {
			case v == "" || strings.HasPrefix(v, "#") || isNodeProps(v):
				opened = true
			case isBlockScalar(v):
				blockScalar = ind
			}
		}
		flowDepth = d
		prevLine = n
	}
	return lintFinding{}, false
}

func unclosedQuote(q byte) string {
	return fmt.Sprintf("the %c that starts this value is never closed on its line: add the closing %c (or remove this one)", q, q)
}

// columnsOf lists the columns of the open blocks, innermost first, with
// a line that uses each.
func columnsOf(stack []level) string {
	var cols []string
	seen := map[int]bool{}
	for i := len(stack) - 1; i >= 0; i-- {
		if c := stack[i].col + 1; !seen[c] {
			seen[c] = true
			cols = append(cols, fmt.Sprintf("column %d (as on line %d)", c, stack[i].line))
		}
	}
	switch len(cols) {
	case 0:
		return "column 1"
	case 1:
		return cols[0]
	}
	return strings.Join(cols[:len(cols)-1], ", ") + " or " + cols[len(cols)-1]
}

// scanLine reads one line's content outside quotes: how many flow
// brackets it leaves open (or closes), and the offset of a quote that
// starts a scalar and is not closed on the line (-1 if none). A comment
// ends the line.
func scanLine(s string) (depth int, openQuote int) {
	atStart := true // a scalar may start here
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case (c == '"' || c == '\'') && atStart:
			j := closingQuote(s, i)
			if j < 0 {
				return depth, i
			}
			i = j
			atStart = false
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return depth, -1
		case c == '[' || c == '{':
			depth++
			atStart = true
		case c == ']' || c == '}':
			depth--
			atStart = false
		case c == ',' && depth > 0:
			atStart = true
		case (c == ':' || c == '-' || c == '?') && (i+1 == len(s) || s[i+1] == ' ') && (atStart || c == ':'):
			atStart = true
		case c == ' ' || c == '\t':
		case (c == '&' || c == '!') && atStart:
			// An anchor or tag: the value starts after it.
			for i+1 < len(s) && s[i+1] != ' ' {
				i++
			}
		default:
			atStart = false
		}
	}
	return depth, -1
}

// closingQuote returns the offset of the quote closing the one at i.
func closingQuote(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case q == '"' && s[j] == '\\':
			j++
		case s[j] == q && q == '\'' && j+1 < len(s) && s[j+1] == '\'':
			j++
		case s[j] == q:
			return j
		}
	}
	return -1
}

// keyValue splits "key: value" (or "key:") and returns the value; ok is
// false when the line is not a key.
func keyValue(s string) (string, bool) {
	i := keyColon(s)
	if i < 0 {
		return "", false
	}
	return strings.TrimSpace(s[i+1:]), true
}

func isKeyLine(s string) bool { return keyColon(s) >= 0 }

// keyColon is the offset of the colon ending a block mapping key at the
// start of s, or -1.
func keyColon(s string) int {
	if s == "" || strings.ContainsRune("[{#|>-", rune(s[0])) && !(s[0] == '-' && len(s) > 1 && s[1] != ' ') {
		return -1
	}
	i := 0
	if s[0] == '"' || s[0] == '\'' {
		j := closingQuote(s, 0)
		if j < 0 {
			return -1
		}
		i = j + 1
	}
	for ; i < len(s); i++ {
		if s[i] == ':' && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\t') {
			return i
		}
		if s[i] == '#' && i > 0 && s[i-1] == ' ' {
			return -1
		}
	}
	return -1
}

// valueColon is the offset in l of a ": " after the key's own colon, in
// an unquoted value.
func valueColon(l string) int {
	ind := indentOf(l)
	s := l[ind:]
	for strings.HasPrefix(s, "- ") {
		ind += 2
		s = l[ind:]
	}
	k := keyColon(s)
	if k < 0 {
		return -1
	}
	v := s[k+1:]
	lead := len(v) - len(strings.TrimLeft(v, " "))
	if lead == len(v) || strings.ContainsRune("\"'[{|>&!", rune(v[lead])) {
		return -1
	}
	if j := strings.Index(v, ": "); j >= 0 {
		return ind + k + 1 + j
	}
	return -1
}

func isBlockScalar(v string) bool {
	v, _, _ = strings.Cut(v, " #")
	v = strings.TrimSpace(v)
	return len(v) > 0 && (v[0] == '|' || v[0] == '>') && strings.Trim(v[1:], "+-0123456789") == ""
}

// isNodeProps reports whether v is only an anchor and/or tag ("&a",
// "!!map &a"): the value follows on the next lines.
func isNodeProps(v string) bool {
	v, _, _ = strings.Cut(v, " #")
	for _, f := range strings.Fields(v) {
		if f[0] != '&' && f[0] != '!' {
			return false
		}
	}
	return strings.TrimSpace(v) != ""
}

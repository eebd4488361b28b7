package recording

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParseError is a problem at one line of an input file.
type ParseError struct {
	File string
	Line int
	Msg  string
}

func (e *ParseError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

func perr(file string, line int, format string, a ...any) *ParseError {
	return &ParseError{File: file, Line: line, Msg: fmt.Sprintf(format, a...)}
}

// Sensor is one sensor of a recording.
type Sensor struct {
	ID     string `json:"id"`
	Room   string `json:"room,omitempty"`
	Object string `json:"object"`
}

// Firing is one activation of a sensor: the switch closed (a door or
// cupboard opened, a tap or light was turned on) at Start and opened again
// at End. Times are the recording's own wall clock, held as civil times in
// time.UTC (the zone is chosen later, by [Build]).
type Firing struct {
	Sensor     string
	Start, End time.Time
	Line       int // where it was read
}

// Activity is a labelled activity of the resident (annotation).
type Activity struct {
	Label      string
	Start, End time.Time
	Line       int
}

// maxLine bounds one input line; the real files' longest is under 5 KB.
const maxLine = 1 << 20

// readLines returns the lines of r without their line endings (LF or CRLF).
func readLines(file string, r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var lines []string
	for sc.Scan() {
		lines = append(lines, strings.TrimSuffix(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, perr(file, len(lines)+1, "line longer than %d bytes: not a text recording", maxLine)
		}
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return lines, nil
}

// ---- Kasteren (UbiComp 2008) ----

// kasterenLayout is the time format of the Kasteren text files.
const kasterenLayout = "02-Jan-2006 15:04:05"

var (
	kSensorRe   = regexp.MustCompile(`^\s*\[\s*(\d+)\s*\]\s*'([^']*)'\s*$`)
	kActivityRe = regexp.MustCompile(`^\s*(\d+)\s*:\s*'([^']*)'\s*$`)
)

type kRow struct {
	line int
	f    []string
}

// kasterenTable reads a Kasteren text file: a header (with the id list
// matched by re) ending at a line of dashes, tab-separated rows of cols
// fields, and an optional "Length: N" trailer that must count the rows.
func kasterenTable(file string, lines []string, cols int, re *regexp.Regexp, what string) (map[int]string, []kRow, error) {
	labels := map[int]string{}
	i := 0
	for ; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(strings.TrimSpace(l), "---") {
			break
		}
		if m := re.FindStringSubmatch(l); m != nil {
			id, err := strconv.Atoi(m[1])
			if err != nil {
				return nil, nil, perr(file, i+1, "%s id %q: not a number", what, m[1])
			}
			if _, dup := labels[id]; dup {
				return nil, nil, perr(file, i+1, "%s id %d is listed twice in the header", what, id)
			}
			labels[id] = strings.TrimSpace(m[2])
		}
	}
	if i == len(lines) {
		return nil, nil, perr(file, max(len(lines), 1), "no line of dashes ending the header: not a Kasteren %s file", what)
	}
	if len(labels) == 0 {
		return nil, nil, perr(file, i+1, "the header lists no %s ids (lines like \"[12] 'Frontdoor'\" or \"1: 'leave house'\")", what)
	}
	var rows []kRow
	trailer := false
	for i++; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		if trailer {
			return nil, nil, perr(file, i+1, "text after the Length line")
		}
		if n, ok := strings.CutPrefix(l, "Length:"); ok {
			v, err := strconv.Atoi(strings.TrimSpace(n))
			if err != nil {
				return nil, nil, perr(file, i+1, "Length %q: want the number of rows", strings.TrimSpace(n))
			}
			if v != len(rows) {
				return nil, nil, perr(file, i+1, "Length says %d rows, the file has %d: truncated or edited", v, len(rows))
			}
			trailer = true
			continue
		}
		f := strings.Split(lines[i], "\t")
		for j := range f {
			f[j] = strings.TrimSpace(f[j])
		}
		for len(f) > cols && f[len(f)-1] == "" {
			f = f[:len(f)-1]
		}
		if len(f) != cols {
			return nil, nil, perr(file, i+1, "%d tab-separated fields, want %d", len(f), cols)
		}
		rows = append(rows, kRow{i + 1, f})
	}
	return labels, rows, nil
}

func kasterenTimes(file string, r kRow) (time.Time, time.Time, error) {
	s, err := time.Parse(kasterenLayout, r.f[0])
	if err != nil {
		return s, s, perr(file, r.line, "start time %q: want a time like 25-Feb-2008 09:33:41", r.f[0])
	}
	e, err := time.Parse(kasterenLayout, r.f[1])
	if err != nil {
		return s, e, perr(file, r.line, "end time %q: want a time like 25-Feb-2008 09:33:41", r.f[1])
	}
	if e.Before(s) {
		return s, e, perr(file, r.line, "ends at %s, before it starts (%s)", r.f[1], r.f[0])
	}
	return s, e, nil
}

// ParseKasterenSense reads kasterenSenseData.txt: the sensor list of its
// header ("[12]    'Frontdoor'") and one row per firing (start, end,
// sensor id, value). Rows whose value is 0 are skipped (the dataset
// documents it as always 1).
func ParseKasterenSense(file string, r io.Reader) (map[string]Sensor, []Firing, error) {
	lines, err := readLines(file, r)
	if err != nil {
		return nil, nil, err
	}
	labels, rows, err := kasterenTable(file, lines, 4, kSensorRe, "sensor")
	if err != nil {
		return nil, nil, err
	}
	sensors := map[string]Sensor{}
	for id, l := range labels {
		if l == "" {
			return nil, nil, fmt.Errorf("%s: sensor %d has an empty name in the header", file, id)
		}
		sensors[strconv.Itoa(id)] = Sensor{ID: strconv.Itoa(id), Object: l}
	}
	var out []Firing
	for _, row := range rows {
		s, e, err := kasterenTimes(file, row)
		if err != nil {
			return nil, nil, err
		}
		id, err := strconv.Atoi(row.f[2])
		if err != nil {
			return nil, nil, perr(file, row.line, "sensor id %q: not a number", row.f[2])
		}
		if _, ok := labels[id]; !ok {
			return nil, nil, perr(file, row.line, "sensor %d is not in the header's sensor list", id)
		}
		v, err := strconv.Atoi(row.f[3])
		if err != nil || v < 0 || v > 1 {
			return nil, nil, perr(file, row.line, "value %q: want 1 (fired) or 0", row.f[3])
		}
		if v == 0 {
			continue
		}
		out = append(out, Firing{Sensor: strconv.Itoa(id), Start: s, End: e, Line: row.line})
	}
	if len(out) == 0 {
		return nil, nil, perr(file, max(len(lines), 1), "no sensor firings")
	}
	return sensors, out, nil
}

// ParseKasterenActivities reads kasterenActData.txt: the activity list of
// its header ("1: 'leave house'") and one row per annotated activity.
func ParseKasterenActivities(file string, r io.Reader) ([]Activity, error) {
	lines, err := readLines(file, r)
	if err != nil {
		return nil, err
	}
	labels, rows, err := kasterenTable(file, lines, 3, kActivityRe, "activity")
	if err != nil {
		return nil, err
	}
	var out []Activity
	for _, row := range rows {
		s, e, err := kasterenTimes(file, row)
		if err != nil {
			return nil, err
		}
		id, err := strconv.Atoi(row.f[2])
		if err != nil {
			return nil, perr(file, row.line, "activity id %q: not a number", row.f[2])
		}
		l, ok := labels[id]
		if !ok {
			return nil, perr(file, row.line, "activity %d is not in the header's activity list", id)
		}
		out = append(out, Activity{Label: l, Start: s, End: e, Line: row.line})
	}
	return out, nil
}

// ---- MIT PlaceLab, Tapia 2004 ----

// ParseTapiaSensors reads sensors.csv: "SENSOR_ID,LOCATION,OBJECT" lines
// (a header line naming the columns is allowed first).
func ParseTapiaSensors(file string, r io.Reader) (map[string]Sensor, error) {
	lines, err := readLines(file, r)
	if err != nil {
		return nil, err
	}
	out := map[string]Sensor{}
	seen := map[string]int{}
	for i, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		f := strings.SplitN(l, ",", 3)
		if len(f) != 3 {
			return nil, perr(file, i+1, "%d comma-separated fields, want 3 (id, location, object)", len(f))
		}
		id, room, obj := strings.TrimSpace(f[0]), strings.TrimSpace(f[1]), strings.TrimSpace(f[2])
		if len(out) == 0 && strings.EqualFold(id, "SENSOR_ID") {
			continue
		}
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 {
			return nil, perr(file, i+1, "sensor id %q: want a number", id)
		}
		id = strconv.Itoa(n)
		if obj == "" {
			return nil, perr(file, i+1, "sensor %s has no object (third field)", id)
		}
		if first, dup := seen[id]; dup {
			return nil, perr(file, i+1, "sensor %s is listed twice (first at line %d)", id, first)
		}
		seen[id] = i + 1
		out[id] = Sensor{ID: id, Room: room, Object: obj}
	}
	if len(out) == 0 {
		return nil, perr(file, max(len(lines), 1), "no sensors")
	}
	return out, nil
}

// tapiaHeaderRe recognises an activity block's first line (used to resync
// after a bad block).
var tapiaHeaderRe = regexp.MustCompile(`^[^,]+,\s*\d{1,2}/\d{1,2}/\d{4}\s*,\s*\d{1,2}:\d{1,2}:\d{1,2}\s*,\s*\d{1,2}:\d{1,2}:\d{1,2}\s*$`)

// tapiaDate parses M/D/YYYY and rejects days that do not exist.
func tapiaDate(s string) (time.Time, error) {
	f := strings.Split(strings.TrimSpace(s), "/")
	if len(f) != 3 {
		return time.Time{}, fmt.Errorf("date %q: want M/D/YYYY", s)
	}
	var v [3]int
	for i, x := range f {
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("date %q: want M/D/YYYY", s)
		}
		v[i] = n
	}
	m, d, y := v[0], v[1], v[2]
	if y < 1970 || y > 2100 || m < 1 || m > 12 || d < 1 {
		return time.Time{}, fmt.Errorf("date %q: want M/D/YYYY", s)
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d {
		return time.Time{}, fmt.Errorf("date %q: %s has no day %d", s, time.Month(m), d)
	}
	return t, nil
}

// tapiaClock parses H:M:S (fields of one or two digits) as an offset from
// midnight.
func tapiaClock(s string) (time.Duration, error) {
	f := strings.Split(strings.TrimSpace(s), ":")
	if len(f) != 3 {
		return 0, fmt.Errorf("time %q: want H:M:S", s)
	}
	var v [3]int
	for i, x := range f {
		if len(x) == 0 || len(x) > 2 {
			return 0, fmt.Errorf("time %q: want H:M:S", s)
		}
		n, err := strconv.Atoi(x)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("time %q: want H:M:S", s)
		}
		v[i] = n
	}
	if v[0] > 23 || v[1] > 59 || v[2] > 59 {
		return 0, fmt.Errorf("time %q: out of range", s)
	}
	return time.Duration(v[0])*time.Hour + time.Duration(v[1])*time.Minute + time.Duration(v[2])*time.Second, nil
}

func splitTrim(l string) []string {
	f := strings.Split(l, ",")
	for i := range f {
		f[i] = strings.TrimSpace(f[i])
	}
	return f
}

// tapiaBlock parses the block whose header is lines[i]. n is how many
// lines to skip after a bad block (0: the header itself was bad).
func tapiaBlock(file string, lines []string, i int, sensors map[string]Sensor) (Activity, []Firing, int, error) {
	var act Activity
	h := splitTrim(lines[i])
	if len(h) != 4 {
		return act, nil, 0, perr(file, i+1, "activity header has %d fields, want 4 (label, M/D/YYYY, start, end)", len(h))
	}
	if h[0] == "" {
		return act, nil, 0, perr(file, i+1, "activity header has no label")
	}
	day, err := tapiaDate(h[1])
	if err != nil {
		return act, nil, 0, perr(file, i+1, "%v", err)
	}
	st, err := tapiaClock(h[2])
	if err != nil {
		return act, nil, 0, perr(file, i+1, "start %v", err)
	}
	en, err := tapiaClock(h[3])
	if err != nil {
		return act, nil, 0, perr(file, i+1, "end %v", err)
	}
	act = Activity{Label: h[0], Start: day.Add(st), End: day.Add(en), Line: i + 1}
	if act.End.Before(act.Start) { // past midnight
		act.End = act.End.Add(24 * time.Hour)
	}
	if i+5 > len(lines) {
		return act, nil, len(lines) - i, perr(file, i+1, "activity block cut short: want 4 more lines (sensor ids, objects, on times, off times), have %d", len(lines)-i-1)
	}
	ids, names, ons, offs := splitTrim(lines[i+1]), splitTrim(lines[i+2]), splitTrim(lines[i+3]), splitTrim(lines[i+4])
	if len(names) != len(ids) || len(ons) != len(ids) || len(offs) != len(ids) {
		return act, nil, 5, perr(file, i+2, "block has %d sensor ids, %d objects, %d on times and %d off times: want the same count on each line",
			len(ids), len(names), len(ons), len(offs))
	}
	var out []Firing
	for k, id := range ids {
		n, err := strconv.Atoi(id)
		if err != nil || n < 0 {
			return act, nil, 5, perr(file, i+2, "sensor id %q (item %d): want a number", id, k+1)
		}
		id = strconv.Itoa(n)
		sn, ok := sensors[id]
		if !ok {
			return act, nil, 5, perr(file, i+2, "sensor %s (item %d) is not in sensors.csv", id, k+1)
		}
		if !strings.EqualFold(names[k], sn.Object) {
			return act, nil, 5, perr(file, i+3, "item %d: sensor %s is %q in sensors.csv, %q here", k+1, id, sn.Object, names[k])
		}
		on, err := tapiaClock(ons[k])
		if err != nil {
			return act, nil, 5, perr(file, i+4, "item %d: on %v", k+1, err)
		}
		off, err := tapiaClock(offs[k])
		if err != nil {
			return act, nil, 5, perr(file, i+5, "item %d: off %v", k+1, err)
		}
		// The block's date is the activity's; a firing belongs to the day
		// that puts it nearest the activity's start (sensors fire around
		// midnight for activities that cross it).
		s := day.Add(on)
		switch {
		case s.Before(act.Start.Add(-12 * time.Hour)):
			s = s.Add(24 * time.Hour)
		case s.After(act.Start.Add(12 * time.Hour)):
			s = s.Add(-24 * time.Hour)
		}
		e := s.Truncate(24 * time.Hour).Add(off)
		if e.Before(s) {
			e = e.Add(24 * time.Hour)
		}
		out = append(out, Firing{Sensor: id, Start: s, End: e, Line: i + 4})
	}
	return act, out, 5, nil
}

// ParseTapiaActivities reads activities_data.csv: blocks of five lines
// (label,M/D/YYYY,start,end; sensor ids; objects; on times; off times).
// Overlapping labels repeat firings; a firing is kept once (by sensor and
// on time). With skipBad a bad block is skipped and reported in problems;
// otherwise the first one is the error.
func ParseTapiaActivities(file string, r io.Reader, sensors map[string]Sensor, skipBad bool) (acts []Activity, firings []Firing, problems []*ParseError, err error) {
	lines, err := readLines(file, r)
	if err != nil {
		return nil, nil, nil, err
	}
	type key struct {
		s string
		t int64
	}
	seen := map[key]bool{}
	for i := 0; i < len(lines); {
		if strings.TrimSpace(lines[i]) == "" {
			i++
			continue
		}
		act, fs, n, err := tapiaBlock(file, lines, i, sensors)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !skipBad {
				return nil, nil, nil, err
			}
			problems = append(problems, pe)
			if n > 0 {
				i += n
				continue
			}
			j := i + 1
			for j < len(lines) && !tapiaHeaderRe.MatchString(lines[j]) {
				j++
			}
			i = j
			continue
		}
		acts = append(acts, act)
		for _, f := range fs {
			k := key{f.Sensor, f.Start.Unix()}
			if seen[k] {
				continue
			}
			seen[k] = true
			firings = append(firings, f)
		}
		i += n
	}
	if len(firings) == 0 {
		return nil, nil, problems, perr(file, max(len(lines), 1), "no sensor firings")
	}
	slices.SortStableFunc(firings, func(a, b Firing) int { return a.Start.Compare(b.Start) })
	slices.SortStableFunc(acts, func(a, b Activity) int { return a.Start.Compare(b.Start) })
	return acts, firings, problems, nil
}

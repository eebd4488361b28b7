package serial

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Learner collects the codes heard during pairing (`lintel probe serial
// --learn`): the installer triggers each sensor and reads back its code.
type Learner struct {
	codes map[string]*Heard
	order []string
}

// Heard is what was heard of one code.
type Heard struct {
	Frame    Frame // the last one
	Count    int
	First    time.Time
	Last     time.Time
	DataSeen []uint32 // distinct data values (split receivers)
}

// maxLearned bounds the list on a noisy band.
const maxLearned = 256

// NewLearner returns an empty Learner.
func NewLearner() *Learner { return &Learner{codes: map[string]*Heard{}} }

// Add records a frame; it reports whether the code is new.
func (l *Learner) Add(now time.Time, f Frame) (h *Heard, isNew bool) {
	key := fmt.Sprintf("%d/%s", f.Bits, f.CodeHex())
	h = l.codes[key]
	if h == nil {
		if len(l.codes) >= maxLearned {
			return nil, false
		}
		h = &Heard{First: now}
		l.codes[key] = h
		l.order = append(l.order, key)
		isNew = true
	}
	h.Frame, h.Count, h.Last = f, h.Count+1, now
	if f.HasData && !containsU32(h.DataSeen, f.Data) {
		h.DataSeen = append(h.DataSeen, f.Data)
	}
	return h, isNew
}

func containsU32(s []uint32, v uint32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Heard lists the codes in the order first heard.
func (l *Learner) Heard() []*Heard {
	out := make([]*Heard, 0, len(l.order))
	for _, k := range l.order {
		out = append(out, l.codes[k])
	}
	return out
}

// Describe renders one heard code as a line: code, count, data, RSSI.
func (h *Heard) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-16s ×%-4d", h.Frame.CodeHex(), h.Count)
	if h.Frame.HasData {
		fmt.Fprintf(&b, " data=%s", hexDigits(uint64(h.Frame.Data), 8))
	}
	if h.Frame.HasRSSI {
		fmt.Fprintf(&b, " rssi=%d", h.Frame.RSSI)
	} else {
		b.WriteString(" rssi=-")
	}
	if h.Frame.Tamper {
		b.WriteString(" tamper")
	}
	if h.Frame.BatteryLow {
		b.WriteString(" battery_low")
	}
	fmt.Fprintf(&b, " %s", h.Frame.Proto)
	return b.String()
}

// Candidate is one reading of a heard code through a code table.
type Candidate struct {
	Profile string
	Table   *Table
	Addr    uint64
	Data    uint32
	Meaning Meaning // "" when the table has no entry for the data
}

// Candidates interprets a heard frame with every table whose layout fits
// it; tables that know the data value come first.
func Candidates(f Frame, tables map[string]*Table) []Candidate {
	var out []Candidate
	names := make([]string, 0, len(tables))
	for n := range tables {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t := tables[n]
		var c Candidate
		switch {
		case f.HasData:
			if t.AddressBits > 0 && t.AddressBits < 64 && f.Code>>t.AddressBits != 0 {
				continue
			}
			c = Candidate{Profile: n, Table: t, Addr: f.Code, Data: f.Data}
		default:
			a, d, ok := t.Split(f.Code, f.Bits)
			if !ok {
				continue
			}
			c = Candidate{Profile: n, Table: t, Addr: a, Data: d}
		}
		c.Meaning, _ = t.Meaning(c.Data)
		out = append(out, c)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Meaning != "" && out[j].Meaning == "" })
	return out
}

// BindingYAML writes the device block that binds a code to a sensor.
func BindingYAML(w io.Writer, c Candidate, id, kind, household, receiver, address string) {
	code := hexDigits(c.Addr, c.Table.AddressBits)
	if c.Table.AddressBits == 0 {
		code = hexDigits(c.Addr, 24)
	}
	if kind == "" {
		kind = c.Table.Kinds[0]
		if c.Meaning != "" {
			for _, k := range c.Table.Kinds {
				if _, ok := kindFor(k, c.Meaning); ok {
					kind = k
					break
				}
			}
		}
	}
	if id == "" {
		id = kind + "-" + strings.ToLower(code)
	}
	if household == "" {
		household = "h-CHANGE-ME"
	}
	if receiver == "" {
		receiver = "rf-CHANGE-ME"
	}
	fmt.Fprintf(w, "  - id: %s\n    kind: %s\n    driver: serial\n", id, kind)
	if address != "" {
		fmt.Fprintf(w, "    address: %s\n", address)
	}
	fmt.Fprintf(w, "    household: %s\n    profile: %s\n    options:\n      receiver: %s\n      code: %q\n", household, c.Profile, receiver, code)
}

// Best picks, for each heard code, the reading that makes the most sense
// across everything heard: codes of one sensor share an address, so the
// table under which that address's data values are known — and fit one
// sensor kind — wins. Ties go to the table name first in order.
func (l *Learner) Best(tables map[string]*Table) map[*Heard]Candidate {
	type group struct {
		meanings map[Meaning]bool
		table    *Table
	}
	groups := map[string]*group{}
	gkey := func(c Candidate) string { return fmt.Sprintf("%s/%X", c.Profile, c.Addr) }
	heard := l.Heard()
	all := make([][]Candidate, len(heard))
	for i, h := range heard {
		all[i] = Candidates(h.Frame, tables)
		for _, c := range all[i] {
			g := groups[gkey(c)]
			if g == nil {
				g = &group{meanings: map[Meaning]bool{}, table: c.Table}
				groups[gkey(c)] = g
			}
			if c.Meaning != "" {
				g.meanings[c.Meaning] = true
			}
		}
	}
	score := func(c Candidate) int {
		g := groups[gkey(c)]
		s := 2 * len(g.meanings)
		if c.Meaning == "" {
			s--
		}
		for _, k := range g.table.Kinds {
			fits := true
			for m := range g.meanings {
				if _, ok := kindFor(k, m); !ok && m != Tamper && m != TamperOK && m != BatteryLow && m != Heartbeat {
					fits = false
				}
			}
			if fits {
				return s + 1
			}
		}
		return s
	}
	out := map[*Heard]Candidate{}
	for i, h := range heard {
		best, bs := -1, 0
		for j, c := range all[i] {
			if s := score(c); best < 0 || s > bs {
				best, bs = j, s
			}
		}
		if best >= 0 {
			out[h] = all[i][best]
		}
	}
	return out
}

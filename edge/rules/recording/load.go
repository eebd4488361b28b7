package recording

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Formats are the recording formats Load reads.
var Formats = []string{"kasteren", "tapia"}

// Absence is a period the resident was out, in the recording's wall
// clock. Labelled ones come from the annotation ("leave house"); inferred
// ones from the sensors (a door cycle, no in-home firing, the next door
// cycle).
type Absence struct {
	From, To time.Time
	Labelled bool
}

// Recording is a parsed single-resident recording.
type Recording struct {
	Name       string // trace name, e.g. "kasteren" or "tapia-subject1"
	Format     string
	Source     string // citation
	Sensors    map[string]Sensor
	Door       string   // sensor id of the entrance door
	Firings    []Firing // by start time
	Activities []Activity
	Absences   []Absence
	// Problems are the bad blocks skipped (Options.SkipBad).
	Problems []*ParseError
}

// Options tell Load how to read a recording.
type Options struct {
	// Name of the trace (and stem of its household id); default
	// "kasteren", or for Tapia the directory's name with "tapia-" in
	// front unless it starts so ("subject1" → "tapia-subject1").
	Name string
	// Door is the sensor id of the entrance door; default: the one the
	// sensor list names (Kasteren "Frontdoor"; Tapia a Door in the Foyer,
	// Hallway or Entrance).
	Door string
	// SkipBad skips malformed blocks (reported in Recording.Problems)
	// instead of failing.
	SkipBad bool
}

// Citations of the datasets.
const (
	SourceKasteren = "T.L.M. van Kasteren, A. Noulas, G. Englebienne, B. Kröse: Accurate Activity Recognition in a Home Setting, UbiComp 2008 (copy in github.com/tcsvn/pyadlml, datasets/kasteren)"
	SourceTapia    = "E. Munguia Tapia: Activity Recognition in the Home Setting Using Simple and Ubiquitous Sensors, S.M. thesis MIT 2003 / Pervasive 2004 (copy in github.com/tcsvn/pyadlml, datasets/mitlab)"
)

// Load reads the recording of the given format from dir: for "kasteren"
// kasterenSenseData.txt (and kasterenActData.txt if present), for "tapia"
// sensors.csv and activities_data.csv.
func Load(format, dir string, o Options) (*Recording, error) {
	rec := &Recording{Format: format, Name: o.Name}
	open := func(name string) (*os.File, error) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("open %s recording: %w", format, err)
		}
		return f, nil
	}
	switch format {
	case "kasteren":
		rec.Source = SourceKasteren
		if rec.Name == "" {
			rec.Name = "kasteren"
		}
		f, err := open("kasterenSenseData.txt")
		if err != nil {
			return nil, err
		}
		rec.Sensors, rec.Firings, err = ParseKasterenSense(f.Name(), f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if f, err := os.Open(filepath.Join(dir, "kasterenActData.txt")); err == nil {
			rec.Activities, err = ParseKasterenActivities(f.Name(), f)
			f.Close()
			if err != nil {
				return nil, err
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	case "tapia":
		rec.Source = SourceTapia
		if rec.Name == "" {
			rec.Name = filepath.Base(filepath.Clean(dir))
			if !strings.HasPrefix(strings.ToLower(rec.Name), "tapia") {
				rec.Name = "tapia-" + rec.Name
			}
		}
		f, err := open("sensors.csv")
		if err != nil {
			return nil, err
		}
		rec.Sensors, err = ParseTapiaSensors(f.Name(), f)
		f.Close()
		if err != nil {
			return nil, err
		}
		if f, err = open("activities_data.csv"); err != nil {
			return nil, err
		}
		rec.Activities, rec.Firings, rec.Problems, err = ParseTapiaActivities(f.Name(), f, rec.Sensors, o.SkipBad)
		f.Close()
		if err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown recording format %q: want %s", format, strings.Join(Formats, " or "))
	}
	if err := rec.finish(o.Door); err != nil {
		return nil, err
	}
	return rec, nil
}

// finish sorts the firings, picks the entrance door and finds the
// absences.
func (rec *Recording) finish(door string) error {
	rec.Name = sanitize(rec.Name)
	if rec.Name == "" {
		return errors.New("recording name: want letters, digits or dashes")
	}
	slices.SortStableFunc(rec.Firings, func(a, b Firing) int { return a.Start.Compare(b.Start) })
	if door == "" {
		var err error
		if door, err = findDoor(rec.Sensors); err != nil {
			return err
		}
	}
	if _, ok := rec.Sensors[door]; !ok {
		return fmt.Errorf("entrance door sensor %q is not in the recording's sensor list", door)
	}
	rec.Door = door
	rec.Absences = nil
	for _, a := range rec.Activities {
		if strings.EqualFold(a.Label, "leave house") {
			rec.Absences = append(rec.Absences, Absence{From: a.Start, To: a.End, Labelled: true})
		}
	}
	if len(rec.Absences) == 0 {
		rec.Absences = inferAbsences(rec.Firings, rec.Door)
	}
	return nil
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-' || r == '_' || r == ' ' || r == '.':
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String(), "-")
}

// findDoor picks the entrance door from the sensor list.
func findDoor(sensors map[string]Sensor) (string, error) {
	var found []string
	for id, s := range sensors {
		obj := strings.ToLower(strings.ReplaceAll(s.Object, " ", ""))
		room := strings.ToLower(s.Room)
		switch {
		case strings.Contains(obj, "frontdoor") || strings.Contains(obj, "entrancedoor"):
			found = append(found, id)
		case obj == "door" && (room == "foyer" || room == "hallway" || room == "entrance" || room == "entry"):
			found = append(found, id)
		}
	}
	slices.Sort(found)
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", errors.New("no entrance door in the sensor list (a \"Frontdoor\", or a Door in the Foyer or Hallway): name its sensor id")
	}
	return "", fmt.Errorf("several sensors look like the entrance door (%s): name the right one", strings.Join(found, ", "))
}

// Absence inference from the sensors alone.
const (
	minAbsence = time.Hour       // shorter quiet spells between door cycles are not counted
	doorSlack  = 2 * time.Minute // firings this close to a door cycle are the resident passing it
)

// inferAbsences finds the spans between two door cycles with no in-home
// firing (start or end) in between, at least minAbsence long.
func inferAbsences(fs []Firing, door string) []Absence {
	type cycle struct{ open, close time.Time }
	var cycles []cycle
	var marks []time.Time // in-home firing starts and ends
	for _, f := range fs {
		if f.Sensor != door {
			marks = append(marks, f.Start, f.End)
			continue
		}
		if n := len(cycles); n > 0 && !f.Start.After(cycles[n-1].close) {
			if f.End.After(cycles[n-1].close) {
				cycles[n-1].close = f.End
			}
			continue
		}
		cycles = append(cycles, cycle{f.Start, f.End})
	}
	slices.SortFunc(marks, func(a, b time.Time) int { return a.Compare(b) })
	var out []Absence
	for i := 0; i+1 < len(cycles); i++ {
		from, to := cycles[i].close, cycles[i+1].open
		if to.Sub(from) < minAbsence {
			continue
		}
		lo, hi := from.Add(doorSlack), to.Add(-doorSlack)
		j, _ := slices.BinarySearchFunc(marks, lo, func(a, b time.Time) int { return a.Compare(b) })
		if j < len(marks) && marks[j].Before(hi) {
			continue
		}
		out = append(out, Absence{From: from, To: to})
	}
	return out
}

// Span is the first and last wall-clock instant of the recording.
func (rec *Recording) Span() (time.Time, time.Time) {
	if len(rec.Firings) == 0 {
		return time.Time{}, time.Time{}
	}
	first, last := rec.Firings[0].Start, rec.Firings[0].End
	for _, f := range rec.Firings {
		if f.End.After(last) {
			last = f.End
		}
	}
	return first, last
}

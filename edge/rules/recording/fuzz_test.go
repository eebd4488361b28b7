package recording

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The parsers must never panic, must report bad input as file:line, and
// what they accept must be consistent: firings end no earlier than they
// start and name a listed sensor.

func seedFile(f *testing.F, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b))
}

func checkErr(t *testing.T, err error, file string) {
	var pe *ParseError
	if errors.As(err, &pe) {
		if pe.File != file || pe.Line < 1 {
			t.Fatalf("error %q: want %s:line", err, file)
		}
		return
	}
	if !strings.HasPrefix(err.Error(), file+":") {
		t.Fatalf("error %q does not name the file", err)
	}
}

func checkFirings(t *testing.T, fs []Firing, sensors map[string]Sensor) {
	for _, x := range fs {
		if x.End.Before(x.Start) {
			t.Fatalf("firing %+v ends before it starts", x)
		}
		if _, ok := sensors[x.Sensor]; !ok {
			t.Fatalf("firing %+v: sensor not listed", x)
		}
		if x.Line < 1 {
			t.Fatalf("firing %+v: no line", x)
		}
	}
}

func FuzzKasterenSense(f *testing.F) {
	for _, tc := range kasterenSenseCases {
		f.Add(tc.in)
	}
	seedFile(f, "testdata/kasteren/kasterenSenseData.txt")
	f.Fuzz(func(t *testing.T, in string) {
		sensors, fs, err := ParseKasterenSense("s.txt", strings.NewReader(in))
		if err != nil {
			checkErr(t, err, "s.txt")
			return
		}
		if len(fs) == 0 {
			t.Fatal("accepted a recording without firings")
		}
		checkFirings(t, fs, sensors)
	})
}

func FuzzKasterenActivities(f *testing.F) {
	for _, tc := range kasterenActCases {
		f.Add(tc.in)
	}
	seedFile(f, "testdata/kasteren/kasterenActData.txt")
	f.Fuzz(func(t *testing.T, in string) {
		acts, err := ParseKasterenActivities("a.txt", strings.NewReader(in))
		if err != nil {
			checkErr(t, err, "a.txt")
			return
		}
		for _, a := range acts {
			if a.End.Before(a.Start) {
				t.Fatalf("activity %+v ends before it starts", a)
			}
		}
	})
}

func FuzzTapiaSensors(f *testing.F) {
	for _, tc := range tapiaSensorCases {
		f.Add(tc.in)
	}
	seedFile(f, "testdata/tapia/sensors.csv")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := ParseTapiaSensors("c.csv", strings.NewReader(in))
		if err != nil {
			checkErr(t, err, "c.csv")
			return
		}
		for id, x := range s {
			if n, err := strconv.Atoi(id); err != nil || strconv.Itoa(n) != id || x.ID != id || x.Object == "" {
				t.Fatalf("sensor %q: %+v", id, x)
			}
		}
	})
}

func FuzzTapiaActivities(f *testing.F) {
	for _, tc := range tapiaActCases {
		f.Add(tc.in, false)
		f.Add(tc.in, true)
	}
	b, err := os.ReadFile("testdata/tapia/activities_data.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(b), false)
	sensors := map[string]Sensor{}
	for k, v := range tapiaTestSensors {
		sensors[k] = v
	}
	if s, err := os.Open("testdata/tapia/sensors.csv"); err == nil {
		more, err := ParseTapiaSensors("c.csv", s)
		s.Close()
		if err != nil {
			f.Fatal(err)
		}
		for k, v := range more {
			sensors[k] = v
		}
	}
	f.Fuzz(func(t *testing.T, in string, skipBad bool) {
		_, fs, problems, err := ParseTapiaActivities("t.csv", strings.NewReader(in), sensors, skipBad)
		if err != nil {
			checkErr(t, err, "t.csv")
			return
		}
		if !skipBad && len(problems) > 0 {
			t.Fatal("problems reported without skipBad")
		}
		for _, p := range problems {
			checkErr(t, p, "t.csv")
		}
		checkFirings(t, fs, sensors)
		for i := 1; i < len(fs); i++ {
			if fs[i].Start.Before(fs[i-1].Start) {
				t.Fatal("firings not in time order")
			}
		}
	})
}

package recording

import (
	"strings"
	"testing"
	"time"
)

const kHeader = "Start time: Time sensor started firing\r\n" +
	"Sensor IDs are: \r\n" +
	"    [ 1]    'Microwave'         \r\n" +
	"    [12]    'Frontdoor'         \r\n" +
	"\r\n" +
	"Start time          \tEnd time            \tID\tVal\r\n" +
	"--------------------\t--------------------\t--\t---\r\n"

const kActHeader = "activity id list:\n1: 'leave house'\n10:'go to bed'\n\nStart time\tEnd time\tID\n----\t----\t--\n"

func civil(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

// kasterenSenseCases are the table of ParseKasterenSense (and the fuzz
// seeds).
var kasterenSenseCases = []struct {
	name, in string
	err      string // "" = parses; else "file:line: text" contains it
	firings  int
}{
	{"ok", kHeader + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t1\t1\r\n25-Feb-2008 10:19:28\t25-Feb-2008 10:19:32\t12\t1\r\nLength: 2", "", 2},
	{"lf line ends, no trailer", strings.ReplaceAll(kHeader, "\r", "") + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t1\t1\n", "", 1},
	{"value 0 skipped", kHeader + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t1\t0\r\n25-Feb-2008 10:19:28\t25-Feb-2008 10:19:32\t12\t1\r\n", "", 1},
	{"no separator", "[ 1] 'Microwave'\r\n25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t1\t1\r\n", "s.txt:2: no line of dashes", 0},
	{"no sensor list", "Start time\tEnd time\tID\tVal\r\n----\t----\r\n", "s.txt:2: the header lists no sensor ids", 0},
	{"duplicate id", "[ 1] 'A'\r\n[1] 'B'\r\n---\r\n", "s.txt:2: sensor id 1 is listed twice", 0},
	{"bad start", kHeader + "25-Feb-2008 9:33\t25-Feb-2008 09:33:42\t1\t1\r\n", "s.txt:8: start time \"25-Feb-2008 9:33\"", 0},
	{"bad end", kHeader + "25-Feb-2008 09:33:41\tsoon\t1\t1\r\n", "s.txt:8: end time \"soon\"", 0},
	{"end before start", kHeader + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:40\t1\t1\r\n", "s.txt:8: ends at 25-Feb-2008 09:33:40, before it starts", 0},
	{"unknown sensor", kHeader + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t3\t1\r\n", "s.txt:8: sensor 3 is not in the header's sensor list", 0},
	{"id not a number", kHeader + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\tx\t1\r\n", "s.txt:8: sensor id \"x\"", 0},
	{"bad value", kHeader + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t1\t7\r\n", "s.txt:8: value \"7\"", 0},
	{"three fields", kHeader + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t1\r\n", "s.txt:8: 3 tab-separated fields, want 4", 0},
	{"length mismatch", kHeader + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t1\t1\r\nLength: 5\r\n", "s.txt:9: Length says 5 rows, the file has 1", 0},
	{"length not a number", kHeader + "Length: many\r\n", "s.txt:8: Length \"many\"", 0},
	{"text after length", kHeader + "25-Feb-2008 09:33:41\t25-Feb-2008 09:33:42\t1\t1\r\nLength: 1\r\nmore\r\n", "s.txt:10: text after the Length line", 0},
	{"no rows", kHeader, "s.txt:7: no sensor firings", 0},
}

func TestParseKasterenSense(t *testing.T) {
	for _, tc := range kasterenSenseCases {
		t.Run(tc.name, func(t *testing.T) {
			sensors, fs, err := ParseKasterenSense("s.txt", strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != tc.firings {
				t.Fatalf("%d firings, want %d", len(fs), tc.firings)
			}
			if sensors["12"].Object != "Frontdoor" || sensors["1"].Object != "Microwave" {
				t.Fatalf("sensors %v", sensors)
			}
		})
	}
	_, fs, err := ParseKasterenSense("s.txt", strings.NewReader(kasterenSenseCases[0].in))
	if err != nil {
		t.Fatal(err)
	}
	want := Firing{Sensor: "12", Start: civil("2008-02-25 10:19:28"), End: civil("2008-02-25 10:19:32"), Line: 9}
	if fs[1] != want {
		t.Fatalf("firing %+v, want %+v", fs[1], want)
	}
}

var kasterenActCases = []struct{ name, in, err string }{
	{"ok", kActHeader + "25-Feb-2008 00:22:46\t25-Feb-2008 09:34:12\t10\n25-Feb-2008 10:19:06\t25-Feb-2008 16:55:38\t1\nLength: 2\n", ""},
	{"unknown activity", kActHeader + "25-Feb-2008 00:22:46\t25-Feb-2008 09:34:12\t11\n", "a.txt:7: activity 11 is not in the header's activity list"},
	{"four fields", kActHeader + "25-Feb-2008 00:22:46\t25-Feb-2008 09:34:12\t10\t1\n", "a.txt:7: 4 tab-separated fields, want 3"},
	{"end before start", kActHeader + "25-Feb-2008 09:22:46\t25-Feb-2008 09:04:12\t10\n", "a.txt:7: ends at"},
}

func TestParseKasterenActivities(t *testing.T) {
	for _, tc := range kasterenActCases {
		t.Run(tc.name, func(t *testing.T) {
			acts, err := ParseKasterenActivities("a.txt", strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(acts) != 2 || acts[1].Label != "leave house" || !acts[1].End.Equal(civil("2008-02-25 16:55:38")) {
				t.Fatalf("activities %+v", acts)
			}
		})
	}
}

var tapiaSensorCases = []struct{ name, in, err string }{
	{"ok", "100,Bathroom,Toilet Flush \r\n140,Foyer,Door\r\n", ""},
	{"header line", "SENSOR_ID,LOCATION,OBJECT\n100,Bathroom,Toilet Flush\n140,Foyer,Door\n", ""},
	{"two fields", "100,Bathroom\n", "c.csv:1: 2 comma-separated fields, want 3"},
	{"bad id", "100,Bathroom,Toilet Flush\nx1,Foyer,Door\n", "c.csv:2: sensor id \"x1\""},
	{"duplicate", "100,Bathroom,Toilet Flush\n100,Foyer,Door\n", "c.csv:2: sensor 100 is listed twice (first at line 1)"},
	{"no object", "100,Bathroom, \n", "c.csv:1: sensor 100 has no object"},
	{"empty", "\n\n", "c.csv:2: no sensors"},
}

func TestParseTapiaSensors(t *testing.T) {
	for _, tc := range tapiaSensorCases {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseTapiaSensors("c.csv", strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(s) != 2 || s["100"].Object != "Toilet Flush" || s["140"].Room != "Foyer" {
				t.Fatalf("sensors %+v", s)
			}
		})
	}
}

var tapiaTestSensors = map[string]Sensor{
	"100": {ID: "100", Room: "Bathroom", Object: "Toilet Flush"},
	"68":  {ID: "68", Room: "Bathroom", Object: "Sink faucet - hot"},
	"140": {ID: "140", Room: "Foyer", Object: "Door"},
}

const tapiaOK = "Toileting,4/1/2003,17:30:36,17:46:41\r\n100,68\r\nToilet Flush,Sink faucet - hot\r\n17:39:37,17:39:46\r\n18:10:57,17:39:52\r\n"

var tapiaActCases = []struct {
	name, in, err string
	firings       int
}{
	{"ok", tapiaOK, "", 2},
	{"repeated under another label", tapiaOK + strings.Replace(tapiaOK, "Toileting", "Grooming", 1), "", 2},
	{"cut short", tapiaOK + "Bathing,4/1/2003,20:41:35,21:32:50\r\n100\r\n", "t.csv:6: activity block cut short", 0},
	{"header fields", "Toileting,4/1/2003,17:30:36\r\n100\r\nToilet Flush\r\n17:39:37\r\n18:10:57\r\n", "t.csv:1: activity header has 3 fields", 0},
	{"no such day", strings.Replace(tapiaOK, "4/1/2003", "4/31/2003", 1), "t.csv:1: date \"4/31/2003\": April has no day 31", 0},
	{"bad date", strings.Replace(tapiaOK, "4/1/2003", "2003-04-01", 1), "t.csv:1: date \"2003-04-01\": want M/D/YYYY", 0},
	{"bad start", strings.Replace(tapiaOK, "17:30:36,", "17:30,", 1), "t.csv:1: start time \"17:30\"", 0},
	{"count mismatch", strings.Replace(tapiaOK, "100,68", "100,68,140", 1), "t.csv:2: block has 3 sensor ids, 2 objects", 0},
	{"unknown sensor", strings.Replace(tapiaOK, "100,68", "101,68", 1), "t.csv:2: sensor 101 (item 1) is not in sensors.csv", 0},
	{"object mismatch", strings.Replace(tapiaOK, "Toilet Flush,", "Door,", 1), "t.csv:3: item 1: sensor 100 is \"Toilet Flush\" in sensors.csv, \"Door\" here", 0},
	{"bad on time", strings.Replace(tapiaOK, "17:39:37,", "17:39:77,", 1), "t.csv:4: item 1: on time \"17:39:77\": out of range", 0},
	{"bad off time", strings.Replace(tapiaOK, "18:10:57,", "x,", 1), "t.csv:5: item 1: off time \"x\"", 0},
	{"empty", "\r\n", "t.csv:1: no sensor firings", 0},
}

func TestParseTapiaActivities(t *testing.T) {
	for _, tc := range tapiaActCases {
		t.Run(tc.name, func(t *testing.T) {
			acts, fs, _, err := ParseTapiaActivities("t.csv", strings.NewReader(tc.in), tapiaTestSensors, false)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(fs) != tc.firings || len(acts) == 0 {
				t.Fatalf("%d firings, %d activities", len(fs), len(acts))
			}
		})
	}
	_, fs, _, err := ParseTapiaActivities("t.csv", strings.NewReader(tapiaOK), tapiaTestSensors, false)
	if err != nil {
		t.Fatal(err)
	}
	want := Firing{Sensor: "100", Start: civil("2003-04-01 17:39:37"), End: civil("2003-04-01 18:10:57"), Line: 4}
	if fs[0] != want {
		t.Fatalf("firing %+v, want %+v", fs[0], want)
	}
}

// A label crossing midnight: its firings belong to the day nearest the
// label's start, an off time before the on time is the next day.
func TestTapiaMidnight(t *testing.T) {
	in := "Grooming,4/1/2003,23:50:0,0:10:0\n100,68,68\nToilet Flush,Sink faucet - hot,Sink faucet - hot\n23:55:0,0:5:0,23:40:0\n0:2:0,0:6:0,23:41:0\n" +
		"Toileting,4/2/2003,0:5:0,0:20:0\n100\nToilet Flush\n23:59:0\n0:1:0\n"
	acts, fs, _, err := ParseTapiaActivities("t.csv", strings.NewReader(in), tapiaTestSensors, false)
	if err != nil {
		t.Fatal(err)
	}
	if !acts[0].End.Equal(civil("2003-04-02 00:10:00")) {
		t.Fatalf("label end %v", acts[0].End)
	}
	want := []Firing{
		{Sensor: "68", Start: civil("2003-04-01 23:40:00"), End: civil("2003-04-01 23:41:00"), Line: 4},
		{Sensor: "100", Start: civil("2003-04-01 23:55:00"), End: civil("2003-04-02 00:02:00"), Line: 4},
		{Sensor: "100", Start: civil("2003-04-01 23:59:00"), End: civil("2003-04-02 00:01:00"), Line: 9},
		{Sensor: "68", Start: civil("2003-04-02 00:05:00"), End: civil("2003-04-02 00:06:00"), Line: 4},
	}
	if len(fs) != len(want) {
		t.Fatalf("firings %+v", fs)
	}
	for i := range want {
		if fs[i] != want[i] {
			t.Errorf("firing %d = %+v, want %+v", i, fs[i], want[i])
		}
	}
}

// With skipBad, a bad block is reported and the next one read: after a
// bad header by finding the next header, after bad content by its size.
func TestTapiaSkipBad(t *testing.T) {
	in := strings.Replace(tapiaOK, "100,68", "100,68,140", 1) + // bad content: skipped by size
		"garbage line\r\n" + // a bad header: resync on the next header
		strings.Replace(tapiaOK, "100,68", "101,68", 1) + // unknown sensor
		strings.Replace(tapiaOK, "4/1/2003", "4/3/2003", 1)
	acts, fs, problems, err := ParseTapiaActivities("t.csv", strings.NewReader(in), tapiaTestSensors, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 1 || len(fs) != 2 || fs[0].Start.Day() != 3 {
		t.Fatalf("acts %+v firings %+v", acts, fs)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Error())
	}
	want := []string{
		"t.csv:2: block has 3 sensor ids, 2 objects, 2 on times and 2 off times: want the same count on each line",
		"t.csv:6: activity header has 1 fields, want 4 (label, M/D/YYYY, start, end)",
		"t.csv:8: sensor 101 (item 1) is not in sensors.csv",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestFindDoor(t *testing.T) {
	for _, tc := range []struct {
		sensors map[string]Sensor
		want    string
		err     string
	}{
		{map[string]Sensor{"12": {Object: "Frontdoor"}, "5": {Object: "Hall-Toilet door"}}, "12", ""},
		{map[string]Sensor{"140": {Room: "Foyer", Object: "Door"}, "141": {Room: "Kitchen", Object: "Door"}}, "140", ""},
		{map[string]Sensor{"85": {Room: "Hallway", Object: "Door"}, "137": {Room: "Bathroom", Object: "Door"}}, "85", ""},
		{map[string]Sensor{"1": {Room: "Kitchen", Object: "Door"}}, "", "no entrance door"},
		{map[string]Sensor{"1": {Room: "Foyer", Object: "Door"}, "2": {Room: "Hallway", Object: "Door"}}, "", "several sensors look like the entrance door (1, 2)"},
	} {
		got, err := findDoor(tc.sensors)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("findDoor(%v) err = %v, want %q", tc.sensors, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("findDoor(%v) = %q, %v; want %q", tc.sensors, got, err, tc.want)
		}
	}
}

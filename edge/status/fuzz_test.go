package status

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzEventQuery: any query string parses or is refused with errBadQuery;
// an accepted query is bounded.
func FuzzEventQuery(f *testing.F) {
	for _, s := range []string{"", "limit=500", "kind=elder.&severity=critical", "place=3/1/301&kind=elder.alert.raised",
		"from=2026-01-02T15:04&to=2026-01-03", "before=18446744073709551615", "limit=0", "severity=loud", "kind=Bad%20Kind",
		"x=1", "kind=a&kind=b", "from=2026-01-02&to=2026-01-01", "device=%00", "from=2026-11-27T03:00:00%2B08:00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseEventQuery(v, time.UTC)
		if err != nil {
			if !strings.HasPrefix(err.Error(), errBadQuery.Error()) {
				t.Fatalf("error %q does not wrap errBadQuery", err)
			}
			return
		}
		if q.Limit < 1 || q.Limit > maxEventLimit || len(q.Device) > 128 || len(q.Place) > 64 || len(q.Kind) > 64 {
			t.Fatalf("unbounded query %+v", q)
		}
		if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
			t.Fatal("to before from accepted")
		}
	})
}

// FuzzActionJSON: the API's JSON bodies for every action either produce
// valid command arguments of the documented shape or an errInput.
func FuzzActionJSON(f *testing.F) {
	for _, s := range []string{`{}`, ``, `{"outcome":"safe","note":"已上门，老人平安"}`, `{"outcome":"nope"}`,
		`{"mode":"visitor","until":"2030-01-01T00:00:00Z"}`, `{"mode":"away"}`, `{"x":1}`, `[]`, `{"note":1}`, `{} {}`, `null`,
		`{"outcome":"other","note":"` + strings.Repeat("长", 600) + `"}`} {
		for _, c := range []string{"alert.ack", "alert.resolve", "elder.mode", "gate.open"} {
			f.Add(c, "a-1", s)
		}
	}
	now := time.Date(2029, 6, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, command, id, body string) {
		args, err := apiArgs(command, id, []byte(body), time.UTC, now)
		if err != nil {
			if !strings.HasPrefix(err.Error(), errInput.Error()) {
				t.Fatalf("error %q does not wrap errInput", err)
			}
			if strings.Contains(err.Error(), body) && len(body) > 8 {
				t.Fatalf("error echoes the input: %q", err)
			}
			return
		}
		var m map[string]any
		if err := json.Unmarshal(args, &m); err != nil {
			t.Fatalf("args not an object: %s", args)
		}
		switch command {
		case "alert.ack":
			if m["alert_id"] != id || len(m) != 1 {
				t.Fatalf("ack args %s", args)
			}
		case "alert.resolve":
			if m["alert_id"] != id || m["outcome"] == "" {
				t.Fatalf("resolve args %s", args)
			}
		case "elder.mode":
			if m["household"] != id {
				t.Fatalf("mode args %s", args)
			}
			if u, ok := m["until"].(string); ok {
				if _, err := time.Parse(time.RFC3339, u); err != nil {
					t.Fatalf("until %q", u)
				}
			}
		case "gate.open":
			if m["device"] != id {
				t.Fatalf("gate args %s", args)
			}
		default:
			t.Fatalf("unknown command %q accepted", command)
		}
	})
}

// FuzzCommandBody: the generic command endpoint passes on one JSON object
// or refuses.
func FuzzCommandBody(f *testing.F) {
	for _, s := range []string{`{}`, ``, `{"alert_id":"a"}`, `[1]`, `"x"`, `{"a":{"b":[1,2]}}`, `{"a":1}{"b":2}`, `{"a":1,"a":2}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		args, err := commandBody([]byte(body))
		if err != nil {
			return
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(args, &m); err != nil || m == nil {
			t.Fatalf("not an object: %s", args)
		}
	})
}

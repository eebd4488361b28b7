package city

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

var decodeCases = []struct {
	name, in string
	ok       bool
	id       string
}{
	{"ok", `{"id":"c-1","command":"gate.open","args":{"gate":"east"},"actor":"ops:zhang"}`, true, "c-1"},
	{"no args", `{"id":"c-2","command":"resend"}`, true, "c-2"},
	{"null args", `{"id":"c-3","command":"resend","args":null}`, true, "c-3"},
	{"bad json", `{"id":"c-4","command":`, false, ""},
	{"not an object", `[1,2]`, false, ""},
	{"unknown field", `{"id":"c-5","command":"gate.open","force":true}`, false, "c-5"},
	{"trailing data", `{"id":"c-6","command":"gate.open"} {}`, false, "c-6"},
	{"no id", `{"command":"gate.open"}`, false, ""},
	{"long id", `{"id":"` + strings.Repeat("x", 129) + `","command":"gate.open"}`, false, ""},
	{"control char id", `{"id":"a\u0001","command":"gate.open"}`, false, ""},
	{"bad name", `{"id":"c-7","command":"Gate Open"}`, false, "c-7"},
	{"empty name", `{"id":"c-8","command":""}`, false, "c-8"},
	{"args array", `{"id":"c-9","command":"gate.open","args":[1]}`, false, "c-9"},
	{"args string", `{"id":"c-10","command":"gate.open","args":"x"}`, false, "c-10"},
	{"bad actor", `{"id":"c-11","command":"gate.open","actor":"a\nb"}`, false, "c-11"},
	{"wrong type", `{"id":12,"command":"gate.open"}`, false, ""},
	{"not utf8", "{\"id\":\"c-12\",\"command\":\"\xff\"}", false, ""},
	{"too big", `{"id":"c-13","command":"gate.open","args":{"x":"` + strings.Repeat("a", MaxCommandSize) + `"}}`, false, ""},
}

func TestDecodeCommand(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeCommand([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if c.ID != tc.id {
				t.Errorf("id %q, want %q", c.ID, tc.id)
			}
			if tc.ok && (c.Actor == "" || len(c.Args) == 0 || c.Args[0] != '{') {
				t.Errorf("defaults not applied: %+v", c)
			}
		})
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeCommand(b)
		if err != nil {
			// The error result echoes the id only when it is a valid one.
			if c.ID != "" && !validToken(c.ID, 128, true) {
				t.Fatalf("error result carries an invalid id: %q", c.ID)
			}
			return
		}
		if !validToken(c.ID, 128, true) || !validName(c.Command) || !validToken(c.Actor, 128, false) {
			t.Fatalf("accepted invalid command %+v", c)
		}
		if !json.Valid(c.Args) || bytes.TrimSpace(c.Args)[0] != '{' {
			t.Fatalf("accepted args %q", c.Args)
		}
		if _, err := json.Marshal(CommandResult{ID: c.ID, Command: c.Command}); err != nil {
			t.Fatal(err)
		}
		if _, err := decodeResend(c.Args, 100); err == nil {
			var a resendArgs
			_ = json.Unmarshal(c.Args, &a)
			if a.FromSeq < 1 || a.FromSeq > 100 {
				t.Fatalf("resend accepted from_seq %d", a.FromSeq)
			}
		}
	})
}

// storeEmitter appends straight to the store (the runtime's job in lintel run).
type storeEmitter struct{ st *store.Store }

func (e storeEmitter) Emit(ctx context.Context, evs ...*event.Event) error {
	return e.st.Append(ctx, evs...)
}

func TestDownlinkCommands(t *testing.T) {
	b := startBroker(t, nil)
	// A second sink that never acks keeps the records (the log deletes
	// what every sink has acked, and resend can only send what is kept).
	st := openStore(t, t.TempDir(), "police")
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	r := startReceiver(t, ctx, b, false, col)
	ids := appendEvents(t, st, 300, 0)

	var mu sync.Mutex
	opened := 0
	cmds := edge.NewCommands(storeEmitter{st})
	cmds.Handle("gate.open", func(_ context.Context, args json.RawMessage, _ string) (any, error) {
		var a struct {
			Gate    string `json:"gate"`
			Seconds int    `json:"seconds"`
		}
		dec := json.NewDecoder(bytes.NewReader(args))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("args: %w", err)
		}
		if a.Gate != "east" || a.Seconds < 1 || a.Seconds > 60 {
			return nil, errors.New("args: gate must be east, seconds 1..60")
		}
		mu.Lock()
		opened++
		mu.Unlock()
		return map[string]any{"opened": a.Gate}, nil
	})
	s := runSink(t, ctx, st, testOptions(b.url()), func(d *Deps) { d.Commands = cmds; d.Emit = storeEmitter{st} })
	waitProgress(t, "backlog", col.progress, func() bool { return col.count() >= len(ids) })

	results := make(chan CommandResult, 32)
	pc := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.url()).SetClientID("platform-cmd"))
	if tok := pc.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer pc.Disconnect(100)
	tok := pc.Subscribe(s.Topics().CmdResult(), 1, func(_ mqtt.Client, m mqtt.Message) {
		var res CommandResult
		if err := json.Unmarshal(m.Payload(), &res); err != nil {
			t.Errorf("bad result %s", m.Payload())
		}
		results <- res
	})
	tok.Wait()
	send := func(p string) CommandResult {
		t.Helper()
		pc.Publish(s.Topics().Cmd(), 1, false, p).Wait()
		select {
		case res := <-results:
			return res
		case <-time.After(10 * time.Second):
			t.Fatalf("no result for %s", p)
			return CommandResult{}
		}
	}
	dupsBefore := r.Duplicates.Load()
	for _, tc := range []struct {
		in, errHas string
	}{
		{`{"id":"a1","command":`, "bad command json"},
		{`{"id":"a2","command":"door.unlock"}`, "unknown command"},
		{`{"id":"a3","command":"gate.open","args":{"gate":"east","seconds":600}}`, "seconds 1..60"},
		{`{"id":"a4","command":"gate.open","args":{"gate":"east","seconds":5,"x":1}}`, "unknown field"},
		{`{"id":"a5","command":"resend","args":{"from_seq":0}}`, "from_seq 0"},
		{`{"id":"a6","command":"resend","args":{"from_seq":99999999}}`, "from_seq"},
		{`{"id":"a7","command":"resend","args":{"from":1}}`, "unknown field"},
	} {
		res := send(tc.in)
		if res.OK || !strings.Contains(res.Error, tc.errHas) {
			t.Errorf("%s: result %+v, want error containing %q", tc.in, res, tc.errHas)
		}
	}
	mu.Lock()
	if opened != 0 {
		t.Fatalf("a refused command was applied")
	}
	mu.Unlock()
	if res := send(`{"id":"g1","command":"gate.open","args":{"gate":"east","seconds":5},"actor":"ops:li"}`); !res.OK {
		t.Fatalf("gate.open refused: %+v", res)
	}
	// The same id again (a QoS 1 redelivery): answered, not applied twice.
	if res := send(`{"id":"g1","command":"gate.open","args":{"gate":"east","seconds":5},"actor":"ops:li"}`); !res.OK {
		t.Fatalf("repeat refused: %+v", res)
	}
	mu.Lock()
	if opened != 1 {
		t.Fatalf("gate opened %d times, want 1", opened)
	}
	mu.Unlock()
	if res := send(`{"id":"r1","command":"resend","args":{"from_seq":101}}`); !res.OK || fmt.Sprint(res.Result) != "map[first_available_seq:101 from_seq:101 last_seq:302]" {
		t.Fatalf("resend: %+v", res)
	}
	// Resend re-sends 101.. (duplicates at the receiver), and both
	// applied commands left an audit event that reaches the platform too.
	waitFor(t, 20*time.Second, "resent events", func() bool { return r.Duplicates.Load() >= dupsBefore+200 })
	waitFor(t, 20*time.Second, "audit events", func() bool { return col.count() >= len(ids)+2 })
	evs, err := st.ReadRange(uint64(len(ids)), 10)
	if err != nil {
		t.Fatal(err)
	}
	var audits []string
	for _, e := range evs {
		if e.Kind == event.CommandApplied {
			m, _ := e.DataMap()
			audits = append(audits, fmt.Sprintf("%v/%v/%v", m["command"], m["actor"], m["via"]))
		}
	}
	if strings.Join(audits, " ") != "gate.open/ops:li/mqtt resend/platform/mqtt" {
		t.Errorf("audit events %v", audits)
	}
}

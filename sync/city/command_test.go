package city

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

// The platform key of the tests: a fixed seed, so signatures are the same
// at every run (Ed25519 is deterministic) and docs/city-platform.md can
// publish them as test vectors.
var (
	testSeed = func() []byte {
		b := make([]byte, ed25519.SeedSize)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}()
	testKey    = ed25519.NewKeyFromSeed(testSeed)
	testPub    = testKey.Public().(ed25519.PublicKey)
	testKeyID  = "city-test"
	otherKey   = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	testPubB64 = base64.StdEncoding.EncodeToString(testPub)
)

func testVerifier() *Verifier {
	return &Verifier{Gateway: "gw-01", Keys: map[string]ed25519.PublicKey{testKeyID: testPub},
		MaxValidity: time.Hour, Skew: 30 * time.Second, UnsyncedSkew: 24 * time.Hour}
}

// envAt is a valid envelope for gw-01 issued at now, valid 5 minutes.
func envAt(now time.Time, id, command, args string) Envelope {
	return Envelope{ID: id, Command: command, Args: json.RawMessage(args), Actor: "ops:li", Gateway: "gw-01",
		IssuedAt: now.UTC().Format(time.RFC3339), ExpiresAt: now.Add(5 * time.Minute).UTC().Format(time.RFC3339)}
}

func mustSign(t testing.TB, env Envelope, keyID string, key ed25519.PrivateKey) []byte {
	t.Helper()
	b, err := Sign(env, keyID, key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		// RFC 8785 §3.2.4, the worked example.
		{`{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		// Sorting by UTF-16 code units (RFC 8785 §3.2.3): U+1F600 (a
		// surrogate pair, D83D…) sorts before U+FB33 but after U+00E9.
		{`{"\ufb33":1,"😀":2,"é":3,"b":4,"a":{"z":[],"y":{}}}`, "{\"a\":{\"y\":{},\"z\":[]},\"b\":4,\"é\":3,\"😀\":2,\"\ufb33\":1}"},
		{`-0`, `0`},
		{`[1.0, 100, 1e21, 1e-7, 0.000001, -12.5e3]`, `[1,100,1e+21,1e-7,0.000001,-12500]`},
		{`"\u2028<&>\u007f\b\f\t\r\u0001"`, "\"\u2028<&>\u007f\\b\\f\\t\\r\\u0001\""},
	} {
		got, err := Canonical([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("Canonical(%s)\n got %s, %v\nwant %s", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"a":1} 2`, `1e400`, `{"a":`, "\"\xff\"", strings.Repeat("[", 40) + strings.Repeat("]", 40), ``} {
		if got, err := Canonical([]byte(bad)); err == nil {
			t.Errorf("Canonical(%q) = %s, want an error", bad, got)
		}
	}
}

// FuzzCanonical: the canonical form is valid JSON, a fixed point, and
// means what the input meant.
func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x\n"]}`, `[1.50,2e3,-0]`, `"é😀"`, `{"a":{"b":{"c":1}}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Canonical(b)
		if err != nil {
			return
		}
		if !json.Valid(c) {
			t.Fatalf("canonical form %q is not JSON", c)
		}
		c2, err := Canonical(c)
		if err != nil || !bytes.Equal(c, c2) {
			t.Fatalf("not a fixed point: %q → %q (%v)", c, c2, err)
		}
		var v1, v2 any
		if json.Unmarshal(b, &v1) != nil || json.Unmarshal(c, &v2) != nil {
			t.Fatalf("input or canonical form does not decode")
		}
		if !reflect.DeepEqual(v1, v2) { // -0 and 0 are equal here, as they should be
			t.Fatalf("meaning changed: %#v → %#v", v1, v2)
		}
	})
}

// The signature test vector published in docs/city-platform.md.
const (
	vectorEnvelope  = `{"actor":"ops:zhang","args":{"device":"gate-south"},"command":"gate.open","expires_at":"2026-11-27T03:05:00Z","gateway":"gw-01","id":"c-1842","issued_at":"2026-11-27T03:00:00Z"}`
	vectorSignature = "HewcTLJXsMe59uVboYNoRTPrUK80ErMS3PydvejUQl7w6GJIqsHg3JDiSidXkO+Dx2C5u5pe7yObwq6yks95Bw=="
)

func TestSignatureVector(t *testing.T) {
	if got := testPubB64; got != "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=" {
		t.Fatalf("public key of the test seed %s", got)
	}
	env := Envelope{ID: "c-1842", Command: "gate.open", Args: json.RawMessage(`{ "device": "gate-south" }`),
		Actor: "ops:zhang", IssuedAt: "2026-11-27T03:00:00Z", ExpiresAt: "2026-11-27T03:05:00Z", Gateway: "gw-01"}
	msg := mustSign(t, env, "city-2026a", testKey)
	var sc SignedCommand
	if err := json.Unmarshal(msg, &sc); err != nil {
		t.Fatal(err)
	}
	if string(sc.Envelope) != vectorEnvelope {
		t.Errorf("canonical envelope\n got %s\nwant %s", sc.Envelope, vectorEnvelope)
	}
	if sc.Sig != vectorSignature {
		t.Errorf("signature %s, want %s", sc.Sig, vectorSignature)
	}
	// The docs carry the same vector.
	doc := readDoc(t, "../../docs/city-platform.md")
	for _, want := range []string{vectorEnvelope, vectorSignature, testPubB64, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"} {
		if !strings.Contains(doc, want) {
			t.Errorf("docs/city-platform.md lacks the test vector %s", want)
		}
	}
	// A pretty-printed copy of the same envelope verifies too: the
	// signature is over the canonical form, not the wire bytes.
	v := testVerifier()
	v.Keys = map[string]ed25519.PublicKey{"city-2026a": testPub}
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, sc.Envelope, "", "  ")
	wire, _ := json.Marshal(SignedCommand{Envelope: pretty.Bytes(), KeyID: "city-2026a", Sig: sc.Sig})
	got, err := v.Verify(wire, time.Date(2026, 11, 27, 3, 1, 0, 0, time.UTC), event.Synced)
	if err != nil {
		t.Fatal(err)
	}
	if got.Actor != "platform:city-2026a/ops:zhang" || string(got.Args) != `{"device":"gate-south"}` {
		t.Errorf("verified %+v", got)
	}
}

func TestVerify(t *testing.T) {
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	v := testVerifier()
	good := envAt(now, "c-1", "gate.open", `{"gate":"east"}`)
	tampered := func() []byte {
		var sc SignedCommand
		_ = json.Unmarshal(mustSign(t, good, testKeyID, testKey), &sc)
		sc.Envelope = bytes.Replace(sc.Envelope, []byte("east"), []byte("west"), 1)
		b, _ := json.Marshal(sc)
		return b
	}
	mod := func(f func(*Envelope)) []byte {
		e := good
		f(&e)
		return mustSign(t, e, testKeyID, testKey)
	}
	for _, tc := range []struct {
		name   string
		msg    []byte
		now    time.Time
		q      event.TimeQuality
		reason string
	}{
		{"good", mustSign(t, good, testKeyID, testKey), now, event.Synced, ""},
		{"unsigned plain command", []byte(`{"id":"t5","command":"gate.open","args":{"device":"gate-south"},"actor":"manager1"}`), now, event.Synced, ReasonUnsigned},
		{"no sig", []byte(`{"envelope":{"id":"x"},"key_id":"city-test"}`), now, event.Synced, ReasonUnsigned},
		{"not json", []byte(`{"id":"c-4","command":`), now, event.Synced, ReasonMalformed},
		{"unknown field", []byte(`{"envelope":{},"key_id":"k","sig":"x","extra":1}`), now, event.Synced, ReasonMalformed},
		{"wrong key", mustSign(t, good, testKeyID, otherKey), now, event.Synced, ReasonBadSignature},
		{"tampered args", tampered(), now, event.Synced, ReasonBadSignature},
		{"unknown key id", mustSign(t, good, "city-old", testKey), now, event.Synced, ReasonUnknownKey},
		{"short sig", []byte(`{"envelope":{"id":"c-1"},"key_id":"city-test","sig":"AAAA"}`), now, event.Synced, ReasonBadSignature},
		{"foreign gateway", mod(func(e *Envelope) { e.Gateway = "gw-02" }), now, event.Synced, ReasonWrongGateway},
		{"expired", mustSign(t, good, testKeyID, testKey), now.Add(5*time.Minute + 31*time.Second), event.Synced, ReasonExpired},
		{"expired within the allowance", mustSign(t, good, testKeyID, testKey), now.Add(5*time.Minute + 29*time.Second), event.Synced, ""},
		{"unsynced clock: wider allowance", mustSign(t, good, testKeyID, testKey), now.Add(3 * time.Hour), event.Unsynced, ""},
		{"unsynced clock: beyond it", mustSign(t, good, testKeyID, testKey), now.Add(25 * time.Hour), event.Unsynced, ReasonExpired},
		{"not yet valid", mustSign(t, good, testKeyID, testKey), now.Add(-time.Minute), event.Synced, ReasonNotYetValid},
		{"clock unset", mustSign(t, good, testKeyID, testKey), time.Unix(3600, 0), event.Unsynced, ReasonClockUnset},
		{"too long", mod(func(e *Envelope) { e.ExpiresAt = now.Add(2 * time.Hour).Format(time.RFC3339) }), now, event.Synced, ReasonTooLong},
		{"expires before issued", mod(func(e *Envelope) { e.ExpiresAt = now.Add(-time.Hour).Format(time.RFC3339) }), now, event.Synced, ReasonMalformed},
		{"local time", mod(func(e *Envelope) { e.IssuedAt = "2026-11-27T11:00:00+08:00" }), now, event.Synced, ReasonMalformed},
		{"no actor", mod(func(e *Envelope) { e.Actor = "" }), now, event.Synced, ReasonMalformed},
		{"bad command", mod(func(e *Envelope) { e.Command = "Gate Open" }), now, event.Synced, ReasonMalformed},
		{"args array", mod(func(e *Envelope) { e.Args = json.RawMessage(`[1]`) }), now, event.Synced, ReasonMalformed},
		{"control char id", mod(func(e *Envelope) { e.ID = "a\u0001" }), now, event.Synced, ReasonMalformed},
		{"too big", []byte(`{"envelope":{"x":"` + strings.Repeat("a", MaxCommandSize) + `"}}`), now, event.Synced, ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := v.Verify(tc.msg, tc.now, tc.q)
			var r *Refusal
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.reason == "":
				if got.ID != "c-1" || got.Actor != "platform:city-test/ops:li" || got.KeyID != testKeyID ||
					!got.KeepUntil.Equal(got.ExpiresAt.Add(24*time.Hour)) {
					t.Errorf("verified %+v", got)
				}
			case !errors.As(err, &r):
				t.Fatalf("err %v, want a refusal %s", err, tc.reason)
			case r.Reason != tc.reason:
				t.Errorf("refused %q (%v), want %q", r.Reason, r, tc.reason)
			}
		})
	}
	v.Keys = nil
	if _, err := v.Verify(mustSign(t, good, testKeyID, testKey), now, event.Synced); err == nil || !strings.HasPrefix(err.Error(), ReasonNoKeys) {
		t.Errorf("no keys: %v", err)
	}
}

// FuzzVerifyCommand fuzzes the signed envelope parser: no panic, every
// refusal has a known reason and bounded, printable claims, and nothing
// is accepted that does not verify.
func FuzzVerifyCommand(f *testing.F) {
	now := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	good := envAt(now, "c-1", "gate.open", `{"gate":"east"}`)
	f.Add(mustSign(f, good, testKeyID, testKey))
	f.Add(mustSign(f, good, testKeyID, otherKey))
	f.Add([]byte(`{"id":"t5","command":"gate.open","args":{"device":"gate-south"},"actor":"manager1"}`))
	f.Add([]byte(`{"envelope":{"id":"c-1"},"key_id":"city-test","sig":"AAAA"}`))
	f.Add([]byte(`{"envelope":[1,{"a":"\ud800"}],"key_id":"city-test","sig":"` + strings.Repeat("A", 86) + `=="}`))
	reasons := map[string]bool{ReasonMalformed: true, ReasonUnsigned: true, ReasonNoKeys: true, ReasonUnknownKey: true,
		ReasonBadSignature: true, ReasonWrongGateway: true, ReasonExpired: true, ReasonNotYetValid: true, ReasonTooLong: true, ReasonClockUnset: true}
	v := testVerifier()
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := v.Verify(b, now, event.Synced)
		if err != nil {
			var r *Refusal
			if !errors.As(err, &r) || !reasons[r.Reason] {
				t.Fatalf("refusal %v has no known reason", err)
			}
			for _, s := range []string{r.Command, r.Actor, r.KeyID} {
				if len(s) > 70 || strings.ContainsAny(s, "\x00\n\r") {
					t.Fatalf("unbounded claim %q", s)
				}
			}
			if r.ID != "" && !validToken(r.ID, 128, true) {
				t.Fatalf("refusal carries an invalid id %q", r.ID)
			}
			return
		}
		// Accepted: the signature is the test key's over the canonical
		// envelope, and the fields are well formed.
		var sc SignedCommand
		if json.Unmarshal(b, &sc) != nil {
			t.Fatal("accepted a message that does not decode")
		}
		canon, cerr := Canonical(sc.Envelope)
		sig, serr := decodeSig(sc.Sig)
		if cerr != nil || serr != nil || !ed25519.Verify(testPub, signingInput(canon), sig) {
			t.Fatal("accepted a message the test key did not sign")
		}
		if !validToken(got.ID, 128, true) || !validName(got.Command.Command) || !json.Valid(got.Args) || got.Args[0] != '{' {
			t.Fatalf("accepted %+v", got)
		}
	})
}

// storeEmitter appends straight to the store (the runtime's job in lintel run).
type storeEmitter struct{ st *store.Store }

func (e storeEmitter) Emit(ctx context.Context, evs ...*event.Event) error {
	return e.st.Append(ctx, evs...)
}

// syncedClock is the system clock, called synced whatever the kernel says.
type syncedClock struct{}

func (syncedClock) Now() (time.Time, event.TimeQuality) { return time.Now(), event.Synced }

// platform is the test's platform side: it publishes commands and
// collects results by id.
type platform struct {
	t   testing.TB
	c   mqtt.Client
	top Topics

	mu      sync.Mutex
	results map[string][]CommandResult
	noID    []CommandResult
	wake    chan struct{}
}

func newPlatform(t testing.TB, b *broker, top Topics) *platform {
	t.Helper()
	p := &platform{t: t, top: top, results: map[string][]CommandResult{}, wake: make(chan struct{}, 1)}
	p.c = mqtt.NewClient(mqtt.NewClientOptions().AddBroker(b.url()).SetClientID(fmt.Sprintf("platform-%d", time.Now().UnixNano())))
	if tok := p.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	t.Cleanup(func() { p.c.Disconnect(100) })
	tok := p.c.Subscribe(top.CmdResult(), 1, func(_ mqtt.Client, m mqtt.Message) {
		var res CommandResult
		if err := json.Unmarshal(m.Payload(), &res); err != nil {
			t.Errorf("bad result %s", m.Payload())
			return
		}
		p.mu.Lock()
		if res.ID == "" {
			p.noID = append(p.noID, res)
		} else {
			p.results[res.ID] = append(p.results[res.ID], res)
		}
		p.mu.Unlock()
		poke(p.wake)
	})
	tok.Wait()
	return p
}

func (p *platform) publish(msg []byte, retained bool) {
	p.t.Helper()
	if tok := p.c.Publish(p.top.Cmd(), 1, retained, msg); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		p.t.Fatalf("publish: %v", tok.Error())
	}
}

// await waits until id has n results and returns them.
func (p *platform) await(id string, n int) []CommandResult {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		got := append([]CommandResult(nil), p.results[id]...)
		p.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%d results for %s after 30s, want %d", len(got), id, n)
		}
		select {
		case <-p.wake:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// send publishes and returns the result for id (the first new one).
func (p *platform) send(id string, msg []byte, retained bool) CommandResult {
	p.t.Helper()
	p.mu.Lock()
	n := len(p.results[id])
	p.mu.Unlock()
	p.publish(msg, retained)
	return p.await(id, n+1)[n]
}

// refusalEvents returns the command.refused events in the log by the
// claimed id, and the suppressed-summary events.
func refusalEvents(t testing.TB, st *store.Store) (byID map[string][]map[string]any, summaries []map[string]any, applied []map[string]any) {
	t.Helper()
	byID = map[string][]map[string]any{}
	evs, err := st.ReadRange(0, 1000000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		m, _ := e.DataMap()
		switch e.Kind {
		case event.CommandRefused:
			if m["reason"] == "suppressed" {
				summaries = append(summaries, m)
			} else if id, _ := m["id"].(string); id != "" {
				byID[id] = append(byID[id], m)
			} else {
				byID[""] = append(byID[""], m)
			}
		case event.CommandApplied:
			applied = append(applied, m)
		}
	}
	return byID, summaries, applied
}

// TestSignedCommandsOverMosquitto is the downlink's acceptance test over a
// real broker: unsigned, wrongly signed, expired, foreign, replayed (after
// 10,000 other ids and after a restart) and retained commands are each
// refused with a reason on cmd/result and a command.refused event; a
// signed one is applied once; a flood of 1,000 gets 1,000 results.
func TestSignedCommandsOverMosquitto(t *testing.T) {
	b := startBroker(t, nil)
	dir := t.TempDir()
	// A second cursor that never acks keeps the audit events readable.
	st := openStore(t, dir, "keep")
	defer func() { st.Close() }()

	var mu sync.Mutex
	opened := map[string]int{}
	cmds := func(st *store.Store) *edge.Commands {
		c := edge.NewCommands(storeEmitter{st})
		c.Handle("gate.open", func(_ context.Context, args json.RawMessage, actor string) (any, error) {
			var a struct {
				Gate string `json:"gate"`
				Tag  string `json:"tag"`
			}
			dec := json.NewDecoder(bytes.NewReader(args))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&a); err != nil {
				return nil, fmt.Errorf("args: %w", err)
			}
			if !strings.HasPrefix(actor, "platform:city-test/") {
				return nil, fmt.Errorf("actor %q", actor)
			}
			mu.Lock()
			opened[a.Tag]++
			mu.Unlock()
			return map[string]any{"opened": a.Gate}, nil
		})
		return c
	}
	o := testOptions(b.url())
	o.Commands.Keys = []KeyOptions{{ID: testKeyID, PublicKey: testPubB64}}
	o.Commands.Refusals.Summary = 1e9
	start := func(st *store.Store) (*Sink, context.CancelFunc, chan struct{}) {
		ctx, cancel := context.WithCancel(context.Background())
		s, err := New(Deps{Name: "city", Gateway: "gw-01", Compound: "c-01", Log: st, Logger: testLogger(t), Version: "test",
			Commands: cmds(st), Emit: storeEmitter{st}, State: st, Clock: syncedClock{}}, o)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { defer close(done); _ = s.Run(ctx) }()
		waitFor(t, 10*time.Second, "sink connected", func() bool { return s.cur.Load() != nil })
		return s, cancel, done
	}
	s, stop, done := start(st)
	p := newPlatform(t, b, s.Topics())
	now := time.Now()
	gate := func(id, tag string) Envelope { return envAt(now, id, "gate.open", `{"gate":"south","tag":"`+tag+`"}`) }

	refusedCases := []struct {
		name, id string
		msg      []byte
		reason   string
	}{
		{"unsigned", "t5", []byte(`{"id":"t5","command":"gate.open","args":{"device":"gate-south"},"actor":"manager1"}`), ReasonUnsigned},
		{"wrongly signed", "w1", mustSign(t, gate("w1", "w1"), testKeyID, otherKey), ReasonBadSignature},
		{"unknown key", "k1", mustSign(t, gate("k1", "k1"), "city-9", testKey), ReasonUnknownKey},
		{"expired", "e1", mustSign(t, func() Envelope {
			e := gate("e1", "e1")
			e.IssuedAt, e.ExpiresAt = now.Add(-2*time.Hour).UTC().Format(time.RFC3339), now.Add(-time.Hour).UTC().Format(time.RFC3339)
			return e
		}(), testKeyID, testKey), ReasonExpired},
		{"foreign gateway", "f1", mustSign(t, func() Envelope { e := gate("f1", "f1"); e.Gateway = "gw-02"; return e }(), testKeyID, testKey), ReasonWrongGateway},
	}
	for _, tc := range refusedCases {
		res := p.send(tc.id, tc.msg, false)
		if res.OK || res.Refused != tc.reason || !strings.HasPrefix(res.Error, tc.reason) {
			t.Errorf("%s: result %+v, want refused %s", tc.name, res, tc.reason)
		}
	}

	// A signed command is applied once, and its audit names the key.
	g1 := mustSign(t, gate("g1", "g1"), testKeyID, testKey)
	if res := p.send("g1", g1, false); !res.OK {
		t.Fatalf("signed gate.open refused: %+v", res)
	}
	res := p.send("g1", g1, false)
	if res.OK || res.Refused != ReasonReplay || res.Original == nil || !res.Original.OK {
		t.Fatalf("immediate replay: %+v", res)
	}

	// 10,000 other ids (signed commands nobody handles: recorded, then
	// rejected), in rounds of 50, then the captured g1 again.
	for round := 0; round < 200; round++ {
		for i := 0; i < 50; i++ {
			id := fmt.Sprintf("x-%d-%d", round, i)
			p.c.Publish(s.Topics().Cmd(), 1, false, mustSign(t, envAt(now, id, "noop.x", `{}`), testKeyID, testKey))
		}
		for i := 0; i < 50; i++ {
			r := p.await(fmt.Sprintf("x-%d-%d", round, i), 1)[0]
			if r.Refused != ReasonRejected || !strings.Contains(r.Error, "unknown command") {
				t.Fatalf("filler %+v", r)
			}
		}
	}
	if n := s.seen.len(); n < 10001 {
		t.Fatalf("%d ids remembered, want at least 10001", n)
	}
	res = p.send("g1", g1, false)
	if res.OK || res.Refused != ReasonReplay {
		t.Fatalf("replay after 10,000 other ids: %+v", res)
	}

	// A command published retained while the gateway listens reaches it
	// as a live message (MQTT 3.1.1 clears the retain flag for existing
	// subscriptions): applied once, like any other.
	r1 := mustSign(t, gate("r1", "r1"), testKeyID, testKey)
	if res := p.send("r1", r1, true); !res.OK {
		t.Fatalf("r1: %+v", res)
	}

	// Restart. While the gateway is down a fresh, correctly signed command
	// is left retained on the broker: at the new subscription it arrives
	// retained and is refused, and the captured g1 is still a replay.
	stop()
	<-done
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	r2 := mustSign(t, gate("r2", "r2"), testKeyID, testKey)
	p.publish(r2, true)
	st = openStore(t, dir, "keep")
	s, stop, done = start(st)
	defer func() { stop(); <-done }()
	if got := p.await("r2", 1)[0]; got.OK || got.Refused != ReasonRetained {
		t.Errorf("retained at start: %+v", got)
	}
	res = p.send("g1", g1, false)
	if res.OK || res.Refused != ReasonReplay || !strings.Contains(res.Error, "already received at") {
		t.Fatalf("replay after a restart: %+v", res)
	}
	p.publish(nil, true) // clear the retained message

	mu.Lock()
	if opened["g1"] != 1 || opened["r1"] != 1 || len(opened) != 2 {
		t.Errorf("applied %v, want g1 and r1 once and nothing else", opened)
	}
	mu.Unlock()

	// Every refusal is in the log as a command.refused event.
	time.Sleep(200 * time.Millisecond)
	byID, summaries, applied := refusalEvents(t, st)
	want := map[string][]string{"t5": {ReasonUnsigned}, "w1": {ReasonBadSignature}, "k1": {ReasonUnknownKey},
		"e1": {ReasonExpired}, "f1": {ReasonWrongGateway}, "g1": {ReasonReplay, ReasonReplay, ReasonReplay},
		"r2": {ReasonRetained}}
	for id, reasons := range want {
		var got []string
		for _, m := range byID[id] {
			got = append(got, fmt.Sprint(m["reason"]))
		}
		if strings.Join(got, ",") != strings.Join(reasons, ",") {
			t.Errorf("command.refused events for %s: %v, want %v", id, got, reasons)
		}
	}
	if m := byID["t5"]; len(m) == 1 && (m[0]["claimed_actor"] != "manager1" || m[0]["topic"] != s.Topics().Cmd()) {
		t.Errorf("unsigned refusal event %v", m[0])
	}
	if m := byID["w1"]; len(m) == 1 && m[0]["key_id"] != testKeyID {
		t.Errorf("bad signature event %v", m[0])
	}
	if m := byID["r2"]; len(m) > 0 && m[0]["retained"] != true {
		t.Errorf("retained event %v", m[0])
	}
	// The filler was rate-limited: a burst of events, the rest counted.
	suppressed := 0.0
	for _, m := range summaries {
		n, _ := m["count"].(json.Number).Float64()
		suppressed += n
	}
	if got := len(byID) - len(want); suppressed < 9000 || got > 40 {
		t.Errorf("filler refusals: %d events and %.0f suppressed, want a short burst and the rest in summaries", got, suppressed)
	}
	if len(applied) != 2 || applied[0]["actor"] != "platform:city-test/ops:li" || applied[0]["via"] != "mqtt" {
		t.Errorf("command.applied events %v", applied)
	}
}

// TestCommandFlood: 1,000 signed commands at once; every one gets exactly
// one result, applied or busy, and the applied ones ran exactly once.
func TestCommandFlood(t *testing.T) {
	b := startBroker(t, nil)
	st := openStore(t, t.TempDir())
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	ran := map[string]int{}
	cmds := edge.NewCommands(storeEmitter{st})
	cmds.Handle("gate.open", func(_ context.Context, args json.RawMessage, _ string) (any, error) {
		var a struct {
			Tag string `json:"tag"`
		}
		_ = json.Unmarshal(args, &a)
		mu.Lock()
		ran[a.Tag]++
		mu.Unlock()
		return nil, nil
	})
	o := testOptions(b.url())
	o.Commands.Keys = []KeyOptions{{ID: testKeyID, PublicKey: testPubB64}}
	s := runSink(t, ctx, st, o, func(d *Deps) { d.Commands = cmds; d.Emit = storeEmitter{st}; d.State = st; d.Clock = syncedClock{} })
	waitFor(t, 10*time.Second, "sink connected", func() bool { return s.cur.Load() != nil })
	p := newPlatform(t, b, s.Topics())
	now := time.Now()
	const n = 1000
	msgs := make([][]byte, n)
	for i := range msgs {
		id := fmt.Sprintf("fl-%d", i)
		msgs[i] = mustSign(t, envAt(now, id, "gate.open", `{"tag":"`+id+`"}`), testKeyID, testKey)
	}
	toks := make([]mqtt.Token, n)
	for i, m := range msgs {
		toks[i] = p.c.Publish(s.Topics().Cmd(), 1, false, m)
	}
	for _, tok := range toks {
		tok.Wait()
	}
	applied, busy := 0, 0
	for i := range n {
		id := fmt.Sprintf("fl-%d", i)
		res := p.await(id, 1)[0]
		switch {
		case res.OK:
			applied++
		case res.Refused == ReasonBusy:
			busy++
		default:
			t.Errorf("%s: %+v", id, res)
		}
	}
	time.Sleep(300 * time.Millisecond) // late duplicates would show now
	p.mu.Lock()
	for id, rs := range p.results {
		if len(rs) != 1 {
			t.Errorf("%s got %d results", id, len(rs))
		}
	}
	p.mu.Unlock()
	mu.Lock()
	total := 0
	for id, k := range ran {
		if k != 1 {
			t.Errorf("%s applied %d times", id, k)
		}
		total += k
	}
	mu.Unlock()
	if applied+busy != n || total != applied || busy == 0 {
		t.Errorf("applied %d (handler ran %d), busy %d, of %d", applied, total, busy, n)
	}
	if got := s.CommandsBusy.Load(); got != uint64(busy) {
		t.Errorf("busy counter %d, results %d", got, busy)
	}
	t.Logf("flood of %d: %d applied, %d busy", n, applied, busy)
	// A busy command is not remembered: sent again, it is applied.
	for i := range n {
		id := fmt.Sprintf("fl-%d", i)
		if r := p.await(id, 1); r[0].Refused == ReasonBusy {
			if res := p.send(id, msgs[i], false); !res.OK {
				t.Errorf("busy command sent again: %+v", res)
			}
			break
		}
	}
}

// TestDownlinkCommands: resend and handler errors through signed commands.
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
	o := testOptions(b.url())
	o.Commands.Keys = []KeyOptions{{ID: testKeyID, PublicKey: testPubB64}}
	s := runSink(t, ctx, st, o, func(d *Deps) { d.Commands = cmds; d.Emit = storeEmitter{st}; d.State = st; d.Clock = syncedClock{} })
	waitProgress(t, "backlog", col.progress, func() bool { return col.count() >= len(ids) })
	p := newPlatform(t, b, s.Topics())
	now := time.Now()
	send := func(id, command, args string) CommandResult {
		t.Helper()
		return p.send(id, mustSign(t, envAt(now, id, command, args), testKeyID, testKey), false)
	}
	dupsBefore := r.Duplicates.Load()
	for _, tc := range []struct {
		id, command, args, errHas string
	}{
		{"a2", "door.unlock", `{}`, "unknown command"},
		{"a3", "gate.open", `{"gate":"east","seconds":600}`, "seconds 1..60"},
		{"a4", "gate.open", `{"gate":"east","seconds":5,"x":1}`, "unknown field"},
		{"a5", "resend", `{"from_seq":0}`, "from_seq 0"},
		{"a6", "resend", `{"from_seq":99999999}`, "from_seq"},
		{"a7", "resend", `{"from":1}`, "unknown field"},
	} {
		res := send(tc.id, tc.command, tc.args)
		if res.OK || res.Refused != ReasonRejected || !strings.Contains(res.Error, tc.errHas) {
			t.Errorf("%s: result %+v, want error containing %q", tc.id, res, tc.errHas)
		}
	}
	mu.Lock()
	if opened != 0 {
		t.Fatalf("a refused command was applied")
	}
	mu.Unlock()
	if res := send("g1", "gate.open", `{"gate":"east","seconds":5}`); !res.OK {
		t.Fatalf("gate.open refused: %+v", res)
	}
	if res := send("r1", "resend", `{"from_seq":101}`); !res.OK || fmt.Sprint(res.Result) != "map[first_available_seq:101 from_seq:101 last_seq:308]" {
		t.Fatalf("resend: %+v", res)
	}
	// Resend re-sends 101.. (duplicates at the receiver), and both
	// applied commands left an audit event that reaches the platform too.
	waitFor(t, 20*time.Second, "resent events", func() bool { return r.Duplicates.Load() >= dupsBefore+200 })
	waitFor(t, 20*time.Second, "audit events", func() bool { return col.count() >= len(ids)+2 })
	evs, err := st.ReadRange(uint64(len(ids)), 100)
	if err != nil {
		t.Fatal(err)
	}
	var audits []string
	rejected := 0
	for _, e := range evs {
		m, _ := e.DataMap()
		switch e.Kind {
		case event.CommandApplied:
			audits = append(audits, fmt.Sprintf("%v/%v/%v", m["command"], m["actor"], m["via"]))
		case event.CommandRefused:
			if m["reason"] == ReasonRejected {
				rejected++
			}
		}
	}
	if strings.Join(audits, " ") != "gate.open/platform:city-test/ops:li/mqtt resend/platform:city-test/ops:li/mqtt" {
		t.Errorf("audit events %v", audits)
	}
	if rejected != 6 {
		t.Errorf("%d command.refused events for the rejected commands, want 6", rejected)
	}
}

func readDoc(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

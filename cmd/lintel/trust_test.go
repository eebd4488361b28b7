//go:build !no_rtsp

package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/status"
	"github.com/lintel-edge/lintel/sync/city"
)

// TestDaemonTrust runs the whole daemon with canary secrets in every
// place a secret can be configured here (a camera password in a file, a
// camera URL's password, the status page's account password and API
// token) and the platform's key, then:
//   - sends downlink commands over MQTT: an unsigned one is refused with a
//     reason and a command.refused event; a signed elder.mode is applied
//     once and audited as platform:<key id>/<actor>; its replay is refused;
//   - reads every log line, page, API answer, /metrics, every MQTT
//     payload the gateway published and `lintel check -print`: no canary.
func TestDaemonTrust(t *testing.T) {
	const canary = "Trust-Canary-5d81"
	cam, err := fakecam.Start(fakecam.Options{User: "lintel", Password: canary, FPS: 10, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)
	broker, err := startBroker("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	var mu sync.Mutex
	var payloads []string
	results := map[string]city.CommandResult{}
	if err := broker.srv.Subscribe("#", 1, func(_ *mqttsrv.Client, _ packets.Subscription, pk packets.Packet) {
		mu.Lock()
		defer mu.Unlock()
		payloads = append(payloads, pk.TopicName+" "+string(pk.Payload))
		if strings.HasSuffix(pk.TopicName, "/cmd/result") {
			var r city.CommandResult
			if json.Unmarshal(pk.Payload, &r) == nil {
				results[r.ID] = r
			}
		}
	}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	passFile := filepath.Join(dir, "cam.pass")
	if err := os.WriteFile(passFile, []byte(canary+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 42
	key := ed25519.NewKeyFromSeed(seed)
	pub := base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	httpAddr := freeAddr(t)
	yaml := fmt.Sprintf(`
gateway: {id: gw-trust, compound: c-1, data_dir: %[1]s}
compound:
  buildings: [{id: "1", units: ["1"]}]
  households: [{id: h-301, label: 1-1-301, place: {building: "1", unit: "1", room: "301"}}]
devices:
  - {id: rf-1, kind: receiver, driver: serial, address: /dev/ttyLINTELTEST, disabled: true, options: {codec: sonoff}}
  - {id: sos-301, kind: sos, driver: serial, address: /dev/ttyLINTELTEST, household: h-301, profile: ev1527-sos,
     disabled: true, options: {receiver: rf-1, code: "A1B2C"}}
  - {id: cam-1, kind: camera, driver: rtsp, address: "rtsp://lintel@%[2]s/stream1", profile: generic-falling-object,
     place: {building: "1"}, options: {password: "file:%[3]s", clip_dir: %[1]s/clips, onvif: "off"}}
  - {id: cam-2, kind: camera, driver: rtsp, address: "rtsp://lintel:%[4]s@127.0.0.1:1/stream1", profile: generic-falling-object,
     place: {building: "1"}, options: {clip_dir: %[1]s/clips, onvif: "off", reconnect_max: 1s}}
rules:
  elders:
    - {household: h-301, sensors: [sos-301]}
sinks:
  city:
    broker: tcp://%[5]s
    status_interval: 1s
    gzip: false          # the test reads the payloads
    batch: {linger: 0s}
    commands:
      keys: [{id: city-k1, public_key: %[6]q}]
status:
  listen: %[7]s
`, dir, cam.Addr(), passFile, url.PathEscape(canary), broker.addr, pub, httpAddr)
	cfgFile := filepath.Join(dir, "lintel.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := startTestDaemon(t, cfg, log, "li", status.RoleInstaller)
	tokenCanary := d.token

	prefix := "lintel/v1/c-1/gw-trust"
	waitResult := func(id string) city.CommandResult {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			r, ok := results[id]
			mu.Unlock()
			if ok {
				return r
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no result for %s", id)
		return city.CommandResult{}
	}
	// Wait for the uplink's subscription (its online status is published
	// after it subscribed).
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		online := strings.Contains(strings.Join(payloads, "\n"), `"state":"online"`)
		mu.Unlock()
		if online {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("uplink not online")
		}
		time.Sleep(50 * time.Millisecond)
	}
	publish := func(b []byte) {
		t.Helper()
		if err := broker.srv.Publish(prefix+"/cmd", b, false, 1); err != nil {
			t.Fatal(err)
		}
	}
	publish([]byte(`{"id":"t5","command":"elder.mode","args":{"household":"h-301","mode":"hospital","hours":2000},"actor":"manager1"}`))
	if r := waitResult("t5"); r.OK || r.Refused != city.ReasonUnsigned {
		t.Errorf("unsigned: %+v", r)
	}
	now := time.Now().UTC()
	signed, err := city.Sign(city.Envelope{ID: "m-1", Command: "elder.mode", Args: json.RawMessage(`{"household":"h-301","mode":"away","hours":2}`),
		Actor: "ops:li", Gateway: "gw-trust", IssuedAt: now.Format(time.RFC3339), ExpiresAt: now.Add(2 * time.Minute).Format(time.RFC3339)}, "city-k1", key)
	if err != nil {
		t.Fatal(err)
	}
	publish(signed)
	if r := waitResult("m-1"); !r.OK {
		t.Fatalf("signed elder.mode: %+v", r)
	}
	mu.Lock()
	delete(results, "m-1")
	mu.Unlock()
	publish(signed)
	if r := waitResult("m-1"); r.OK || r.Refused != city.ReasonReplay {
		t.Errorf("replay: %+v", r)
	}

	// The audit trail, through the page's API.
	var evs struct {
		Events []struct {
			Kind string         `json:"kind"`
			Data map[string]any `json:"data"`
		} `json:"events"`
	}
	deadline = time.Now().Add(10 * time.Second)
	var refused, applied []string
	for time.Now().Before(deadline) {
		_, body := d.call("GET", "/api/v1/events?kind=command.&limit=50", "")
		_ = json.Unmarshal([]byte(body), &evs)
		refused, applied = nil, nil
		for _, e := range evs.Events {
			if e.Kind == "command.refused" {
				refused = append(refused, fmt.Sprintf("%v/%v/%v", e.Data["reason"], e.Data["id"], e.Data["claimed_actor"]))
			} else if e.Kind == "command.applied" {
				applied = append(applied, fmt.Sprintf("%v/%v/%v", e.Data["command"], e.Data["actor"], e.Data["via"]))
			}
		}
		if len(refused) >= 2 && len(applied) >= 1 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if strings.Join(applied, " ") != "elder.mode/platform:city-k1/ops:li/mqtt" {
		t.Errorf("command.applied events: %v", applied)
	}
	if !strings.Contains(strings.Join(refused, " "), "unsigned/t5/manager1") || !strings.Contains(strings.Join(refused, " "), "replay/m-1/ops:li") {
		t.Errorf("command.refused events: %v", refused)
	}

	// Let the cameras report (cam-1 online, cam-2 failing with its URL's
	// password in the library's error) before reading everything.
	deadline = time.Now().Add(15 * time.Second)
	for {
		_, devs := d.call("GET", "/api/v1/devices", "")
		if strings.Contains(devs, `"id": "cam-1"`) && strings.Count(devs, `"online": "online"`) >= 1 && strings.Contains(devs, `"online": "offline"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cameras did not report: %s", devs)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The audit events reach the platform in the events stream.
	deadline = time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := strings.Count(strings.Join(payloads, "\n"), `"kind":"command.refused"`)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command.refused events did not reach the platform")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var seen strings.Builder
	for _, p := range []string{"/api/v1/me", "/api/v1/overview", "/api/v1/alerts", "/api/v1/households", "/api/v1/devices", "/api/v1/buses",
		"/api/v1/sinks", "/api/v1/events?limit=500", "/api/v1/diagnostics", "/api/v1/commands", "/metrics", "/", "/devices", "/events", "/diagnostics"} {
		code, body := d.call("GET", p, "")
		if code != 200 && !(code == 303 && !strings.HasPrefix(p, "/api") && p != "/metrics") {
			t.Errorf("GET %s: %d %.300s", p, code, body)
		}
		seen.WriteString(p + "\n" + body + "\n")
	}
	code, out, errOut := runCLI(t, "check", "-c", cfgFile, "-print")
	if code != exitOK {
		t.Fatalf("check -print: %d %s", code, errOut)
	}
	mu.Lock()
	mqttText := strings.Join(payloads, "\n")
	mu.Unlock()
	if !strings.Contains(logs.String(), `"device":"cam-2"`) || !strings.Contains(seen.String(), "REDACTED") {
		t.Error("the failing camera (its URL's password in the error path) was not exercised")
	}
	for where, text := range map[string]string{"logs": logs.String(), "pages and API": seen.String(), "MQTT": mqttText, "check -print": out + errOut} {
		for _, secret := range []string{canary, url.PathEscape(canary), tokenCanary} {
			if i := strings.Index(text, secret); i >= 0 {
				t.Errorf("a secret leaked into %s: …%s…", where, text[max(0, i-120):min(len(text), i+40)])
			}
		}
	}
}

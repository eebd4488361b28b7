package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/status"
)

// TestStatusWithRules runs the daemon's serve with the rules engine and
// the status page wired as in production: an SOS press becomes an alert
// on the page's API, and acknowledging and resolving it through the API
// reaches the real rules handlers and leaves audit events.
func TestStatusWithRules(t *testing.T) {
	cfg := sosGatewayConfig(t, "gw-e2e")
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	d := startTestDaemon(t, cfg, log, "zhang", status.RoleManager)
	gw, call, ctx := d.gw, d.call, context.Background()
	poll := func(what string, f func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !f() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	poll("status page ready", func() bool { c, _ := call("GET", "/readyz", ""); return c == 200 })

	sos := event.New(event.SOSPressed)
	sos.Device, sos.Household = "sos-301", "h-301"
	if err := gw.runtime.Emit(ctx, sos); err != nil {
		t.Fatal(err)
	}
	var alerts struct{ Alerts []status.Alert }
	poll("SOS alert on the API", func() bool {
		_, b := call("GET", "/api/v1/alerts", "")
		alerts.Alerts = nil
		json.Unmarshal([]byte(b), &alerts)
		return len(alerts.Alerts) == 1 && alerts.Alerts[0].State == "open"
	})
	a := alerts.Alerts[0]
	if a.Type != "sos" || a.Severity != event.Critical || a.ReasonZh == "" || a.Household != "h-301" {
		t.Errorf("alert from the rules engine: %+v", a)
	}
	if c, b := call("POST", "/api/v1/alerts/"+a.ID+"/ack", "{}"); c != 200 {
		t.Fatalf("ack: %d %s", c, b)
	}
	if c, b := call("POST", "/api/v1/alerts/"+a.ID+"/resolve", `{"outcome":"false_alarm"}`); c != 400 || !strings.Contains(b, "reason") {
		t.Errorf("false alarm without reason: %d %s", c, b)
	}
	if c, b := call("POST", "/api/v1/alerts/"+a.ID+"/resolve", `{"outcome":"safe","note":"已上门，老人平安"}`); c != 200 {
		t.Fatalf("resolve: %d %s", c, b)
	}
	poll("alert resolved", func() bool {
		_, b := call("GET", "/api/v1/alerts/"+a.ID, "")
		var got status.Alert
		json.Unmarshal([]byte(b), &got)
		return got.State == "resolved" && got.AckBy == "zhang" && got.ResolvedBy == "zhang" && got.Outcome == "safe"
	})
	until := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	if c, b := call("POST", "/api/v1/households/h-301/mode", `{"mode":"visitor","until":"`+until+`"}`); c != 200 {
		t.Errorf("mode: %d %s", c, b)
	}
	poll("household mode from the rules engine", func() bool {
		_, b := call("GET", "/api/v1/households", "")
		var hh struct{ Households []status.Household }
		json.Unmarshal([]byte(b), &hh)
		return len(hh.Households) == 1 && hh.Households[0].Mode == "visitor" && hh.Households[0].PresenceReasonZh != ""
	})
	evs, err := gw.store.ReadRange(0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var audit []string
	for _, ev := range evs {
		if ev.Kind == event.CommandApplied {
			m, _ := ev.DataMap()
			audit = append(audit, fmt.Sprintf("%v/%v/%v", m["command"], m["actor"], m["via"]))
		}
	}
	if got := strings.Join(audit, " "); got != "alert.ack/zhang/web alert.resolve/zhang/web elder.mode/zhang/web" {
		t.Errorf("audit events: %s", got)
	}
	if _, err := os.Stat(filepath.Join(cfg.Gateway.DataDir, "status-setup-code")); err == nil {
		t.Error("setup code written although an account exists")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

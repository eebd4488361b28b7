package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/status"
)

// TestRulesMetricsOnStatusPage scrapes the status page's /metrics through
// the daemon's real serve: the rules engine's collectors are registered on
// its registry, count an SOS alert and its resolution, and carry rule
// names, levels and outcomes but never a household id.
func TestRulesMetricsOnStatusPage(t *testing.T) {
	cfg := sosGatewayConfig(t, "gw-metrics")
	d := startTestDaemon(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "zhang", status.RoleManager)
	gw, call, ctx := d.gw, d.call, context.Background()
	var body string
	poll := func(what string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			var c int
			c, body = call("GET", "/metrics", "")
			ok := c == http.StatusOK
			for _, w := range want {
				ok = ok && strings.Contains(body, w)
			}
			if ok {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s; /metrics:\n%s", what, rulesLines(body))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	poll("rules metrics registered", `lintel_rules_elders 1`, `lintel_rules_alerts_open{level="1",rule="sos"} 0`)

	sos := event.New(event.SOSPressed)
	sos.Device, sos.Household = "sos-301", "h-301"
	if err := gw.runtime.Emit(ctx, sos); err != nil {
		t.Fatal(err)
	}
	poll("SOS counted", `lintel_rules_alerts_raised_total{rule="sos"} 1`, `lintel_rules_alerts_open{level="1",rule="sos"} 1`,
		`lintel_rules_lag_events 0`, `lintel_rules_lag_seconds 0`)
	// The counters move when the engine decides; the alert event is
	// durable a moment later.
	var id string
	for deadline := time.Now().Add(10 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for _, ev := range mustRead(t, gw) {
			if ev.Kind == event.ElderAlertRaised {
				m, _ := ev.DataMap()
				id, _ = m["alert_id"].(string)
			}
		}
	}
	if c, b := call("POST", "/api/v1/alerts/"+id+"/resolve", `{"outcome":"safe"}`); c != 200 {
		t.Fatalf("resolve %q: %d %s", id, c, b)
	}
	poll("resolution counted", `lintel_rules_alerts_resolved_total{outcome="safe",rule="sos"} 1`,
		`lintel_rules_alerts_open{level="1",rule="sos"} 0`)
	for _, name := range []string{"lintel_rules_nodata_total", "lintel_rules_hints_total", "lintel_rules_events_processed_total",
		"lintel_rules_checkpoint_age_seconds", "lintel_rules_lag_seconds", "lintel_rules_lag_events"} {
		if !strings.Contains(body, "\n"+name) {
			t.Errorf("%s missing from /metrics", name)
		}
	}
	lines := rulesLines(body)
	if strings.Contains(lines, "h-301") || strings.Contains(lines, "household") || strings.Contains(lines, "sos-301") {
		t.Errorf("a household or device id in the rules metrics (PIPL):\n%s", lines)
	}
}

func mustRead(t *testing.T, gw *gateway) []*event.Event {
	t.Helper()
	evs, err := gw.store.ReadRange(0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// rulesLines are the lintel_rules_ lines of a scrape.
func rulesLines(body string) string {
	var b strings.Builder
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, "lintel_rules_") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestHouseholdPageShowsLimits reads the household page of a running
// daemon: each elder's limits in force are shown with why, in Chinese
// by default.
func TestHouseholdPageShowsLimits(t *testing.T) {
	cfg := sosGatewayConfig(t, "gw-limits")
	d := startTestDaemon(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "zhang", status.RoleManager)
	var hh struct{ Households []status.Household }
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, body := d.call("GET", "/api/v1/households", "")
		if c == 200 && strings.Contains(body, `"limits"`) {
			if err := json.Unmarshal([]byte(body), &hh); err != nil {
				t.Fatal(err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no limits in /api/v1/households: %d %s", c, body)
		}
	}
	var rules []string
	for _, l := range hh.Households[0].Limits {
		rules = append(rules, l.Rule)
		if l.Applied <= 0 || l.WhyZh == "" || l.WhyEn == "" || l.Basis != "configured" {
			t.Errorf("limit %+v: want a configured limit (no history yet) with reasons", l)
		}
	}
	if strings.Join(rules, ",") != "inactivity,not_returned" {
		t.Errorf("limits for %v", rules)
	}
	_, page := d.call("GET", "/households", "")
	for _, want := range []string{"在用阈值", "无活动告警", "使用配置阈值"} {
		if !strings.Contains(page, want) {
			t.Errorf("household page lacks %q", want)
		}
	}
}

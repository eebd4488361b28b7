package status

import (
	"bytes"
	"flag"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	storyRaised = time.Date(2026, 12, 7, 16, 46, 12, 0, time.UTC) // 12-08 00:46 at +08:00
	storyNow    = storyRaised.Add(3 * time.Hour)
)

func storyConfig() *config.Config {
	return &config.Config{Compound: config.Compound{Name: "幸福里",
		Buildings: []config.Building{{ID: "b3", Name: "3栋", Units: []string{"1"}}},
		Households: []config.Household{{ID: "h-3-1-301", Label: "3-1-301",
			Place: config.Place{Building: "b3", Unit: "1", Room: "301"}}}},
		Devices: []config.Device{{ID: "door-3-1-301", Kind: "door"}, {ID: "motion-301", Kind: "motion"}}}
}

// storyAlerts are one raised alert per rule, with the data the rules
// engine's raise() puts on it (edge/rules/lifecycle.go).
func storyAlerts() map[string]map[string]any {
	at := func(d time.Duration) string { return storyRaised.Add(d).Format(time.RFC3339Nano) }
	seen := map[string]any{
		"door-3-1-301": map[string]any{"role": "door", "last_seen": at(-6 * time.Hour), "state": "ok"},
		"motion-301":   map[string]any{"role": "motion", "last_seen": nil, "state": "never_seen"},
	}
	home := map[string]any{"state": "uncertain", "since": at(-6 * time.Hour), "basis": "door",
		"reason": "the door was used at 12-07 18:46 and nobody has been seen since", "reason_zh": "12-07 18:46 开关过门，此后未见室内活动"}
	away := map[string]any{"state": "away", "since": at(-5 * time.Hour), "basis": "inferred",
		"reason": "out: quiet since the door at 12-07 19:46", "reason_zh": "12-07 19:46 开门后一直安静，判断已外出"}
	ok := map[string]any{"status": "ok"}
	degraded := map[string]any{"status": "degraded", "silent": []any{"motion-301"},
		"note_zh": "失联传感器 motion-301", "note_en": "silent sensors motion-301"}
	rule := func(r, zh, en string, since time.Duration, pres map[string]any, health map[string]any, thr map[string]any) map[string]any {
		m := map[string]any{"alert_id": "al-h-3-1-301-" + r, "rule": r, "household": "h-3-1-301", "level": 1,
			"audience": "care", "notify": []any{"staff"}, "reason_zh": zh, "reason_en": en, "since": at(since),
			"presence": pres, "mode": "normal", "last_seen": seen, "data_health": health,
			"next_escalation": at(30 * time.Minute)}
		if thr != nil {
			m["thresholds"] = thr
		}
		return m
	}
	return map[string]map[string]any{
		"inactivity": rule("inactivity", "老人在家，已 6 小时 无任何活动（白天阈值 6 小时；最后活动 12-07 18:46，door-3-1-301）",
			"at home and no activity for 6h (day limit 6h; last activity 12-07 18:46, door-3-1-301)", -6*time.Hour, home, degraded,
			map[string]any{"inactivity_day": "6h0m0s", "inactivity_night": "10h0m0s", "applied": "6h0m0s"}),
		"no_exit": rule("no_exit", "已 3 天 未开门外出（阈值 3 天；最后一次开关门 12-05 00:46）",
			"no door activity for 3 days (limit 3 days; last door event 12-05 00:46)", -72*time.Hour, home, ok,
			map[string]any{"no_exit": "72h0m0s", "applied": "72h0m0s"}),
		"not_returned": rule("not_returned", "12-07 19:46 出门后 5 小时 未回家（阈值 4 小时）",
			"went out at 12-07 19:46 and not back for 5h (limit 4h)", -5*time.Hour, away, ok,
			map[string]any{"not_returned": "4h0m0s", "variant": "inferred"}),
		"door_left_open": rule("door_left_open", "入户门自 12-08 00:16 起已敞开 30 分钟（阈值 30 分钟）",
			"entrance door open since 12-08 00:16, 30 min (limit 30 min)", -30*time.Minute, home, ok,
			map[string]any{"door_left_open": "30m0s"}),
		"night_wandering": rule("night_wandering", "夜间（22:00–06:00）已开门 4 次，超过 3 次",
			"door opened 4 times in the night window (22:00–06:00), more than 3", 0, away, ok,
			map[string]any{"night_openings": 3, "night_window": "22:00-06:00"}),
		"sos": rule("sos", "12-08 00:46 按下紧急呼叫按钮（sos-301）", "SOS button pressed at 12-08 00:46 (sos-301)", 0, home, ok, nil),
		"visitor_loitering": rule("visitor_loitering", "夜间 10 分钟 内门铃被按 3 次，门未开启（防诈骗提醒）",
			"doorbell rung 3 times at night within 10 min, door not opened (anti-fraud)", -10*time.Minute, home, ok,
			map[string]any{"night_doorbells": 3, "doorbell_window": "10m0s"}),
		"sensor_health": rule("sensor_health", "设备维护：motion-301 自 12-06 00:46 起无上报", "maintenance: motion-301 silent since 12-06 00:46",
			-48*time.Hour, home, degraded, nil),
		"baseline_deviation": rule("baseline_deviation", "近 3 小时活动明显少于平时（平时 12 次，今日 1 次）",
			"far less activity than usual in the last 3 hours (usually 12, today 1)", -3*time.Hour, home, ok, nil),
	}
}

// cardText renders one alert card as a person sees it, one line per block.
func cardText(t *testing.T, lang string, a Alert) (text, raw string) {
	t.Helper()
	pages, err := parseTemplates()
	if err != nil {
		t.Fatal(err)
	}
	p := &pageData{Lang: lang, Page: "alerts", Role: RoleViewer, loc: time.FixedZone("", 8*3600), now: storyNow, cfg: storyConfig(),
		Data: alertsView{Alerts: []Alert{a}, Outcomes: outcomes}}
	var buf bytes.Buffer
	if err := pages["alerts"].ExecuteTemplate(&buf, "alertlist", p); err != nil {
		t.Fatal(err)
	}
	return htmlText(buf.String()), buf.String()
}

var (
	blockTag = regexp.MustCompile(`<(header|p|dt|dd|summary|details|dl|div|article|li)\b[^>]*>`)
	anyTag   = regexp.MustCompile(`<[^>]*>`)
)

func htmlText(h string) string {
	h = blockTag.ReplaceAllString(h, "\n")
	h = anyTag.ReplaceAllString(h, "")
	var lines []string
	for _, l := range strings.Split(html.UnescapeString(h), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

var (
	hanRE   = regexp.MustCompile(`\p{Han}`)
	storyRE = regexp.MustCompile(`(?s)<p class="story">.*?</p>`)
)

// TestAlertStories: every rule's card reads as a sentence in the page
// language (golden files in testdata/alerts), raw fields only behind a
// closed details toggle, no Chinese in the English card and no English
// words in the Chinese sentence.
func TestAlertStories(t *testing.T) {
	for r, data := range storyAlerts() {
		ev := event.New(event.ElderAlertRaised).WithData(data)
		ev.Seq, ev.Time, ev.Household, ev.TimeQuality = 1, storyRaised, "h-3-1-301", event.Synced
		tr := newTracker(nil, storyConfig(), nil)
		tr.apply([]*event.Event{ev})
		alerts := tr.alertList(0)
		if len(alerts) != 1 {
			t.Fatalf("%s: %d alerts", r, len(alerts))
		}
		for _, lang := range []string{"zh", "en"} {
			text, raw := cardText(t, lang, alerts[0])
			golden := filepath.Join("testdata", "alerts", r+"."+lang+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%s (run with -update to create): %v", golden, err)
			}
			if text != string(want) {
				t.Errorf("%s %s card differs from %s:\n--- got\n%s--- want\n%s", r, lang, golden, text, want)
			}
			story := htmlText(storyRE.FindString(raw))
			if story == "\n" {
				t.Errorf("%s %s: no sentence", r, lang)
				continue
			}
			place := map[string]string{"zh": "3栋1单元301", "en": "3栋, unit 1, flat 301"}[lang]
			since := data["since"].(string)
			st, _ := time.Parse(time.RFC3339Nano, since)
			for _, must := range []string{"3-1-301", place, st.In(time.FixedZone("", 8*3600)).Format("2006-01-02 15:04")} {
				if !strings.Contains(story, must) {
					t.Errorf("%s %s sentence lacks %q: %s", r, lang, must, story)
				}
			}
			if n := trOr(lang, "next."+r, ""); n == "" || !strings.Contains(story, n) {
				t.Errorf("%s %s: no next step in %s", r, lang, story)
			}
			for _, bad := range []string{"=", "h-3-1-301", "never_seen", "T16:", "Z", "normal", "note_"} {
				if strings.Contains(story, bad) {
					t.Errorf("%s %s sentence shows raw %q: %s", r, lang, bad, story)
				}
			}
			if !strings.Contains(raw, `<details class="why raw">`) || strings.Contains(raw, "<details class=\"why raw\" open") {
				t.Errorf("%s %s: the raw fields are not behind a closed toggle", r, lang)
			}
			if lang == "en" {
				if hanRE.MatchString(strings.ReplaceAll(text, "3栋", "")) {
					t.Errorf("%s: Chinese in the English card:\n%s", r, text)
				}
			} else {
				for _, w := range []string{"note_en", "normal", "uncertain", "Level", "door contact", "never heard", "the door was used"} {
					if strings.Contains(text, w) {
						t.Errorf("%s: English %q in the Chinese card:\n%s", r, w, text)
					}
				}
			}
		}
	}
}

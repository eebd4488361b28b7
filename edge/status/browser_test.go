package status

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/lintel-edge/lintel/edge/event"
)

const chromiumPath = "/usr/bin/chromium"

// screenshotDir is where the browser test saves its screenshots:
// $LINTEL_ARTIFACTS/status-page (CI uploads it), else a fresh temp dir
// that survives the test so a person can look at them.
func screenshotDir(t *testing.T) string {
	base := os.Getenv("LINTEL_ARTIFACTS")
	if base == "" {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "lintel-status-screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newBrowser starts headless Chromium with the flags this machine needs
// (no sandbox as root, no background networking on a closed network).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath
	if _, err := os.Stat(path); err != nil {
		if p, err := exec.LookPath("chromium"); err == nil {
			path = p
		} else if os.Getenv("CI") == "true" {
			t.Fatalf("chromium not found at %s: CI must install the Debian package chromium", chromiumPath)
		} else {
			t.Skip("chromium not installed: apt-get install chromium (and fonts-wqy-microhei for readable Chinese screenshots)")
		}
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(actx)
	tctx, tcancel := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { tcancel(); cancel(); acancel() })
	if err := chromedp.Do(tctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return tctx
}

type shooter struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func (s shooter) shot(name string) {
	s.t.Helper()
	buf, err := chromedp.Run(s.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		s.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(s.dir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		s.t.Fatal(err)
	}
	s.t.Logf("screenshot %s", p)
}

func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func waitJS(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))
}

// noOverflow is true when nothing sticks out sideways: a phone user never
// scrolls horizontally.
const noOverflow = `document.documentElement.scrollWidth <= window.innerWidth + 1`

// TestBrowser drives the page in real headless Chromium at phone width:
// first-run setup with the code, login, a simulated SOS appearing live,
// acknowledge and resolve it, the audit events, the language switch.
func TestBrowser(t *testing.T) {
	e := newEnv(t, envOpt{}) // real argon2id parameters
	ctx := newBrowser(t)
	sh := shooter{t: t, ctx: ctx, dir: screenshotDir(t)}
	do(t, ctx, "phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))

	// First run: the page asks for the setup code.
	code := e.setupCode()
	do(t, ctx, "open", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS("#setup-form")))
	if loc := eval[string](t, ctx, "location.pathname"); loc != "/setup" {
		t.Fatalf("first start went to %s", loc)
	}
	if !eval[bool](t, ctx, noOverflow) {
		t.Error("setup page overflows a phone screen")
	}
	do(t, ctx, "fill setup",
		chromedp.SendKeys(chromedp.CSS("#code"), code),
		chromedp.SendKeys(chromedp.CSS("#name"), "wang"),
		chromedp.SendKeys(chromedp.CSS("#password"), "Wang-Manager-2026"),
		chromedp.SendKeys(chromedp.CSS("#password2"), "Wang-Manager-2026"))
	sh.shot("01-setup-phone")
	do(t, ctx, "submit setup", chromedp.Click(chromedp.CSS("#setup-submit")), chromedp.WaitVisible(chromedp.CSS("#tile-alerts")))

	// Log out and in again: the login form.
	do(t, ctx, "logout", chromedp.Click(chromedp.CSS(".logout button")), chromedp.WaitVisible(chromedp.CSS("#login-form")))
	do(t, ctx, "fill login",
		chromedp.SendKeys(chromedp.CSS("#name"), "wang"),
		chromedp.SendKeys(chromedp.CSS("#password"), "Wang-Manager-2026"))
	sh.shot("02-login-phone")
	do(t, ctx, "submit login", chromedp.Click(chromedp.CSS("#login-submit")), chromedp.WaitVisible(chromedp.CSS("#tile-alerts")))

	// Some state for the overview and devices pages.
	on := event.New(event.DeviceOnline)
	on.Device = "sos-301"
	off := event.New(event.DeviceOffline)
	off.Device = "gate-north"
	cam := event.New(event.CameraOnline)
	cam.Device = "cam-3"
	e.emit(on, off, cam)

	// The alerts page follows live updates; a marker proves no reload.
	do(t, ctx, "alerts page", chromedp.Navigate(e.url+"/alerts"), chromedp.WaitVisible(chromedp.CSS("#no-alerts")),
		waitJS(`document.body.getAttribute("data-live") === "on"`))
	eval[bool](t, ctx, "window.__noReload = true")
	start := time.Now()
	e.raiseSOS("sos-301-0001")
	do(t, ctx, "SOS appears live", chromedp.WaitVisible(chromedp.CSS(`#alert-sos-301-0001`)))
	latency := time.Since(start)
	t.Logf("SOS appeared on the page %v after it was appended", latency.Round(time.Millisecond))
	if !eval[bool](t, ctx, "window.__noReload === true") {
		t.Error("the page reloaded instead of updating live")
	}
	if txt := eval[string](t, ctx, `document.querySelector("#alert-sos-301-0001").innerText`); !strings.Contains(txt, "紧急呼叫") || !strings.Contains(txt, "3-1-301") {
		t.Errorf("alert card: %q", txt)
	}
	if b := eval[string](t, ctx, `document.getElementById("alert-badge").textContent`); b != "1" {
		t.Errorf("nav badge %q", b)
	}
	if !eval[bool](t, ctx, noOverflow) {
		t.Error("alerts page overflows a phone screen")
	}
	sh.shot("03-sos-live-phone")

	// Acknowledge.
	do(t, ctx, "ack", chromedp.Click(chromedp.CSS(`#alert-sos-301-0001 button.ack`)),
		chromedp.WaitVisible(chromedp.CSS(`#alert-sos-301-0001[data-state="acknowledged"]`)))
	if f := eval[string](t, ctx, `(document.querySelector(".flash.ok")||{}).textContent||""`); !strings.Contains(f, "已确认") {
		t.Errorf("ack flash %q", f)
	}
	sh.shot("04-acknowledged-phone")

	// Resolve with an outcome and a visit note.
	do(t, ctx, "resolve",
		chromedp.SetValue(chromedp.CSS(`#alert-sos-301-0001 select[name=outcome]`), "safe"),
		chromedp.SendKeys(chromedp.CSS(`#alert-sos-301-0001 textarea[name=note]`), "已上门，老人摔倒后自行起身，无大碍"),
		chromedp.Click(chromedp.CSS(`#alert-sos-301-0001 .resolve-btn`)),
		chromedp.WaitVisible(chromedp.CSS(`#alert-sos-301-0001[data-state="resolved"]`)))
	sh.shot("05-resolved-phone")

	// The audit trail names the account and the page.
	evs, err := e.st.ReadRange(0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	var audit []string
	for _, ev := range evs {
		if ev.Kind == event.CommandApplied {
			m, _ := ev.DataMap()
			audit = append(audit, fmt.Sprintf("%v by %v via %v", m["command"], m["actor"], m["via"]))
		}
	}
	if strings.Join(audit, "; ") != "alert.ack by wang via web; alert.resolve by wang via web" {
		t.Errorf("audit events: %q", audit)
	}
	// … and shows on the events page.
	do(t, ctx, "events", chromedp.Navigate(e.url+"/events?kind=command.applied"), chromedp.WaitVisible(chromedp.CSS("ol.events li")))
	if n := eval[int](t, ctx, `document.querySelectorAll("ol.events li").length`); n != 2 {
		t.Errorf("events page shows %d audit events", n)
	}

	// Overview and devices at phone width.
	do(t, ctx, "overview", chromedp.Navigate(e.url+"/"), chromedp.WaitVisible(chromedp.CSS("#tile-alerts")))
	if !eval[bool](t, ctx, noOverflow) {
		t.Error("overview overflows a phone screen")
	}
	sh.shot("06-overview-phone")
	do(t, ctx, "devices", chromedp.Navigate(e.url+"/devices"), chromedp.WaitVisible(chromedp.CSS("#dev-gate-north")))
	if !eval[bool](t, ctx, noOverflow) {
		t.Error("devices page overflows a phone screen")
	}
	sh.shot("07-devices-phone")

	// Set a visitor snooze from the households page.
	until := time.Now().Add(3 * time.Hour).In(e.srv.loc).Format("2006-01-02T15:04") // the page reads it in the compound's zone
	do(t, ctx, "households", chromedp.Navigate(e.url+"/households"), chromedp.WaitVisible(chromedp.CSS("#hh-h-3-2-502")),
		chromedp.SetValue(chromedp.CSS(`#hh-h-3-2-502 select[name=mode]`), "visitor"),
		chromedp.SetValue(chromedp.CSS(`#hh-h-3-2-502 input[name=until]`), until),
		chromedp.Click(chromedp.CSS(`#hh-h-3-2-502 button`)),
		chromedp.WaitVisible(chromedp.CSS(`.flash.ok`)))
	if txt := eval[string](t, ctx, `document.querySelector("#hh-h-3-2-502").innerText`); !strings.Contains(txt, "访客") {
		t.Errorf("household after setting visitor mode: %q", txt)
	}
	if !eval[bool](t, ctx, noOverflow) {
		t.Error("households page overflows a phone screen")
	}
	sh.shot("07b-households-phone")

	// A second SOS while on another page raises the banner.
	e.raiseSOS("sos-301-0002")
	do(t, ctx, "banner", waitJS(`!document.getElementById("live-banner").classList.contains("hide")`))
	sh.shot("08-banner-phone")

	// Language switch.
	do(t, ctx, "switch to English", chromedp.Click(chromedp.CSS("#lang-switch")), chromedp.WaitVisible(chromedp.CSS(`html[lang="en"] nav.tabs`)))
	if nav := eval[string](t, ctx, `document.querySelector("nav.tabs").innerText`); !strings.Contains(nav, "Alerts") || strings.Contains(nav, "告警") {
		t.Errorf("English nav %q", nav)
	}
	do(t, ctx, "alerts en", chromedp.Navigate(e.url+"/alerts"), chromedp.WaitVisible(chromedp.CSS(`#alert-sos-301-0002`)))
	if txt := eval[string](t, ctx, `document.querySelector("#alert-sos-301-0002").innerText`); !strings.Contains(txt, "Emergency call (SOS)") {
		t.Errorf("English alert %q", txt)
	}
	sh.shot("09-alerts-en-phone")
	do(t, ctx, "back to Chinese", chromedp.Click(chromedp.CSS("#lang-switch")), chromedp.WaitVisible(chromedp.CSS(`html[lang="zh-CN"] nav.tabs`)))

	// Desktop width for the documentation.
	do(t, ctx, "desktop", chromedp.EmulateViewport(1280, 900), chromedp.Navigate(e.url+"/alerts"), chromedp.WaitVisible(chromedp.CSS(`#alert-sos-301-0002`)))
	sh.shot("10-alerts-desktop")
	do(t, ctx, "diagnostics", chromedp.Navigate(e.url+"/diagnostics"), chromedp.WaitVisible(chromedp.CSS("#config-dump")))
	if d := eval[string](t, ctx, `document.getElementById("config-dump").textContent`); !strings.Contains(d, "REDACTED") || strings.Contains(d, canary) {
		t.Error("diagnostics config not redacted")
	}
	sh.shot("11-diagnostics-desktop")
	do(t, ctx, "households", chromedp.Navigate(e.url+"/households"), chromedp.WaitVisible(chromedp.CSS("#hh-h-3-1-301")))
	sh.shot("12-households-desktop")
}

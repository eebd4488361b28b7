package status

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// BenchmarkPasswordHash is the argon2id cost of one login (m=19 MiB, t=2,
// p=1). The target on the ARM board is 250–500 ms; on a PC it is far less.
func BenchmarkPasswordHash(b *testing.B) {
	h, _ := HashPassword("a-long-enough-password")
	b.ReportAllocs()
	for b.Loop() {
		if !CheckPassword(h, "a-long-enough-password") {
			b.Fatal("mismatch")
		}
	}
}

func benchEnv(b *testing.B, events int) (*testEnv, *http.Cookie) {
	e := newEnvTB(b, envOpt{})
	old := hashParams
	hashParams.Memory, hashParams.Time = 1024, 1
	e.srv.accounts.Add("bench", RoleManager, "bench-password-1", false)
	hashParams = old
	for i := 0; i < events; i += 500 {
		batch := make([]*event.Event, 0, 500)
		for j := i; j < i+500 && j < events; j++ {
			ev := event.New(event.DoorOpened).WithData(map[string]any{"i": j})
			ev.Device = "sos-301"
			if j%100 == 0 {
				ev.Kind = event.SOSPressed
				ev.Severity = event.Critical
			}
			batch = append(batch, ev)
		}
		if err := e.rt.Emit(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 20 {
		e.raiseSOS(fmt.Sprintf("al-bench-%02d", i))
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, _, n := e.srv.tr.clock()
		if n >= uint64(events+20) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ac, _ := e.srv.accounts.Lookup("bench")
	ss := e.srv.sess.create("bench", RoleManager, ac.Changed)
	return e, &http.Cookie{Name: cookieSession, Value: ss.id}
}

func benchPage(b *testing.B, path string, events int) {
	e, ck := benchEnv(b, events)
	h := e.srv.Handler()
	b.ResetTimer()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(ck)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("%s: %d", path, w.Code)
		}
	}
}

// BenchmarkAlertsPage renders the alerts page with 20 open alerts.
func BenchmarkAlertsPage(b *testing.B) { benchPage(b, "/alerts", 0) }

// BenchmarkOverviewPage renders the overview after 10 000 events.
func BenchmarkOverviewPage(b *testing.B) { benchPage(b, "/", 10000) }

// BenchmarkEventsFilter: a filter matching 1 % of a 10 000-event log,
// 50 results (scans about 5 000 events).
func BenchmarkEventsFilter(b *testing.B) {
	benchPage(b, "/api/v1/events?kind=sos.pressed&limit=50", 10000)
}

// BenchmarkEventsNewest: the unfiltered events page (newest 50).
func BenchmarkEventsNewest(b *testing.B) { benchPage(b, "/events", 10000) }

// BenchmarkMetrics is one /metrics scrape.
func BenchmarkMetrics(b *testing.B) { benchPage(b, "/metrics", 1000) }

// BenchmarkSOSToLive measures from the SOS event's append (durable in the
// store) to the "alerts" message on a live stream: the page's share of
// the button-to-screen latency.
func BenchmarkSOSToLive(b *testing.B) {
	e, ck := benchEnv(b, 0)
	req, _ := http.NewRequest("GET", e.url+"/live", nil)
	req.AddCookie(ck)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	next := func(kind string) {
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if strings.HasPrefix(line, "event: "+kind) {
				return
			}
		}
	}
	next("hello")
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e.raiseSOS(fmt.Sprintf("al-live-%d", i))
		next("alerts")
	}
}

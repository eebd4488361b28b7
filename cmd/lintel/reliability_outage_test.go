package main

import (
	"os"
	"testing"
	"time"
)

// TestReliabilityBrokerOutage is T6 of research/reliability.md §1.9 (goal
// G6), accelerated: under load, the city broker is SIGKILLed and stays
// down while the gateway keeps ingesting, then comes back on the same
// port. The backlog must drain completely with nothing lost, and the alert
// lane (SOS presses during the outage) must arrive before the backlog has
// finished draining.
//
// "Broker back" below is the moment the gateway can reach the restarted
// broker again, after the listener has resubscribed (see relGate).
//
// Short form (go test, make test): a backlog of 5,000 events. LINTEL_SOAK=1
// (make soak): the event count of G6's 24 h outage at R = 20 events/s
// (1,728,000), ingested at the load's rate; LINTEL_SOAK_OUTAGE_EVENTS and
// LINTEL_SOAK_RATE override them.
//
// The uplink's reconnect back-off is being reworked (the backlog should
// move within 10 s of the broker's return); this test records that delay
// and only holds it to a generous bound.
func TestReliabilityBrokerOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("whole-daemon outage test: not with -short")
	}
	rate, backlog := 500, 5000
	maxBytes, history := "256MiB", "168h"
	drainBound := 3 * time.Minute
	if relSoak() {
		rate, backlog = 1000, 20*24*3600
		// The quota must hold the whole backlog (G6: 0 lost, buffer under
		// its cap); acked events need not stay long.
		maxBytes, history = "2GiB", "10m"
		// G6: drained in ≤ 2.4 h (10× R) while live ingest continues.
		drainBound = 144 * time.Minute
	}
	backlog = relEnvInt(t, "LINTEL_SOAK_OUTAGE_EVENTS", backlog)
	rate = relEnvInt(t, "LINTEL_SOAK_RATE", rate)
	const reconnectBound = 3 * time.Minute

	r := newRelRig(t, "outage", relRigOptions{Rate: rate, SOSEvery: 250, MaxBytes: maxBytes, History: history, Segment: 100_000})
	r.load.start()
	r.daemon.start()
	r.mustReady()
	t.Logf("work directory %s; backlog target %d events at %d events/s", r.dir, backlog, rate)
	if !relPoll(60*time.Second, 50*time.Millisecond, func() bool { return r.listener.receivedCount() >= 500 }) {
		t.Fatalf("no steady flow to the listener before the outage (%d events)\n%s", r.listener.receivedCount(), r.daemon.logTail(30))
	}

	// RSS of the daemon while the backlog grows and drains.
	var maxRSS, maxAnon int64
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			total, anon := r.daemon.rss()
			maxRSS, maxAnon = max(maxRSS, total), max(maxAnon, anon)
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()

	if err := r.tap.refresh(); err != nil {
		t.Fatal(err)
	}
	mark := len(r.tap.entries)
	down := time.Now()
	r.broker.kill()
	r.gate.shut()
	grow := time.Duration(float64(backlog)/float64(rate)*3*float64(time.Second)) + 2*time.Minute
	if !relPoll(grow, 100*time.Millisecond, func() bool {
		if err := r.tap.refresh(); err != nil {
			t.Fatal(err)
		}
		return len(r.tap.entries) >= mark+backlog || !r.daemon.running()
	}) || !r.daemon.running() {
		t.Fatalf("backlog reached %d of %d events in %s (daemon running: %v)\n%s", len(r.tap.entries)-mark, backlog, grow, r.daemon.running(), r.daemon.logTail(30))
	}
	upTo := len(r.tap.entries)
	var storeBytes int64
	for _, p := range []string{r.storePath, r.storePath + ".wal"} {
		if st, err := os.Stat(p); err == nil {
			storeBytes += st.Size()
		}
	}
	// The broker comes back on its port; the gateway's path opens once the
	// listener has subscribed again (see relGate): from then on, "up".
	subs := r.listener.subscriptions()
	r.broker.start()
	if !r.listener.waitSubscribed(subs+2, time.Minute) {
		t.Fatal("the listener did not subscribe to the restarted broker within 1m")
	}
	if err := r.gate.open(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()

	rep := &relReport{Scenario: "outage", Outage: up.Sub(down), Backlog: upTo - mark, StoreBytes: storeBytes}
	if n := r.waitDrained(upTo, drainBound+reconnectBound); n > 0 {
		t.Errorf("backlog not drained: %d of the %d events durable before the broker's return still missing after %s",
			n, upTo, drainBound+reconnectBound)
	}
	close(stopSampling)
	<-sampled
	rep.MaxRSS, rep.MaxAnon = maxRSS, maxAnon

	// Timings from the listener's own arrival stamps.
	l := r.listener
	l.mu.Lock()
	var drained int64
	for _, e := range r.tap.entries[:upTo] {
		if s := l.seen[e.id]; s != nil && s.events > 0 && s.firstEvent > drained {
			drained = s.firstEvent
		}
	}
	rep.Drain = time.Duration(drained - up.UnixNano())
	if a := relFirstAfter(l.ackTimes, up); !a.IsZero() {
		rep.ToFirstAck = a.Sub(up)
	}
	if a := relFirstAfter(l.alertTimes, up); !a.IsZero() {
		rep.ToFirstAlert = a.Sub(up)
	}
	var late []string
	for _, e := range r.tap.entries[mark:upTo] {
		s := l.seen[e.id]
		if s == nil || (s.severity != "alert" && s.severity != "critical") {
			continue
		}
		rep.BacklogAlerts++
		switch {
		case s.alerts == 0:
			late = append(late, e.id+" never on the alert lane")
		case s.firstAlert > drained:
			late = append(late, e.id+" on the alert lane only after the backlog had drained")
		}
		if s.alerts > 0 {
			if s.events == 0 || s.firstAlert < s.firstEvent {
				rep.AlertsLaneFirst++
			}
			if d := time.Duration(s.firstAlert - up.UnixNano()); d > rep.LastAlert {
				rep.LastAlert = d
			}
		}
	}
	l.mu.Unlock()

	r.finish(rep)
	if rep.BacklogAlerts == 0 {
		t.Errorf("no alert-lane event in the backlog: the load's SOS presses did not arrive")
	}
	if len(late) > 0 {
		if len(late) > 10 {
			late = append(late[:10], "…")
		}
		t.Errorf("%d of %d backlog alerts not ahead of the backlog: %v", len(late), rep.BacklogAlerts, late)
	}
	if rep.ToFirstAck == 0 || rep.ToFirstAck > reconnectBound {
		t.Errorf("first ack %s after the broker's return, want within %s", rep.ToFirstAck, reconnectBound)
	}
	// G6's memory bound, on the daemon's own memory: VmRSS also counts
	// the pages of bbolt's mmap that the drain touched (the whole log),
	// which are page cache, not memory the daemon holds.
	if relSoak() && rep.MaxAnon > 128<<20 {
		t.Errorf("G6: the daemon's anonymous RSS peaked at %.0f MiB during the outage and drain, want ≤ 128 MiB", float64(rep.MaxAnon)/(1<<20))
	}
	if rep.Drain > drainBound+reconnectBound {
		t.Errorf("backlog drained %s after the broker's return, want within %s", rep.Drain, drainBound+reconnectBound)
	}
}

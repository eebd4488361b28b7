package city

import (
	"context"
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"
)

// TestProberWait runs the back-off wait on the fake clock of a synctest
// bubble against a scripted broker (down until backAt, then up; backAt <
// 0: up all along) and checks when the wait ends and how often it probed.
func TestProberWait(t *testing.T) {
	const p = 2 * time.Second
	never := time.Duration(1 << 62)
	cases := []struct {
		name     string
		every    time.Duration
		wait     time.Duration
		down     bool          // the attempt failed at dial
		backAt   time.Duration // broker reachable from then on; <0 always
		woke     bool
		either   bool          // woke may be either
		min, max time.Duration // when the wait may end
		probes   [2]uint64     // at least, at most
	}{
		// A back-off of 60–120 s after a long outage: the broker's return
		// ends it within 1.5p (next probe) + p (settle).
		{"known down, back at 10s", p, 100 * time.Second, true, 10 * time.Second, true, false, 10 * time.Second, 10*time.Second + 5*p/2, [2]uint64{4, 11}},
		{"known down, already back", p, 100 * time.Second, true, -1, true, false, p / 2, 5 * p / 2, [2]uint64{1, 1}},
		// A lost connection: the first failed probe makes the broker known down.
		{"lost, down, back at 20s", p, 100 * time.Second, false, 20 * time.Second, true, false, 20 * time.Second, 20*time.Second + 5*p/2, [2]uint64{7, 21}},
		// Reachable all along (the session failed above TCP): one probe,
		// then the back-off stands.
		{"reachable all along", p, 100 * time.Second, false, -1, false, false, 100 * time.Second, 100 * time.Second, [2]uint64{1, 1}},
		{"never back", p, 30 * time.Second, true, never, false, false, 30 * time.Second, 30 * time.Second, [2]uint64{9, 30}},
		{"short wait: no probe", p, p / 2, true, -1, false, false, p / 2, p / 2, [2]uint64{0, 0}},
		{"probing off", 0, 100 * time.Second, true, -1, false, false, 100 * time.Second, 100 * time.Second, [2]uint64{0, 0}},
		// Back just before the wait ends: the settle never overshoots it.
		{"back near the end", p, 20 * time.Second, true, 19 * time.Second, false, true, 19 * time.Second, 20 * time.Second, [2]uint64{6, 20}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for run := 0; run < 20; run++ { // the jitter is random: several draws
				synctest.Test(t, func(t *testing.T) {
					start := time.Now()
					var at []time.Duration
					pr := newProber("tcp://broker.invalid:1883", tc.every)
					pr.dial = func(_ context.Context, addr string, timeout time.Duration) error {
						if addr != "broker.invalid:1883" || timeout != tc.every {
							t.Errorf("probe of %s with timeout %s", addr, timeout)
						}
						at = append(at, time.Since(start))
						if tc.backAt >= 0 && time.Since(start) < tc.backAt {
							return &net.OpError{Op: "dial", Err: errors.New("connection refused")}
						}
						return nil
					}
					ok, woke := pr.wait(context.Background(), tc.wait, tc.down)
					el := time.Since(start)
					if !ok || woke != tc.woke && !tc.either || el < tc.min || el > tc.max {
						t.Fatalf("ok %v woke %v after %s, want woke %v within %s..%s (probes at %v)", ok, woke, el, tc.woke, tc.min, tc.max, at)
					}
					if n := pr.probes.Load(); n < tc.probes[0] || n > tc.probes[1] || n != uint64(len(at)) {
						t.Fatalf("%d probes (at %v), want %d..%d", n, at, tc.probes[0], tc.probes[1])
					}
					// Jittered: each gap in [p/2, 3p/2), never in step.
					for i := range at {
						gap := at[i]
						if i > 0 {
							gap -= at[i-1]
						}
						if gap < tc.every/2 || gap >= 3*tc.every/2 {
							t.Fatalf("probe gap %s outside [%s, %s): %v", gap, tc.every/2, 3*tc.every/2, at)
						}
					}
				})
			}
		})
	}
}

func TestProberWaitCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		pr := newProber("mqtts://broker.invalid", 2*time.Second)
		pr.dial = func(context.Context, string, time.Duration) error { return errors.New("down") }
		time.AfterFunc(5*time.Second, cancel)
		start := time.Now()
		if ok, _ := pr.wait(ctx, time.Minute, true); ok || time.Since(start) != 5*time.Second {
			t.Fatalf("ok %v after %s, want false at once when ctx ends", ok, time.Since(start))
		}
		if pr.addr != "broker.invalid:8883" {
			t.Errorf("probe address %q, want the TLS default port", pr.addr)
		}
	})
}

func TestProberOff(t *testing.T) {
	t.Setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
	if p := newProber("tcp://127.0.0.1:1883", 2*time.Second); p.every != 0 {
		t.Error("probing through a proxy from the environment would test the wrong path")
	}
}

// TestUnreachable checks the error classes the sink's real connection
// attempts produce: a refused dial (plain and TLS) counts as the broker
// being down, so the first successful probe ends the wait.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // a port nobody listens on
	for _, scheme := range []string{"tcp", "mqtts"} {
		st := openStore(t, t.TempDir())
		o := testOptions(scheme + "://" + addr)
		s, err := New(Deps{Name: "city", Gateway: "gw-01", Compound: "c-01", Log: st, Logger: testLogger(t)}, o)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.session(context.Background(), s.urls[0]); !unreachable(err) {
			t.Errorf("%s: %v: not classed as unreachable", scheme, err)
		}
		st.Close()
	}
	if unreachable(errors.New("connection lost: EOF")) {
		t.Error("a lost session is not known unreachable")
	}
}

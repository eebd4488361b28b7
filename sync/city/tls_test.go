package city

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

func tlsOptions(port int, c *certs) Options {
	o := testOptions(fmt.Sprintf("mqtts://127.0.0.1:%d", port))
	o.TLS.CAFile = c.ca
	return o
}

func TestTLS(t *testing.T) {
	c := newCerts(t)
	b := startBroker(t, c)
	type tlsCase struct {
		name string
		opts func() Options
		ok   bool
	}
	cases := []tlsCase{
		{"server-verified", func() Options { return tlsOptions(b.tlsPort, c) }, true},
		{"mtls", func() Options {
			o := tlsOptions(b.mtls, c)
			o.TLS.CertFile, o.TLS.KeyFile = c.clientCrt, c.clientKey
			return o
		}, true},
		{"mtls-without-client-cert", func() Options { return tlsOptions(b.mtls, c) }, false},
		{"wrong-ca", func() Options {
			o := tlsOptions(b.tlsPort, c)
			o.TLS.CAFile = c.otherCA
			return o
		}, false},
		{"system-roots-refuse-private-ca", func() Options {
			o := tlsOptions(b.tlsPort, c)
			o.TLS.CAFile = ""
			return o
		}, false},
	}
	if b.authPort != 0 {
		pwFile := filepath.Join(t.TempDir(), "mqtt.pass")
		if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth := func(user, secret string) func() Options {
			return func() Options {
				o := tlsOptions(b.authPort, c)
				o.Username, o.Password = user, config.NewSecret(secret)
				return o
			}
		}
		cases = append(cases,
			tlsCase{"password-file", auth("gw-01", "file:"+pwFile), true},
			tlsCase{"wrong-password", auth("gw-01", "not-it"), false},
			tlsCase{"no-credentials", auth("", ""), false},
		)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := openStore(t, t.TempDir())
			t.Cleanup(func() { st.Close() })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			col := newCollector()
			r := startReceiver(t, ctx, b, false, col)
			ids := appendEvents(t, st, 500, 50)
			s := runSink(t, ctx, st, tc.opts(), nil)
			if tc.ok {
				waitFor(t, 20*time.Second, "events over TLS", func() bool { return col.count() >= len(ids) })
				checkDelivery(t, ids, col, r)
				return
			}
			waitFor(t, 10*time.Second, "refused connections", func() bool { return s.Reconnects.Load() >= 2 })
			if n := col.count(); n != 0 || s.Confirmed() != 0 || s.EventsSent.Load() != 0 {
				t.Fatalf("refused TLS still delivered: received %d confirmed %d", n, s.Confirmed())
			}
		})
	}
}

// fakeClock is a settable wall clock that counts its reads.
type fakeClock struct {
	t     atomic.Pointer[time.Time]
	reads atomic.Uint64
}

func (f *fakeClock) set(t time.Time) { f.t.Store(&t) }

func (f *fakeClock) Now() (time.Time, event.TimeQuality) {
	f.reads.Add(1)
	if t := f.t.Load(); t != nil {
		return *t, event.Unsynced
	}
	return time.Now(), event.Synced
}

func TestTLSWaitsForSaneClock(t *testing.T) {
	c := newCerts(t)
	b := startBroker(t, c)
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	r := startReceiver(t, ctx, b, false, col)
	ids := appendEvents(t, st, 100, 0)
	defer func(d time.Duration) { clockRetry = d }(clockRetry)
	clockRetry = 100 * time.Millisecond
	clk := &fakeClock{}
	clk.set(time.Date(1970, 1, 1, 0, 0, 42, 0, time.UTC))
	s := runSink(t, ctx, st, tlsOptions(b.tlsPort, c), func(d *Deps) { d.Clock = clk })
	// Several clock checks, each one a chance to connect that must be
	// refused, rather than some time that may pass with none on a busy
	// machine.
	waitFor(t, 20*time.Second, "five clock checks", func() bool { return clk.reads.Load() >= 5 })
	if s.conns.Load() != 0 || col.count() != 0 {
		t.Fatalf("connected with a 1970 clock: %d connections", s.conns.Load())
	}
	clk.set(time.Now())
	waitFor(t, 20*time.Second, "delivery after time sync", func() bool { return col.count() >= len(ids) })
	checkDelivery(t, ids, col, r)
}

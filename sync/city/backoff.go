package city

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"time"
)

// backoff is a capped exponential delay with jitter: attempt n waits a
// random time in [d/2, d] with d = min(max, min·2^n). The jitter keeps a
// compound's gateways from reconnecting in step after a platform outage;
// the floor keeps the first retry from being immediate.
type backoff struct {
	min, max time.Duration
	n        int
	rnd      func() float64
}

func newBackoff(min, max time.Duration) *backoff {
	return &backoff{min: min, max: max, rnd: rand.Float64}
}

// next returns the delay before the next attempt and counts it.
func (b *backoff) next() time.Duration {
	d := b.min
	for i := 0; i < b.n && d < b.max; i++ {
		d *= 2
	}
	if d > b.max {
		d = b.max
	}
	if b.n < 64 {
		b.n++
	}
	half := d / 2
	return half + time.Duration(b.rnd()*float64(d-half))
}

// reset starts again from min, after a connection that worked.
func (b *backoff) reset() { b.n = 0 }

// prober shortens a long back-off when the broker comes back. While the
// broker is unreachable it tries a bare TCP connect (no TLS, no MQTT,
// closed at once) every [every/2, 3·every/2), and when one succeeds after
// a failure (a down→up edge) it ends the wait after a further random
// settle in [0, every), so the full connect follows within about
// 2.5·every of the broker's return instead of up to reconnect.max.
//
// Why this does not storm the platform:
//   - While the broker is down a probe is one SYN answered by a RST (or
//     nothing): ten thousand gateways at every = 2s send ~5,000 SYN/s,
//     ~300 KB/s, and no TLS handshake or MQTT authentication runs.
//   - After the return the probes' phases are independent (every interval
//     is random), and the settle adds one more interval, so a compound's
//     or a city's gateways arrive spread over about 2·every rather than at
//     once.
//   - A probe wakes the wait only on an edge. A broker that accepts TCP
//     but refuses or drops the session (overloaded, auth backend down,
//     a client-id takeover) is reachable all along: the first successful
//     probe without an earlier failure stops probing, and the exponential
//     back-off with its jitter and floor stands. After an edge whose
//     connect fails above TCP the next wait starts with the broker known
//     reachable, so the same rule applies: one full connect per edge.
//
// Behind a TCP load balancer that accepts connections while every broker
// behind it is down, a probe cannot see the outage; the plain back-off
// applies there (lower reconnect.max if that is too slow).
type prober struct {
	every time.Duration // 0: off
	addr  string        // host:port of the broker
	dial  func(ctx context.Context, addr string, timeout time.Duration) error
	rnd   func() float64

	probes atomic.Uint64 // TCP probes made
	wakes  atomic.Uint64 // waits ended early by a probe
	wokeAt atomic.Int64  // unix ns of the last probe that saw the broker back
}

// newProber returns the prober for broker, off when every is 0, when the
// URL has no host, or when a proxy from the environment stands between
// the gateway and the broker (paho dials through ALL_PROXY, and a probe
// of the broker's own address would then test the wrong path).
func newProber(broker string, every time.Duration) *prober {
	p := &prober{dial: dialProbe, rnd: rand.Float64}
	u, err := url.Parse(broker)
	if err != nil || u.Hostname() == "" || every <= 0 || os.Getenv("ALL_PROXY") != "" || os.Getenv("all_proxy") != "" {
		return p
	}
	port := u.Port()
	if port == "" {
		port = "1883"
		if tlsScheme(u.Scheme) {
			port = "8883"
		}
	}
	p.every, p.addr = every, net.JoinHostPort(u.Hostname(), port)
	return p
}

func dialProbe(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// unreachable reports whether a connection attempt failed before TCP was
// up (refused, no route, DNS, dial timeout): the broker is then known to
// be down and the first successful probe is an edge.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// wait sleeps d, or less when a probe sees the broker come back. down
// says whether the broker is already known unreachable. It returns false
// if ctx ended, and woke = true when a probe cut the wait short.
func (p *prober) wait(ctx context.Context, d time.Duration, down bool) (ok, woke bool) {
	end := time.Now().Add(d)
	probing := p.every > 0
	for probing {
		gap := p.every/2 + time.Duration(p.rnd()*float64(p.every))
		if time.Until(end) <= gap {
			break
		}
		if !sleep(ctx, gap) {
			return false, false
		}
		p.probes.Add(1)
		if err := p.dial(ctx, p.addr, p.every); err != nil {
			if ctx.Err() != nil {
				return false, false
			}
			down = true
			continue
		}
		if !down {
			// Reachable all along: the session failed above TCP, and
			// only the back-off protects the broker from us.
			probing = false
			break
		}
		p.wakes.Add(1)
		p.wokeAt.Store(time.Now().UnixNano())
		settle := time.Duration(p.rnd() * float64(p.every))
		return sleep(ctx, min(settle, time.Until(end))), true
	}
	return sleep(ctx, time.Until(end)), false
}

package city

import (
	"math/rand/v2"
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

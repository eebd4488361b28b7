package police

import "sync"

// The running sinks, for the status page and metrics.
var (
	runMu   sync.Mutex
	running []*Sink
)

// track lists a sink while it runs; the returned func takes it off. A
// sink only built (lintel check builds every sink to find what run would
// refuse, with no event log behind it) is never listed.
func track(s *Sink) func() {
	runMu.Lock()
	defer runMu.Unlock()
	running = append(running, s)
	return func() {
		runMu.Lock()
		defer runMu.Unlock()
		for i, x := range running {
			if x == s {
				running = append(running[:i], running[i+1:]...)
				break
			}
		}
	}
}

// States reports the state of every police sink running in this process.
func States() []State {
	runMu.Lock()
	defer runMu.Unlock()
	out := make([]State, 0, len(running))
	for _, s := range running {
		out = append(out, s.State())
	}
	return out
}

package police

import "sync"

// The running sinks, for the status page and metrics.
var (
	runMu   sync.Mutex
	running []*Sink
)

func track(s *Sink) {
	runMu.Lock()
	defer runMu.Unlock()
	running = append(running, s)
}

// States reports the state of every police sink built in this process.
func States() []State {
	runMu.Lock()
	defer runMu.Unlock()
	out := make([]State, 0, len(running))
	for _, s := range running {
		out = append(out, s.State())
	}
	return out
}

package main

import (
	"sort"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/status"
	"github.com/lintel-edge/lintel/edge/store"
	"github.com/lintel-edge/lintel/sync/city"
	"github.com/lintel-edge/lintel/sync/police"
)

func init() {
	configNotes = append(configNotes, func(c *config.Config) []string {
		n, ok := c.Sinks["city"]
		if !ok {
			return nil
		}
		return city.Notes(c, n)
	})
}

// sinkHealth is the status page's view of the uplinks: what the running
// sinks say (connected, last success, last error) joined with the log's
// view of their backlog.
type sinkHealth struct {
	cfg *config.Config
	st  *store.Store
}

// Sinks implements status.SinkSource for this gateway's sinks.
func (h sinkHealth) Sinks() []status.Sink {
	stats := h.st.Stats()
	var out []status.Sink
	for _, s := range city.Snapshots() {
		if s.Gateway != h.cfg.Gateway.ID {
			continue // another gateway in the same process (tests)
		}
		k := status.Sink{Name: s.Name, Connected: s.Connected, LastSuccess: s.LastSuccess, LastError: s.LastError}
		if ss, ok := stats.Sinks[s.Name]; ok {
			k.Backlog, k.OldestAge = ss.Backlog, ss.OldestUnackedAge
		}
		out = append(out, k)
	}
	for _, s := range police.States() {
		if s.Gateway != h.cfg.Gateway.ID {
			continue
		}
		k := status.Sink{Name: s.Name, Connected: s.Registered, LastSuccess: s.LastSuccess, LastError: s.LastError}
		if ss, ok := stats.Sinks[s.Name]; ok {
			k.Backlog, k.OldestAge = ss.Backlog, ss.OldestUnackedAge
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

package main

import (
	"context"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/store"
)

// The store deletes an event once every cursor has acked it. The "history"
// cursor acks events only once they are storage.history old, so the status
// page's event log keeps a week of history even when the uplink takes
// everything at once. Quota and retention still apply to it.
func init() {
	storeCursors["history"] = func(c *config.Config) bool { return c.Storage.History > 0 }
	services = append(services, serviceFactory{name: "history", order: 5, new: newHistory})
}

type history struct {
	st    *store.Store
	keep  time.Duration
	every time.Duration
	now   func() time.Time
}

func newHistory(env edge.Env, _ *gateway) (edge.Component, error) {
	if env.Config.Storage.History <= 0 {
		return nil, nil
	}
	return &history{st: env.Store, keep: env.Config.Storage.History.Std(), every: time.Minute, now: time.Now}, nil
}

// Run acks, once a minute, the events whose time is older than the
// history window. A clock that is wrong at boot (1970) acks nothing, so
// nothing is deleted early; one that is wrongly ahead only releases local
// history, never events a sink still needs.
func (h *history) Run(ctx context.Context) error {
	t := time.NewTicker(h.every)
	defer t.Stop()
	for {
		h.advance(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (h *history) advance(ctx context.Context) {
	cutoff := h.now().Add(-h.keep)
	for ctx.Err() == nil {
		after := h.st.Cursor("history")
		evs, err := h.st.Read("history", after, 1000)
		if err != nil || len(evs) == 0 {
			return
		}
		var upTo uint64
		for _, e := range evs {
			if e.Time.After(cutoff) {
				break
			}
			upTo = e.Seq
		}
		if upTo == 0 {
			return
		}
		if err := h.st.Ack(ctx, "history", upTo); err != nil {
			return
		}
		if upTo < evs[len(evs)-1].Seq {
			return
		}
	}
}

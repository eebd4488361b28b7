package store

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// TestCloseAfterEverythingAcked is the single-sink gateway's normal life:
// the uplink acks every record, the store deletes them all, then Close
// must still fold and return (a hang here stops `lintel run` at shutdown).
func TestCloseAfterEverythingAcked(t *testing.T) {
	// 100000: deleting a large acked range in one transaction must stay
	// linear (it once re-walked every emptied page per delete).
	for _, n := range []int{1, 10, 3000, 100000} {
		path := filepath.Join(t.TempDir(), "e.db")
		s, err := Open(Options{Path: path, Gateway: "gw", Compound: "c", Sinks: []string{"city"}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for i := 0; i < n; i += 1000 {
			var batch []*event.Event
			for j := i; j < n && j < i+1000; j++ {
				batch = append(batch, telemetryEvent(j))
			}
			if err := s.Append(ctx, batch...); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Ack(ctx, "city", s.LastSeq()); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, event.New(event.MotionDetected)); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx, "city", s.LastSeq()); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Close() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("n=%d: close: %v", n, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("n=%d: Close did not return within 10s after every record was acked", n)
		}
		s2, err := Open(Options{Path: path, Gateway: "gw", Compound: "c", Sinks: []string{"city"}, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if evs, _ := s2.ReadRange(0, 10); len(evs) != 0 {
			t.Errorf("n=%d: %d acked records survived", n, len(evs))
		}
		s2.Close()
	}
}

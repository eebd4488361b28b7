package modbus

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/lintel-edge/lintel/configs" // built-in profiles
	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// recorder is an edge.Emitter that keeps events in memory.
type recorder struct {
	mu  sync.Mutex
	evs []*event.Event
	ch  chan struct{}
}

func newRecorder() *recorder { return &recorder{ch: make(chan struct{}, 1)} }

func (r *recorder) Emit(_ context.Context, evs ...*event.Event) error {
	for _, e := range evs {
		if err := e.Validate(); err != nil {
			return fmt.Errorf("invalid event %s: %w", e.Kind, err)
		}
	}
	r.mu.Lock()
	r.evs = append(r.evs, evs...)
	r.mu.Unlock()
	select {
	case r.ch <- struct{}{}:
	default:
	}
	return nil
}

func (r *recorder) all() []*event.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*event.Event(nil), r.evs...)
}

// wait returns the first event after index from that matches, failing
// the test after d.
func (r *recorder) wait(t testing.TB, from int, d time.Duration, desc string, match func(*event.Event) bool) *event.Event {
	t.Helper()
	deadline := time.After(d)
	for {
		evs := r.all()
		for _, e := range evs[min(from, len(evs)):] {
			if match(e) {
				return e
			}
		}
		select {
		case <-r.ch:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			var kinds []string
			for _, e := range evs {
				kinds = append(kinds, e.Device+":"+string(e.Kind)+string(e.Data))
			}
			t.Fatalf("no %s within %s; events:\n%s", desc, d, strings.Join(kinds, "\n"))
		}
	}
}

func kindFrom(kind event.Kind, dev string) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Kind == kind && e.Device == dev }
}

func dataOf(t testing.TB, e *event.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(e.Data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("LINTEL_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// freePort returns a loopback address nobody listens on (the library's
// server cannot report the port it bound to).
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func loadProfile(t testing.TB, name string) *Profile {
	t.Helper()
	p, err := LoadProfile(config.New(), name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// parseConfig loads a gateway config with the given devices block.
func parseConfig(t testing.TB, devices string, profileDirs ...string) *config.Config {
	t.Helper()
	y := "gateway: {id: gw-test, compound: c-test, data_dir: /tmp/lintel-test}\n"
	if len(profileDirs) > 0 {
		y += "profiles: {dirs: [" + strings.Join(profileDirs, ", ") + "]}\n"
	}
	y += "devices:\n" + devices
	c, err := config.Parse("test.yaml", []byte(y))
	if err != nil {
		t.Fatalf("config:\n%s\n%v", y, err)
	}
	return c
}

// startBuses builds the buses for cfg and runs them until the test ends.
func startBuses(t testing.TB, cfg *config.Config, rec edge.Emitter, cmds *edge.Commands) []*Bus {
	t.Helper()
	env := edge.Env{Config: cfg, Logger: testLogger(t), Emit: rec, Commands: cmds}
	buses, err := NewBuses(env, cfg.DevicesFor("modbus"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, b := range buses {
		wg.Go(func() {
			if err := b.Run(ctx); err != nil {
				t.Errorf("bus %s: %v", b.Name(), err)
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return buses
}

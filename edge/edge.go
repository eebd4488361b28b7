// Package edge is the gateway runtime: it owns the event log, stamps and
// validates every event on its way in, and runs drivers and sinks with an
// ordered, bounded shutdown.
//
// Data flows one way: driver → Emit (stamp, validate) → store (durable,
// seq) → rules and sinks, each reading the log from its own cursor.
// Drivers and sinks register here from their own packages (see
// drivers/all and sync/all); edge never imports them.
package edge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

// Emitter records events. Emit returns once the events are durable in the
// log, or with the reason they were refused (invalid event, store closed).
// It is safe for concurrent use.
type Emitter interface {
	Emit(ctx context.Context, evs ...*event.Event) error
}

// Component is a long-running part of the gateway: a driver bus, a sink,
// the rules engine. Run returns nil when ctx is cancelled and an error only
// for a failure that needs the daemon to stop.
type Component interface {
	Run(ctx context.Context) error
}

// Env is what a driver or sink gets to work with.
type Env struct {
	Config   *config.Config
	Logger   *slog.Logger
	Emit     Emitter
	Store    *store.Store
	Commands *Commands
	Version  string
}

// DriverFactory builds the components serving the enabled devices of one
// driver (one per bus, port or camera, as the driver sees fit).
type DriverFactory func(env Env, devices []config.Device) ([]Component, error)

// SinkFactory builds a sink from its section of the config (sinks.<name>).
// The sink reads the log under the cursor named after it.
type SinkFactory func(env Env, name string, n config.Node) (Component, error)

var (
	regMu   sync.Mutex
	drivers = map[string]DriverFactory{}
	sinks   = map[string]SinkFactory{}
)

// RegisterDriver makes a driver available to `lintel run`. Call it from
// an init function; registering a name twice panics.
func RegisterDriver(name string, f DriverFactory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := drivers[name]; dup {
		panic("edge: driver registered twice: " + name)
	}
	drivers[name] = f
}

// RegisterSink makes a sink available to `lintel run`.
func RegisterSink(name string, f SinkFactory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := sinks[name]; dup {
		panic("edge: sink registered twice: " + name)
	}
	sinks[name] = f
}

// Drivers lists the registered driver names.
func Drivers() []string {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]string, 0, len(drivers))
	for k := range drivers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Clock reports the wall time and whether it is trustworthy.
type Clock interface {
	Now() (time.Time, event.TimeQuality)
}

// Runtime stamps events and appends them to the store.
type Runtime struct {
	cfg   *config.Config
	st    *store.Store
	log   *slog.Logger
	clock Clock
	// places is where each configured device is, resolved at start.
	places map[string]event.Place

	emitted  atomic.Uint64
	rejected atomic.Uint64
}

// NewRuntime returns the emitter drivers, rules and commands use.
func NewRuntime(cfg *config.Config, st *store.Store, log *slog.Logger, clock Clock) *Runtime {
	if clock == nil {
		clock = SystemClock{}
	}
	return &Runtime{cfg: cfg, st: st, log: log, clock: clock, places: devicePlaces(cfg)}
}

// ErrInvalidEvent wraps the reasons an event was refused.
var ErrInvalidEvent = errors.New("invalid event")

// Emit stamps gateway, compound, time and clock quality, validates, and
// appends durably. An invalid event is refused whole (a driver bug must
// not half-write a batch) and reported with its reasons.
func (r *Runtime) Emit(ctx context.Context, evs ...*event.Event) error {
	now, q := r.clock.Now()
	for _, e := range evs {
		e.Gateway = r.cfg.Gateway.ID
		e.Compound = r.cfg.Gateway.Compound
		if e.Time.IsZero() {
			e.Time = now
			e.TimeQuality = q
		} else if e.TimeQuality == "" {
			e.TimeQuality = q
		}
		e.Time = e.Time.UTC().Truncate(time.Millisecond)
		if e.Severity == "" {
			e.Severity = e.Kind.DefaultSeverity()
		}
		if e.Place == nil && e.Device != "" {
			e.Place = r.placeOf(e.Device)
		}
		if err := e.Validate(); err != nil {
			r.rejected.Add(1)
			return fmt.Errorf("%w %s from %q: %w", ErrInvalidEvent, e.Kind, e.Device, err)
		}
	}
	// A driver that is stopping still records what it already read: the
	// append outlives ctx by emitGrace (less than the driver stop budget).
	actx, cancel := withGrace(ctx, emitGrace)
	defer cancel()
	if err := r.st.Append(actx, evs...); err != nil {
		return err
	}
	r.emitted.Add(uint64(len(evs)))
	if durableTap != nil {
		durableTap(evs)
	}
	return nil
}

// emitGrace is how long an append may go on after the caller's context
// ended. Shutdown cancels the drivers first and the store closes only
// after them, so a batch read just before the signal is still stored.
const emitGrace = 3 * time.Second

// durableTap, when set, is told of every batch Emit made durable. Only the
// faulttest build sets it (the crash tests' record of what was acked).
var durableTap func(evs []*event.Event)

// withGrace returns a context that ends grace after parent does (or when
// the returned cancel is called), with parent's cause.
func withGrace(parent context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() {
		time.AfterFunc(grace, func() { cancel(context.Cause(parent)) })
	})
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

func (r *Runtime) placeOf(device string) *event.Place {
	p, ok := r.places[device]
	if !ok {
		return nil
	}
	return &p // a copy per event: the caller owns it
}

// devicePlaces resolves, once, where each device is: its own place, or its
// household's when it has none. Emit runs for every event and must not
// scan the configuration.
func devicePlaces(cfg *config.Config) map[string]event.Place {
	out := make(map[string]event.Place, len(cfg.Devices))
	for _, d := range cfg.Devices {
		p := PlaceOf(d.Place)
		if p.IsZero() && d.Household != "" {
			if h, ok := cfg.Household(d.Household); ok {
				p = PlaceOf(h.Place)
			}
		}
		if !p.IsZero() {
			out[d.ID] = p
		}
	}
	return out
}

// PlaceOf converts a configured place into an event place.
func PlaceOf(p config.Place) event.Place {
	return event.Place{Building: p.Building, Unit: p.Unit, Room: p.Room, Position: p.Position}
}

// Counts reports how many events were emitted and refused.
func (r *Runtime) Counts() (emitted, rejected uint64) { return r.emitted.Load(), r.rejected.Load() }

// SystemClock reads the system clock; it calls the time unsynced when it
// is earlier than the build could have happened (a box with no RTC boots
// in 1970) or the kernel says NTP has not synchronised it.
type SystemClock struct{}

// EarliestSane is a time before which the clock is certainly wrong.
var EarliestSane = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Now implements Clock.
func (SystemClock) Now() (time.Time, event.TimeQuality) {
	t := time.Now()
	if t.Before(EarliestSane) || !kernelSynced() {
		return t, event.Unsynced
	}
	return t, event.Synced
}

// Commands routes named commands (ack an alert, open a gate, set an
// elder's mode) from the status page and the platform downlink to the
// component that applies them, and records each applied command as a
// command.applied audit event.
type Commands struct {
	mu       sync.RWMutex
	handlers map[string]CommandHandler
	emit     Emitter
}

// CommandHandler applies one command. args is the JSON object sent with
// it; the handler must validate it strictly and apply nothing on error.
type CommandHandler func(ctx context.Context, args json.RawMessage, actor string) (result any, err error)

// NewCommands returns an empty command router auditing through emit.
func NewCommands(emit Emitter) *Commands {
	return &Commands{handlers: map[string]CommandHandler{}, emit: emit}
}

// Handle registers the handler of a command name.
func (c *Commands) Handle(name string, h CommandHandler) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.handlers[name] = h
}

// Names lists the commands that can be dispatched.
func (c *Commands) Names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return sortedKeys(c.handlers)
}

// ErrUnknownCommand is returned for a command nobody handles.
var ErrUnknownCommand = errors.New("unknown command")

// Dispatch applies a command and, when it succeeded, appends the audit
// event (who, what, from where, with which arguments).
func (c *Commands) Dispatch(ctx context.Context, name string, args json.RawMessage, actor, via string) (any, error) {
	c.mu.RLock()
	h := c.handlers[name]
	c.mu.RUnlock()
	if h == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownCommand, name)
	}
	if len(args) == 0 {
		args = json.RawMessage("{}")
	}
	res, err := h(ctx, args, actor)
	if err != nil {
		return nil, err
	}
	var compact json.RawMessage = args
	if !json.Valid(compact) {
		compact = json.RawMessage("{}")
	}
	ev := event.New(event.CommandApplied).WithData(map[string]any{
		"command": name, "actor": actor, "via": via, "args": compact,
	})
	if err := c.emit.Emit(ctx, ev); err != nil {
		return res, fmt.Errorf("command applied but audit event not recorded: %w", err)
	}
	return res, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// HasDriver reports whether a driver is registered.
func HasDriver(name string) bool {
	regMu.Lock()
	defer regMu.Unlock()
	_, ok := drivers[name]
	return ok
}

// NewDrivers builds the components of one registered driver.
func NewDrivers(name string, env Env, devs []config.Device) ([]Component, error) {
	regMu.Lock()
	f := drivers[name]
	regMu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("driver %q is not built in", name)
	}
	env.Logger = env.Logger.With("driver", name)
	return f(env, devs)
}

// NewSink builds a registered sink.
func NewSink(name string, env Env, n config.Node) (Component, error) {
	regMu.Lock()
	f := sinks[name]
	regMu.Unlock()
	if f == nil {
		return nil, fmt.Errorf("sink %q is not built in", name)
	}
	env.Logger = env.Logger.With("sink", name)
	return f(env, name, n)
}

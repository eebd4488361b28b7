// Package modbus polls gates, barriers, access controllers, relay modules
// and RS-485 sensors over Modbus RTU, Modbus TCP and RTU-over-TCP, and
// turns their register values into Lintel events.
//
// Device models are data: a profile (configs/profiles/*.yaml) maps each
// register or bit to a typed value and its changes to events. Devices
// sharing one serial port or one TCP host:port form a [Bus] owned by one
// goroutine; a planner merges each device's reads into as few requests as
// its limits allow, and the bus schedules commands, event points and
// telemetry in that order. On RTU framing the bus keeps the line in step
// itself (line.go): stray bytes are drained before a request, a reply
// must match its request and not be followed by more bytes, and a
// timeout or a mismatch leaves the line silent until late replies have
// drained, so a stale reply is never taken for a fresh one.
package modbus

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
)

func init() {
	edge.RegisterDriver("modbus", New)
	config.RegisterDriverOptions("modbus", validateDevice)
}

// New builds one Bus per serial port or TCP host:port serving devs, and
// registers the gate commands their profiles define (gate.open,
// gate.close) on env.Commands.
func New(env edge.Env, devs []config.Device) ([]edge.Component, error) {
	buses, err := NewBuses(env, devs)
	if err != nil {
		return nil, err
	}
	out := make([]edge.Component, len(buses))
	for i, b := range buses {
		out[i] = b
	}
	return out, nil
}

// NewBuses is New returning the buses themselves, whose Stats the status
// page reads.
func NewBuses(env edge.Env, devs []config.Device) ([]*Bus, error) {
	type group struct {
		lc   linkConfig
		devs []*device
	}
	groups := map[string]*group{}
	var errs []error
	for i, d := range devs {
		dv, err := runtimeDevice(env.Config, i, d)
		if err != nil {
			errs = append(errs, fmt.Errorf("device %q: %w", d.ID, err))
			continue
		}
		key := dv.scheme + ":" + dv.bus
		g := groups[key]
		if g == nil {
			g = &group{lc: linkConfig{scheme: dv.scheme, key: dv.bus, baud: dv.opts.Baud, parity: dv.opts.Parity, stopBits: dv.opts.StopBits}}
			groups[key] = g
		}
		// The bus opens with the first device's timeout; the others
		// switch to theirs per transaction.
		if g.lc.timeout == 0 {
			g.lc.timeout = dv.timeout
		}
		g.devs = append(g.devs, dv)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var buses []*Bus
	for _, k := range keys {
		g := groups[k]
		slices.SortStableFunc(g.devs, func(a, b *device) int { return cmp.Compare(a.opts.Unit, b.opts.Unit) })
		buses = append(buses, newBus(g.lc, g.devs, env.Emit, env.Logger.With("bus", k)))
	}
	if env.Commands != nil {
		names := map[string]bool{}
		for _, b := range buses {
			for _, d := range b.devs {
				for n := range d.prof.Commands {
					names[n] = true
				}
			}
		}
		for n := range names {
			env.Commands.Handle("gate."+n, handler(buses, n))
		}
	}
	return buses, nil
}

// runtimeDevice resolves a device of an already validated config. The
// config's Reporter belongs to config.Load, so the options are decoded
// again, with a reporter of our own: the same strict decoder as
// Node.DecodeStrict, kept so that resolve's checks find the positions.
func runtimeDevice(c *config.Config, i int, d config.Device) (*device, error) {
	if c == nil {
		c = config.New()
	}
	path := fmt.Sprintf("devices[%d]", i)
	r := config.NewReporter(c.File)
	o := defaultOptions()
	d.Options.Decode(r, &o)
	dv := resolve(r, c, path, d, o)
	if err := r.Err(); err != nil {
		return nil, err
	}
	if dv == nil || dv.prof == nil {
		return nil, fmt.Errorf("address %q or profile %q not usable", d.Address, d.Profile)
	}
	return dv, nil
}

package modbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// cmdJob is one command on its way through a bus: the write, then an
// optional pulse release and read-back confirmation.
type cmdJob struct {
	dev    *devState
	name   string
	cmd    Command
	actor  string
	done   chan CommandResult
	start  time.Time
	nextAt time.Time // next read-back or release
	until  time.Time // confirmation deadline
	relAt  time.Time // pulse release due (zero: none pending)
	result *CommandResult
	// reported: the outcome went to the caller and the event log; the
	// job may still hold a pending pulse release.
	reported bool
}

// CommandResult is what a gate command achieved.
type CommandResult struct {
	Device  string   `json:"device"`
	Command string   `json:"command"`
	Result  string   `json:"result"` // confirmed, written (no read-back defined), unconfirmed, failed, cancelled
	Value   *float64 `json:"value,omitempty"`
	Millis  int64    `json:"ms"`
	Error   string   `json:"error,omitempty"`
}

// confirmEvery is how often a command's effect is read back.
const confirmEvery = 100 * time.Millisecond

// startCommand writes a command ahead of any polling.
func (b *Bus) startCommand(ctx context.Context, j *cmdJob) {
	w := j.cmd.Write
	if err := b.writeOne(ctx, j.dev, w.table, w.Address, w.Value); err != nil {
		j.finish(b, "failed", err)
		return
	}
	now := b.now()
	if j.cmd.Pulse > 0 {
		j.relAt = now.Add(j.cmd.Pulse.Std())
	}
	if j.cmd.Confirm == nil {
		j.result = &CommandResult{Result: "written"}
		j.finish(b, "written", nil)
		if j.relAt.IsZero() {
			return
		}
		j.nextAt = j.relAt
	} else {
		j.until = now.Add(j.cmd.Confirm.Within.Std())
		j.nextAt = now.Add(confirmEvery)
		if !j.relAt.IsZero() && j.relAt.Before(j.nextAt) {
			j.nextAt = j.relAt
		}
	}
	b.watch = append(b.watch, j)
}

// advanceCommand performs a due release or read-back; true when the job
// is over.
func (b *Bus) advanceCommand(ctx context.Context, j *cmdJob) bool {
	now := b.now()
	if !j.relAt.IsZero() && !now.Before(j.relAt) {
		w := j.cmd.Write
		if err := b.writeOne(ctx, j.dev, w.table, w.Address, *w.Release); err != nil {
			b.log.Warn("modbus pulse release failed", "device", j.dev.cfg.ID, "command", j.name, "err", err)
		}
		j.relAt = time.Time{}
	}
	if j.result == nil {
		p := j.dev.prof.Point(j.cmd.Confirm.Point)
		id := slices.Index(j.dev.pts, p)
		r := request{table: p.table, start: p.Address, count: p.words(), ids: []int{id}}
		res, err := b.read(ctx, j.dev, r)
		if err == nil {
			b.apply(j.dev, r, res)
			v := j.dev.ps[id].v
			if slices.Contains(j.cmd.Confirm.Values, v) {
				j.result = &CommandResult{Result: "confirmed", Value: &v}
			}
		}
		if j.result == nil && !b.now().Before(j.until) {
			j.result = &CommandResult{Result: "unconfirmed"}
			if err == nil {
				v := j.dev.ps[id].v
				j.result.Value = &v
			} else {
				j.result.Error = err.Error()
			}
		}
	}
	if j.result != nil && !j.reported {
		// Report as soon as the outcome is known; a pending pulse
		// release still goes out on time.
		j.finish(b, j.result.Result, nil)
	}
	if j.reported && j.relAt.IsZero() {
		return true
	}
	switch {
	case j.reported:
		j.nextAt = j.relAt
	default:
		j.nextAt = b.now().Add(confirmEvery)
		if !j.relAt.IsZero() && j.relAt.Before(j.nextAt) {
			j.nextAt = j.relAt
		}
	}
	return false
}

// releaseNow writes a pending pulse release at once (the gateway is
// stopping: a relay must not stay energised).
func (b *Bus) releaseNow(ctx context.Context, j *cmdJob) {
	if j.relAt.IsZero() {
		return
	}
	w := j.cmd.Write
	if err := b.writeOne(ctx, j.dev, w.table, w.Address, *w.Release); err != nil {
		b.log.Warn("modbus pulse release failed", "device", j.dev.cfg.ID, "command", j.name, "err", err)
	}
	j.relAt = time.Time{}
}

// writeOne performs a write through exchange, like any transaction. A
// single-coil or single-register write sets a value, so asking again
// after a mismatched reply is harmless.
func (b *Bus) writeOne(ctx context.Context, d *devState, t Table, addr, v int) error {
	what := fmt.Sprintf("write %s %d unit %d", t, addr, d.unit)
	err := b.exchange(ctx, d, what, Holding, 1, 0, func() error {
		return b.link.write(d.unit, t, uint16(addr), uint16(v))
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// finish reports a command's outcome as a gate.command event and to the
// caller waiting on it.
func (j *cmdJob) finish(b *Bus, result string, err error) {
	if j.reported {
		return
	}
	j.reported = true
	r := CommandResult{Device: j.dev.cfg.ID, Command: j.name, Result: result, Millis: b.now().Sub(j.start).Milliseconds()}
	if j.result != nil {
		r.Value, r.Error = j.result.Value, j.result.Error
	}
	if err != nil {
		r.Error = err.Error()
	}
	ev := event.New(event.GateCommand)
	ev.Device, ev.Time = j.dev.cfg.ID, b.now()
	if result != "confirmed" && result != "written" {
		ev.Severity = event.Warning
	}
	data := map[string]any{"command": j.name, "result": result, "actor": j.actor, "ms": r.Millis}
	if r.Value != nil {
		data["value"] = jsonNumber(*r.Value)
	}
	if r.Error != "" {
		data["error"] = r.Error
	}
	b.queue(ev.WithData(data))
	j.done <- r
}

// commandArgs are the arguments of gate.open / gate.close.
type commandArgs struct {
	Device string `json:"device"`
}

// handler returns the edge.Commands handler for profile command name,
// routed to the bus that owns the device.
func handler(buses []*Bus, name string) func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
	return func(ctx context.Context, args json.RawMessage, actor string) (any, error) {
		var a commandArgs
		dec := json.NewDecoder(bytes.NewReader(args))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil || a.Device == "" {
			return nil, fmt.Errorf("gate.%s: want {\"device\": \"<id>\"}", name)
		}
		for _, b := range buses {
			d := b.byID[a.Device]
			if d == nil {
				continue
			}
			c, ok := d.prof.Commands[name]
			if !ok {
				return nil, fmt.Errorf("device %q (%s) has no %s command", a.Device, d.prof.Name, name)
			}
			return b.Command(ctx, a.Device, name, c, actor)
		}
		return nil, fmt.Errorf("no modbus device %q", a.Device)
	}
}

// Command runs a profile command on a device of this bus, ahead of the
// polling, and waits for its confirmed outcome.
func (b *Bus) Command(ctx context.Context, device, name string, c Command, actor string) (CommandResult, error) {
	d := b.byID[device]
	if d == nil {
		return CommandResult{}, fmt.Errorf("no device %q on bus %s", device, b.Name())
	}
	j := &cmdJob{dev: d, name: name, cmd: c, actor: actor, done: make(chan CommandResult, 1), start: b.now()}
	select {
	case b.cmds <- j:
	case <-ctx.Done():
		return CommandResult{}, ctx.Err()
	}
	select {
	case r := <-j.done:
		switch r.Result {
		case "confirmed", "written":
			return r, nil
		}
		msg := r.Result
		if r.Error != "" {
			msg += ": " + r.Error
		}
		return r, errors.New("gate command " + msg)
	case <-ctx.Done():
		return CommandResult{}, ctx.Err()
	}
}

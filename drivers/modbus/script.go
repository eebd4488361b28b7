package modbus

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ScriptStep is one scripted change: after waiting After, set Point of
// Unit to Value.
type ScriptStep struct {
	After time.Duration
	Unit  uint8
	Point string
	Value float64
}

// GateCycleScript is the built-in demo script for a barrier gate at unit
// 1: normal cycles, a forced opening, a gate held open, and a motor fault
// that clears.
const GateCycleScript = `# delay unit point value
2s  1 gate_state 1
4s  1 gate_state 0
3s  1 gate_state 2
2s  1 gate_state 0
3s  1 tamper 1
2s  1 tamper 0
3s  1 fault_code 7
5s  1 fault_code 0
2s  1 gate_state 1
2m5s 1 gate_state 0
`

// ParseScript reads a script: one step per line, "delay unit point value"
// (delay like 2s or 500ms); "#" starts a comment.
func ParseScript(r io.Reader) ([]ScriptStep, error) {
	var out []ScriptStep
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("line %d: want \"delay unit point value\"", n)
		}
		d, err := time.ParseDuration(f[0])
		if err != nil || d < 0 {
			return nil, fmt.Errorf("line %d: delay %q: want a duration like 2s", n, f[0])
		}
		u, err := strconv.Atoi(f[1])
		if err != nil || u < 1 || u > 247 {
			return nil, fmt.Errorf("line %d: unit %q: want 1–247", n, f[1])
		}
		v, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: value %q: want a number", n, f[3])
		}
		out = append(out, ScriptStep{After: d, Unit: uint8(u), Point: f[2], Value: v})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty script")
	}
	return out, nil
}

// Play runs a script until ctx ends, looping when loop is set. A step
// naming a unit or point the simulator lacks is an error, reported
// before anything is played.
func (s *Sim) Play(ctx context.Context, steps []ScriptStep, loop bool, changed func(ScriptStep)) error {
	for _, st := range steps {
		d := s.Device(st.Unit)
		if d == nil || d.Profile.Point(st.Point) == nil {
			return fmt.Errorf("script: unit %d has no point %q", st.Unit, st.Point)
		}
	}
	for {
		for _, st := range steps {
			if !sleepCtx(ctx, st.After) {
				return nil
			}
			if err := s.Set(st.Unit, st.Point, st.Value); err != nil {
				return err
			}
			if changed != nil {
				changed(st)
			}
		}
		if !loop {
			return nil
		}
	}
}

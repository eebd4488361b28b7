package modbus

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
)

// Options are a Modbus device's settings (devices[].options). Serial
// settings belong to the bus: every device on one RTU port must agree.
type Options struct {
	Unit              int             `yaml:"unit"`
	PollInterval      config.Duration `yaml:"poll_interval"`
	TelemetryInterval config.Duration `yaml:"telemetry_interval"`
	Timeout           config.Duration `yaml:"timeout"`
	LateReply         config.Duration `yaml:"late_reply"`
	Baud              int             `yaml:"baud"`
	Parity            string          `yaml:"parity"`
	StopBits          int             `yaml:"stop_bits"`
	MaxGap            *int            `yaml:"max_gap"`
	MaxRegisters      int             `yaml:"max_registers"`
	MaxBits           int             `yaml:"max_bits"`
	OnePerPoint       bool            `yaml:"one_request_per_point"`
	NeverRead         []string        `yaml:"never_read"` // "holding:100-119"
	OfflineAfter      int             `yaml:"offline_after"`
	OnlineAfter       int             `yaml:"online_after"`
	MaxBackoff        config.Duration `yaml:"max_backoff"`
	TelemetryReport   config.Duration `yaml:"telemetry_report"`
}

// Defaults.
const (
	DefaultUnit              = 1
	DefaultPollInterval      = 500 * time.Millisecond
	DefaultTelemetryInterval = 10 * time.Second
	DefaultTCPTimeout        = time.Second
	DefaultBaud              = 9600
	DefaultMaxGap            = 10
	DefaultOfflineAfter      = 3
	DefaultOnlineAfter       = 2
	DefaultMaxBackoff        = 30 * time.Second
)

func defaultOptions() Options {
	return Options{
		Unit: DefaultUnit, PollInterval: config.Duration(DefaultPollInterval),
		TelemetryInterval: config.Duration(DefaultTelemetryInterval), Baud: DefaultBaud, Parity: "none", StopBits: 1,
		OfflineAfter: DefaultOfflineAfter, OnlineAfter: DefaultOnlineAfter, MaxBackoff: config.Duration(DefaultMaxBackoff),
	}
}

var standardBauds = map[int]bool{1200: true, 2400: true, 4800: true, 9600: true, 19200: true, 38400: true, 57600: true, 115200: true}

// busKey names the bus a device sits on: its serial port, or the host:port
// of its TCP connection (devices behind one gateway share it).
func busKey(addr string) (scheme, key string, err error) {
	u, err := url.Parse(addr)
	if err != nil {
		return "", "", err
	}
	switch u.Scheme {
	case "rtu":
		if u.Path == "" {
			return "", "", errors.New("rtu address needs a device path")
		}
		return "rtu", u.Path, nil
	case "tcp", "rtuovertcp":
		if u.Host == "" {
			return "", "", errors.New("address needs host:port")
		}
		return u.Scheme, u.Host, nil
	}
	return "", "", fmt.Errorf("scheme %q: want rtu, tcp or rtuovertcp", u.Scheme)
}

// parseRange parses "holding:100-119" or "coil:7".
func parseRange(s string) (Range, error) {
	t, rest, ok := strings.Cut(s, ":")
	tb, known := tableNames[t]
	if !ok || !known {
		return Range{}, fmt.Errorf("%q: want table:from-to like holding:100-119", s)
	}
	var from, to int
	if n, _ := fmt.Sscanf(rest, "%d-%d", &from, &to); n == 2 {
	} else if n, _ := fmt.Sscanf(rest, "%d", &from); n == 1 && !strings.Contains(rest, "-") {
		to = from
	} else {
		return Range{}, fmt.Errorf("%q: want table:from-to like holding:100-119", s)
	}
	if from < 0 || to > 0xFFFF || from > to {
		return Range{}, fmt.Errorf("%q: want 0 ≤ from ≤ to ≤ 65535", s)
	}
	return Range{Table: t, From: from, To: to, table: tb}, nil
}

// reporter receives validation problems: config's Reporter during a
// config load, the package's own problems when the driver starts.
type reporter interface {
	At(path, format string, args ...any)
	Len() int
}

// device is one configured device with its resolved profile and options.
type device struct {
	cfg     config.Device
	opts    Options
	prof    *Profile
	scheme  string
	bus     string
	never   []Range
	timeout time.Duration
}

// resolve decodes a device's options and loads its profile, reporting
// every problem to r under path. It does no I/O beyond reading the
// profile file.
func resolve(r reporter, c *config.Config, path string, d config.Device, o0 Options) *device {
	dv := &device{cfg: d, opts: o0}
	o := &dv.opts
	op := path + ".options"
	bad := r.Len()
	if o.Unit < 1 || o.Unit > 247 {
		r.At(op+".unit", "%d: want 1–247", o.Unit)
	}
	if o.PollInterval.Std() < 20*time.Millisecond || o.PollInterval.Std() > time.Hour {
		r.At(op+".poll_interval", "%s: want 20ms–1h", o.PollInterval)
	}
	if o.TelemetryInterval.Std() < 100*time.Millisecond || o.TelemetryInterval.Std() > 24*time.Hour {
		r.At(op+".telemetry_interval", "%s: want 100ms–24h", o.TelemetryInterval)
	}
	if t := o.Timeout.Std(); t != 0 && (t < 10*time.Millisecond || t > 30*time.Second) {
		r.At(op+".timeout", "%s: want 10ms–30s", o.Timeout)
	}
	if t := o.LateReply.Std(); t > 30*time.Second {
		r.At(op+".late_reply", "%s: at most 30s", o.LateReply)
	}
	if !standardBauds[o.Baud] {
		r.At(op+".baud", "%d: want 1200, 2400, 4800, 9600, 19200, 38400, 57600 or 115200", o.Baud)
	}
	switch o.Parity {
	case "none", "even", "odd":
	default:
		r.At(op+".parity", "%q: want none, even or odd", o.Parity)
	}
	if o.StopBits != 1 && o.StopBits != 2 {
		r.At(op+".stop_bits", "%d: want 1 or 2", o.StopBits)
	}
	if o.MaxGap != nil && (*o.MaxGap < 0 || *o.MaxGap > 124) {
		r.At(op+".max_gap", "%d: want 0–124", *o.MaxGap)
	}
	if o.MaxRegisters < 0 || o.MaxRegisters > 125 {
		r.At(op+".max_registers", "%d: want 1–125", o.MaxRegisters)
	}
	if o.MaxBits < 0 || o.MaxBits > 2000 {
		r.At(op+".max_bits", "%d: want 1–2000", o.MaxBits)
	}
	if o.OfflineAfter < 1 || o.OfflineAfter > 100 {
		r.At(op+".offline_after", "%d: want 1–100 failed polls", o.OfflineAfter)
	}
	if o.OnlineAfter < 1 || o.OnlineAfter > 100 {
		r.At(op+".online_after", "%d: want 1–100 good polls", o.OnlineAfter)
	}
	if o.MaxBackoff.Std() < time.Second || o.MaxBackoff.Std() > time.Hour {
		r.At(op+".max_backoff", "%s: want 1s–1h", o.MaxBackoff)
	}
	for i, s := range o.NeverRead {
		rg, err := parseRange(s)
		if err != nil {
			r.At(fmt.Sprintf("%s.never_read[%d]", op, i), "%v", err)
			continue
		}
		dv.never = append(dv.never, rg)
	}
	var err error
	dv.scheme, dv.bus, err = busKey(d.Address)
	if err != nil {
		// edge/config already reported the address.
		return nil
	}
	if d.Profile == "" {
		return nil
	}
	pr, err := LoadProfile(c, d.Profile)
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			for _, p := range ps {
				r.At(path+".profile", "profile %s", p.Error())
			}
		} else if _, _, ok := c.ProfilePath("profiles", d.Profile); ok {
			r.At(path+".profile", "%v", err)
		}
		return nil
	}
	dv.prof = pr
	for i, rg := range dv.never {
		for _, pt := range pr.Points {
			if rg.table == pt.table && pt.Address <= rg.To && pt.Address+pt.words()-1 >= rg.From {
				r.At(fmt.Sprintf("%s.never_read[%d]", op, i), "covers point %q of profile %s (%s %d)", pt.Name, pr.Name, pt.Table, pt.Address)
			}
		}
	}
	if r.Len() > bad {
		return nil
	}
	dv.timeout = o.Timeout.Std()
	if dv.timeout == 0 {
		dv.timeout = dv.defaultTimeout()
	}
	return dv
}

// defaultTimeout allows the slave 100 ms to turn around on top of the wire
// time of the longest exchange the planner may issue (a 125-register read
// takes 281 ms at 9600 8N1).
func (dv *device) defaultTimeout() time.Duration {
	if dv.scheme == "tcp" {
		return DefaultTCPTimeout
	}
	if dv.scheme == "rtuovertcp" {
		return DefaultTCPTimeout
	}
	tc := charTime(dv.opts.Baud, dv.opts.Parity, dv.opts.StopBits)
	return 100*time.Millisecond + time.Duration(8+5+2*dv.limits().maxRegs)*tc + 2*t35(dv.opts.Baud, tc)
}

// lateReply is how long an RTU line must stay silent after a failed
// exchange with this device (a timeout or a mismatched reply) before the
// next request: a late reply has that long to arrive and be drained
// (tech.md §2.4, line.go).
func (dv *device) lateReply() time.Duration {
	if dv.opts.LateReply > 0 {
		return dv.opts.LateReply.Std()
	}
	return silenceAfter(dv.timeout, dv.opts.Baud, dv.opts.Parity, dv.opts.StopBits)
}

// silenceAfter is the default silence after a failed exchange: the
// slave's longest response time, taken as the timeout but at least
// minSilence (line.go: libmodbus-based slaves wait 500 ms for another
// unit's reply), plus the wire time of the longest frame, so a reply that
// began at the last moment has ended.
func silenceAfter(timeout time.Duration, baud int, parity string, stop int) time.Duration {
	return max(timeout, minSilence) + maxRTUFrame*charTime(baud, parity, stop)
}

func (dv *device) limits() planLimits {
	l := planLimits{maxRegs: 125, maxBits: 2000, maxGap: DefaultMaxGap, onePerPoint: dv.opts.OnePerPoint}
	if p := dv.prof; p != nil {
		if p.Limits.MaxRegisters > 0 {
			l.maxRegs = p.Limits.MaxRegisters
		}
		if p.Limits.MaxBits > 0 {
			l.maxBits = p.Limits.MaxBits
		}
		if g := p.Limits.MaxGap; g != nil {
			if *g < 0 {
				l.onePerPoint = true
			} else {
				l.maxGap = *g
			}
		}
		l.never = append(l.never, p.NeverRead...)
	}
	if o := dv.opts; o.MaxRegisters > 0 {
		l.maxRegs = min(l.maxRegs, o.MaxRegisters)
	}
	if o := dv.opts; o.MaxBits > 0 {
		l.maxBits = min(l.maxBits, o.MaxBits)
	}
	if g := dv.opts.MaxGap; g != nil {
		l.maxGap = *g
	}
	l.never = append(l.never, dv.never...)
	return l
}

// charTime is the time one character takes on the wire.
func charTime(baud int, parity string, stop int) time.Duration {
	bits := 1 + 8 + stop
	if parity != "none" {
		bits++
	}
	return time.Duration(bits) * time.Second / time.Duration(baud)
}

// t35 is the inter-frame silence: 3.5 characters, fixed at 1.75 ms above
// 19200 baud.
func t35(baud int, tc time.Duration) time.Duration {
	if baud > 19200 {
		return 1750 * time.Microsecond
	}
	return 35 * tc / 10
}

// validateDevice checks a device's options and profile, and that devices
// sharing a bus agree on its serial settings and do not share a unit id.
func validateDevice(r *config.Reporter, c *config.Config, path string, d config.Device) {
	o := defaultOptions()
	d.Options.Decode(r, &o)
	dv := resolve(r, c, path, d, o)
	if dv == nil || d.Disabled {
		return
	}
	for i, other := range c.Devices {
		if other.ID == d.ID {
			return // compare only with devices earlier in the file
		}
		if other.Driver != "modbus" || other.Disabled {
			continue
		}
		s, k, err := busKey(other.Address)
		if err != nil || s != dv.scheme || k != dv.bus {
			continue
		}
		// Decoding the other device again reports its problems again at
		// the same positions; the config loader drops such duplicates.
		o := defaultOptions()
		other.Options.Decode(r, &o)
		if s == "rtu" && (o.Baud != dv.opts.Baud || o.Parity != dv.opts.Parity || o.StopBits != dv.opts.StopBits) {
			r.At(path+".options", "bus %s: %d %s %d disagrees with devices[%d] (%d %s %d): devices on one RTU port share its serial settings",
				dv.bus, dv.opts.Baud, dv.opts.Parity, dv.opts.StopBits, i, o.Baud, o.Parity, o.StopBits)
		}
		if o.Unit == dv.opts.Unit {
			r.At(path+".options.unit", "unit %d is already used on %s by devices[%d]", o.Unit, dv.bus, i)
			return
		}
	}
}

package serial

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
)

// KindReceiver is the device kind of a radio receiver port.
const KindReceiver = "receiver"

// ReceiverOptions is the options: block of a receiver device. Defaults
// come from DefaultReceiverOptions and are documented in sample.yaml.
type ReceiverOptions struct {
	// Codec is sonoff, rfxtrx, framed or line.
	Codec string `yaml:"codec"`
	// Baud is the line speed; 0 takes the codec's usual one (sonoff
	// 19200, rfxtrx 38400, framed and line 9600). Ignored for tcp://.
	Baud int `yaml:"baud"`
	// Parity is none, even or odd.
	Parity string `yaml:"parity"`
	// DedupWindow: the same code again within this gap is an RF repeat.
	DedupWindow config.Duration `yaml:"dedup_window"`
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reopen a lost port.
	ReconnectMin config.Duration `yaml:"reconnect_min"`
	ReconnectMax config.Duration `yaml:"reconnect_max"`
	// Framed and Line configure those codecs.
	Framed FramedOptions `yaml:"framed"`
	Line   LineOptions   `yaml:"line"`
}

// Defaults.
const (
	DefaultDedupWindow  = 2 * time.Second
	DefaultReconnectMin = time.Second
	DefaultReconnectMax = 30 * time.Second
)

// DefaultReceiverOptions returns the defaults of a receiver.
func DefaultReceiverOptions() ReceiverOptions {
	return ReceiverOptions{
		Parity:       "none",
		DedupWindow:  config.Duration(DefaultDedupWindow),
		ReconnectMin: config.Duration(DefaultReconnectMin),
		ReconnectMax: config.Duration(DefaultReconnectMax),
	}
}

// DefaultBaud is a codec's usual line speed.
func DefaultBaud(codec string) int {
	switch codec {
	case CodecSonoff:
		return 19200
	case CodecRFXtrx:
		return 38400
	}
	return 9600
}

// CodecOptions extracts what NewCodec needs.
func (o ReceiverOptions) CodecOptions() CodecOptions {
	return CodecOptions{Codec: o.Codec, Framed: o.Framed, Line: o.Line}
}

// SensorOptions is the options: block of a sensor device.
type SensorOptions struct {
	// Receiver is the id of the receiver device that hears the sensor.
	// It may be left out when the sensor's address is its receiver's.
	Receiver string `yaml:"receiver"`
	// Code is the sensor's radio address in hex, as `lintel probe serial
	// --learn` prints it.
	Code string `yaml:"code"`
	// Heartbeat is the sensor's supervision period ("1h") or "none"; by
	// default the code table's.
	Heartbeat string `yaml:"heartbeat"`
}

var fieldRE = regexp.MustCompile(`^[a-z_]+(\[\d+\])?$`)

var bauds = []int{1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400}

func init() {
	config.RegisterDriverOptions("serial", validateDevice)
}

// validateDevice is the config validator of serial devices. It reads the
// code tables a sensor names (files, not devices) and nothing else.
func validateDevice(r *config.Reporter, c *config.Config, path string, d config.Device) {
	if d.Kind == KindReceiver {
		validateReceiver(r, path, d)
		return
	}
	if contains(SensorKinds, d.Kind) {
		var o SensorOptions
		d.Options.Decode(r, &o)
		_ = checkSensor(r.At, c, path, d, o)
	}
}

func validateReceiver(r *config.Reporter, path string, d config.Device) {
	o := DefaultReceiverOptions()
	d.Options.Decode(r, &o)
	op := path + ".options"
	if d.Profile != "" {
		r.At(path+".profile", "a receiver takes no profile: put the code table on each sensor")
	}
	if o.Codec != CodecFramed && r.Has(op+".framed") {
		r.At(op+".framed", "only used with codec: framed")
	}
	if o.Codec != CodecLine && r.Has(op+".line") {
		r.At(op+".line", "only used with codec: line")
	}
	checkReceiver(r.At, op, o)
}

// reportFunc records a problem at a config path; validation passes
// (*config.Reporter).At, the runtime collects errors.
type reportFunc func(path, format string, args ...any)

// checkReceiver checks decoded receiver options.
func checkReceiver(report reportFunc, op string, o ReceiverOptions) {
	if o.Codec == "" {
		report(op+".codec", "missing: want %s", strings.Join(CodecNames, ", "))
	} else if _, err := NewCodec(o.CodecOptions()); err != nil {
		switch o.Codec {
		case CodecFramed, CodecLine:
			// The codec's messages start with the field they are about.
			for _, line := range strings.Split(err.Error(), "\n") {
				path := op + "." + o.Codec
				if f, msg, ok := strings.Cut(line, ": "); ok && fieldRE.MatchString(f) {
					path, line = path+"."+f, msg
				}
				report(path, "%s", line)
			}
		default:
			report(op+".codec", "%v", err)
		}
	}
	if o.Baud != 0 && !containsInt(bauds, o.Baud) {
		report(op+".baud", "%d: want one of %s", o.Baud, intList(bauds))
	}
	switch o.Parity {
	case "none", "even", "odd":
	default:
		report(op+".parity", "%q: want none, even or odd", o.Parity)
	}
	if w := o.DedupWindow.Std(); w < 100*time.Millisecond || w > 30*time.Second {
		report(op+".dedup_window", "%s: want between 100ms and 30s", o.DedupWindow)
	}
	if o.ReconnectMin.Std() < 100*time.Millisecond {
		report(op+".reconnect_min", "%s: want at least 100ms", o.ReconnectMin)
	}
	if o.ReconnectMax < o.ReconnectMin || o.ReconnectMax.Std() > 10*time.Minute {
		report(op+".reconnect_max", "%s: want between reconnect_min and 10m", o.ReconnectMax)
	}
}

// checkSensor validates a sensor device's decoded options and builds it.
func checkSensor(report reportFunc, c *config.Config, path string, d config.Device, o SensorOptions) Sensor {
	op := path + ".options"
	s := Sensor{ID: d.ID, Kind: d.Kind, Household: d.Household, Profile: d.Profile}
	if d.Household == "" {
		report(path+".household", "missing: a %s sensor belongs to a household (compound.households)", d.Kind)
	}
	// The receiver: named, or the one on the same port.
	rx, ok := receiverOf(c, d, o)
	switch {
	case ok:
	case o.Receiver != "":
		report(op+".receiver", "%q is not a receiver device of the serial driver", o.Receiver)
	default:
		report(op+".receiver", "missing: name the receiver device that hears this sensor")
	}
	if ok && o.Receiver != "" && d.Address != "" && d.Address != rx.Address {
		report(path+".address", "%q differs from receiver %q's port %q: give the receiver's port or leave address to match it", d.Address, rx.ID, rx.Address)
	}
	// The code table.
	if d.Profile == "" {
		report(path+".profile", "missing: name the sensor's code table; available: %s", strings.Join(c.ProfileNames("radio"), ", "))
	} else if fsys, p, found := c.ProfilePath("radio", d.Profile); found {
		t, err := LoadTable(fsys, p, d.Profile)
		if err != nil {
			report(path+".profile", "%v", err)
		} else {
			s.Table = t
			if !contains(t.Kinds, d.Kind) {
				report(path+".kind", "%q: code table %s serves %s", d.Kind, d.Profile, strings.Join(t.Kinds, ", "))
			}
			s.Heartbeat = t.Heartbeat
		}
	} // an unknown profile is reported by edge/config
	// The address.
	code := trimHex(o.Code)
	switch {
	case code == "":
		report(op+".code", "missing: the sensor's radio address in hex (lintel probe serial --learn prints it)")
	default:
		v, err := strconv.ParseUint(code, 16, 64)
		if err != nil {
			report(op+".code", "%q: want hex digits such as \"A1B2C\"", o.Code)
			break
		}
		s.Addr = v
		if s.Table != nil && s.Table.AddressBits > 0 && s.Table.AddressBits < 64 && v>>s.Table.AddressBits != 0 {
			report(op+".code", "%q is wider than the %d-bit address of %s (%d hex digits)", o.Code, s.Table.AddressBits, d.Profile, s.Table.AddressDigits())
		}
	}
	if o.Heartbeat != "" {
		hb, err := parseHeartbeat(o.Heartbeat)
		if err != nil {
			report(op+".heartbeat", "%v", err)
		}
		s.Heartbeat = hb
	}
	// Two sensors on one receiver with one address would steal each
	// other's events.
	if ok && s.Table != nil {
		for i, other := range c.Devices {
			if other.ID == d.ID {
				break
			}
			if other.Driver != "serial" || other.Disabled || !contains(SensorKinds, other.Kind) {
				continue
			}
			oo, err := decodeSensorOptions(other.Options)
			if err != nil {
				continue
			}
			orx, ok2 := receiverOf(c, other, oo)
			if !ok2 || orx.ID != rx.ID {
				continue
			}
			// The same digits in the same width: the same address layout
			// (a 4-digit STC15W code never collides with a 5-digit Kerui one).
			oc := trimHex(oo.Code)
			if ov, err := strconv.ParseUint(oc, 16, 64); err == nil && ov == s.Addr && len(oc) == len(code) {
				report(op+".code", "code %s is already bound to %s (devices[%d]) on receiver %s", s.Code(), other.ID, i, rx.ID)
			}
		}
	}
	return s
}

// receiverOf finds the receiver device of a sensor: the one named in its
// options, else the only receiver on the sensor's address.
func receiverOf(c *config.Config, d config.Device, o SensorOptions) (config.Device, bool) {
	var found []config.Device
	for _, x := range c.Devices {
		if x.Driver != "serial" || x.Kind != KindReceiver {
			continue
		}
		if o.Receiver != "" {
			if x.ID == o.Receiver {
				return x, true
			}
			continue
		}
		if d.Address != "" && x.Address == d.Address {
			found = append(found, x)
		}
	}
	if len(found) == 1 {
		return found[0], true
	}
	return config.Device{}, false
}

// Supervised reports whether the sensor device id is supervised (has a
// heartbeat period, so its silence means something). Rules ask it to know
// whether a quiet home can be trusted to be quiet. Unknown ids and devices
// that are not serial sensors are unsupervised. It reads the sensor's code
// table, so callers ask once per device (at start-up), not per event.
func Supervised(c *config.Config, id string) bool {
	for _, d := range c.Devices {
		if d.ID != id || d.Driver != "serial" || !contains(SensorKinds, d.Kind) {
			continue
		}
		s, err := SensorFromConfig(c, d)
		return err == nil && s.Supervised()
	}
	return false
}

// SensorFromConfig builds the sensor of a validated device.
func SensorFromConfig(c *config.Config, d config.Device) (Sensor, error) {
	o, err := decodeSensorOptions(d.Options)
	if err != nil {
		return Sensor{}, err
	}
	var errs collect
	s := checkSensor(errs.add, c, "device "+d.ID, d, o)
	return s, errs.err()
}

// ReceiverFromConfig decodes a validated receiver device's options.
func ReceiverFromConfig(d config.Device) (ReceiverOptions, error) {
	o, err := decodeReceiverOptions(d.Options)
	if err != nil {
		return o, err
	}
	var errs collect
	checkReceiver(errs.add, "device "+d.ID+" options", o)
	return o, errs.err()
}

// collect gathers problems as one error.
type collect []string

func (c *collect) add(path, format string, args ...any) {
	*c = append(*c, path+": "+fmt.Sprintf(format, args...))
}

func (c collect) err() error {
	if len(c) == 0 {
		return nil
	}
	return errors.New(strings.Join(c, "; "))
}

// Options are decoded again at run time from the validated config's
// node, with the same strict decoder (and problems) as validation.
func decodeSensorOptions(n config.Node) (SensorOptions, error) {
	var o SensorOptions
	err := n.DecodeStrict(&o)
	return o, err
}

func decodeReceiverOptions(n config.Node) (ReceiverOptions, error) {
	o := DefaultReceiverOptions()
	err := n.DecodeStrict(&o)
	return o, err
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func intList(s []int) string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprint(v)
	}
	return strings.Join(out, ", ")
}

// LoadTables loads every code table c can see (built in and under
// profiles.dirs); c may be config.New() for the built-in ones only.
func LoadTables(c *config.Config) (map[string]*Table, error) {
	out := map[string]*Table{}
	var errs []error
	for _, n := range c.ProfileNames("radio") {
		fsys, p, ok := c.ProfilePath("radio", n)
		if !ok {
			continue
		}
		t, err := LoadTable(fsys, p, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[n] = t
	}
	return out, errors.Join(errs...)
}

// ReceiverID is the id of the receiver a sensor device is bound to ("" if
// none).
func ReceiverID(c *config.Config, d config.Device) string {
	o, err := decodeSensorOptions(d.Options)
	if err != nil {
		return ""
	}
	rx, ok := receiverOf(c, d, o)
	if !ok {
		return ""
	}
	return rx.ID
}

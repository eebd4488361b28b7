package serial

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Meaning is what a sensor's data value says, independent of the vendor.
type Meaning string

// Meanings a code table may use. Alarm and Restore are resolved by the
// sensor's kind: alarm is door.opened for a door, motion.detected for a
// PIR, sos.pressed for a button, smoke.alarm, water.leak; restore is
// door.closed for a door and only a sign of life for the others.
const (
	Open       Meaning = "open"
	Close      Meaning = "close"
	Motion     Meaning = "motion"
	SOS        Meaning = "sos"
	Smoke      Meaning = "smoke"
	Water      Meaning = "water"
	Alarm      Meaning = "alarm"
	Restore    Meaning = "restore"
	Tamper     Meaning = "tamper"
	TamperOK   Meaning = "tamper_restore"
	BatteryLow Meaning = "battery_low"
	Heartbeat  Meaning = "heartbeat"
)

var meanings = []Meaning{Open, Close, Motion, SOS, Smoke, Water, Alarm, Restore, Tamper, TamperOK, BatteryLow, Heartbeat}

// SensorKinds are the device kinds a code table can serve.
var SensorKinds = []string{"door", "motion", "sos", "smoke", "water"}

// Table is a code table (configs/radio/<name>.yaml): how one vendor's
// sensors encode their address and what their data values mean.
type Table struct {
	Name   string
	Model  string
	Source string
	Kinds  []string
	// AddressBits and DataBits split a whole radio word (EV1527: 20 + 4).
	// Both are 0 for tables used only with receivers that report address
	// and data apart (RFXtrx Security1).
	AddressBits, DataBits int
	// Heartbeat is the supervision period of the model's firmware; 0
	// when it sends none.
	Heartbeat time.Duration
	Codes     map[uint32]Meaning
}

// tableFile is the YAML shape of a table.
type tableFile struct {
	Model  string   `yaml:"model"`
	Source string   `yaml:"source"`
	Kinds  []string `yaml:"kinds"`
	Word   *struct {
		AddressBits int `yaml:"address_bits"`
		DataBits    int `yaml:"data_bits"`
	} `yaml:"word"`
	Heartbeat string            `yaml:"heartbeat"`
	Codes     map[string]string `yaml:"codes"`
}

// ParseTable decodes and checks one code table.
func ParseTable(name string, b []byte) (*Table, error) {
	var tf tableFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&tf); err != nil {
		return nil, fmt.Errorf("radio table %s: %w", name, err)
	}
	t := &Table{Name: name, Model: tf.Model, Source: tf.Source, Kinds: tf.Kinds, Codes: map[uint32]Meaning{}}
	var errs []error
	if len(tf.Kinds) == 0 {
		errs = append(errs, errors.New("kinds: list the sensor kinds this table serves"))
	}
	for _, k := range tf.Kinds {
		if !contains(SensorKinds, k) {
			errs = append(errs, fmt.Errorf("kinds: %q: want %s", k, strings.Join(SensorKinds, ", ")))
		}
	}
	if tf.Word != nil {
		t.AddressBits, t.DataBits = tf.Word.AddressBits, tf.Word.DataBits
		if t.AddressBits < 1 || t.DataBits < 1 || t.AddressBits+t.DataBits > 64 || t.DataBits > 32 {
			errs = append(errs, fmt.Errorf("word: address_bits %d + data_bits %d: want ≥ 1 each, ≤ 64 in all, data ≤ 32", t.AddressBits, t.DataBits))
		}
	}
	hb, err := parseHeartbeat(tf.Heartbeat)
	if err != nil {
		errs = append(errs, fmt.Errorf("heartbeat: %w", err))
	}
	t.Heartbeat = hb
	if len(tf.Codes) == 0 {
		errs = append(errs, errors.New("codes: map data values (hex) to meanings"))
	}
	for k, v := range tf.Codes {
		d, err := strconv.ParseUint(trimHex(k), 16, 32)
		if err != nil {
			errs = append(errs, fmt.Errorf("codes: key %q: want a hex data value such as 0xE", k))
			continue
		}
		if t.DataBits > 0 && t.DataBits < 32 && d>>t.DataBits != 0 {
			errs = append(errs, fmt.Errorf("codes: %s does not fit %d data bits", k, t.DataBits))
		}
		m := Meaning(v)
		if !containsMeaning(m) {
			errs = append(errs, fmt.Errorf("codes.%s: %q: want one of %s", k, v, meaningList()))
			continue
		}
		if _, dup := t.Codes[uint32(d)]; dup {
			errs = append(errs, fmt.Errorf("codes: %s given twice", k))
		}
		t.Codes[uint32(d)] = m
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("radio table %s: %w", name, err)
	}
	return t, nil
}

// LoadTable reads a table from a profile tree (see config.ProfilePath).
func LoadTable(fsys fs.FS, path, name string) (*Table, error) {
	b, err := fs.ReadFile(fsys, path)
	if err != nil {
		return nil, fmt.Errorf("read radio table %s: %w", name, err)
	}
	return ParseTable(name, b)
}

// AddressDigits is how many hex digits a sensor code of this table has
// (0 when the table does not split words).
func (t *Table) AddressDigits() int { return (t.AddressBits + 3) / 4 }

// Split divides a whole word of the table's width into address and data.
func (t *Table) Split(word uint64, bits int) (addr uint64, data uint32, ok bool) {
	if t.AddressBits == 0 || bits != t.AddressBits+t.DataBits {
		return 0, 0, false
	}
	return word >> t.DataBits, uint32(word & (1<<t.DataBits - 1)), true
}

// Meaning looks up a data value.
func (t *Table) Meaning(data uint32) (Meaning, bool) {
	m, ok := t.Codes[data]
	return m, ok
}

// DataFor returns a data value with meaning m (the lowest, if several).
func (t *Table) DataFor(m Meaning) (uint32, bool) {
	keys := make([]uint32, 0, len(t.Codes))
	for k := range t.Codes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	for _, k := range keys {
		if t.Codes[k] == m {
			return k, true
		}
	}
	return 0, false
}

func parseHeartbeat(s string) (time.Duration, error) {
	switch s {
	case "", "none":
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: want none or a period like \"1h\"", s)
	}
	if d < time.Minute || d > 7*24*time.Hour {
		return 0, fmt.Errorf("%q: want between 1m and 168h", s)
	}
	return d, nil
}

func containsMeaning(m Meaning) bool {
	for _, x := range meanings {
		if x == m {
			return true
		}
	}
	return false
}

func meaningList() string {
	s := make([]string, len(meanings))
	for i, m := range meanings {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

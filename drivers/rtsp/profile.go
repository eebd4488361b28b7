package rtsp

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// Profile is a camera model's metadata profile (configs/cameras/*.yaml):
// which ONVIF event topics mean what, and how the model writes positions.
type Profile struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Kinds are the device kinds the profile suits (camera, peephole).
	Kinds []string `yaml:"kinds"`
	// Coordinates is how the model writes positions: "onvif" (the standard
	// -1..1 with y up, optionally with tt:Transformation) or "image"
	// (0..1 with y down, as some vendors do regardless of the standard).
	Coordinates string `yaml:"coordinates"`
	// TrackWindow is how far back analytics frames are kept to build an
	// object's track for an incident.
	TrackWindow string `yaml:"track_window"`
	// UnmappedCooldown limits camera.event for one unmapped topic to one per
	// this period, so a chatty topic cannot flood the log.
	UnmappedCooldown string `yaml:"unmapped_cooldown"`
	// Topics map topics to kinds; the first rule that matches wins.
	Topics []TopicRule `yaml:"topics"`
	// Ignore lists topics that are dropped silently (heartbeats, CPU load).
	Ignore []string `yaml:"ignore"`
	// ONVIF is auto (default: the model may offer its snapshot URI over
	// ONVIF) or off (it has no usable ONVIF media service: do not ask).
	ONVIF string `yaml:"onvif"`

	trackWindow, unmappedCooldown time.Duration
}

// TopicRule maps the topics matching Topic to one Lintel kind.
type TopicRule struct {
	// Topic is a pattern over the topic with namespace prefixes removed and
	// compared case-insensitively: "RuleEngine/CellMotionDetector/Motion";
	// "*" matches within one path segment ("RuleEngine/*/Motion").
	Topic string `yaml:"topic"`
	Kind  string `yaml:"kind"`
	// State names the Data item telling whether the condition is active
	// (State, IsMotion, IsTamper …). Messages where it is false are
	// ignored. Empty: look for the usual names; a topic with none of them
	// is a pulse and always counts.
	State string `yaml:"state"`
	// Severity overrides the kind's default severity.
	Severity string `yaml:"severity"`
	// Clip cuts an evidence clip (pre-roll + post-roll) for the event; the
	// event is then emitted when the clip is complete.
	Clip bool `yaml:"clip"`
	// Cooldown suppresses repeats of this rule for a while.
	Cooldown string `yaml:"cooldown"`
	// Initialized also acts on PropertyOperation="Initialized", the state
	// dump a camera sends when a session starts. Off by default: a
	// reconnect must not repeat yesterday's tamper alarm.
	Initialized bool `yaml:"initialized"`

	cooldown time.Duration
}

// LoadProfile finds and parses the named camera profile for cfg.
func LoadProfile(cfg *config.Config, name string) (*Profile, error) {
	fsys, p, ok := cfg.ProfilePath("cameras", name)
	if !ok {
		return nil, fmt.Errorf("camera profile %q not found", name)
	}
	b, err := fs.ReadFile(fsys, p)
	if err != nil {
		return nil, fmt.Errorf("read camera profile %q: %w", name, err)
	}
	return ParseProfile(b)
}

// ParseProfile decodes and checks a profile strictly (unknown keys are
// errors), reporting every problem at once.
func ParseProfile(b []byte) (*Profile, error) {
	var p Profile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("camera profile: %w", err)
	}
	return &p, p.check()
}

func parseDur(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a duration like \"30s\"", s)
	}
	return d, nil
}

func (p *Profile) check() error {
	var errs []error
	if p.Name == "" {
		errs = append(errs, errors.New("name: missing"))
	}
	for _, k := range p.Kinds {
		if k != "camera" && k != "peephole" {
			errs = append(errs, fmt.Errorf("kinds: %q: want camera or peephole", k))
		}
	}
	switch p.Coordinates {
	case "":
		p.Coordinates = "onvif"
	case "onvif", "image":
	default:
		errs = append(errs, fmt.Errorf("coordinates: %q: want onvif or image", p.Coordinates))
	}
	switch p.ONVIF {
	case "":
		p.ONVIF = "auto"
	case "auto", "off":
	default:
		errs = append(errs, fmt.Errorf("onvif: %q: want auto or off", p.ONVIF))
	}
	var err error
	if p.trackWindow, err = parseDur(p.TrackWindow, 5*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("track_window: %w", err))
	}
	if p.unmappedCooldown, err = parseDur(p.UnmappedCooldown, 10*time.Second); err != nil {
		errs = append(errs, fmt.Errorf("unmapped_cooldown: %w", err))
	}
	for i := range p.Topics {
		r := &p.Topics[i]
		at := fmt.Sprintf("topics[%d]", i)
		if r.Topic == "" {
			errs = append(errs, fmt.Errorf("%s.topic: missing", at))
		} else if _, err := path.Match(strings.ToLower(r.Topic), ""); err != nil {
			errs = append(errs, fmt.Errorf("%s.topic: %q: bad pattern", at, r.Topic))
		}
		if !event.Kind(r.Kind).Valid() {
			errs = append(errs, fmt.Errorf("%s.kind: %q: want a kind like camera.falling_object", at, r.Kind))
		}
		if r.Severity != "" && !event.Severity(r.Severity).Valid() {
			errs = append(errs, fmt.Errorf("%s.severity: %q: want info, warning, alert or critical", at, r.Severity))
		}
		if r.cooldown, err = parseDur(r.Cooldown, 0); err != nil {
			errs = append(errs, fmt.Errorf("%s.cooldown: %w", at, err))
		}
	}
	for i, g := range p.Ignore {
		if _, err := path.Match(strings.ToLower(g), ""); err != nil {
			errs = append(errs, fmt.Errorf("ignore[%d]: %q: bad pattern", i, g))
		}
	}
	return errors.Join(errs...)
}

// NormalizeTopic removes namespace prefixes from each segment of a topic
// ("tns1:RuleEngine/tnsaxis:Foo" → "RuleEngine/Foo") and lower-cases it,
// since prefixes are arbitrary per camera.
func NormalizeTopic(t string) string {
	segs := strings.Split(strings.TrimSpace(t), "/")
	for i, s := range segs {
		if j := strings.LastIndexByte(s, ':'); j >= 0 {
			s = s[j+1:]
		}
		segs[i] = strings.ToLower(strings.TrimSpace(s))
	}
	return strings.Join(segs, "/")
}

func topicMatch(pattern, norm string) bool {
	ok, _ := path.Match(strings.ToLower(pattern), norm)
	return ok
}

// Rule returns the rule matching a raw topic, or nil; ignored reports a
// topic on the ignore list.
func (p *Profile) Rule(topic string) (r *TopicRule, ignored bool) {
	n := NormalizeTopic(topic)
	for _, g := range p.Ignore {
		if topicMatch(g, n) {
			return nil, true
		}
	}
	for i := range p.Topics {
		if topicMatch(p.Topics[i].Topic, n) {
			return &p.Topics[i], false
		}
	}
	return nil, false
}

// stateNames are the Data items cameras use for "the condition is on".
var stateNames = []string{"State", "IsMotion", "IsTamper", "IsInside", "Active", "IsActive", "LogicalState", "Value"}

// activeState reports the state of a notification: known=false when it has
// no state item (a pulse event).
func activeState(n *Notification, item string) (active, known bool) {
	names := stateNames
	if item != "" {
		names = []string{item}
	}
	for _, name := range names {
		v, ok := Lookup(n.Data, name)
		if !ok {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1", "yes", "on", "active":
			return true, true
		case "false", "0", "no", "off", "inactive":
			return false, true
		}
	}
	return false, false
}

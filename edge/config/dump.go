package config

import (
	"bytes"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// secretKey matches keys whose values are secrets in any section, including
// sections this package does not decode itself.
var secretKey = regexp.MustCompile(`(?i)(password|passwd|secret|token|passphrase|credential|private_key|api_key|key_pem|psk)`)

// Dump renders the effective configuration (defaults applied) as YAML with
// every secret redacted: typed secrets, values under secret-looking keys in
// any section, and passwords inside URLs (RTSP addresses carry them).
func (c *Config) Dump() []byte {
	var root yaml.Node
	if err := root.Encode(dumpView(c)); err != nil {
		return []byte("# " + err.Error() + "\n")
	}
	redactNode(&root, "")
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	_ = enc.Encode(&root)
	return buf.Bytes()
}

type dumpDevice struct {
	ID        string     `yaml:"id"`
	Kind      string     `yaml:"kind"`
	Driver    string     `yaml:"driver"`
	Address   string     `yaml:"address"`
	Profile   string     `yaml:"profile,omitempty"`
	Place     Place      `yaml:"place,omitempty"`
	Household string     `yaml:"household,omitempty"`
	Disabled  bool       `yaml:"disabled,omitempty"`
	Options   *yaml.Node `yaml:"options,omitempty"`
}

func dumpView(c *Config) any {
	devs := make([]dumpDevice, len(c.Devices))
	for i, d := range c.Devices {
		devs[i] = dumpDevice{ID: d.ID, Kind: d.Kind, Driver: d.Driver, Address: RedactURL(d.Address), Profile: d.Profile,
			Place: d.Place, Household: d.Household, Disabled: d.Disabled, Options: d.Options.n}
	}
	sinks := map[string]*yaml.Node{}
	for k, n := range c.Sinks {
		sinks[k] = n.n
	}
	return struct {
		Gateway  Gateway               `yaml:"gateway"`
		Log      Log                   `yaml:"log"`
		Compound Compound              `yaml:"compound"`
		Profiles Profiles              `yaml:"profiles,omitempty"`
		Devices  []dumpDevice          `yaml:"devices"`
		Storage  map[string]string     `yaml:"storage"`
		Sinks    map[string]*yaml.Node `yaml:"sinks,omitempty"`
		Status   *yaml.Node            `yaml:"status,omitempty"`
		Rules    *yaml.Node            `yaml:"rules,omitempty"`
	}{c.Gateway, c.Log, c.Compound, c.Profiles, devs,
		map[string]string{"path": c.StorePath(), "max_bytes": c.Storage.MaxBytes.String(), "max_age": c.Storage.MaxAge.String(), "flush_window": c.Storage.FlushWindow.String(), "history": c.Storage.History.String()},
		sinks, c.Status.n, c.Rules.n}
}

// RedactYAML applies Dump's redaction to any YAML document (a section a
// package prints on its own).
func RedactYAML(n *yaml.Node) { redactNode(n, "") }

func redactNode(n *yaml.Node, key string) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			redactNode(c, key)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			redactNode(n.Content[i+1], n.Content[i].Value)
		}
	case yaml.AliasNode:
		redactNode(n.Alias, key)
	case yaml.ScalarNode:
		if key != "" && secretKey.MatchString(key) && n.Value != "" &&
			!strings.HasPrefix(n.Value, "file:") && !strings.HasPrefix(n.Value, "env:") && !strings.HasSuffix(key, "_file") {
			n.Value, n.Tag, n.Style = Redacted, "!!str", 0
			return
		}
		if strings.Contains(n.Value, "://") {
			n.Value = RedactURL(n.Value)
		}
	}
}

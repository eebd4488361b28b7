package city

import (
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/config"
)

const baseConfig = `gateway:
  id: gw-01
  compound: c-01
  data_dir: /var/lib/lintel
`

func parseCity(t *testing.T, section string) (*config.Config, error) {
	t.Helper()
	return config.Parse("test.yaml", []byte(baseConfig+"sinks:\n  city:\n"+section))
}

func TestOptionsDefaultsAndFactory(t *testing.T) {
	c, err := parseCity(t, "    broker: mqtts://mqtt.example.city:8883\n    password: file:/etc/lintel/mqtt.pass\n    username: gw-01\n")
	if err != nil {
		t.Fatal(err)
	}
	o, err := optionsFor(c, c.Sinks["city"])
	if err != nil {
		t.Fatal(err)
	}
	if o.Reconnect.Probe.Std() != DefaultReconnectProbe {
		t.Errorf("reconnect.probe default %s", o.Reconnect.Probe)
	}
	if o.Batch.MaxEvents != DefaultMaxEvents || !o.Gzip || o.AckMode != AckPuback || o.Window != DefaultWindow || o.TLS.InsecureSkipVerify {
		t.Errorf("defaults: %+v", o)
	}
	if got := ExpandPrefix(o.TopicPrefix, "c-01", "gw-01"); got != "lintel/v1/c-01/gw-01" {
		t.Errorf("prefix %q", got)
	}
	if o.Password.Source() != "file:/etc/lintel/mqtt.pass" {
		t.Errorf("password source %q", o.Password.Source())
	}
	st := openStore(t, t.TempDir())
	defer st.Close()
	comp, err := newFromEnv(edge.Env{Config: c, Logger: testLogger(t), Store: st, Version: "v"}, "city", c.Sinks["city"])
	if err != nil {
		t.Fatal(err)
	}
	if s := comp.(*Sink); s.Topics().Events(EncGzip) != "lintel/v1/c-01/gw-01/events/gzip" || s.client != "gw-01" {
		t.Errorf("sink from config: topics %+v client %q", s.Topics(), s.client)
	}
	if _, err := newFromEnv(edge.Env{Config: config.New(), Logger: testLogger(t), Store: st}, "city", c.Sinks["city"]); err == nil {
		t.Error("a configuration that was never validated was accepted")
	}
}

func TestOptionsFull(t *testing.T) {
	_, err := parseCity(t, `    broker: mqtts://10.0.0.5:8883
    client_id: gw-01-uplink
    topic_prefix: city/{compound}/gw/{gateway}
    username: gw-01
    password: env:LINTEL_MQTT_PASSWORD
    tls:
      ca_file: /etc/lintel/ca.pem
      cert_file: /etc/lintel/gw.crt
      key_file: /etc/lintel/gw.key
    batch:
      max_events: 1000
      max_bytes: 512KiB
      linger: 500ms
    window: 16
    gzip: false
    ack_mode: application
    ack_timeout: 2m
    status_interval: 30s
    keepalive: 60s
    reconnect:
      min: 2s
      max: 5m
      probe: 3s
`)
	if err != nil {
		t.Fatal(err)
	}
}

func TestOptionsProbeOff(t *testing.T) {
	c, err := parseCity(t, "    broker: mqtts://x:1\n    reconnect:\n      probe: 0s\n")
	if err != nil {
		t.Fatal(err)
	}
	if o, err := optionsFor(c, c.Sinks["city"]); err != nil || o.Reconnect.Probe != 0 {
		t.Fatalf("probe %s, err %v: want 0 (off)", o.Reconnect.Probe, err)
	}
}

func TestOptionsProblems(t *testing.T) {
	for _, tc := range []struct{ section, want string }{
		{"    broker: ''\n", "sinks.city.broker: missing"},
		{"    broker: http://x:1\n", "scheme \"http\""},
		{"    broker: mqtts://u:secret@x:1\n", "credentials"},
		{"    broker: mqtts://x:1/path\n", "no path"},
		{"    broker: tcp://x:1\n    username: u\n    password: pw\n", "plain tcp"},
		{"    broker: mqtts://x:1\n    password: pw\n", "needs a username"},
		{"    broker: tcp://x:1\n    tls:\n      ca_file: /ca.pem\n", "not mqtts"},
		{"    broker: tcp://x:1\n    tls:\n      insecure_skip_verify: true\n", "not mqtts"},
		{"    broker: mqtts://x:1\n    tls:\n      cert_file: /a.crt\n", "go together"},
		{"    broker: mqtts://x:1\n    tls:\n      ca_file: ca.pem\n", "absolute path"},
		{"    broker: mqtts://x:1\n    topic_prefix: a/+/b\n", "no wildcards"},
		{"    broker: mqtts://x:1\n    topic_prefix: $SYS/x\n", "no wildcards"},
		{"    broker: mqtts://x:1\n    topic_prefix: a/{site}\n", "only {compound}"},
		{"    broker: mqtts://x:1\n    batch:\n      max_events: 0\n", "max_events: 0"},
		{"    broker: mqtts://x:1\n    batch:\n      max_bytes: 100MiB\n", "max_bytes"},
		{"    broker: mqtts://x:1\n    window: 0\n", "window: 0"},
		{"    broker: mqtts://x:1\n    ack_mode: pub\n", "puback or application"},
		{"    broker: mqtts://x:1\n    reconnect:\n      min: 10s\n      max: 1s\n", "reconnect.max"},
		{"    broker: mqtts://x:1\n    keepalive: 1s\n", "keepalive"},
		{"    broker: mqtts://x:1\n    reconnect:\n      probe: 100ms\n", "reconnect.probe"},
		{"    broker: mqtts://x:1\n    reconnect:\n      probe: 2m\n", "reconnect.probe"},
		{"    broker: mqtts://x:1\n    client_id: a b\n", "client_id"},
		{"    broker: mqtts://x:1\n    gzipped: true\n", "gzipped"},
		{"    broker: mqtts://x:1\n    batch:\n      linger: 5\n", "no unit"},
		{"    broker: mqtts://x:1\n    brokers: [mqtts://y:1]\n", "sinks.city.brokers: give broker (one URL) or brokers (a list), not both"},
		{"    brokers: [mqtts://x:1, http://y:1]\n", "sinks.city.brokers[1]: scheme \"http\""},
		{"    brokers: [mqtts://x:1, mqtts://x:1]\n", "sinks.city.brokers[1]: \"mqtts://x:1\" is listed twice"},
		{"    brokers: [mqtts://x:1, tcp://y:1]\n", "sinks.city.brokers[1]: \"tcp://y:1\": the brokers share the credentials and tls settings"},
		{"    brokers: [mqtts://x:1, 'mqtts://u:pw@y:1']\n", "sinks.city.brokers[1]: put credentials in username/password"},
		{"    brokers: [tcp://x:1, tcp://y:1]\n    username: u\n    password: pw\n", "plain tcp"},
		{"    brokers: []\n", "sinks.city.broker: missing"},
		{"    brokers: mqtts://x:1\n", "sinks.city.brokers: want a list"},
	} {
		_, err := parseCity(t, tc.section)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want a problem containing %q", tc.section, err, tc.want)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(100*time.Millisecond, 2*time.Second)
	b.rnd = func() float64 { return 1 }
	var got []time.Duration
	for i := 0; i < 7; i++ {
		got = append(got, b.next())
	}
	want := []time.Duration{100e6, 200e6, 400e6, 800e6, 1600e6, 2e9, 2e9}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	b.rnd = func() float64 { return 0 }
	if d := b.next(); d != time.Second {
		t.Errorf("jitter floor %s, want half of the cap", d)
	}
	b.reset()
	if d := b.next(); d != 50*time.Millisecond {
		t.Errorf("after reset %s", d)
	}
}

// TestOptionsBrokers: several broker URLs of one platform are tried in
// turn; the single-URL form keeps working.
func TestOptionsBrokers(t *testing.T) {
	c, err := parseCity(t, "    brokers:\n      - mqtts://nats-1.city:8883\n      - mqtts://nats-2.city:8883\n    username: gw-01\n    password: file:/etc/lintel/mqtt.pass\n")
	if err != nil {
		t.Fatal(err)
	}
	o, err := optionsFor(c, c.Sinks["city"])
	if err != nil {
		t.Fatal(err)
	}
	if got := o.URLs(); len(got) != 2 || got[0] != "mqtts://nats-1.city:8883" || got[1] != "mqtts://nats-2.city:8883" || !o.UsesTLS() {
		t.Errorf("urls %v tls %v", got, o.UsesTLS())
	}
	c, err = parseCity(t, "    broker: tcp://10.0.0.5:1883\n")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := optionsFor(c, c.Sinks["city"]); len(o.URLs()) != 1 || o.URLs()[0] != "tcp://10.0.0.5:1883" || o.UsesTLS() {
		t.Errorf("single broker: urls %v", o.URLs())
	}
	_, err = parseCity(t, "    brokers: [mqtts://x:1, http://y:1]\n")
	if err == nil || !strings.Contains(err.Error(), "test.yaml:7:28: sinks.city.brokers[1]") {
		t.Errorf("want the position of brokers[1], got %v", err)
	}
}

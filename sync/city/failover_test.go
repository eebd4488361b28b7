package city

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
)

// dynsecPlugin is mosquitto's dynamic-security plugin (Debian package
// mosquitto). It is what makes mosquitto 2.0 refuse a subscription in its
// SUBACK: with acl_file, mosquitto 2.0.11 grants every subscription of an
// MQTT 3.1.1 client (SUBACK 1 for a topic the ACL denies, measured) and
// applies the ACL only when it delivers a message, so the subscriber is
// silently deaf rather than refused. The dynamic-security plugin checks
// subscribeLiteral/subscribePattern ACLs at SUBSCRIBE and answers 0x80.
func dynsecPlugin(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so", "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
		"/usr/lib/mosquitto_dynamic_security.so", "/usr/local/lib/mosquitto_dynamic_security.so"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("mosquitto_dynamic_security.so not found (Debian package mosquitto ships it)")
	}
	t.Skip("mosquitto_dynamic_security.so not found: apt-get install mosquitto")
	return ""
}

// startDenyingBroker starts a mosquitto whose anonymous clients may not
// subscribe to the given topics: their SUBACK return code is 0x80.
func startDenyingBroker(t testing.TB, deny ...string) *broker {
	t.Helper()
	b := &broker{t: t, bin: mosquittoPath(t), port: freePort(t)}
	plugin := dynsecPlugin(t)
	dir := t.TempDir()
	var acls []string
	for _, topic := range deny {
		acls = append(acls, fmt.Sprintf(`{"acltype":"subscribeLiteral","topic":%q,"allow":false,"priority":0}`, topic))
	}
	js := fmt.Sprintf(`{"defaultACLAccess":{"publishClientSend":true,"publishClientReceive":true,"subscribe":true,"unsubscribe":true},
"clients":[],"groups":[{"groupname":"anon","roles":[{"rolename":"gw"}]}],
"roles":[{"rolename":"gw","acls":[%s]}],"anonymousGroup":"anon"}`, strings.Join(acls, ","))
	dynsec := filepath.Join(dir, "dynsec.json")
	if err := os.WriteFile(dynsec, []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	if os.Geteuid() == 0 {
		conf.WriteString("user root\n")
	}
	fmt.Fprintf(&conf, "persistence false\nlog_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\nconnection_messages true\n"+
		"allow_anonymous true\nplugin %s\nplugin_opt_config_file %s\nlistener %d 127.0.0.1\n", plugin, dynsec, b.port)
	b.conf = filepath.Join(dir, "mosquitto.conf")
	b.logPath = filepath.Join(dir, "mosquitto.log")
	if err := os.WriteFile(b.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(b.kill)
	return b
}

// TestFailoverToSecondBroker: with brokers: [first, second], the first
// is killed in the middle of a drain; the sink moves to the second and
// drains the whole log there, nothing lost. A reference receiver with
// application acks listens on each broker (two independent mosquittos
// stand for two nodes of a cluster), and both write to one collector.
func TestFailoverToSecondBroker(t *testing.T) {
	b1, b2 := startBroker(t, nil), startBroker(t, nil)
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := newCollector()
	startReceiver(t, ctx, b1, true, col)
	startReceiver(t, ctx, b2, true, col)
	o := testOptions("")
	o.Broker, o.Brokers = "", []string{b1.url(), b2.url()}
	o.AckMode = AckApplication
	o.Reconnect.Min, o.Reconnect.Max = config.Duration(200*time.Millisecond), config.Duration(time.Second)
	s := runSink(t, ctx, st, o, nil)
	ids := appendEvents(t, st, 2000, 0)
	waitFor(t, 20*time.Second, "events confirmed through the first broker", func() bool { return s.Confirmed() == st.LastSeq() })
	if s.at.Load() != 0 {
		t.Fatalf("connected to brokers[%d], want the first", s.at.Load())
	}

	ids = append(ids, appendEvents(t, st, 20000, 0)...)
	waitFor(t, 20*time.Second, "part of the backlog confirmed", func() bool { return s.Confirmed() > 2000 })
	b1.kill()
	t0 := time.Now()
	// One broker left: a sink that only retries the first never moves.
	waitFor(t, 15*time.Second, "the sink connected to the second broker", func() bool {
		return s.at.Load() == 1 && s.cur.Load() != nil
	})
	moved := time.Since(t0)
	waitProgress(t, "the backlog through the second broker", s.Confirmed, func() bool { return s.Confirmed() == st.LastSeq() })
	waitProgress(t, "every event at a receiver", col.progress, func() bool { return col.count() >= len(ids) })
	col.mu.Lock()
	missing, dups := 0, 0
	for _, id := range ids {
		switch n := col.ids[id]; {
		case n == 0:
			missing++
		case n > 2:
			t.Errorf("event %s written %d times: more than once per receiver", id, n)
		case n == 2:
			dups++ // at the first receiver, not acked before the kill, resent to the second
		}
	}
	col.mu.Unlock()
	if missing > 0 {
		t.Fatalf("%d of %d events lost", missing, len(ids))
	}
	if s.at.Load() != 1 {
		t.Errorf("ended on brokers[%d], want the second", s.at.Load())
	}
	if e := s.lastErr.Load(); e == nil || !strings.Contains(*e, "connection lost") {
		t.Errorf("last error %v: want the first broker's loss", e)
	}
	t.Logf("moved to the second broker %s after the kill; %d events, none lost; %d written at both receivers (in flight at the kill); %d connections ended",
		moved.Round(time.Millisecond), len(ids), dups, s.Reconnects.Load())
}

// TestSubackRefusalMovesOn: a broker that answers 0x80 to the cmd (or,
// in application mode, the ack) subscription is given up, with the
// reason logged and on the status page, and the next broker is used. A
// sink that does not check SUBACK stays on the first broker, deaf.
func TestSubackRefusalMovesOn(t *testing.T) {
	for _, tc := range []struct {
		name, mode string
		deny       func(Topics) string
	}{
		{"cmd", AckPuback, Topics.Cmd},
		{"ack", AckApplication, Topics.Ack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topics := Topics{Prefix: ExpandPrefix(DefaultTopicPrefix, "c-01", "gw-01")}
			denied := tc.deny(topics)
			b1 := startDenyingBroker(t, denied)
			b2 := startBroker(t, nil)
			st := openStore(t, t.TempDir())
			t.Cleanup(func() { st.Close() })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			col := newCollector()
			r := startReceiver(t, ctx, b2, tc.mode == AckApplication, col)
			o := testOptions("")
			o.Broker, o.Brokers = "", []string{b1.url(), b2.url()}
			o.AckMode = tc.mode
			s := runSink(t, ctx, st, o, nil)
			ids := appendEvents(t, st, 1000, 0)
			waitFor(t, 20*time.Second, "every event at the second broker's receiver", func() bool { return col.count() >= len(ids) })
			waitFor(t, 10*time.Second, "every event confirmed", func() bool { return s.Confirmed() == st.LastSeq() })
			if tc.mode == AckApplication {
				checkDelivery(t, ids, col, r)
			}
			if s.at.Load() != 1 {
				t.Errorf("on brokers[%d], want the second", s.at.Load())
			}
			e := s.lastErr.Load()
			if e == nil || !strings.Contains(*e, "refused the subscription to "+denied+" (SUBACK 0x80)") {
				t.Fatalf("last error %v: want the refused subscription named", e)
			}
			t.Logf("status page error: %s", *e)
		})
	}
}

// TestSubackRefusedOnlyBroker: with one broker that refuses the cmd
// subscription the sink never runs a connection on it: each attempt ends
// at the SUBACK and is retried with the back-off.
func TestSubackRefusedOnlyBroker(t *testing.T) {
	topics := Topics{Prefix: ExpandPrefix(DefaultTopicPrefix, "c-01", "gw-01")}
	b := startDenyingBroker(t, topics.Cmd())
	st := openStore(t, t.TempDir())
	t.Cleanup(func() { st.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := runSink(t, ctx, st, testOptions(b.url()), nil)
	appendEvents(t, st, 10, 0)
	waitFor(t, 10*time.Second, "three refused connections", func() bool { return s.Reconnects.Load() >= 3 })
	if s.BatchesSent.Load() != 0 || s.Confirmed() != 0 {
		t.Errorf("sent %d batches, confirmed %d on a connection without its cmd subscription", s.BatchesSent.Load(), s.Confirmed())
	}
	var re *SubscriptionRefusedError
	if e := s.lastErr.Load(); e == nil || !strings.Contains(*e, "SUBACK 0x80") {
		t.Errorf("last error %v", e)
	}
	if err := checkSuback(nil, nil); err != nil || errors.As(err, &re) {
		t.Error("a token that is not a subscription's is not checked")
	}
}

// TestLastErrRedactsEveryBroker: the status page's error text never
// shows the password, whichever broker the error names.
func TestLastErrRedactsEveryBroker(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	o := testOptions("")
	o.Broker, o.Brokers = "", []string{"mqtts://n1.city:8883", "mqtts://n2.city:8883"}
	o.Username, o.Password = "gw-01", config.NewSecret("s3cret-pw")
	s, err := New(Deps{Name: "city", Gateway: "gw-01", Compound: "c-01", Log: st, Logger: testLogger(t)}, o)
	if err != nil {
		t.Fatal(err)
	}
	s.setLastErr(errors.New("connect mqtts://n2.city:8883: not authorised (password s3cret-pw)"))
	if e := *s.lastErr.Load(); strings.Contains(e, "s3cret-pw") || !strings.Contains(e, "n2.city") {
		t.Errorf("status error %q", e)
	}
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/status"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sosGatewayConfig is a gateway with one elder's SOS button (disabled: the
// tests emit its events themselves) and the status page on a free port.
func sosGatewayConfig(t *testing.T, id string) *config.Config {
	t.Helper()
	yaml := fmt.Sprintf(`
gateway: {id: %s, compound: c-1, data_dir: %s}
compound:
  buildings: [{id: "1", units: ["1"]}]
  households: [{id: h-301, label: 1-1-301, place: {building: "1", unit: "1", room: "301"}}]
devices:
  - {id: rf-1, kind: receiver, driver: serial, address: /dev/ttyLINTELTEST, disabled: true, options: {codec: sonoff}}
  - {id: sos-301, kind: sos, driver: serial, address: /dev/ttyLINTELTEST, household: h-301, profile: ev1527-sos,
     disabled: true, options: {receiver: rf-1, code: "A1B2C"}}
rules:
  elders:
    - {household: h-301, sensors: [sos-301]}
status:
  listen: %s
`, id, t.TempDir(), freeAddr(t))
	cfg, err := config.Parse(id+".yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testDaemon is serve() running in the test process with an API token,
// for tests that drive the gateway through its status page's API.
type testDaemon struct {
	gw    *gateway
	base  string
	token string
}

// startTestDaemon runs serve on cfg (its status.listen must be set) with
// an account of the given role; the gateway stops when the test ends and
// must stop cleanly.
func startTestDaemon(t *testing.T, cfg *config.Config, log *slog.Logger, account string, role status.Role) *testDaemon {
	t.Helper()
	acc, err := status.OpenAccounts(filepath.Join(cfg.Gateway.DataDir, "accounts.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.Add(account, role, account+"-password-1234", false); err != nil {
		t.Fatal(err)
	}
	tok, err := acc.AddToken(account)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := status.FromConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *gateway, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, log, func(gw *gateway) { ready <- gw }) }()
	d := &testDaemon{base: "http://" + sc.Listen, token: tok}
	select {
	case d.gw = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("daemon not ready")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return d
}

// call sends an authenticated API request.
func (d *testDaemon) call(method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, d.base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

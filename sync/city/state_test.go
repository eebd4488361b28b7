package city

import (
	"errors"
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/edge/config"
)

// The status page shows why the uplink's last connection ended; neither the
// password nor a URL's credentials may reach it.
func TestLastErrorRedacted(t *testing.T) {
	s := &Sink{o: Options{Broker: "mqtts://gw:CANARY-URL@broker.example:8883", Password: config.NewSecret("CANARY-PW")}}
	s.setLastErr(errors.New("dial mqtts://gw:CANARY-URL@broker.example:8883: auth CANARY-PW refused"))
	got := *s.lastErr.Load()
	if strings.Contains(got, "CANARY") || !strings.Contains(got, "refused") {
		t.Errorf("last error = %q", got)
	}
}

package rtsp

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
)

// TestSnapshotBasicNotSentInClear: the HTTP snapshot GET sends no Basic
// credentials over http:// unless allowed (then it warns once), and
// prefers Digest when both are offered.
func TestSnapshotBasicNotSentInClear(t *testing.T) {
	t.Parallel()
	const pass = "Snap-Canary-2290"
	cam, err := fakecam.Start(fakecam.Options{User: "admin", Password: pass, BasicAuth: true, Snapshots: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	basic := base64.StdEncoding.EncodeToString([]byte("admin:" + pass))
	leaked := func() bool {
		for _, h := range cam.Authorizations() {
			if strings.Contains(h, basic) || strings.Contains(h, pass) {
				return true
			}
		}
		return false
	}
	s, err := newSnapshotter(cam.SnapshotURL(), "admin", pass, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if jpeg, err := s.fetch(context.Background()); !errors.Is(err, ErrBasicRefused) || jpeg != nil || strings.Contains(err.Error(), pass) {
		t.Fatalf("snapshot against Basic over http: %v", err)
	}
	if leaked() {
		t.Fatal("the snapshot GET sent the password")
	}
	warned := 0
	s.basic = &basicPolicy{allowed: true, warn: func(string) { warned++ }}
	for range 2 {
		if jpeg, err := s.fetch(context.Background()); err != nil || len(jpeg) < 100 {
			t.Fatalf("allowed snapshot: %v", err)
		}
	}
	if warned != 1 || !leaked() {
		t.Errorf("allowed: warned %d times (want 1), password sent %v", warned, leaked())
	}

	// Over https Basic is fine without the option.
	if !(&basicPolicy{}).mayBasic("https") || (&basicPolicy{}).mayBasic("http") || (*basicPolicy)(nil).mayBasic("rtsp") {
		t.Error("basic policy by scheme")
	}
}

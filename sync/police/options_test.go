package police_test

import (
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/edge/config"
	_ "github.com/lintel-edge/lintel/sync/police"
)

// TestOptionsProblems: every problem of a bad section at once, each at
// its file:line:col, without I/O.
func TestOptionsProblems(t *testing.T) {
	src := `gateway: {id: gw-1, compound: c1, data_dir: /tmp/x}
sinks:
  police:
    url: ftp://x
    username: u
    password: env:POLICE_PASS
    device_id: "123"
    keepalive: 0s
    allow:
      elder.alert.raised: [severity]
      camera.falling_object: [household, data.face_crop, bogus]
    faces: {enabled: false, legal_basis: "x"}
`
	_, err := config.Parse("p.yaml", []byte(src))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`p.yaml:4:5: sinks.police.url: scheme "ftp"`,
		`p.yaml:7:5: sinks.police.device_id: "123": want the 20-digit id`,
		`p.yaml:8:5: sinks.police.keepalive: 0s`,
		`p.yaml:10:7: sinks.police.allow.elder.alert.raised: elder and household events never go`,
		`p.yaml:11:7: sinks.police.allow.camera.falling_object: field "household" can never be sent`,
		`p.yaml:11:7: sinks.police.allow.camera.falling_object: field "data.face_crop" is face data`,
		`field "bogus"`,
		`sinks.police.faces.enabled: a legal basis is given but faces are not enabled`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in:\n%v", want, err)
		}
	}
}

func TestOptionsGood(t *testing.T) {
	src := `gateway: {id: gw-1, compound: c1, data_dir: /tmp/x}
sinks:
  police:
    url: https://viid.example:8443
    username: u
    password: env:POLICE_PASS
    device_id: "34010000001190000001"
    faces: {enabled: true, legal_basis: "公安机关协查函 2026-01"}
    allow:
      camera.falling_object: [device, evidence, data.face_crop]
`
	if _, err := config.Parse("p.yaml", []byte(src)); err != nil {
		t.Fatal(err)
	}
}

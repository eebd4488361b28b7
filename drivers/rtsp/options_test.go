package rtsp_test

import (
	_ "embed"
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/drivers/rtsp"
	"github.com/lintel-edge/lintel/edge/config"
)

//go:embed sample.yaml
var sampleYAML []byte

func TestSampleConfig(t *testing.T) {
	c, err := config.Parse("sample.yaml", sampleYAML)
	if err != nil {
		t.Fatalf("sample.yaml: %v", err)
	}
	devs := c.DevicesFor("rtsp")
	if len(devs) != 2 || devs[0].Kind != "camera" || devs[1].Kind != "peephole" {
		t.Fatalf("devices %+v", devs)
	}
	t.Setenv("LINTEL_PEEPHOLE_PASSWORD", "Peep-Secret-1")
	u, tr, err := rtsp.DeviceURL(devs[1])
	if err != nil || tr != "tcp" || !strings.Contains(u, "lintel:Peep-Secret-1@") {
		t.Fatalf("DeviceURL = %q, %q, %v", config.RedactURL(u), tr, err)
	}
}

func TestOptionProblems(t *testing.T) {
	base := `gateway: {id: gw, compound: c, data_dir: /tmp/x}
devices:
  - id: cam
    kind: %KIND%
    driver: rtsp
    address: rtsp://u:Secret-Word-1@10.0.0.1/s
    profile: %PROFILE%
    options:
%OPTS%
`
	tests := []struct {
		name, kind, profile, opts string
		want                      []string
	}{
		{"bad values", "camera", "generic-falling-object", `      transport: quic
      read_timeout: 100ms
      pre_roll: 5m
      buffer_max: 1KiB
      clips: maybe
      floor_bands:
        - {floor: 3, y_min: 0.5, y_max: 0.2}`, []string{
			"test.yaml:9:7: devices[0].options.transport: \"quic\": want tcp, udp or auto",
			"devices[0].options.read_timeout: 100ms: want between 1s and 5m0s",
			"devices[0].options.pre_roll: 5m0s: want between 0s and 2m0s",
			"devices[0].options.buffer_max: 1KiB is too small",
			"devices[0].options.clips: \"maybe\": want on or off",
			"devices[0].options.floor_bands[0]: y_min 0.5, y_max 0.2",
		}},
		{"onvif", "camera", "generic-falling-object", `      onvif: maybe
      onvif_url: http://admin:Onvif-Word-2@10.0.0.1/onvif/device_service`, []string{
			`devices[0].options.onvif: "maybe": want auto or off`,
			`devices[0].options.onvif_url: "http://admin:REDACTED@10.0.0.1/onvif/device_service": no credentials here`,
		}},
		{"onvif_url scheme", "camera", "generic-falling-object", `      onvif_url: rtsp://10.0.0.1/onvif`, []string{
			`devices[0].options.onvif_url: "rtsp://10.0.0.1/onvif": want an http:// or https:// URL`,
		}},
		{"typo", "camera", "generic-falling-object", `      pre_rol: 5s`, []string{`unknown key "pre_rol" (did you mean "pre_roll"?)`}},
		{"profile for another kind", "peephole", "generic-falling-object", `      clips: "on"`, []string{`profile "generic-falling-object" is for [camera] devices, not peephole`}},
		{"unknown profile", "camera", "acme-x1", `      clips: "on"`, []string{`unknown profile "acme-x1"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			y := strings.NewReplacer("%KIND%", tt.kind, "%PROFILE%", tt.profile, "%OPTS%", tt.opts).Replace(base)
			_, err := config.Parse("test.yaml", []byte(y))
			if err == nil {
				t.Fatal("want problems")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "Secret-Word-1") || strings.Contains(err.Error(), "Onvif-Word-2") {
				t.Errorf("password in problems:\n%v", err)
			}
		})
	}
}

func TestShippedProfiles(t *testing.T) {
	c := config.New()
	names := c.ProfileNames("cameras")
	for _, want := range []string{"generic-falling-object", "generic-peephole"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("profile %s not shipped (have %v)", want, names)
		}
	}
	for _, n := range names {
		p, err := rtsp.LoadProfile(c, n)
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		if p.Name != n {
			t.Errorf("%s: name %q differs from the file name", n, p.Name)
		}
	}
}

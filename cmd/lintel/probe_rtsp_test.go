//go:build !no_rtsp

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
)

func TestProbeRTSPCommand(t *testing.T) {
	cam, err := fakecam.Start(fakecam.Options{User: "admin", Password: "Cmd-Pass-42"})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	var out, errb bytes.Buffer
	std := stdio{in: strings.NewReader(""), out: &out, err: &errb}
	cam.Trigger("tamper")
	code := runMain(context.Background(), []string{"probe", "rtsp", cam.URL(), "-duration", "1500ms", "-profile", "generic-falling-object"}, std)
	if code != exitOK {
		t.Fatalf("exit %d: %s%s", code, out.String(), errb.String())
	}
	for _, want := range []string{"H264", "ONVIF metadata", "320x240", "admin:REDACTED@"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String()+errb.String(), "Cmd-Pass-42") {
		t.Error("password printed")
	}

	// A configured device, with its password in a file, as JSON.
	dir := t.TempDir()
	pw := filepath.Join(dir, "cam.pass")
	os.WriteFile(pw, []byte("Cmd-Pass-42\n"), 0o600)
	cfg := filepath.Join(dir, "lintel.yaml")
	os.WriteFile(cfg, []byte(`gateway: {id: gw, compound: c, data_dir: `+dir+`}
devices:
  - id: cam-1
    kind: camera
    driver: rtsp
    address: rtsp://admin@`+cam.Addr()+`/stream1
    profile: generic-falling-object
    options: {password: "file:`+pw+`"}
`), 0o600)
	out.Reset()
	errb.Reset()
	code = runMain(context.Background(), []string{"probe", "rtsp", "-c", cfg, "-device", "cam-1", "-duration", "1s", "-json"}, std)
	var rep struct {
		Codec string
		Error string
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || code != exitOK || rep.Codec != "h264" {
		t.Fatalf("exit %d, %v: %s%s", code, err, out.String(), errb.String())
	}

	// Wrong password: exit 1, a plain reason, no password.
	out.Reset()
	errb.Reset()
	bad := strings.Replace(cam.URL(), "Cmd-Pass-42", "Bad-Pass-77", 1)
	code = runMain(context.Background(), []string{"probe", "rtsp", "-duration", "1s", bad}, std)
	if code != exitFailure || !strings.Contains(errb.String(), "401") || strings.Contains(out.String()+errb.String(), "Bad-Pass-77") {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errb.String())
	}
	// A password with unescaped '@', ':' and '/' makes the URL unparsable;
	// the parse error must not quote it (url.Error embeds the input).
	for _, u := range []string{"rtsp://installer:p@ss:w0rd/x@" + cam.Addr() + "/stream1", "rtsp://installer:p@ss:w0rd@[::1/x"} {
		out.Reset()
		errb.Reset()
		code = runMain(context.Background(), []string{"probe", "rtsp", "-duration", "1s", u}, std)
		for _, frag := range []string{"p@ss", "w0rd", "ss:w0"} {
			if strings.Contains(out.String()+errb.String(), frag) {
				t.Errorf("probe of a malformed URL prints %q (exit %d):\n%s%s", frag, code, out.String(), errb.String())
			}
		}
		if code != exitFailure || !strings.Contains(errb.String(), "percent-encode") {
			t.Errorf("malformed URL: exit %d:\n%s%s", code, out.String(), errb.String())
		}
	}
	// -json too.
	out.Reset()
	errb.Reset()
	runMain(context.Background(), []string{"probe", "rtsp", "-json", "rtsp://installer:p@ss:w0rd/x@" + cam.Addr() + "/s"}, std)
	if strings.Contains(out.String()+errb.String(), "w0rd") {
		t.Errorf("-json prints the password:\n%s%s", out.String(), errb.String())
	}
	if code := runMain(context.Background(), []string{"probe", "rtsp"}, std); code != exitUsage {
		t.Errorf("no URL: exit %d, want %d", code, exitUsage)
	}
}

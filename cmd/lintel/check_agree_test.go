package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	dataDirRE = regexp.MustCompile(`(data_dir:[ \t]*)("[^"]*"|[^\s,}#]+)`)
	listenRE  = regexp.MustCompile(`(listen:[ \t]*)("[^"]*"|[^\s,}#]+)`)
	envRE     = regexp.MustCompile(`env:([A-Za-z_][A-Za-z0-9_]*)`)
)

// localize copies a configuration into a fresh directory, pointing its
// data directory there and its status page at a free port: where it runs,
// not whether it is valid. Lines stay where they were, and the
// directories beside the file (profiles.dirs) are linked beside the copy.
//
// provisioned also gives it the machine it was written for: the files it
// names under /etc/lintel and /var/lib/lintel (secrets, a CA, the mTLS
// identity) exist in the copy's directory, and its env: variables are set.
func localize(t *testing.T, file string, provisioned bool) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b = dataDirRE.ReplaceAll(b, []byte("${1}"+dir))
	b = listenRE.ReplaceAll(b, []byte("${1}127.0.0.1:0"))
	if provisioned {
		b = bytes.ReplaceAll(b, []byte("/etc/lintel/"), []byte(dir+"/etc/"))
		b = bytes.ReplaceAll(b, []byte("/var/lib/lintel/"), []byte(dir+"/var/"))
		tlsConf, certPEM := selfSignedTLS(t, time.Now().Add(24*time.Hour))
		der, err := x509.MarshalECPrivateKey(tlsConf.Certificates[0].PrivateKey.(*ecdsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
		named := regexp.MustCompile(regexp.QuoteMeta(dir) + `/(etc|var)/[^\s,}"#]+`)
		var paths []string
		for _, l := range strings.Split(string(b), "\n") {
			if i := strings.Index(l, "#"); i >= 0 && (i == 0 || l[i-1] == ' ') {
				l = l[:i] // a comment names paths for the reader
			}
			paths = append(paths, named.FindAllString(l, -1)...)
		}
		for _, p := range paths {
			content := []byte("secret-for-the-test\n")
			switch filepath.Ext(p) {
			case ".pem", ".crt":
				content = certPEM
			case ".key":
				content = keyPEM
			}
			os.MkdirAll(filepath.Dir(p), 0o700)
			if err := os.WriteFile(p, content, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range envRE.FindAllSubmatch(b, -1) {
			t.Setenv(string(m[1]), "secret-for-the-test")
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(file))
	for _, e := range ents {
		if e.IsDir() {
			abs, _ := filepath.Abs(filepath.Join(filepath.Dir(file), e.Name()))
			os.Symlink(abs, filepath.Join(dir, e.Name()))
		}
	}
	out := filepath.Join(dir, filepath.Base(file))
	if err := os.WriteFile(out, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// runUntilReady runs `lintel run -c file` in this process the way systemd
// does (NOTIFY_SOCKET set) and stops it once it reported READY=1. It
// returns the exit code, stderr and whether the daemon got ready.
func runUntilReady(t *testing.T, file string) (code int, stderr string, ready bool) {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "sdn")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"run", "-c", file}, stdio{strings.NewReader(""), &bytes.Buffer{}, &errb})
	}()
	readyc := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				return
			}
			if strings.HasPrefix(string(buf[:n]), "READY=1") {
				close(readyc)
				return
			}
		}
	}()
	select {
	case code = <-done:
		return code, errb.String(), false
	case <-readyc:
		ready = true
	case <-time.After(60 * time.Second):
		t.Fatalf("lintel run -c %s: neither ready nor stopped after 60s\n%s", file, errb.String())
	}
	cancel()
	select {
	case code = <-done:
	case <-time.After(40 * time.Second):
		t.Fatalf("lintel run -c %s: did not stop within 40s\n%s", file, errb.String())
	}
	return code, errb.String(), ready
}

// TestCheckRunAgree is issue 16's "`lintel check` and `lintel run` agree
// on every file in configs/": for every shipped configuration (configs/
// and its profile folders, the drivers' samples, the packaged default)
// and every broken one of testdata/check, check and the real daemon both
// accept it, or both reject it with exit 78 and the same message. An
// accepted file must get the daemon to READY=1; it is stopped there.
//
// Each file is tried as it is (on a machine without its secrets: the
// example's camera passwords, CA and mTLS identity, the demo's cameras'
// password) and, for the shipped full configurations, provisioned, where
// both must accept it.
func TestCheckRunAgree(t *testing.T) {
	full := func(pat string) []string { m, _ := filepath.Glob(pat); return m }
	shipped := append(append(full("../../configs/*.yaml"), full("../../drivers/*/sample.yaml")...), "../../packaging/lintel.yaml")
	other := append(full("../../configs/*/*.yaml"), full("testdata/check/*.yaml")...)
	if len(shipped) < 6 || len(other) < 10 {
		t.Fatalf("files: %v %v", shipped, other)
	}
	type tc struct {
		name, file  string
		provisioned bool // and then both must accept it
	}
	var cases []tc
	for _, f := range append(append([]string(nil), shipped...), other...) {
		cases = append(cases, tc{name: f, file: f})
	}
	for _, f := range shipped {
		cases = append(cases, tc{name: f + " provisioned", file: f, provisioned: true})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			os.Unsetenv("LINTEL_DEMO_CAMERA_PASSWORD")
			os.Unsetenv("LINTEL_PEEPHOLE_PASSWORD")
			file := localize(t, c.file, c.provisioned)
			checkCode, checkOut, checkErr := runCLI(t, "check", "-c", file)
			runCode, runErr, ready := runUntilReady(t, file)
			switch {
			case checkCode == exitOK:
				if !ready || runCode != exitOK {
					t.Fatalf("check accepts it, run does not (exit %d, ready %v)\ncheck: %s\nrun: %s", runCode, ready, checkOut, runErr)
				}
			case checkCode != exitConfig:
				t.Fatalf("check: exit %d, want 0 or 78\n%s", checkCode, checkErr)
			case ready || runCode != exitConfig:
				t.Fatalf("check rejects it (78), run: exit %d, ready %v\ncheck: %s\nrun: %s", runCode, ready, checkErr, runErr)
			default:
				cm := strings.TrimPrefix(checkErr, "lintel check: ")
				rm := strings.TrimPrefix(runErr, "lintel run: ")
				if cm != rm || checkOut != "" {
					t.Fatalf("check and run reject it with different messages\n--- check\n%s--- run\n%s", checkErr, runErr)
				}
			}
			if c.provisioned && checkCode != exitOK {
				t.Errorf("provisioned, it should be accepted: exit %d\n%s", checkCode, checkErr)
			}
		})
	}
}

// TestCheckDemoNeedsItsSimulators: configs/demo.yaml without its cameras'
// password is refused by check as by run, with how to run it instead.
func TestCheckDemoNeedsItsSimulators(t *testing.T) {
	os.Unsetenv("LINTEL_DEMO_CAMERA_PASSWORD")
	code, out, errOut := runCLI(t, "check", "-c", "../../configs/demo.yaml")
	if code != exitConfig || out != "" {
		t.Fatalf("exit %d, want 78\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		`device "cam-b3-south": camera password: secret: environment variable LINTEL_DEMO_CAMERA_PASSWORD is not set`,
		`device "peep-3-1-301"`, "`lintel demo`", "make demo", "set LINTEL_DEMO_CAMERA_PASSWORD",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// Any other variable: how to set it for the service.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cam.yaml")
	os.WriteFile(cfg, []byte(`gateway: {id: gw-1, compound: c-1, data_dir: `+dir+`}
devices:
  - {id: cam-1, kind: camera, driver: rtsp, address: rtsp://admin@10.0.0.9/s, profile: generic-falling-object,
     options: {password: "env:LINTEL_TEST_UNSET_PW"}}
`), 0o600)
	os.Unsetenv("LINTEL_TEST_UNSET_PW")
	code, _, errOut = runCLI(t, "check", "-c", cfg)
	if code != exitConfig || !strings.Contains(errOut, "LINTEL_TEST_UNSET_PW is not set") ||
		!strings.Contains(errOut, "Environment=LINTEL_TEST_UNSET_PW=") || strings.Contains(errOut, "lintel demo") {
		t.Errorf("exit %d\n%s", code, errOut)
	}
	t.Setenv("LINTEL_TEST_UNSET_PW", "set-now")
	if code, out, errOut := runCLI(t, "check", "-c", cfg); code != exitOK {
		t.Errorf("with the variable set: exit %d\n%s%s", code, out, errOut)
	}
}

// TestNoKnockOnAfterUnknownKind: a misspelled kind is one problem, with
// the kind it likely means, and none of the checks that need the kind.
func TestNoKnockOnAfterUnknownKind(t *testing.T) {
	code, _, errOut := runCLI(t, "check", "-c", "testdata/check/kind-typo.yaml")
	if code != exitConfig {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	if !strings.Contains(errOut, `devices[1].kind: unknown kind "dor" (did you mean "door"?)`) {
		t.Errorf("no did-you-mean for dor:\n%s", errOut)
	}
	if !strings.Contains(errOut, "3 个配置问题") {
		t.Errorf("want exactly the 3 kind problems:\n%s", errOut)
	}
	for _, bad := range []string{"address", "options", "profile", "rules"} {
		if strings.Contains(errOut, "]."+bad) || strings.Contains(errOut, ": "+bad+".") {
			t.Errorf("a knock-on problem about %s:\n%s", bad, errOut)
		}
	}
}

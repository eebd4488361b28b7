package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLIErrorsSayNextStep runs subcommands with bad input and checks the
// exit code and that stderr names what to do next: a command to run, a
// thing to check or the flag to fix.
func TestCLIErrorsSayNextStep(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.yaml")
	good := filepath.Join(dir, "gw.yaml")
	os.WriteFile(good, []byte("gateway: {id: gw-7, compound: c-7, data_dir: "+dir+"}\n"), 0o600)
	badEvents := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(badEvents, []byte("{not json\n"), 0o600)
	closed := closedPort(t)

	tests := []cliErrorCase{
		{"replay no events", []string{"replay"}, exitUsage, []string{"--events", "lintel replay -h"}},
		{"replay missing config", []string{"replay", "-c", missing, "--events", badEvents}, exitConfig, []string{"下一步 next", "检查 -c", "-c"}},
		{"replay broken config", []string{"replay", "-c", "testdata/check/typo.yaml", "--events", badEvents}, exitConfig, []string{"file:line:col", "lintel check -c testdata/check/typo.yaml"}},
		{"replay no elders", []string{"replay", "-c", good, "--events", badEvents}, exitConfig, []string{"rules.elders", "下一步 next"}},
		{"replay missing events", []string{"replay", "-c", "../../configs/demo.yaml", "--events", filepath.Join(dir, "none.jsonl")}, exitFailure, []string{"--events", "检查"}},
		{"replay bad line", []string{"replay", "-c", "../../configs/demo.yaml", "--events", badEvents}, exitFailure, []string{"bad.jsonl:1", "fix or remove that line"}},
		{"replay bad truth", []string{"replay", "-c", "../../configs/demo.yaml", "--events", os.DevNull, "--truth", badEvents}, exitFailure, []string{"lintel sim elders"}},
		{"receive no broker", []string{"receive"}, exitUsage, []string{"-broker", "lintel receive -h"}},
		{"receive password file", []string{"receive", "-broker", "tcp://127.0.0.1:" + closed, "-password-file", filepath.Join(dir, "nope")}, exitFailure, []string{"-password-file"}},
		{"receive bad ca", []string{"receive", "-broker", "mqtts://127.0.0.1:" + closed, "-ca-file", filepath.Join(dir, "nope.pem")}, exitFailure, []string{"-ca-file"}},
		{"receive bad out", []string{"receive", "-broker", "tcp://127.0.0.1:" + closed, "-out", filepath.Join(dir, "no", "such", "dir.jsonl")}, exitFailure, []string{"-out"}},
		{"user list missing config", []string{"user", "list", "-c", missing}, exitConfig, []string{"检查 -c"}},
		{"user passwd unknown", []string{"user", "passwd", "-accounts", filepath.Join(dir, "accounts.yaml"), "nobody"}, exitFailure, []string{"lintel user list"}},
		{"user add no name", []string{"user", "add", "-accounts", filepath.Join(dir, "accounts.yaml")}, exitUsage, []string{"lintel user -h"}},
		{"provision missing config", []string{"provision", "-c", missing}, exitConfig, []string{"检查 -c"}},
		{"provision unwritable dir", []string{"provision", "-c", good, "--dir", "/proc/lintel-identity", "--owner", ""}, exitFailure, []string{"--dir", "sudo lintel provision"}},
		{"sim elders no out", []string{"sim", "elders"}, exitUsage, []string{"--out", "lintel sim elders -h"}},
		{"sim modbus bad listen", []string{"sim", "modbus", "-tcp", "", "-rtuovertcp", "256.0.0.1:1"}, exitFailure, []string{"-rtuovertcp 127.0.0.1:0"}},
		{"probe modbus no address", []string{"probe", "modbus"}, exitUsage, []string{"-a rtu://", "-h"}},
		{"probe modbus unreachable", []string{"probe", "modbus", "-a", "tcp://127.0.0.1:" + closed, "-units", "1-2"}, exitFailure, []string{"下一步 next", "check the address"}},
		{"probe modbus unknown profile", []string{"probe", "modbus", "-a", "tcp://127.0.0.1:" + closed, "-unit", "1", "-profile", "no-such-profile"}, exitConfig, []string{"-profile", "-profiles"}},
	}
	for _, mk := range moreCLIErrorCases {
		tests = append(tests, mk(dir, missing, good)...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var out, errb bytes.Buffer
			code := runMain(ctx, tt.args, stdio{strings.NewReader(""), &out, &errb})
			if code != tt.code {
				t.Fatalf("lintel %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tt.args, " "), code, tt.code, out.String(), errb.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("lintel %s: stderr lacks %q:\n%s", strings.Join(tt.args, " "), w, errb.String())
				}
			}
		})
	}
}

type cliErrorCase struct {
	name string
	args []string
	code int
	want []string // each must appear in stderr
}

// moreCLIErrorCases adds cases from files built only with some drivers
// (serial: !no_serial); each gets a temp dir, a missing and a good config.
var moreCLIErrorCases []func(dir, missing, good string) []cliErrorCase

func TestWithNextStepOnce(t *testing.T) {
	err := withNextStep(configErr(fmt.Errorf("boom")), "do A")
	err = withNextStep(err, "do B")
	if got := err.Error(); got != "boom\n下一步 next: do A" {
		t.Errorf("error = %q", got)
	}
	if code := exitCodeOf(err); code != exitConfig {
		t.Errorf("exit code %d, want %d", code, exitConfig)
	}
}

func exitCodeOf(err error) int {
	if ee, ok := err.(*exitError); ok {
		return ee.code
	}
	return exitFailure
}

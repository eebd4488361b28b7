package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/store"
)

var update = flag.Bool("update", false, "rewrite golden files")

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runMain(context.Background(), args, stdio{strings.NewReader(""), &out, &errb})
	return code, out.String(), errb.String()
}

func TestCheckShippedConfigs(t *testing.T) {
	files, _ := filepath.Glob("../../configs/*.yaml")
	samples, _ := filepath.Glob("../../drivers/*/sample.yaml")
	files = append(files, samples...)
	if len(files) == 0 {
		t.Fatal("no shipped configs found")
	}
	// The files as shipped, on a machine without the secrets and
	// certificates they name (TestCheckRunAgree gives them those).
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			code, out, errOut := runCLI(t, "check", "--file-only", "-c", f)
			if code != exitOK {
				t.Fatalf("exit %d\n%s%s", code, out, errOut)
			}
			if !strings.Contains(out, "configuration OK") {
				t.Errorf("stdout: %q", out)
			}
		})
	}
}

// TestCheckBrokenGolden pins what an installer sees for broken files: every
// problem, with file:line:col, and exit code 78.
func TestCheckBrokenGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/check/*.yaml")
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, out, errOut := runCLI(t, "check", "-c", f)
			if code != exitConfig {
				t.Fatalf("exit %d, want 78\n%s%s", code, out, errOut)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(errOut), 0o644)
			}
			want, _ := os.ReadFile(golden)
			if errOut != string(want) {
				t.Errorf("stderr differs\n--- got\n%s--- want\n%s", errOut, want)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{nil, exitUsage},
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"check", "--bogus"}, exitUsage},
		{[]string{"check", "-c", "testdata/none.yaml"}, exitConfig},
		{[]string{"run", "-c", "testdata/check/typo.yaml"}, exitConfig},
		{[]string{"version"}, exitOK},
		{[]string{"help"}, exitOK},
		{[]string{"check", "-h"}, exitOK},
		{[]string{"sim"}, exitUsage},
		{[]string{"probe", "nonsense"}, exitUsage},
	}
	for _, tt := range tests {
		if code, out, errOut := runCLI(t, tt.args...); code != tt.want {
			t.Errorf("lintel %v: exit %d, want %d\n%s%s", tt.args, code, tt.want, out, errOut)
		}
	}
}

func TestCheckPrintRedacts(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("gateway: {id: gw-1, compound: c-1, data_dir: "+dir+"}\n"), 0o600)
	code, out, errOut := runCLI(t, "check", "-c", cfg, "--print")
	if code != 0 || !strings.Contains(out, "max_bytes: 256MiB") || !strings.Contains(out, "flush_window: 10ms") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
}

// buildLintel compiles the real binary once per test run.
var buildOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lintel-bin")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lintel")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", errorString(err.Error() + "\n" + string(out))
	}
	return bin, nil
})

type errorString string

func (e errorString) Error() string { return string(e) }

func lintelBinary(t *testing.T) string {
	t.Helper()
	bin, err := buildOnce()
	if err != nil {
		t.Fatalf("build lintel: %v", err)
	}
	return bin
}

// TestDaemonGracefulStop runs the real daemon, stops it with SIGTERM and
// checks the ordered shutdown: exit 0, the log flushed (gateway.stopped is
// durable), bbolt closed cleanly (the file reopens and checks).
func TestDaemonGracefulStop(t *testing.T) {
	bin := lintelBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lintel.yaml")
	os.WriteFile(cfg, []byte("gateway: {id: gw-t, compound: c-t, data_dir: "+dir+"}\nstatus: {listen: \"127.0.0.1:0\"}\n"), 0o600)

	for round := 1; round <= 2; round++ {
		cmd := exec.Command(bin, "run", "-c", cfg)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 100)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		waitLine(t, lines, `"msg":"gateway running"`)
		start := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		var rest []string
		for l := range lines {
			rest = append(rest, l)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("round %d: exit: %v\n%s", round, err, strings.Join(rest, "\n"))
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("shutdown took %v", d)
		}
		all := strings.Join(rest, "\n")
		for _, want := range []string{`"msg":"shutting down"`, `"msg":"stopped cleanly"`, `"msg":"event log closed"`} {
			if !strings.Contains(all, want) {
				t.Errorf("round %d: log lacks %s:\n%s", round, want, all)
			}
		}
	}
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "events.db"), Gateway: "gw-t", Compound: "c-t", Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
	evs, err := st.ReadRange(0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, string(e.Kind))
	}
	want := "gateway.started gateway.stopped gateway.started gateway.stopped"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("events = %s, want %s", got, want)
	}
	if st.BootCount() != 3 {
		t.Errorf("boot count %d, want 3", st.BootCount())
	}
	var d map[string]any
	json.Unmarshal(evs[2].Data, &d)
	if d["boot"] != float64(2) {
		t.Errorf("second start recorded boot %v", d["boot"])
	}
	_ = event.GatewayStarted
}

func waitLine(t *testing.T, lines <-chan string, substr string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	var seen []string
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("process ended before %q:\n%s", substr, strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if strings.Contains(l, substr) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within 20s:\n%s", substr, strings.Join(seen, "\n"))
		}
	}
}

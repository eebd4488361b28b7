package police_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/sync/police/viidsim"
)

// TestAgainstLintelSimVIID runs the real `lintel sim viid` HTTP server as
// a process and delivers an incident to it through a digest
// registration, with one record refused and retried.
func TestAgainstLintelSimVIID(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/lintel")
	}
	bin := filepath.Join(t.TempDir(), "lintel")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	build := exec.Command(goBin, "build", "-o", bin, "../../cmd/lintel")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "sim", "viid", "-listen", "127.0.0.1:0", "-user", "lintel", "-password", "s3cret", "-reject", "1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base := regexp.MustCompile(`http://\S+`).FindString(line)
	if base == "" {
		t.Fatalf("no address in %q", line)
	}

	f := newFixture(t)
	evs := f.falling(2)
	f.append(evs...)
	s := f.sink(base, nil)
	stop := run(t, s)
	waitFor(t, "delivery", 30*time.Second, func() bool { return f.st.Cursor("police") == f.st.LastSeq() })
	stop()

	resp, err := http.Get(base + "/sim/received")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got viidsim.Received
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Challenges < 1 || got.Registers < 1 || got.UnRegisters != 1 || len(got.Rejected) != 1 {
		t.Fatalf("challenges %d registers %d unregisters %d rejected %v", got.Challenges, got.Registers, got.UnRegisters, got.Rejected)
	}
	if got.Attempts[got.Rejected[0]] != 2 {
		t.Fatalf("rejected record written %d times", got.Attempts[got.Rejected[0]])
	}
	want := map[string]bool{}
	for _, e := range evs {
		for _, ev := range e.Evidence {
			want[ev.SHA256] = true
		}
	}
	for id, sum := range got.DataSHA256 {
		if !want[sum] {
			t.Fatalf("%s: uploaded bytes match no evidence (sha256 %s)", id, sum)
		}
		delete(want, sum)
	}
	if len(want) != 0 {
		t.Fatalf("%d evidence files never arrived", len(want))
	}
	_ = event.EvidenceClip
}

package main

// Tests of packaging/: the installed default config passes `lintel check`,
// the systemd unit keeps its hardening and is accepted by systemd-analyze,
// the nfpm spec ships what the issue lists, the udev rules parse, the
// maintainer scripts are valid sh. The .deb itself is built and installed
// by packaging/ci-package.sh.

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const pkgDir = "../../packaging"

func TestPackagingDefaultConfigChecks(t *testing.T) {
	f := filepath.Join(pkgDir, "lintel.yaml")
	code, out, errOut := runCLI(t, "check", "-c", f)
	if code != exitOK {
		t.Fatalf("lintel check -c %s: exit %d\n%s%s", f, code, out, errOut)
	}
	cfg, err := loadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	// The placeholders are what postinst and `lintel provision` recognise.
	if !isPlaceholder(cfg.Gateway.ID) || !isPlaceholder(cfg.Gateway.Compound) {
		t.Errorf("installed ids %q/%q are not the -unset placeholders", cfg.Gateway.ID, cfg.Gateway.Compound)
	}
	if cfg.Gateway.DataDir != "/var/lib/lintel" {
		t.Errorf("data_dir %q: the unit only lets the daemon write /var/lib/lintel", cfg.Gateway.DataDir)
	}
	// postinst's grep must see the same placeholder lines.
	b, _ := os.ReadFile(f)
	re := regexp.MustCompile(`(?m)^[[:space:]]*(id|compound):[[:space:]]*"?[a-z0-9._-]*-unset"?[[:space:]]*(#.*)?$`)
	if n := len(re.FindAll(b, -1)); n != 2 {
		t.Errorf("postinst's placeholder pattern matches %d lines, want 2", n)
	}
}

// unitFile is a parsed systemd unit: section -> key -> values in order.
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	sec := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			sec = strings.Trim(line, "[]")
			u[sec] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || sec == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, n, line)
			}
			if strings.Contains(v, " #") {
				t.Errorf("%s:%d: systemd has no trailing comments: %q", path, n, line)
			}
			u[sec][strings.TrimSpace(k)] = append(u[sec][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unitFile) get(sec, key string) string {
	v := u[sec][key]
	if len(v) == 0 {
		return "<unset>"
	}
	return v[len(v)-1]
}

func TestPackagingUnitHardening(t *testing.T) {
	u := parseUnit(t, filepath.Join(pkgDir, "lintel.service"))
	want := map[string]string{
		"Type": "notify", "NotifyAccess": "main", "WatchdogSec": "30s",
		"ExecStart": "/usr/bin/lintel run -c /etc/lintel/lintel.yaml",
		"Restart":   "on-failure", "RestartPreventExitStatus": fmt.Sprint(exitConfig),
		"User": "lintel", "Group": "lintel", "SupplementaryGroups": "dialout",
		"StateDirectory": "lintel", "UMask": "0027",
		"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "no", "DevicePolicy": "closed",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
		"CapabilityBoundingSet":   "", "AmbientCapabilities": "",
		"ProtectKernelTunables": "yes", "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes",
		"ProtectControlGroups": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes",
		"MemoryDenyWriteExecute": "yes", "RestrictRealtime": "yes",
		"SystemCallFilter": "@system-service", "SystemCallArchitectures": "native",
	}
	for k, v := range want {
		if got := u.get("Service", k); got != v {
			t.Errorf("[Service] %s=%s, want %s", k, got, v)
		}
	}
	for _, d := range []string{"char-ttyUSB rw", "char-ttyACM rw", "char-ttyS rw", "char-usb_device rw"} {
		if !slices.Contains(u["Service"]["DeviceAllow"], d) {
			t.Errorf("DeviceAllow=%s missing (have %v)", d, u["Service"]["DeviceAllow"])
		}
	}
	if u.get("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%s", u.get("Install", "WantedBy"))
	}
	// systemd kills what outlives TimeoutStopSec: it must cover serve's
	// budgets, the final gateway.stopped record (2 s), and a margin.
	stop, err := time.ParseDuration(u.get("Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if need := driverStopBudget + sinkDrainBudget + serviceBudget + 2*time.Second + 10*time.Second; stop < need {
		t.Errorf("TimeoutStopSec=%s, want at least %s (shutdown budgets + margin)", stop, need)
	}
	// The daemon pings at half the interval (wire_sdnotify.go); the store
	// probe's deadline must not be confused with it.
	if wd, _ := time.ParseDuration(u.get("Service", "WatchdogSec")); wd < 10*time.Second {
		t.Errorf("WatchdogSec=%s is too short for a loaded ARM box", wd)
	}
}

func TestPackagingSystemdAnalyzeVerify(t *testing.T) {
	// Debian ships systemd-analyze in the systemd package, which a CI
	// container may lack; packaging/ci-package.sh installs it and verifies
	// the installed unit in any case.
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (apt-get install systemd); ci-package.sh verifies the unit")
	}
	bin := lintelBinary(t)
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(pkgDir, "lintel.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(dir, "lintel.service")
	os.WriteFile(unit, bytes.ReplaceAll(b, []byte("ExecStart=/usr/bin/lintel "), []byte("ExecStart="+bin+" ")), 0o644)
	out, err := exec.Command(sa, "verify", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Warnings about the unit itself (unknown keys, bad values) come with
	// its file name; warnings about the host's other units are not ours.
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, unit) {
			t.Errorf("systemd-analyze: %s", l)
		}
	}
}

func TestPackagingNfpmSpec(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(pkgDir, "nfpm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Name     string `yaml:"name"`
		Arch     string `yaml:"arch"`
		Contents []struct {
			Src      string `yaml:"src"`
			Dst      string `yaml:"dst"`
			Type     string `yaml:"type"`
			Expand   bool   `yaml:"expand"`
			FileInfo struct {
				Mode  int    `yaml:"mode"`
				Owner string `yaml:"owner"`
				Group string `yaml:"group"`
			} `yaml:"file_info"`
		} `yaml:"contents"`
		Scripts map[string]string `yaml:"scripts"`
	}
	if err := yaml.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	type entry struct {
		typ, owner, group string
		mode              int
	}
	got := map[string]entry{}
	for _, c := range spec.Contents {
		got[c.Dst] = entry{c.Type, c.FileInfo.Owner, c.FileInfo.Group, c.FileInfo.Mode}
		if c.Src != "" && !strings.Contains(c.Src, "${") {
			if _, err := os.Stat(filepath.Join("../..", c.Src)); err != nil {
				t.Errorf("%s: source %s: %v", c.Dst, c.Src, err)
			}
		}
		if strings.Contains(c.Src, "${") && !c.Expand {
			t.Errorf("%s: src %s uses a variable but expand is off", c.Dst, c.Src)
		}
	}
	for dst, w := range map[string]entry{
		"/usr/bin/lintel":                          {"", "", "", 0o755},
		"/lib/systemd/system/lintel.service":       {"", "", "", 0o644},
		"/lib/udev/rules.d/99-lintel-serial.rules": {"", "", "", 0o644},
		"/etc/lintel/lintel.yaml":                  {"config|noreplace", "root", "lintel", 0o640},
		"/var/lib/lintel":                          {"dir", "lintel", "lintel", 0o750},
	} {
		if g, ok := got[dst]; !ok {
			t.Errorf("package lacks %s", dst)
		} else if g != w {
			t.Errorf("%s: %+v, want %+v", dst, g, w)
		}
	}
	// The docs an installer is pointed to on the box (docs/install.md):
	// the annotated example and every driver's README.
	docs := map[string]string{"/usr/share/doc/lintel/examples/lintel.example.yaml": "configs/lintel.example.yaml"}
	readmes, _ := filepath.Glob("../../drivers/*/README.md")
	if len(readmes) < 3 {
		t.Fatalf("driver READMEs: %v", readmes)
	}
	for _, r := range readmes {
		name := filepath.Base(filepath.Dir(r))
		docs["/usr/share/doc/lintel/drivers/"+name+".md"] = "drivers/" + name + "/README.md"
	}
	src := map[string]string{}
	for _, c := range spec.Contents {
		src[c.Dst] = c.Src
	}
	for dst, want := range docs {
		if g, ok := got[dst]; !ok || src[dst] != want {
			t.Errorf("package lacks %s (from %s); has src %q", dst, want, src[dst])
		} else if g != (entry{mode: 0o644}) {
			t.Errorf("%s: %+v, want a plain 0644 file", dst, g)
		}
	}
	// docs/install.md and the package agree on what is under
	// /usr/share/doc/lintel: every file it names is shipped, and it names
	// every file shipped there.
	guide, err := os.ReadFile("../../docs/install.md")
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile(`/usr/share/doc/lintel/[A-Za-z0-9._/-]*\.[a-z]+\b`).FindAllString(string(guide), -1) {
		named[m] = true
		if _, ok := got[m]; !ok {
			t.Errorf("docs/install.md names %s, which the package does not ship", m)
		}
	}
	for dst := range got {
		if strings.HasPrefix(dst, "/usr/share/doc/lintel/") && dst != "/usr/share/doc/lintel/copyright" && !named[dst] {
			t.Errorf("the package ships %s, which docs/install.md does not name", dst)
		}
	}
	for _, k := range []string{"postinstall", "preremove", "postremove"} {
		p := spec.Scripts[k]
		st, err := os.Stat(filepath.Join("../..", p))
		if err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("script %s=%q: missing or not executable (%v)", k, p, err)
		}
	}
}

// debVersionRE is what packaging/version.sh prints: a release, a build
// after one, or a build before the first.
var debVersionRE = regexp.MustCompile(`^(\d+\.\d+\.\d+(~[0-9A-Za-z.]+)?(\+git\d{8}\.\d{6}\.[0-9a-f]{12})?|0\.0\.0~git\d{8}\.\d{6}\.[0-9a-f]{12})(\+dirty)?$`)

// TestPackagingVersionSorts: package versions sort in build order, so an
// upgrade is never taken for a downgrade (a bare commit hash did not sort:
// issue 16). A scratch repository gets commits one second apart, release
// tags and a pre-release tag; dpkg --compare-versions (where dpkg exists)
// must see each build newer than the one before.
func TestPackagingVersionSorts(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	script, _ := filepath.Abs(filepath.Join(pkgDir, "version.sh"))
	repo := t.TempDir()
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"}, args...)...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_DATE="+when.Format(time.RFC3339), "GIT_COMMITTER_DATE="+when.Format(time.RFC3339))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	commit := func() {
		when = when.Add(time.Second)
		os.WriteFile(filepath.Join(repo, "f"), []byte(when.String()), 0o644)
		git("add", "f")
		git("commit", "-q", "-m", when.String())
	}
	version := func() string {
		t.Helper()
		out, err := exec.Command("sh", script, repo).Output()
		if err != nil {
			t.Fatalf("version.sh: %v", err)
		}
		v := strings.TrimSpace(string(out))
		if !debVersionRE.MatchString(v) {
			t.Fatalf("version %q has not the form 0.0.0~gitYYYYMMDD.HHMMSS.<hash>, X.Y.Z or X.Y.Z+git…", v)
		}
		return v
	}
	git("init", "-q")
	var builds []string
	for range 6 {
		commit()
		builds = append(builds, version())
	}
	if want := "0.0.0~git20260102.030411."; !strings.HasPrefix(builds[5], want) {
		t.Errorf("untagged build %s, want %s<hash> (the commit's UTC date)", builds[5], want)
	}
	git("tag", "v0.1.0")
	builds = append(builds, version())
	if builds[len(builds)-1] != "0.1.0" {
		t.Errorf("tagged HEAD: %s, want 0.1.0", builds[len(builds)-1])
	}
	commit()
	builds = append(builds, version())
	commit()
	git("tag", "v0.2.0-rc1")
	builds = append(builds, version())
	if builds[len(builds)-1] != "0.2.0~rc1" {
		t.Errorf("pre-release tag: %s, want 0.2.0~rc1", builds[len(builds)-1])
	}
	commit()
	builds = append(builds, version())
	commit()
	git("tag", "v0.2.0")
	builds = append(builds, version())
	os.WriteFile(filepath.Join(repo, "f"), []byte("edited"), 0o644)
	builds = append(builds, version())
	if !strings.HasSuffix(builds[len(builds)-1], "+dirty") {
		t.Errorf("uncommitted changes: %s, want +dirty", builds[len(builds)-1])
	}
	t.Logf("builds: %v", builds)

	// This tree's own version has the same form.
	version2, err := exec.Command("sh", script).Output()
	if err != nil || !debVersionRE.MatchString(strings.TrimSpace(string(version2))) {
		t.Errorf("this repository's version %q (%v)", version2, err)
	}
	// make package uses it.
	mk, _ := os.ReadFile(filepath.Join(pkgDir, "package.mk"))
	if !strings.Contains(string(mk), "PKG_VERSION := $(shell packaging/version.sh)") {
		t.Error("package.mk does not take PKG_VERSION from packaging/version.sh")
	}

	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("dpkg not installed: the order is not checked")
	}
	for i := 1; i < len(builds); i++ {
		if out, err := exec.Command(dpkg, "--compare-versions", builds[i], "gt", builds[i-1]).CombinedOutput(); err != nil {
			t.Errorf("dpkg: %s is not newer than %s (%v %s)", builds[i], builds[i-1], err, out)
		}
	}
}

func TestPackagingScriptsParse(t *testing.T) {
	for _, s := range []string{"postinst", "prerm", "postrm", "ci-package.sh", "version.sh"} {
		sh := "sh"
		if strings.HasSuffix(s, ".sh") {
			sh = "bash"
		}
		if out, err := exec.Command(sh, "-n", filepath.Join(pkgDir, s)).CombinedOutput(); err != nil {
			t.Errorf("%s -n %s: %v\n%s", sh, s, err, out)
		}
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		args := []string{"-S", "warning"}
		for _, s := range []string{"postinst", "prerm", "postrm", "ci-package.sh", "version.sh"} {
			args = append(args, filepath.Join(pkgDir, s))
		}
		if out, err := exec.Command(sc, args...).CombinedOutput(); err != nil {
			t.Errorf("shellcheck: %v\n%s", err, out)
		}
	}
}

// udevKey is one KEY{attr}OP"value" token of a rules line.
var udevKey = regexp.MustCompile(`^([A-Z_]+)(\{[^}]+\})?(==|!=|\+=|-=|:=|=)"([^"]*)"$`)

var udevKeys = map[string]bool{
	"ACTION": true, "SUBSYSTEM": true, "SUBSYSTEMS": true, "KERNEL": true, "KERNELS": true,
	"ATTRS": true, "ATTR": true, "ENV": true, "SYMLINK": true, "GROUP": true, "MODE": true,
	"IMPORT": true, "GOTO": true, "LABEL": true,
}

func TestPackagingUdevRules(t *testing.T) {
	f, err := os.Open(filepath.Join(pkgDir, "99-lintel-serial.rules"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vendors := map[string]string{"1a86": "ch340", "10c4": "cp210x", "0403": "ftdi", "067b": "pl2303"}
	labels, gotos := map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		for _, tok := range strings.Split(line, ", ") {
			m := udevKey.FindStringSubmatch(strings.TrimSpace(tok))
			if m == nil || !udevKeys[m[1]] {
				t.Errorf("line %d: bad token %q", n, tok)
				continue
			}
			switch m[1] {
			case "ATTRS":
				if chip, ok := vendors[m[4]]; ok && strings.Contains(line, `"`+chip+`"`) {
					delete(vendors, m[4])
				}
			case "LABEL":
				labels[m[4]] = true
			case "GOTO":
				gotos[m[4]] = true
			case "SYMLINK":
				if !strings.HasPrefix(m[4], "lintel/") {
					t.Errorf("line %d: symlink %q outside /dev/lintel/", n, m[4])
				}
			}
		}
	}
	if len(vendors) > 0 {
		t.Errorf("no rule names the adapters with vendor ids %v", vendors)
	}
	for g := range gotos {
		if !labels[g] {
			t.Errorf("GOTO %q has no LABEL", g)
		}
	}
}

// TestDaemonSystemdNotify runs the real daemon the way systemd does
// (NOTIFY_SOCKET, WATCHDOG_USEC) and checks READY=1, the watchdog pings
// and STOPPING=1 on SIGTERM.
func TestDaemonSystemdNotify(t *testing.T) {
	bin := lintelBinary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lintel.yaml")
	os.WriteFile(cfg, []byte("gateway: {id: gw-sd, compound: c-sd, data_dir: "+dir+"}\n"), 0o600)

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
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	wait := func(prefix string) string {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case m := <-msgs:
				if strings.HasPrefix(m, prefix) {
					return m
				}
			case <-deadline:
				t.Fatalf("no %q from the daemon", prefix)
			}
		}
	}

	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	ready := wait("READY=1")
	if !strings.Contains(ready, "STATUS=") || !strings.Contains(ready, "gw-sd") {
		t.Errorf("READY message %q lacks a STATUS naming the gateway", ready)
	}
	for range 3 { // 200 ms apart
		wait("WATCHDOG=1")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	wait("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "systemd notified ready") {
		t.Errorf("log lacks the ready line:\n%s", stderr.String())
	}
}

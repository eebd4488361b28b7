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
	for _, k := range []string{"postinstall", "preremove", "postremove"} {
		p := spec.Scripts[k]
		st, err := os.Stat(filepath.Join("../..", p))
		if err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("script %s=%q: missing or not executable (%v)", k, p, err)
		}
	}
}

func TestPackagingScriptsParse(t *testing.T) {
	for _, s := range []string{"postinst", "prerm", "postrm", "ci-package.sh"} {
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
		for _, s := range []string{"postinst", "prerm", "postrm", "ci-package.sh"} {
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

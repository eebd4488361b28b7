package main

import (
	"sort"
	"strings"
	"testing"
)

// helpArgs is every way of asking for help: the top level, each command
// and each target of the dispatchers (sim, probe, user).
func helpArgs() [][]string {
	args := [][]string{{"--help"}, {"-h"}, {"help"}, {"-help"}}
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		args = append(args, []string{"help", n}, []string{n, "-h"}, []string{n, "--help"})
	}
	for disp, subs := range map[string]map[string]subcommand{"sim": simCommands, "probe": probeCommands, "user": userCommands} {
		for n := range subs {
			args = append(args, []string{disp, n, "-h"}, []string{disp, n, "--help"})
		}
	}
	return args
}

// TestHelpOnStdout: asked-for help is output, not an error, so
// `lintel --help | less` and `lintel check -h | grep probe` work.
func TestHelpOnStdout(t *testing.T) {
	for _, args := range helpArgs() {
		code, out, errOut := runCLI(t, args...)
		if code != exitOK || errOut != "" || !strings.Contains(strings.ToLower(out), "usage") {
			t.Errorf("lintel %s: exit %d, want 0 with the usage on stdout and nothing on stderr\nstdout: %q\nstderr: %q",
				strings.Join(args, " "), code, out, errOut)
		}
	}
}

// TestUsageErrorsOnStderr: a mistake still goes to stderr with exit 2,
// and stdout stays empty for whatever reads it.
func TestUsageErrorsOnStderr(t *testing.T) {
	for _, args := range [][]string{
		nil, {"frobnicate"}, {"help", "frobnicate"}, {"check", "--bogus"}, {"check", "extra"},
		{"run", "-c"}, {"sim"}, {"sim", "nonsense"}, {"probe", "nonsense"}, {"user"},
		{"sim", "modbus", "--bogus"}, {"probe", "rtsp", "--bogus"}, {"user", "list", "--bogus"},
	} {
		code, out, errOut := runCLI(t, args...)
		if code != exitUsage || out != "" || errOut == "" {
			t.Errorf("lintel %s: exit %d, want 2 with the problem on stderr and nothing on stdout\nstdout: %q\nstderr: %q",
				strings.Join(args, " "), code, out, errOut)
		}
	}
	// The error is said once, then where the usage is; the whole flag
	// list is not dumped after it.
	_, _, errOut := runCLI(t, "check", "--bogus")
	if n := strings.Count(errOut, "-bogus"); n != 1 || !strings.Contains(errOut, "lintel check -h") {
		t.Errorf("check --bogus: stderr %q", errOut)
	}
}

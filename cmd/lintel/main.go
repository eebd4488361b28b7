// Command lintel is the Lintel edge gateway: `lintel run -c FILE` is the
// daemon; the other subcommands check configurations, run simulators and
// help installers commission a compound.
//
// main stays thin: every subcommand is a function of (ctx, args, stdio)
// returning an error that carries its exit code, so tests call them
// directly.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Exit codes (sysexits-style where one exists).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitConfig  = 78 // EX_CONFIG: systemd's unit does not restart on it
)

// version is set at link time (-X main.version=…).
var version = "dev"

// exitError carries an exit code out of a subcommand.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

func configErr(err error) error { return &exitError{exitConfig, err} }

// stdio is a subcommand's standard streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

type command struct {
	name    string
	summary string // English; the first line of `lintel help`
	run     func(ctx context.Context, args []string, io stdio) error
}

// commands is filled by init functions, one file per subcommand, so each
// feature adds its command without touching this file.
var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("lintel: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func main() {
	os.Exit(runMain(context.Background(), os.Args[1:], stdio{os.Stdin, os.Stdout, os.Stderr}))
}

// runMain dispatches a subcommand and maps its error to an exit code.
// Help that was asked for (help, -h, --help, `help <command>`) is output:
// it goes to stdout with exit 0, so `lintel --help | less` works. Usage
// mistakes go to stderr with exit 2.
func runMain(ctx context.Context, args []string, io stdio) int {
	if len(args) == 0 {
		printUsage(io.err)
		return exitUsage
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		if len(args) == 1 {
			printUsage(io.out)
			return exitOK
		}
		c, ok := commands[args[1]]
		if !ok {
			fmt.Fprintf(io.err, "lintel help: 未知命令 unknown command %q\n\n", args[1])
			printUsage(io.err)
			return exitUsage
		}
		args = []string{c.name, "-h"}
	}
	if args[0] == "-version" || args[0] == "--version" {
		args[0] = "version"
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(io.err, "lintel: 未知命令 unknown command %q\n\n", args[0])
		printUsage(io.err)
		return exitUsage
	}
	err := c.run(ctx, args[1:], io)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	var ee *exitError
	code := exitFailure
	if errors.As(err, &ee) {
		code = ee.code
	}
	msg := err.Error()
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	fmt.Fprintf(io.err, "lintel %s: %s", c.name, msg)
	if code == exitUsage {
		name := c.name
		if _, isDispatcher := map[string]bool{"sim": true, "probe": true}[c.name]; isDispatcher && len(args) > 1 && !strings.HasPrefix(args[1], "-") {
			name += " " + args[1]
		}
		fmt.Fprintf(io.err, "运行 run `lintel %s -h` 查看用法 for usage\n", name)
	}
	return code
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "Lintel 小区边缘网关 — residential compound edge gateway")
	fmt.Fprintln(w, "\n用法 usage: lintel <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nexit codes: 0 ok, 1 runtime failure, 2 usage, 78 bad configuration")
}

// newFlags returns a flag set that reports errors instead of exiting.
// Parse it with parseFlags or parseArgs: they send the usage to stdout
// when -h asked for it and a flag mistake to stderr.
func newFlags(name string, io stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("lintel "+name, flag.ContinueOnError)
	fs.SetOutput(&flagOutput{io: io})
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "用法 usage: %s [flags]\n", fs.Name())
		fs.PrintDefaults()
	}
	return fs
}

// flagOutput is a flag set's output. While parseArgs parses it holds what
// the flag package writes (the usage, or an error and the usage), then
// sends it where it belongs; outside a parse it writes to stderr.
type flagOutput struct {
	io      stdio
	parsing bool
	buf     bytes.Buffer
}

func (w *flagOutput) Write(p []byte) (int, error) {
	if w.parsing {
		return w.buf.Write(p)
	}
	return w.io.err.Write(p)
}

// parseArgs parses args, leaving positional arguments to the caller. On
// -h the usage goes to stdout and flag.ErrHelp is returned; on a mistake
// nothing is printed here (runMain prints the error once and points at
// -h) and a usage error is returned.
func parseArgs(fs *flag.FlagSet, args []string) error {
	w, ok := fs.Output().(*flagOutput)
	if ok {
		w.parsing = true
		w.buf.Reset()
		defer func() { w.parsing = false; w.buf.Reset() }()
	}
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		if ok {
			_, _ = w.io.out.Write(w.buf.Bytes())
		}
		return err
	}
	return &exitError{exitUsage, err}
}

// parseFlags parses args, which must all be flags.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"golang.org/x/sys/unix"

	"github.com/lintel-edge/lintel/edge/status"
)

func init() {
	register(command{name: "user", summary: "manage status page accounts (lintel user add|passwd|list|role|del|token|revoke -c FILE)", run: runUser})
}

var userCommands = map[string]subcommand{
	"add":    {summary: "create an account: lintel user add -c FILE -role manager NAME", run: userAdd},
	"passwd": {summary: "set an account's password: lintel user passwd -c FILE NAME", run: userPasswd},
	"list":   {summary: "list accounts: lintel user list -c FILE", run: userList},
	"del":    {summary: "remove an account: lintel user del -c FILE NAME", run: userDel},
	"role":   {summary: "change an account's role: lintel user role -c FILE NAME ROLE", run: userRole},
	"token":  {summary: "create an API token for scripts: lintel user token -c FILE NAME", run: userToken},
	"revoke": {summary: "revoke an API token: lintel user revoke -c FILE NAME TOKEN_ID (ids: lintel user list)", run: userRevoke},
}

func runUser(ctx context.Context, args []string, io stdio) error {
	return dispatcher("user", userCommands)(ctx, args, io)
}

// userFlags is the flag set every user subcommand shares: where the
// accounts file is.
type userFlags struct {
	fs     *flag.FlagSet
	file   *string
	direct *string
}

func newUserFlags(name string, io stdio) userFlags {
	fs := newFlags("user "+name, io)
	return userFlags{fs: fs,
		file:   fs.String("c", "/etc/lintel/lintel.yaml", "configuration file (finds status.accounts_file)"),
		direct: fs.String("accounts", "", "accounts file, instead of reading it from the configuration")}
}

// open parses args, expects want positional arguments and opens the
// accounts file.
func (u userFlags) open(args []string, want int) (*status.Accounts, []string, error) {
	if err := parseArgs(u.fs, args); err != nil {
		return nil, nil, err
	}
	if u.fs.NArg() != want {
		return nil, nil, usageErr("want %d argument(s) after the flags, got %d (flags go before the account name)", want, u.fs.NArg())
	}
	path := *u.direct
	if path == "" {
		cfg, err := loadConfig(*u.file)
		if err != nil {
			return nil, nil, configNextStep(*u.file, err)
		}
		sc, err := status.FromConfig(cfg)
		if err != nil {
			return nil, nil, configErr(withNextStep(err, fmt.Sprintf("修正 status 段后运行 fix the status section, then run `lintel check -c %s`", *u.file)))
		}
		path = sc.AccountsFile
	}
	acc, err := status.OpenAccounts(path)
	if err != nil {
		return nil, nil, withNextStep(err, "用 root 或 lintel 用户运行，或用 --accounts 指定账号文件 run as root or the lintel user, or name the accounts file with --accounts")
	}
	return acc, u.fs.Args(), nil
}

// readPassword asks twice on a terminal with echo off, or reads one line
// from a pipe (for scripts: printf '%s\n' "$PW" | lintel user add …).
func readPassword(io stdio, prompt string) (string, error) {
	f, isFile := io.in.(*os.File)
	if isFile {
		if t, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err == nil {
			read := func(p string) (string, error) {
				fmt.Fprint(io.err, p)
				noEcho := *t
				noEcho.Lflag &^= unix.ECHO
				if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &noEcho); err != nil {
					return "", err
				}
				defer func() {
					_ = unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, t)
					fmt.Fprintln(io.err)
				}()
				return readLine(f)
			}
			a, err := read(prompt)
			if err != nil {
				return "", err
			}
			b, err := read("再输入一次 again: ")
			if err != nil {
				return "", err
			}
			if a != b {
				return "", errors.New("两次输入不一致 the passwords differ")
			}
			return a, nil
		}
	}
	return readLine(io.in)
}

func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && (err != io.EOF || line == "") {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func userAdd(ctx context.Context, args []string, io stdio) error {
	u := newUserFlags("add", io)
	role := u.fs.String("role", "manager", "viewer (sees pages), manager (also acts on alerts, modes, gates), installer (also diagnostics)")
	acc, pos, err := u.open(args, 1)
	if err != nil {
		return err
	}
	if !status.Role(*role).Valid() {
		return usageErr("role %q: want viewer, manager or installer", *role)
	}
	if !status.ValidName(pos[0]) {
		return usageErr("account name %q: use 1–32 letters, digits, '.', '_', '@' or '-'", pos[0])
	}
	pw, err := readPassword(io, fmt.Sprintf("%s 的新密码 new password (≥%d): ", pos[0], status.MinPasswordLen))
	if err != nil {
		return err
	}
	if err := acc.Add(pos[0], status.Role(*role), pw, false); err != nil {
		return err
	}
	fmt.Fprintf(io.out, "已创建账号 created account %s (%s) in %s\n", pos[0], *role, acc.Path())
	return nil
}

func userPasswd(ctx context.Context, args []string, io stdio) error {
	acc, pos, err := newUserFlags("passwd", io).open(args, 1)
	if err != nil {
		return err
	}
	if _, ok := acc.Lookup(pos[0]); !ok {
		return withNextStep(fmt.Errorf("%w: %s", status.ErrNoAccount, pos[0]), "查看现有账号 list the accounts: lintel user list -c FILE")
	}
	pw, err := readPassword(io, fmt.Sprintf("%s 的新密码 new password (≥%d): ", pos[0], status.MinPasswordLen))
	if err != nil {
		return err
	}
	if err := acc.SetPassword(pos[0], pw); err != nil {
		return err
	}
	fmt.Fprintf(io.out, "已修改密码 password changed for %s\n", pos[0])
	return nil
}

func userList(ctx context.Context, args []string, io stdio) error {
	acc, _, err := newUserFlags("list", io).open(args, 0)
	if err != nil {
		return err
	}
	list := acc.List()
	if len(list) == 0 {
		fmt.Fprintf(io.out, "没有账号 no accounts in %s: the daemon offers first-run setup with a one-time code\n", acc.Path())
		return nil
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "账号 NAME\t角色 ROLE\t创建 CREATED\t修改 CHANGED\tAPI 令牌 TOKENS")
	for _, a := range list {
		ids := make([]string, len(a.Tokens))
		for i, t := range a.Tokens {
			ids[i] = t.ID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.Role, a.Created.Format("2006-01-02 15:04"), a.Changed.Format("2006-01-02 15:04"), strings.Join(ids, ","))
	}
	return tw.Flush()
}

func userDel(ctx context.Context, args []string, io stdio) error {
	acc, pos, err := newUserFlags("del", io).open(args, 1)
	if err != nil {
		return err
	}
	if err := acc.Remove(pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(io.out, "已删除账号 removed account %s (its sessions end at its next request)\n", pos[0])
	return nil
}

func userRole(ctx context.Context, args []string, io stdio) error {
	acc, pos, err := newUserFlags("role", io).open(args, 2)
	if err != nil {
		return err
	}
	if err := acc.SetRole(pos[0], status.Role(pos[1])); err != nil {
		return err
	}
	fmt.Fprintf(io.out, "已修改角色 %s is now %s\n", pos[0], pos[1])
	return nil
}

func userRevoke(ctx context.Context, args []string, io stdio) error {
	acc, pos, err := newUserFlags("revoke", io).open(args, 2)
	if err != nil {
		return err
	}
	if err := acc.RevokeToken(pos[0], pos[1]); err != nil {
		return err
	}
	fmt.Fprintf(io.out, "已吊销令牌 revoked token %s of %s\n", pos[1], pos[0])
	return nil
}

func userToken(ctx context.Context, args []string, io stdio) error {
	acc, pos, err := newUserFlags("token", io).open(args, 1)
	if err != nil {
		return err
	}
	tok, err := acc.AddToken(pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(io.err, "API 令牌只显示这一次，请妥善保存 the token is shown once; keep it safe:\n")
	fmt.Fprintln(io.out, tok)
	return nil
}

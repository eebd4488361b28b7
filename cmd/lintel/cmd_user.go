package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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
	"token":  {summary: "create an API token for scripts: lintel user token -c FILE [-ttl 90d] [-read-only] NAME", run: userToken},
	"unlock": {summary: "clear login back-offs: lintel user unlock -c FILE NAME (every address) or -address IP (every account)", run: userUnlock},
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

// open parses args, expects want positional arguments (-n: at most n)
// and opens the accounts file.
func (u userFlags) open(args []string, want int) (*status.Accounts, []string, error) {
	if err := parseArgs(u.fs, args); err != nil {
		return nil, nil, err
	}
	if want >= 0 && u.fs.NArg() != want || want < 0 && u.fs.NArg() > -want {
		if want < 0 {
			want = -want
		}
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
			if t.Scope == status.ScopeRead {
				ids[i] += "(read)"
			}
			if !t.Expires.IsZero() {
				if time.Now().After(t.Expires) {
					ids[i] += "(expired)"
				} else {
					ids[i] += "(→" + t.Expires.Format("2006-01-02") + ")"
				}
			}
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
	u := newUserFlags("token", io)
	ttl := u.fs.String("ttl", "90d", "how long the token is valid: e.g. 30d, 12h; 0 = until revoked")
	readOnly := u.fs.Bool("read-only", false, "the token may only read (GET): no acknowledging, no modes, no gates, whatever the account's role")
	acc, pos, err := u.open(args, 1)
	if err != nil {
		return err
	}
	d, err := parseTTL(*ttl)
	if err != nil {
		return usageErr("-ttl %q: %v", *ttl, err)
	}
	scope := status.ScopeFull
	if *readOnly {
		scope = status.ScopeRead
	}
	tok, err := acc.AddTokenWith(pos[0], d, scope)
	if err != nil {
		return err
	}
	exp := "永不过期 never expires (revoke it with lintel user revoke)"
	if d > 0 {
		exp = "过期 expires " + time.Now().Add(d).Format("2006-01-02 15:04")
	}
	fmt.Fprintf(io.err, "API 令牌只显示这一次，请妥善保存 the token is shown once; keep it safe (%s, %s):\n", scope, exp)
	fmt.Fprintln(io.out, tok)
	return nil
}

// parseTTL reads a token lifetime: a Go duration, or whole days ("90d").
func parseTTL(s string) (time.Duration, error) {
	if s == "0" || s == "" {
		return 0, nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 1 || days > 3650 {
			return 0, errors.New("want 1d–3650d")
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < time.Minute {
		return 0, errors.New("want a duration of at least 1m, like 12h or 30d")
	}
	return d, nil
}

func userUnlock(ctx context.Context, args []string, io stdio) error {
	u := newUserFlags("unlock", io)
	addr := u.fs.String("address", "", "also (or only) clear the lock of this source address, for every account")
	acc, pos, err := u.open(args, -1)
	if err != nil {
		return err
	}
	name := ""
	if len(pos) == 1 {
		name = pos[0]
	}
	if name == "" && *addr == "" {
		return usageErr("name an account, or -address IP, or both")
	}
	if *addr != "" && net.ParseIP(*addr) == nil {
		return usageErr("-address %q: want an IP address", *addr)
	}
	if err := acc.Unlock(name, *addr); err != nil {
		return withNextStep(err, "查看现有账号 list the accounts: lintel user list -c FILE")
	}
	what := name
	switch {
	case name != "" && *addr != "":
		what = name + " from " + *addr + " and " + *addr + " for every account"
	case name != "":
		what = name + " from every address"
	default:
		what = *addr + " for every account"
	}
	fmt.Fprintf(io.out, "已解锁 unlocked %s (the running daemon applies it at the next login attempt)\n", what)
	return nil
}

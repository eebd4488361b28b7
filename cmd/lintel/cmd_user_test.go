package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/edge/status"
)

func runUserCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runMain(context.Background(), append([]string{"user"}, args...), stdio{strings.NewReader(stdin), &out, &errb})
	return code, out.String(), errb.String()
}

func TestUserCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lintel.yaml")
	if err := os.WriteFile(cfg, []byte("gateway: {id: gw-1, compound: c-1, data_dir: "+dir+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runUserCLI(t, "", "list", "-c", cfg); code != 0 || !strings.Contains(out, "no accounts") {
		t.Fatalf("empty list: %d %q", code, out)
	}
	if code, _, errOut := runUserCLI(t, "a-long-password\n", "add", "-c", cfg, "-role", "installer", "李工"); code != 0 {
		t.Fatalf("add: %d %s", code, errOut)
	}
	if code, _, _ := runUserCLI(t, "short\n", "add", "-c", cfg, "wang"); code != 1 {
		t.Errorf("short password accepted: %d", code)
	}
	if code, _, _ := runUserCLI(t, "a-long-password\n", "add", "-c", cfg, "-role", "boss", "wang"); code != 2 {
		t.Errorf("bad role: %d", code)
	}
	if code, _, _ := runUserCLI(t, "another-password\n", "passwd", "-c", cfg, "李工"); code != 0 {
		t.Errorf("passwd: %d", code)
	}
	code, tok, _ := runUserCLI(t, "", "token", "-c", cfg, "李工")
	if code != 0 || !strings.HasPrefix(tok, status.TokenPrefix) {
		t.Errorf("token: %d %q", code, tok)
	}
	code, out, _ := runUserCLI(t, "", "list", "-accounts", filepath.Join(dir, "accounts.json"))
	if code != 0 || !strings.Contains(out, "李工") || !strings.Contains(out, "installer") {
		t.Errorf("list: %d %q", code, out)
	}
	acc, err := status.OpenAccounts(filepath.Join(dir, "accounts.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := acc.Lookup("李工")
	if !status.CheckPassword(a.Hash, "another-password") {
		t.Error("passwd did not apply")
	}
	if _, ok := acc.ByToken(strings.TrimSpace(tok)); !ok {
		t.Error("token not usable")
	}
	st, _ := os.Stat(filepath.Join(dir, "accounts.json"))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("accounts file mode %v", st.Mode().Perm())
	}
	id := strings.Split(strings.TrimSpace(tok), "_")[1]
	if code, _, errOut := runUserCLI(t, "", "revoke", "-c", cfg, "李工", id); code != 0 {
		t.Errorf("revoke: %d %s", code, errOut)
	}
	acc2, _ := status.OpenAccounts(filepath.Join(dir, "accounts.json"))
	if _, ok := acc2.ByToken(strings.TrimSpace(tok)); ok {
		t.Error("revoked token still works")
	}
	if code, _, _ := runUserCLI(t, "", "del", "-c", cfg, "李工"); code != 0 {
		t.Errorf("del: %d", code)
	}
	if code, _, _ := runUserCLI(t, "", "frobnicate"); code != 2 {
		t.Errorf("unknown subcommand: %d", code)
	}
}

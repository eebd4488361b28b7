package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestUserUnlockAndScopedTokens: lintel user unlock records the request
// the daemon applies; lintel user token makes expiring, read-only tokens.
func TestUserUnlockAndScopedTokens(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "lintel.yaml")
	if err := os.WriteFile(cfg, []byte("gateway: {id: gw-1, compound: c-1, data_dir: "+dir+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runUserCLI(t, "a-long-password\n", "add", "-c", cfg, "-role", "manager", "wang"); code != 0 {
		t.Fatalf("add: %d %s", code, errOut)
	}
	if code, out, errOut := runUserCLI(t, "", "unlock", "-c", cfg, "wang"); code != 0 || !strings.Contains(out, "wang from every address") {
		t.Fatalf("unlock: %d %s%s", code, out, errOut)
	}
	if code, _, errOut := runUserCLI(t, "", "unlock", "-c", cfg, "-address", "192.168.1.23"); code != 0 {
		t.Fatalf("unlock -address: %d %s", code, errOut)
	}
	for _, bad := range [][]string{{"unlock", "-c", cfg}, {"unlock", "-c", cfg, "-address", "not-an-ip"}, {"unlock", "-c", cfg, "a", "b"}} {
		if code, _, _ := runUserCLI(t, "", bad...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", bad, code, exitUsage)
		}
	}
	if code, _, _ := runUserCLI(t, "", "unlock", "-c", cfg, "nobody"); code != exitFailure {
		t.Errorf("unlock of an unknown account: exit %d", code)
	}
	acc, err := status.OpenAccounts(filepath.Join(dir, "accounts.json"))
	if err != nil {
		t.Fatal(err)
	}
	us := acc.Unlocks()
	if len(us) != 2 || us[0].Account != "wang" || us[1].Address != "192.168.1.23" {
		t.Errorf("unlocks in the file: %+v", us)
	}

	code, tok, errOut := runUserCLI(t, "", "token", "-c", cfg, "-ttl", "2d", "-read-only", "wang")
	if code != 0 || !strings.Contains(errOut, "read") || !strings.Contains(errOut, "expires") {
		t.Fatalf("token: %d %s", code, errOut)
	}
	acc, _ = status.OpenAccounts(filepath.Join(dir, "accounts.json"))
	_, tk, ok := acc.TokenFor(strings.TrimSpace(tok), time.Now())
	if !ok || tk.Scope != status.ScopeRead || tk.Expires.Sub(time.Now()) < 47*time.Hour || tk.Expires.Sub(time.Now()) > 49*time.Hour {
		t.Errorf("token %+v ok=%v", tk, ok)
	}
	if _, _, ok := acc.TokenFor(strings.TrimSpace(tok), time.Now().Add(72*time.Hour)); ok {
		t.Error("token valid after its ttl")
	}
	if code, out, _ := runUserCLI(t, "", "list", "-c", cfg); code != 0 || !strings.Contains(out, "(read)") {
		t.Errorf("list: %s", out)
	}
	if code, _, _ := runUserCLI(t, "", "token", "-c", cfg, "-ttl", "soon", "wang"); code != exitUsage {
		t.Errorf("bad ttl: exit %d", code)
	}
}

package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/sync/city"
)

// TestReceiveKeygenSign: keygen writes a key pair and the configuration
// lines; sign makes a command the gateway's verifier accepts, with that
// public key and no other.
func TestReceiveKeygenSign(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "city-2026a.key")
	code, out, errOut := runCLI(t, "receive", "keygen", "-out", key)
	if code != exitOK {
		t.Fatalf("keygen exit %d: %s%s", code, out, errOut)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key file %v %v", st, err)
	}
	m := regexp.MustCompile(`id: city-2026a, public_key: "([A-Za-z0-9+/=]+)"`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no configuration snippet in:\n%s", out)
	}
	pubFile, _ := os.ReadFile(key + ".pub")
	if strings.TrimSpace(string(pubFile)) != m[1] {
		t.Errorf(".pub %q, snippet %q", pubFile, m[1])
	}
	if code, _, _ := runCLI(t, "receive", "keygen", "-out", key); code == exitOK {
		t.Error("keygen overwrote an existing key")
	}
	if strings.Contains(out+errOut, "PRIVATE KEY") {
		t.Error("keygen printed the private key")
	}

	code, out, errOut = runCLI(t, "receive", "sign", "-key", key, "-key-id", "city-2026a", "-gateway", "gw-01",
		"-command", "gate.open", "-args", `{"device":"gate-south"}`, "-actor", "ops:zhang", "-ttl", "3m")
	if code != exitOK {
		t.Fatalf("sign exit %d: %s%s", code, out, errOut)
	}
	pub, err := city.ParsePublicKey(m[1])
	if err != nil {
		t.Fatal(err)
	}
	v := &city.Verifier{Gateway: "gw-01", Keys: map[string]ed25519.PublicKey{}, MaxValidity: time.Hour, Skew: 30 * time.Second, UnsyncedSkew: time.Hour}
	v.Keys["city-2026a"] = pub
	got, err := v.Verify([]byte(strings.TrimSpace(out)), time.Now(), event.Synced)
	if err != nil {
		t.Fatalf("gateway refuses what sign made: %v\n%s", err, out)
	}
	if got.Actor != "platform:city-2026a/ops:zhang" || got.Command.Command != "gate.open" || !strings.HasPrefix(got.ID, "c-") ||
		got.ExpiresAt.Sub(got.IssuedAt) != 3*time.Minute {
		t.Errorf("verified %+v", got)
	}
	v.Gateway = "gw-02"
	if _, err := v.Verify([]byte(strings.TrimSpace(out)), time.Now(), event.Synced); err == nil || !strings.HasPrefix(err.Error(), city.ReasonWrongGateway) {
		t.Errorf("another gateway: %v", err)
	}
	for _, bad := range [][]string{
		{"receive", "sign", "-key", key, "-gateway", "gw-01", "-command", "x.y", "-actor", "a"},                                 // no key id
		{"receive", "sign", "-key", key, "-key-id", "k", "-gateway", "gw-01", "-command", "x.y", "-actor", "a", "-args", "[1]"}, // args not an object
		{"receive", "keygen"},
	} {
		if code, _, _ := runCLI(t, bad...); code != exitUsage {
			t.Errorf("lintel %v: exit %d, want %d", bad, code, exitUsage)
		}
	}
}

// TestCheckSaysCommandsRefused: with no platform key, check says that
// every downlink command will be refused.
func TestCheckSaysCommandsRefused(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	base := "gateway: {id: gw-1, compound: c-1, data_dir: " + dir + "}\nsinks:\n  city:\n    broker: tcp://10.0.0.5:1883\n"
	os.WriteFile(cfg, []byte(base), 0o600)
	code, out, errOut := runCLI(t, "check", "-c", cfg)
	if code != exitOK || !strings.Contains(out, "every downlink command from the platform is refused") {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	os.WriteFile(cfg, []byte(base+"    commands:\n      keys:\n        - {id: city-2026a, public_key: \"kt9Gq8Wi5AuvCrHwdRlQ1TH8C0iLyVAJcmuG6MdNl5M=\"}\n"), 0o600)
	code, out, errOut = runCLI(t, "check", "-c", cfg)
	if code != exitOK || strings.Contains(out, "downlink command") {
		t.Fatalf("with a key: exit %d\n%s%s", code, out, errOut)
	}
	// The docs' test vector key is refused: its private key is public.
	os.WriteFile(cfg, []byte(base+"    commands:\n      keys:\n        - {id: t, public_key: \""+city.TestVectorPublicKey+"\"}\n"), 0o600)
	if code, out, errOut = runCLI(t, "check", "-c", cfg); code != exitConfig || !strings.Contains(errOut, "test vector") {
		t.Fatalf("test vector key: exit %d\n%s%s", code, out, errOut)
	}
	os.WriteFile(cfg, []byte(base+"    commands:\n      keys:\n        - {id: city-2026a, public_key: \"bm90IGEga2V5\"}\n"), 0o600)
	if code, out, errOut = runCLI(t, "check", "-c", cfg); code != exitConfig || !strings.Contains(errOut, "public_key") {
		t.Fatalf("bad key: exit %d\n%s%s", code, out, errOut)
	}
}

package main

import (
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

func writeConfig(t *testing.T, dir, id string) string {
	t.Helper()
	p := filepath.Join(dir, "lintel.yaml")
	if err := os.WriteFile(p, []byte("gateway: {id: "+id+", compound: hf-test-001, data_dir: "+dir+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProvision(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "gw-hf-0042")
	idDir := filepath.Join(dir, "identity")

	code, out, errOut := runCLI(t, "provision", "-c", cfg, "--dir", idDir, "--owner", "")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	keyPath := filepath.Join(idDir, identityKey)
	for path, want := range map[string]os.FileMode{idDir: 0o700 | os.ModeDir, keyPath: 0o600, filepath.Join(idDir, identityCSR): 0o644} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, st.Mode(), want)
		}
	}
	key, err := readKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if key.Curve.Params().Name != "P-256" {
		t.Errorf("curve %s", key.Curve.Params().Name)
	}
	b, _ := os.ReadFile(filepath.Join(idDir, identityCSR))
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("CSR PEM: %q", b)
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CSR signature: %v", err)
	}
	if csr.Subject.CommonName != "gw-hf-0042" || len(csr.DNSNames) != 1 || csr.DNSNames[0] != "gw-hf-0042" {
		t.Errorf("CSR subject %v, SANs %v", csr.Subject, csr.DNSNames)
	}
	if !csr.PublicKey.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Error("CSR is not for the written key")
	}
	// The printed fingerprint is what openssl computes from the CSR's key.
	spki, _ := x509.MarshalPKIXPublicKey(csr.PublicKey)
	sum := sha256.Sum256(spki)
	want := fmt.Sprintf("%X", sum[:2])
	fp := fingerprint(&key.PublicKey)
	if !strings.HasPrefix(fp, "SHA256:"+want[:2]+":"+want[2:4]+":") || !strings.Contains(out, fp) {
		t.Errorf("fingerprint %s (sha256 starts %s) not printed correctly:\n%s", fp, want, out)
	}
	for _, s := range []string{"网关身份已创建", "下一步 next", identityCert} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}

	// A second run refuses and keeps the key.
	code, _, errOut = runCLI(t, "provision", "-c", cfg, "--dir", idDir, "--owner", "")
	if code != exitFailure || !strings.Contains(errOut, "already exists") || !strings.Contains(errOut, fp) || !strings.Contains(errOut, "--force") {
		t.Errorf("second run: exit %d\n%s", code, errOut)
	}
	again, _ := readKey(keyPath)
	if !again.Equal(key) {
		t.Fatal("key replaced without --force")
	}
	// --force replaces it.
	code, out, errOut = runCLI(t, "provision", "-c", cfg, "--dir", idDir, "--owner", "", "--force")
	if code != exitOK {
		t.Fatalf("--force: exit %d\n%s%s", code, out, errOut)
	}
	if k, _ := readKey(keyPath); k.Equal(key) {
		t.Error("--force kept the old key")
	}
	if left, _ := filepath.Glob(filepath.Join(idDir, ".*tmp*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestProvisionRefusesPlaceholder(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "gw-unset")
	code, _, errOut := runCLI(t, "provision", "-c", cfg, "--dir", filepath.Join(dir, "id"), "--owner", "")
	if code != exitConfig || !strings.Contains(errOut, "placeholder") {
		t.Errorf("exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "id")); !os.IsNotExist(err) {
		t.Error("identity directory created for a placeholder id")
	}
}

func TestProvisionOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	me, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	cfg := writeConfig(t, dir, "gw-own-01")
	code, out, errOut := runCLI(t, "provision", "-c", cfg, "--dir", filepath.Join(dir, "id"), "--owner", me.Username)
	if code != exitOK || !strings.Contains(out, "owner "+me.Username) {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI(t, "provision", "-c", cfg, "--dir", filepath.Join(dir, "id2"), "--owner", "no-such-user-lintel")
	if code != exitOK || !strings.Contains(out, "not found") {
		t.Errorf("unknown owner: exit %d\n%s", code, out)
	}
}

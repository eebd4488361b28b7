package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

func init() {
	register(command{name: "provision", summary: "create the gateway identity: ECDSA P-256 key and CSR for the city platform's mTLS", run: runProvision})
}

// Identity file names inside --dir; docs/install.md and the sink's
// tls.cert_file/key_file examples use them.
const (
	identityKey  = "gateway.key"
	identityCSR  = "gateway.csr"
	identityCert = "gateway.crt"
)

// dirNextStep is the way out of a failure to write the identity files.
const dirNextStep = "用 root 运行（sudo lintel provision），或用 --dir 指定可写目录 run as root (sudo lintel provision) or give a writable directory with --dir"

func runProvision(_ context.Context, args []string, io stdio) error {
	fl := newFlags("provision", io)
	file := fl.String("c", "/etc/lintel/lintel.yaml", "configuration file; its gateway.id becomes the certificate's CN")
	dir := fl.String("dir", "/var/lib/lintel/identity", "directory for "+identityKey+" (mode 0600) and "+identityCSR)
	force := fl.Bool("force", false, "replace an existing key (the certificate issued for the old key stops working)")
	owner := fl.String("owner", "lintel", "when run as root, give the files to this user so the daemon can read the key (\"\" keeps root)")
	if err := parseFlags(fl, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		return configNextStep(*file, err)
	}
	id := cfg.Gateway.ID
	for _, v := range []struct{ key, val string }{{"gateway.id", id}, {"gateway.compound", cfg.Gateway.Compound}} {
		if isPlaceholder(v.val) {
			return configErr(fmt.Errorf("%s %q 是安装时的占位值 is the installed placeholder: set the id the platform issued in %s, then run provision again", v.key, v.val, *file))
		}
	}

	keyPath := filepath.Join(*dir, identityKey)
	csrPath := filepath.Join(*dir, identityCSR)
	if _, err := os.Lstat(keyPath); err == nil && !*force {
		fp := ""
		if k, err := readKey(keyPath); err == nil {
			fp = " (fingerprint " + fingerprint(k.Public().(*ecdsa.PublicKey)) + ")"
		}
		return fmt.Errorf("%s 已存在 already exists%s: the platform's certificate belongs to this key, so it is kept.\n"+
			"To make a new identity run `lintel provision --force` and have the new CSR signed; "+
			"to re-create only the CSR, move the key away first", keyPath, fp)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return withNextStep(fmt.Errorf("inspect %s: %w", keyPath, err), dirNextStep)
	}

	uid, gid, ownerNote := -1, -1, ""
	if os.Geteuid() == 0 && *owner != "" {
		u, err := user.Lookup(*owner)
		if err != nil {
			ownerNote = fmt.Sprintf("警告 warning: user %q not found, files stay owned by root; the daemon cannot read the key until you chown them", *owner)
		} else {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
	}

	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return withNextStep(fmt.Errorf("create %s: %w", *dir, err), dirNextStep)
	}
	// The directory holds a private key: nobody but its owner lists it.
	if err := os.Chmod(*dir, 0o700); err != nil {
		return withNextStep(fmt.Errorf("chmod %s: %w", *dir, err), dirNextStep)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key: %w", err)
	}
	tmpl := &x509.CertificateRequest{
		Subject:            pkix.Name{CommonName: id, OrganizationalUnit: []string{cfg.Gateway.Compound}},
		SignatureAlgorithm: x509.ECDSAWithSHA256,
	}
	// A SAN as well as the CN: current TLS stacks match on SANs. An id
	// with "_" is not a DNS name, so it stays CN-only.
	if !strings.Contains(id, "_") {
		tmpl.DNSNames = []string{id}
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return fmt.Errorf("create CSR: %w", err)
	}
	if err := writeAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600, uid, gid); err != nil {
		return withNextStep(err, dirNextStep)
	}
	if err := writeAtomic(csrPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}), 0o644, uid, gid); err != nil {
		return withNextStep(err, dirNextStep)
	}
	if uid >= 0 {
		if err := os.Chown(*dir, uid, gid); err != nil {
			return withNextStep(fmt.Errorf("chown %s: %w", *dir, err), "检查 --owner 用户，或用 --owner \"\" 保留 root 所有 check the --owner user, or keep root as owner with --owner \"\"")
		}
	}

	w := io.out
	fmt.Fprintf(w, "网关身份已创建 gateway identity created\n")
	fmt.Fprintf(w, "  网关 gateway      %s (小区 compound %s)\n", id, cfg.Gateway.Compound)
	fmt.Fprintf(w, "  私钥 key          %s (ECDSA P-256, mode 0600%s)\n", keyPath, ownerSuffix(uid, *owner))
	fmt.Fprintf(w, "  证书请求 CSR      %s (CN=%s)\n", csrPath, id)
	fmt.Fprintf(w, "  公钥指纹 key fingerprint (SHA-256)\n    %s\n", fingerprint(&key.PublicKey))
	if ownerNote != "" {
		fmt.Fprintln(w, ownerNote)
	}
	fmt.Fprintf(w, "下一步 next:\n"+
		"  1. 把 CSR 交给城市平台签发证书，并在电话中核对上面的指纹\n"+
		"     send %s to the city platform and read them the fingerprint to confirm it\n"+
		"  2. 把签发的证书保存为 save the signed certificate as %s\n"+
		"  3. 在配置中设置 set in the config: sinks.city.tls.cert_file: %s, key_file: %s\n"+
		"  4. lintel check --probe, then systemctl restart lintel\n",
		identityCSR, filepath.Join(*dir, identityCert), filepath.Join(*dir, identityCert), keyPath)
	return nil
}

func ownerSuffix(uid int, owner string) string {
	if uid < 0 {
		return ""
	}
	return ", owner " + owner
}

// isPlaceholder reports the installed default's identity values
// (packaging/lintel.yaml: gw-unset, compound-unset).
func isPlaceholder(id string) bool { return strings.HasSuffix(id, "-unset") }

// fingerprint is the SHA-256 of the public key's DER SubjectPublicKeyInfo,
// what `openssl pkey -pubout -outform DER | sha256sum` prints, so the
// platform can check it from the CSR alone.
func fingerprint(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "?"
	}
	sum := sha256.Sum256(der)
	hex := make([]string, len(sum))
	for i, b := range sum {
		hex[i] = fmt.Sprintf("%02X", b)
	}
	return "SHA256:" + strings.Join(hex, ":")
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var k any
	switch blk.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return ek, nil
}

// writeAtomic writes data to path through a synced temporary file and a
// rename, so a power cut leaves the old file or the new one, never half
// a key. uid >= 0 hands the file over before it becomes visible.
func writeAtomic(path string, data []byte, mode os.FileMode, uid, gid int) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if uid >= 0 {
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

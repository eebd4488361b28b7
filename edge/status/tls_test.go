package status

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTLS: with a certificate the page serves HTTPS only, the session
// cookie is Secure with the __Host- prefix, and HSTS is on.
func TestTLS(t *testing.T) {
	cheapHash(t)
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gw-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	e := newEnv(t, envOpt{mutate: func(o *Options) { o.Status.TLS = TLS{CertFile: certFile, KeyFile: keyFile} }})
	withAccounts(t, e)
	e.url = strings.Replace(e.url, "http://", "https://", 1)
	pool := x509.NewCertPool()
	cert, _ := x509.ParseCertificate(der)
	pool.AddCert(cert)
	c := e.client()
	c.hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	tok := c.formCSRF("/login")
	r := c.post("/login", url.Values{"csrf": {tok}, "name": {"viewer"}, "password": {viePW}})
	ck := strings.Join(r.hdr.Values("Set-Cookie"), "\n")
	if r.code != http.StatusSeeOther || !strings.Contains(ck, "__Host-lintel_session=") || !strings.Contains(ck, "Secure") {
		t.Errorf("TLS login: %d %s", r.code, ck)
	}
	if h := c.get("/").hdr.Get("Strict-Transport-Security"); h == "" {
		t.Error("no HSTS over TLS")
	}
	// Plain HTTP on the TLS port gets nothing useful.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get(strings.Replace(e.url, "https://", "http://", 1) + "/login"); err == nil {
		if resp.StatusCode == 200 {
			t.Error("plain HTTP served on the TLS port")
		}
		resp.Body.Close()
	}
}

// TestPortTaken: a taken port is logged and retried; the page does not
// stop the gateway, and Run still returns nil on cancellation.
func TestPortTaken(t *testing.T) {
	cheapHash(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e := newEnv(t, envOpt{})
	cfg := e.srv.cfg
	cfg.Listen = ln.Addr().String()
	srv, err := New(Options{Config: e.cfg, Status: cfg, Log: e.st, Logger: e.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	waitFor(t, "retry logged", func() bool { return strings.Contains(e.logs.String(), "status page cannot start") })
	select {
	case err := <-done:
		t.Fatalf("Run returned while the port was taken: %v", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

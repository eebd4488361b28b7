package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/lintel-edge/lintel/edge/config"
)

// serveTCP accepts on a free loopback port and hands each connection to h.
func serveTCP(t *testing.T, h func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); h(c) })
		}
	})
	return ln.Addr().String()
}

// closedPort returns a loopback address nobody listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// selfSignedTLS returns a TLS config for 127.0.0.1 and its certificate in PEM.
func selfSignedTLS(t *testing.T, notAfter time.Time) (*tls.Config, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "broker.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func parseTestConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("probe.yaml", []byte(text))
	if err != nil {
		t.Fatalf("test config invalid:\n%v\n%s", err, text)
	}
	return cfg
}

func TestProbeReport(t *testing.T) {
	dir := t.TempDir()
	modbusOK := serveTCP(t, func(net.Conn) {})
	modbusDown := closedPort(t)

	var rtspReq string
	var mu sync.Mutex
	rtsp := serveTCP(t, func(c net.Conn) {
		r := bufio.NewReader(c)
		line, _ := r.ReadString('\n')
		mu.Lock()
		rtspReq = line
		mu.Unlock()
		for l, err := r.ReadString('\n'); err == nil && l != "\r\n"; l, err = r.ReadString('\n') {
		}
		c.Write([]byte("RTSP/1.0 200 OK\r\nCSeq: 1\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY\r\n\r\n"))
	})

	srvTLS, caPEM := selfSignedTLS(t, time.Now().Add(365*24*time.Hour))
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, caPEM, 0o644)
	broker := serveTCP(t, func(c net.Conn) { _ = tls.Server(c, srvTLS).Handshake() })

	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()

	cfg := parseTestConfig(t, `
gateway: {id: gw-probe-01, compound: c-probe, data_dir: `+dir+`}
devices:
  - {id: gate-1, kind: barrier, driver: modbus, address: "tcp://`+modbusOK+`", profile: barrier-gate, options: {unit: 1}}
  - {id: gate-2, kind: barrier, driver: modbus, address: "tcp://`+modbusDown+`", profile: barrier-gate, options: {unit: 1}}
  - {id: gate-3, kind: barrier, driver: modbus, address: "tcp://`+modbusOK+`", profile: barrier-gate, options: {unit: 2}}
  - {id: gate-off, kind: barrier, driver: modbus, address: "tcp://`+modbusDown+`", profile: barrier-gate, disabled: true, options: {unit: 3}}
  - {id: rf-1, kind: receiver, driver: serial, address: `+tty.Name()+`, options: {codec: sonoff}}
  - {id: rf-gone, kind: receiver, driver: serial, address: /dev/lintel/ch340-9-9, options: {codec: sonoff}}
  - id: cam-1
    kind: camera
    driver: rtsp
    address: "rtsp://admin:s3cret-canary@`+rtsp+`/Streaming/Channels/102"
    profile: generic-falling-object
sinks:
  city:
    broker: "mqtts://`+broker+`"
    tls: {ca_file: `+ca+`}
`)
	var out bytes.Buffer
	start := time.Now()
	err = probeConfig(context.Background(), cfg, &out, 2*time.Second, 20*time.Second)
	report := out.String()
	t.Log("\n" + report)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("probe took %v", took)
	}
	if err == nil || !strings.Contains(err.Error(), "2 项检查失败") {
		t.Errorf("want 2 failed checks, got err %v", err)
	}
	for _, want := range []string{
		"调试报告 commissioning report", "gw-probe-01",
		"gate-1, gate-3", // one bus, probed once
		"connected in", "connection refused", "核对端口",
		"opened " + tty.Name(), "no such device", "/dev/lintel/",
		"RTSP/1.0 200 OK", "rtsp://admin:REDACTED@",
		"TLS 1.3", "server certificate valid until", "no client certificate configured",
		"汇总 summary: 4 通过 OK, 0 警告 WARN, 2 失败 FAIL",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(report, "gate-off") {
		t.Error("a disabled device was probed")
	}
	if strings.Contains(report, "s3cret-canary") || (err != nil && strings.Contains(err.Error(), "s3cret-canary")) {
		t.Error("a password leaked into the report")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.HasPrefix(rtspReq, "OPTIONS rtsp://"+rtsp+"/Streaming/Channels/102 RTSP/1.0") {
		t.Errorf("OPTIONS request line %q (credentials must not be sent in the URI)", rtspReq)
	}
}

func TestProbeBoundedAndWarnings(t *testing.T) {
	dir := t.TempDir()
	// A camera port that accepts and never answers, a plain-TCP broker, and
	// a broker whose certificate is not in the configured CA.
	silent := serveTCP(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) }) // reads, never answers
	plain := serveTCP(t, func(net.Conn) {})
	_, otherCA := selfSignedTLS(t, time.Now().Add(time.Hour))
	srvTLS, _ := selfSignedTLS(t, time.Now().Add(10*24*time.Hour))
	untrusted := serveTCP(t, func(c net.Conn) { _ = tls.Server(c, srvTLS).Handshake() })
	ca := filepath.Join(dir, "other-ca.pem")
	os.WriteFile(ca, otherCA, 0o644)

	cfg := parseTestConfig(t, `
gateway: {id: gw-unset, compound: compound-unset, data_dir: `+dir+`}
devices:
  - {id: cam-1, kind: camera, driver: rtsp, address: "rtsp://`+silent+`/live", profile: generic-falling-object}
sinks:
  city:
    broker: "tcp://`+plain+`"
`)
	var out bytes.Buffer
	start := time.Now()
	err := probeConfig(context.Background(), cfg, &out, 300*time.Millisecond, 5*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a silent camera held the probe for %v (per-check timeout 300ms)", took)
	}
	report := out.String()
	t.Log("\n" + report)
	if err == nil {
		t.Error("silent camera: want a failure")
	}
	for _, want := range []string{"身份 identity", "placeholders", "connected, but no RTSP answer", "connected without TLS", "汇总 summary: 0 通过 OK, 2 警告 WARN, 1 失败 FAIL"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}

	if r := rtspTarget("rtsps://user:pw@" + untrusted + "/live").run(context.Background()); r.status != probeWarn || !strings.Contains(r.detail, "self-signed") {
		t.Errorf("rtsps camera with a self-signed certificate: %+v", r)
	}
	res := probeBroker(context.Background(), "mqtts://"+untrusted, tlsProbe{ca: ca})
	if res.status != probeFail || !strings.Contains(res.next, "tls.ca_file") {
		t.Errorf("untrusted broker: %+v", res)
	}
	res = probeBroker(context.Background(), "mqtts://"+untrusted, tlsProbe{ca: ca, unverified: true})
	if res.status != probeWarn || !strings.Contains(res.next, "insecure_skip_verify") {
		t.Errorf("untrusted broker with verification off in the config: %+v", res)
	}
}

func TestProbeClientCert(t *testing.T) {
	dir := t.TempDir()
	writeConfig(t, dir, "gw-cert-01")
	code, out, errOut := runCLI(t, "provision", "-c", filepath.Join(dir, "lintel.yaml"), "--dir", filepath.Join(dir, "id"), "--owner", "")
	if code != exitOK {
		t.Fatalf("provision: exit %d\n%s%s", code, out, errOut)
	}
	keyFile := filepath.Join(dir, "id", identityKey)
	certFile := filepath.Join(dir, "id", identityCert)
	if r := checkClientCert(certFile, keyFile, "gw-cert-01"); r.status != probeFail || !strings.Contains(r.next, "lintel provision") {
		t.Errorf("missing certificate: %+v", r)
	}
	// Sign the CSR as the platform would.
	key, err := readKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(cn string, notAfter time.Time) {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	}
	sign("gw-cert-01", time.Now().Add(365*24*time.Hour))
	if r := checkClientCert(certFile, keyFile, "gw-cert-01"); r.status != probeOK {
		t.Errorf("good certificate: %+v", r)
	}
	sign("gw-other", time.Now().Add(365*24*time.Hour))
	if r := checkClientCert(certFile, keyFile, "gw-cert-01"); r.status != probeWarn {
		t.Errorf("wrong CN: %+v", r)
	}
	sign("gw-cert-01", time.Now().Add(-time.Minute))
	if r := checkClientCert(certFile, keyFile, "gw-cert-01"); r.status != probeFail {
		t.Errorf("expired: %+v", r)
	}
	sign("gw-cert-01", time.Now().Add(365*24*time.Hour))
	os.Chmod(keyFile, 0o644)
	if r := checkClientCert(certFile, keyFile, "gw-cert-01"); r.status != probeFail || !strings.Contains(r.next, "chmod 600") {
		t.Errorf("world-readable key: %+v", r)
	}
}

func TestProbeHookRegistered(t *testing.T) {
	if len(checkHooks) == 0 {
		t.Fatal("check_probe.go did not register a check hook")
	}
	cfg := parseTestConfig(t, "gateway: {id: gw-a, compound: c-a, data_dir: "+t.TempDir()+"}\n")
	var out bytes.Buffer
	if err := probeHook(context.Background(), cfg, stdio{strings.NewReader(""), &out, &out}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no devices or sinks to reach") {
		t.Errorf("empty config report: %q", out.String())
	}
}

func TestCellWidth(t *testing.T) {
	for s, want := range map[string]int{"abc": 3, "通过 OK": 7, "失败 FAIL": 9, "→": 1} {
		if got := cellWidth(s); got != want {
			t.Errorf("cellWidth(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestPlaceholderWarning(t *testing.T) {
	cfg := parseTestConfig(t, "gateway: {id: gw-unset, compound: compound-unset, data_dir: /var/lib/lintel}\n")
	if w := placeholderWarning(cfg); !strings.Contains(w, "gw-unset") || !strings.HasPrefix(w, "警告 warning") {
		t.Errorf("placeholder config: %q", w)
	}
	cfg = parseTestConfig(t, "gateway: {id: gw-hf-0001, compound: hf-001, data_dir: /var/lib/lintel}\n")
	if w := placeholderWarning(cfg); w != "" {
		t.Errorf("real ids: %q", w)
	}
}

// TestProbeEveryBroker: lintel check probes each URL of sinks.city.brokers.
func TestProbeEveryBroker(t *testing.T) {
	cfg := parseTestConfig(t, "gateway: {id: gw-a, compound: c-a, data_dir: "+t.TempDir()+"}\n"+
		"sinks:\n  city:\n    brokers: [tcp://127.0.0.1:1, tcp://127.0.0.1:2]\n")
	var got []string
	for _, p := range probeTargets(cfg, time.Second) {
		if p.check == "MQTT" {
			got = append(got, p.target)
		}
	}
	if len(got) != 2 || got[0] != "tcp://127.0.0.1:1" || got[1] != "tcp://127.0.0.1:2" {
		t.Errorf("MQTT probes %v, want one per broker", got)
	}
}

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	bugst "go.bug.st/serial"
	"go.yaml.in/yaml/v3"

	"github.com/lintel-edge/lintel/edge/config"
)

// `lintel check --probe`: after the file validates, try to reach what it
// names, once each, and print a commissioning report an installer can hand
// over: every serial port opened, every Modbus/serial TCP bridge and
// camera connected (cameras answer an RTSP OPTIONS), every MQTT broker
// resolved and, over TLS, handshaken. Nothing is written to any device.
func init() { checkHooks = append(checkHooks, probeHook) }

// Bounds: one check never takes longer than probeTimeout, the whole
// report never longer than probeBudget, however many devices.
const (
	probeTimeout = 5 * time.Second
	probeBudget  = 60 * time.Second
	probeWorkers = 8
	// certWarnBefore flags a client or broker certificate about to expire.
	certWarnBefore = 30 * 24 * time.Hour
)

type probeStatus int

const (
	probeOK probeStatus = iota
	probeWarn
	probeFail
)

func (s probeStatus) String() string {
	return [...]string{"通过 OK", "警告 WARN", "失败 FAIL"}[s]
}

// probeResult is one line of the report.
type probeResult struct {
	status probeStatus
	detail string // what was observed
	next   string // what to do about it: Chinese first, English second
}

// probeTarget is one thing to reach; devices sharing a bus or bridge
// share a target and are probed once.
type probeTarget struct {
	check   string // 检查 column: "串口 serial", "TCP", "RTSP", "MQTT", ...
	target  string // redacted address
	devices []string
	run     func(ctx context.Context) probeResult
	res     probeResult
}

// probeHook is the checkHooks entry.
func probeHook(ctx context.Context, c *config.Config, io stdio) error {
	return probeConfig(ctx, c, io.out, probeTimeout, probeBudget)
}

func probeConfig(ctx context.Context, c *config.Config, w io.Writer, timeout, budget time.Duration) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	targets := probeTargets(c, timeout)

	jobs := make(chan *probeTarget)
	var wg sync.WaitGroup
	for range min(probeWorkers, max(len(targets), 1)) {
		wg.Go(func() {
			for t := range jobs {
				t.res = runBounded(ctx, timeout, t.run)
			}
		})
	}
	for _, t := range targets {
		jobs <- t
	}
	close(jobs)
	wg.Wait()

	counts := printProbeReport(w, c, targets, time.Since(start))
	if counts[probeFail] > 0 {
		return fmt.Errorf("%d 项检查失败 check(s) failed: 按上表“下一步”处理后重新运行 fix them as the report says, then run `lintel check --probe` again", counts[probeFail])
	}
	return nil
}

// runBounded runs f with its own deadline and gives up on it if it
// ignores the deadline (a serial open can block in the kernel): the CLI
// exits soon after and the stuck call dies with it.
func runBounded(ctx context.Context, timeout time.Duration, f func(context.Context) probeResult) probeResult {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ch := make(chan probeResult, 1)
	go func() { ch <- f(cctx) }()
	select {
	case r := <-ch:
		return r
	case <-time.After(timeout + time.Second):
		return probeResult{probeFail, fmt.Sprintf("no answer within %s", timeout),
			"设备或驱动无响应，检查接线后重试 the device or its driver hangs: check the wiring and try again"}
	}
}

// deviceOptions is what the probe needs from a device's options; the
// driver validated the rest already.
type deviceOptions struct {
	Baud     int    `yaml:"baud"`
	Parity   string `yaml:"parity"`
	StopBits int    `yaml:"stop_bits"`
}

func probeTargets(c *config.Config, timeout time.Duration) []*probeTarget {
	var out []*probeTarget
	byKey := map[string]*probeTarget{}
	add := func(key string, dev string, mk func() *probeTarget) {
		if t, ok := byKey[key]; ok {
			t.devices = append(t.devices, dev)
			return
		}
		t := mk()
		t.devices = []string{dev}
		byKey[key] = t
		out = append(out, t)
	}

	if isPlaceholder(c.Gateway.ID) || isPlaceholder(c.Gateway.Compound) {
		out = append(out, &probeTarget{check: "身份 identity", target: "gateway.id / gateway.compound",
			run: func(context.Context) probeResult {
				return probeResult{probeWarn, fmt.Sprintf("placeholders %q / %q", c.Gateway.ID, c.Gateway.Compound),
					"填写平台分配的网关和小区编号 set the ids the city platform issued (gateway.id, gateway.compound)"}
			}})
	}

	for _, d := range c.Devices {
		if d.Disabled {
			continue
		}
		var o deviceOptions
		if b := d.Options.YAML(); b != nil {
			_ = yaml.Unmarshal(b, &o) // validated already; unknown keys are the driver's
		}
		addr := d.Address
		switch {
		case d.Driver == "serial" && d.Kind != "receiver":
			// A sensor is heard through its receiver, probed as that.
			continue
		case strings.HasPrefix(addr, "/"):
			add("serial:"+addr, d.ID, func() *probeTarget { return serialTarget(addr, o) })
		case strings.HasPrefix(addr, "rtu://"), strings.HasPrefix(addr, "serial://"):
			u, err := url.Parse(addr)
			if err != nil {
				continue
			}
			add("serial:"+u.Path, d.ID, func() *probeTarget { return serialTarget(u.Path, o) })
		case strings.HasPrefix(addr, "tcp://"), strings.HasPrefix(addr, "rtuovertcp://"):
			u, err := url.Parse(addr)
			if err != nil {
				continue
			}
			hint := "Modbus TCP: port 502"
			if d.Driver == "serial" || u.Scheme == "rtuovertcp" {
				hint = "serial-to-Ethernet bridge: its TCP server port"
			}
			add("tcp:"+u.Host, d.ID, func() *probeTarget { return tcpTarget(u.Host, hint) })
		case strings.HasPrefix(addr, "rtsp://"), strings.HasPrefix(addr, "rtsps://"):
			add("rtsp:"+config.RedactURL(addr), d.ID, func() *probeTarget { return rtspTarget(addr) })
		}
	}

	names := make([]string, 0, len(c.Sinks))
	for n := range c.Sinks {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		var s struct {
			Broker  string   `yaml:"broker"`
			Brokers []string `yaml:"brokers"`
			TLS     struct {
				CAFile             string `yaml:"ca_file"`
				CertFile           string `yaml:"cert_file"`
				KeyFile            string `yaml:"key_file"`
				InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
			} `yaml:"tls"`
		}
		if b := c.Sinks[n].YAML(); b == nil || yaml.Unmarshal(b, &s) != nil || (s.Broker == "" && len(s.Brokers) == 0) {
			continue
		}
		brokers := s.Brokers
		if len(brokers) == 0 {
			brokers = []string{s.Broker}
		}
		path := "sinks." + n
		if s.TLS.CertFile != "" && s.TLS.KeyFile != "" {
			cert, key := s.TLS.CertFile, s.TLS.KeyFile
			out = append(out, &probeTarget{check: "证书 client cert", target: cert, devices: []string{path},
				run: func(context.Context) probeResult { return checkClientCert(cert, key, c.Gateway.ID) }})
		}
		tc := tlsProbe{ca: s.TLS.CAFile, cert: s.TLS.CertFile, key: s.TLS.KeyFile, unverified: s.TLS.InsecureSkipVerify}
		for _, broker := range brokers {
			out = append(out, &probeTarget{check: "MQTT", target: config.RedactURL(broker), devices: []string{path},
				run: func(ctx context.Context) probeResult { return probeBroker(ctx, broker, tc) }})
		}
	}
	return out
}

func serialTarget(path string, o deviceOptions) *probeTarget {
	return &probeTarget{check: "串口 serial", target: path, run: func(context.Context) probeResult {
		mode := &bugst.Mode{BaudRate: 9600, DataBits: 8, Parity: bugst.NoParity, StopBits: bugst.OneStopBit}
		if o.Baud > 0 {
			mode.BaudRate = o.Baud
		}
		switch o.Parity {
		case "even":
			mode.Parity = bugst.EvenParity
		case "odd":
			mode.Parity = bugst.OddParity
		}
		if o.StopBits == 2 {
			mode.StopBits = bugst.TwoStopBits
		}
		p, err := bugst.Open(path, mode)
		if err != nil {
			return serialFailure(path, err)
		}
		p.Close()
		target := path
		if real, err := os.Readlink(path); err == nil {
			target += " → " + real
		}
		return probeResult{probeOK, fmt.Sprintf("opened %s at %d baud", target, mode.BaudRate), ""}
	}}
}

func serialFailure(path string, err error) probeResult {
	var pe *bugst.PortError
	code := bugst.InvalidSerialPort
	if errors.As(err, &pe) {
		code = pe.Code()
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return probeResult{probeFail, "no such device",
			"插好 USB 转 RS-485/无线接收器，用 ls -l /dev/lintel/ 查看稳定名称 plug the adapter in; ls -l /dev/lintel/ lists the stable names, dmesg | tail shows what the kernel saw"}
	case code == bugst.PermissionDenied, errors.Is(err, fs.ErrPermission):
		return probeResult{probeFail, "permission denied",
			"用 sudo 运行，或把用户加入 dialout 组 run as root or add the user to group dialout (the service user lintel already is)"}
	case code == bugst.PortBusy:
		return probeResult{probeFail, "port busy: another program has it open",
			"先停止服务再检测 stop the daemon first (systemctl stop lintel) or close the other program (fuser -v " + path + ")"}
	}
	return probeResult{probeFail, "cannot open: " + err.Error(),
		"确认这是串口设备 check that the path is a serial port (udevadm info " + path + ")"}
}

func tcpTarget(hostport, hint string) *probeTarget {
	return &probeTarget{check: "TCP", target: hostport, run: func(ctx context.Context) probeResult {
		start := time.Now()
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostport)
		if err != nil {
			return dialFailure(err, hint)
		}
		conn.Close()
		return probeResult{probeOK, fmt.Sprintf("connected in %s", time.Since(start).Round(time.Millisecond)), ""}
	}}
}

func dialFailure(err error, hint string) probeResult {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return probeResult{probeFail, "name not resolved: " + dns.Err,
			"检查 DNS 设置或改用 IP 地址 check the box's DNS (resolvectl status) or use the IP address"}
	case errors.Is(err, syscall.ECONNREFUSED):
		return probeResult{probeFail, "connection refused",
			"设备在线但端口未开放：核对端口 the host answers but nothing listens: check the port (" + hint + ")"}
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return probeResult{probeFail, "no answer (timeout)",
			"检查设备电源、网线、IP 和网段/防火墙 check power, cable, IP address, subnet and firewall (ping it)"}
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return probeResult{probeFail, "host unreachable",
			"网关和设备不在同一网段或没有路由 the gateway has no route to it: check the subnet and gateway (ip route)"}
	}
	return probeResult{probeFail, err.Error(), "检查网络连接 check the network path to the device"}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rtspTarget connects and sends OPTIONS, without the URL's credentials:
// reachability, not login, is checked here (`lintel probe rtsp` tests
// the stream). rtsps:// does the TLS handshake first.
func rtspTarget(raw string) *probeTarget {
	shown := config.RedactURL(raw)
	return &probeTarget{check: "RTSP", target: shown, run: func(ctx context.Context) probeResult {
		u, err := url.Parse(raw)
		if err != nil {
			// Never quote the parse error: it embeds the whole URL.
			return probeResult{probeFail, "malformed URL", "修正地址 fix the address"}
		}
		port := u.Port()
		if port == "" {
			port = map[string]string{"rtsp": "554", "rtsps": "322"}[u.Scheme]
		}
		hostport := net.JoinHostPort(u.Hostname(), port)
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", hostport)
		if err != nil {
			return dialFailure(err, "RTSP: usually 554")
		}
		defer conn.Close()
		if dl, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(dl)
		}
		if u.Scheme == "rtsps" {
			tc := tls.Client(conn, &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12})
			if err := tc.HandshakeContext(ctx); err != nil {
				var unk x509.UnknownAuthorityError
				if errors.As(err, &unk) {
					// Cameras mostly carry self-signed certificates: the
					// port speaks TLS, which is what this check is about.
					return probeResult{probeWarn, "TLS answers with a certificate the system does not trust (self-signed?)",
						"可达；用 lintel probe rtsp 测试码流 reachable; test the stream with `lintel probe rtsp`"}
				}
				return tlsFailure(err, false)
			}
			conn = tc
		}
		reqURL := *u
		reqURL.User = nil
		fmt.Fprintf(conn, "OPTIONS %s RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: lintel-check\r\n\r\n", reqURL.String())
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			return probeResult{probeFail, "connected, but no RTSP answer",
				"端口可能不是 RTSP 服务 the port may not be the camera's RTSP port (often 554): check the camera's network settings"}
		}
		line = strings.TrimSpace(line)
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 || !strings.HasPrefix(f[0], "RTSP/") {
			return probeResult{probeFail, fmt.Sprintf("not an RTSP server (answered %.40q)", line),
				"核对端口 check the port: RTSP is usually 554"}
		}
		code, _ := strconv.Atoi(f[1])
		switch {
		case code == 200:
			return probeResult{probeOK, line, ""}
		case code == 401:
			return probeResult{probeWarn, line + " (asks for a login before OPTIONS)",
				"可达；用 lintel probe rtsp 验证账号和码流 reachable; verify the login and stream with `lintel probe rtsp`"}
		}
		return probeResult{probeWarn, line, "可达但回复异常 reachable but an unusual answer: test with `lintel probe rtsp`"}
	}}
}

type tlsProbe struct {
	ca, cert, key string
	unverified    bool // the config turns verification off
}

// probeBroker resolves the broker, connects, and handshakes TLS the way
// the uplink will (same CA file, same client certificate).
func probeBroker(ctx context.Context, raw string, tp tlsProbe) probeResult {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return probeResult{probeFail, "malformed broker URL", "修正 broker 地址 fix the broker URL, e.g. mqtts://mqtt.example.city:8883"}
	}
	secure := false
	switch u.Scheme {
	case "mqtts", "ssl", "tls", "tcps":
		secure = true
	}
	port := u.Port()
	if port == "" {
		port = "1883"
		if secure {
			port = "8883"
		}
	}
	host := u.Hostname()
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return dialFailure(err, "")
	}
	start := time.Now()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return dialFailure(err, "MQTT: 8883 with TLS, 1883 without")
	}
	defer conn.Close()
	resolved := fmt.Sprintf("%s → %s", host, strings.Join(addrs, ", "))
	if !secure {
		return probeResult{probeWarn, resolved + ", connected without TLS",
			"明文 MQTT 仅限专线 plain MQTT only on a private link; the city platform expects mqtts://"}
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if tp.ca != "" {
		pem, err := os.ReadFile(tp.ca)
		if err != nil {
			return probeResult{probeFail, "cannot read tls.ca_file: " + err.Error(),
				"把平台的 CA 证书放到该路径 put the platform's CA certificate at " + tp.ca}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return probeResult{probeFail, "tls.ca_file holds no PEM certificate", "向平台索取正确的 CA 证书 ask the platform for its CA certificate (PEM)"}
		}
		cfg.RootCAs = pool
	}
	if tp.cert != "" && tp.key != "" {
		if pair, err := tls.LoadX509KeyPair(tp.cert, tp.key); err == nil {
			cfg.Certificates = []tls.Certificate{pair}
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return tlsFailure(err, tp.unverified)
	}
	st := tc.ConnectionState()
	detail := fmt.Sprintf("%s, TLS %s in %s", resolved, tlsVersion(st.Version), time.Since(start).Round(time.Millisecond))
	if len(st.PeerCertificates) > 0 {
		leaf := st.PeerCertificates[0]
		left := time.Until(leaf.NotAfter)
		detail += fmt.Sprintf(", server certificate valid until %s", leaf.NotAfter.UTC().Format("2006-01-02"))
		if left < certWarnBefore {
			return probeResult{probeWarn, detail, "平台证书即将过期，请通知平台 the broker's certificate expires soon: tell the platform operator"}
		}
	}
	if tp.cert == "" {
		return probeResult{probeOK, detail + " (no client certificate configured)", ""}
	}
	return probeResult{probeOK, detail, ""}
}

func tlsFailure(err error, unverified bool) probeResult {
	var inv x509.CertificateInvalidError
	var unk x509.UnknownAuthorityError
	var host x509.HostnameError
	next := "检查 tls.ca_file 与平台提供的一致 check that tls.ca_file is the CA the platform gave you"
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		// No RTC: a box that booted without network thinks it is 1970 or
		// the last shutdown, and every certificate looks not yet valid.
		return probeResult{probeFail, "certificate expired or not yet valid (gateway clock: " + time.Now().UTC().Format(time.RFC3339) + ")",
			"先校准时间：timedatectl 查看 NTP 是否同步 check the clock first (timedatectl: NTP synchronized?); if it is right, the certificate really expired"}
	case errors.As(err, &host):
		next = "broker 地址与证书名称不符 the broker URL's host is not a name in its certificate: use the host name the platform gave"
	case errors.As(err, &unk):
		next = "证书不被信任：在 tls.ca_file 填入平台的 CA the broker's certificate is not trusted: set tls.ca_file to the platform's CA"
	case isTimeout(err), errors.Is(err, context.DeadlineExceeded):
		return probeResult{probeFail, "TLS handshake timed out", "端口可能不是 TLS 服务 the port may not speak TLS (8883 is usual for mqtts)"}
	}
	if unverified {
		return probeResult{probeWarn, "TLS handshake: " + err.Error(),
			"配置关闭了证书校验，请改为配置正确的 CA the config turns verification off; set tls.ca_file instead and remove insecure_skip_verify"}
	}
	return probeResult{probeFail, "TLS handshake: " + err.Error(), next}
}

func tlsVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	}
	return fmt.Sprintf("0x%04x", v)
}

// checkClientCert checks the mTLS identity files: readable, a pair,
// named after this gateway, not expiring, the key private.
func checkClientCert(certFile, keyFile, gatewayID string) probeResult {
	if _, err := os.Stat(certFile); errors.Is(err, fs.ErrNotExist) {
		return probeResult{probeFail, "certificate not there yet",
			"运行 lintel provision，把 CSR 交平台签发后保存到此路径 run `lintel provision`, have the CSR signed, save the certificate here"}
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return probeResult{probeFail, "certificate and key do not load as a pair: " + err.Error(),
			"证书与私钥不匹配：用本机 CSR 重新签发 the certificate was not issued for this key: have gateway.csr signed again"}
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return probeResult{probeFail, "certificate unreadable: " + err.Error(), "向平台重新索取证书 ask the platform for the certificate again"}
	}
	detail := fmt.Sprintf("CN=%s, valid until %s", leaf.Subject.CommonName, leaf.NotAfter.UTC().Format("2006-01-02"))
	if st, err := os.Stat(keyFile); err == nil && st.Mode().Perm()&0o077 != 0 {
		return probeResult{probeFail, detail + fmt.Sprintf("; key mode %04o", st.Mode().Perm()),
			"私钥权限过宽 the key is readable by others: chmod 600 " + keyFile}
	}
	switch left := time.Until(leaf.NotAfter); {
	case left <= 0:
		return probeResult{probeFail, detail + " (expired)", "证书已过期，请平台续签 expired: have the platform renew it"}
	case leaf.Subject.CommonName != gatewayID:
		return probeResult{probeWarn, detail, fmt.Sprintf("证书 CN 与 gateway.id 不同 the certificate's CN is not gateway.id %q: the broker may refuse the topics", gatewayID)}
	case left < certWarnBefore:
		return probeResult{probeWarn, detail, "证书将在 30 天内过期 expires within 30 days: ask the platform to renew"}
	}
	return probeResult{probeOK, detail, ""}
}

// printProbeReport writes the table and returns the count per status.
func printProbeReport(w io.Writer, c *config.Config, ts []*probeTarget, took time.Duration) [3]int {
	var counts [3]int
	host, _ := os.Hostname()
	fmt.Fprintf(w, "\n调试报告 commissioning report\n")
	fmt.Fprintf(w, "  网关 gateway %s · 小区 compound %s · 主机 host %s · lintel %s · %s\n\n",
		c.Gateway.ID, c.Gateway.Compound, host, version, time.Now().UTC().Format("2006-01-02 15:04 MST"))
	if len(ts) == 0 {
		fmt.Fprintf(w, "  (没有需要检测的设备或上行 no devices or sinks to reach)\n")
		return counts
	}
	head := []string{"#", "结果 result", "检查 check", "目标 target", "设备 devices", "详情 detail"}
	rows := [][]string{head}
	for i, t := range ts {
		counts[t.res.status]++
		rows = append(rows, []string{strconv.Itoa(i + 1), t.res.status.String(), t.check, t.target,
			shortList(t.devices, 3), t.res.detail})
	}
	widths := make([]int, len(head)-1) // the last column is not padded
	for _, r := range rows {
		for j := range widths {
			widths[j] = max(widths[j], cellWidth(r[j]))
		}
	}
	for i, r := range rows {
		var b strings.Builder
		b.WriteString("  ")
		for j, cell := range r {
			b.WriteString(cell)
			if j < len(widths) {
				b.WriteString(strings.Repeat(" ", widths[j]-cellWidth(cell)+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if i > 0 && ts[i-1].res.next != "" {
			fmt.Fprintf(w, "  %s  → 下一步 next: %s\n", strings.Repeat(" ", widths[0]), ts[i-1].res.next)
		}
	}
	fmt.Fprintf(w, "\n汇总 summary: %d 通过 OK, %d 警告 WARN, %d 失败 FAIL (耗时 took %s)\n",
		counts[probeOK], counts[probeWarn], counts[probeFail], took.Round(10*time.Millisecond))
	return counts
}

func shortList(s []string, n int) string {
	if len(s) <= n {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:n], ", ") + fmt.Sprintf(" +%d", len(s)-n)
}

// cellWidth is the terminal width of s: CJK and full-width characters
// take two cells, so the table stays aligned with Chinese in it.
func cellWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case r >= 0x1100 && r <= 0x115F, r >= 0x2E80 && r <= 0xA4CF, r >= 0xAC00 && r <= 0xD7A3,
			r >= 0xF900 && r <= 0xFAFF, r >= 0xFE30 && r <= 0xFE4F, r >= 0xFF00 && r <= 0xFF60, r >= 0xFFE0 && r <= 0xFFE6:
			n += 2
		default:
			n++
		}
	}
	return n
}

// placeholderWarning is the line `lintel check` prints while the installed
// default's placeholder ids are still in the file ("" otherwise): the file
// is valid, so the package installs cleanly, but it names no real gateway.
func placeholderWarning(c *config.Config) string {
	if !isPlaceholder(c.Gateway.ID) && !isPlaceholder(c.Gateway.Compound) {
		return ""
	}
	return fmt.Sprintf("警告 warning: gateway.id %q / gateway.compound %q 仍是占位值 are placeholders: "+
		"填写平台分配的编号后再启动 set the ids the city platform issued before starting the service\n",
		c.Gateway.ID, c.Gateway.Compound)
}

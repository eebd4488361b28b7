package status

import (
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// hostAllow is the Host-header allow-list (status.hosts): a page that
// answers to any name can be reached through DNS rebinding, a hostile
// page's own name resolved to the gateway's address, from a browser on
// the LAN. Names compare case-insensitively without a trailing dot;
// addresses by their parsed value.
type hostAllow struct {
	names  map[string]bool
	ips    map[string]bool
	auto   bool // also the box's own names and current interface addresses
	listen string

	mu      sync.Mutex
	ifAddrs map[string]bool
	ifAt    time.Time
	ifaces  func() ([]net.Addr, error)
}

func newHostAllow(listen string, hosts []string) *hostAllow {
	h := &hostAllow{names: map[string]bool{"localhost": true}, ips: map[string]bool{}, auto: len(hosts) == 0,
		listen: listen, ifaces: net.InterfaceAddrs}
	h.ips[net.IPv4(127, 0, 0, 1).String()] = true
	h.ips[net.IPv6loopback.String()] = true
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		h.add(host)
	}
	for _, x := range hosts {
		h.add(x)
	}
	if h.auto {
		if n, err := os.Hostname(); err == nil && n != "" {
			h.add(n)
			if short, _, ok := strings.Cut(n, "."); ok {
				h.add(short)
			}
			h.add(strings.SplitN(n, ".", 2)[0] + ".local") // mDNS
		}
	}
	return h
}

func (h *hostAllow) add(x string) {
	x = normHost(x)
	if x == "" {
		return
	}
	if ip := net.ParseIP(x); ip != nil {
		if !ip.IsUnspecified() { // 0.0.0.0 / :: mean "every interface"
			h.ips[ip.String()] = true
		}
		return
	}
	h.names[x] = true
}

// normHost lower-cases a name, drops one trailing dot and IPv6 brackets.
func normHost(x string) string {
	x = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(x)), ".")
	return strings.TrimSuffix(strings.TrimPrefix(x, "["), "]")
}

// validHostEntry accepts what status.hosts may list: an IP address or a
// DNS name (letters, digits, '-', '.'; no port, no scheme).
func validHostEntry(x string) bool {
	if net.ParseIP(normHost(x)) != nil {
		return true
	}
	if x == "" || len(x) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(x, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// allowed reports whether a request's Host header names this page.
func (h *hostAllow) allowed(hostHeader string) bool {
	if hostHeader == "" || len(hostHeader) > 300 {
		return false
	}
	host := hostHeader
	if hh, port, err := net.SplitHostPort(hostHeader); err == nil {
		if port == "" {
			return false
		}
		host = hh
	} else if strings.Count(hostHeader, ":") == 1 {
		return false // "name:" or "name:port" that did not split: malformed
	}
	host = normHost(host)
	if host == "" {
		return false
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.To4() != nil {
			ip = ip.To4()
		}
		if h.ips[ip.String()] {
			return true
		}
		return h.auto && h.isOwnAddress(ip)
	}
	return h.names[host]
}

// isOwnAddress reports whether ip is one of the box's interface addresses
// (read again at most every 30 s: DHCP may change them).
func (h *hostAllow) isOwnAddress(ip net.IP) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ifAddrs == nil || time.Since(h.ifAt) > 30*time.Second {
		h.ifAddrs = map[string]bool{}
		h.ifAt = time.Now()
		if addrs, err := h.ifaces(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok {
					x := n.IP
					if x.To4() != nil {
						x = x.To4()
					}
					h.ifAddrs[x.String()] = true
				}
			}
		}
	}
	return h.ifAddrs[ip.String()]
}

// checkHost refuses requests whose Host is not the page's (421): the
// probes excepted, which carry no data.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || s.hosts.allowed(r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		s.met.hostDenied.Inc()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusMisdirectedRequest)
		_, _ = w.Write([]byte("421 this gateway does not answer to that host name (status.hosts)\n"))
	})
}

// backPath accepts only a local path to return to after a form: it must
// start with one '/', hold no control character, space, backslash or
// invalid UTF-8 (browsers drop tabs and newlines and read '\' as '/', so
// "/\t/evil.example" and "/\evil.example" lead off-site), and parse as a
// path with no scheme or host.
func backPath(b string) string {
	if !safeLocalPath(b) {
		return "/"
	}
	return b
}

func safeLocalPath(b string) bool {
	if b == "" || len(b) > 512 || b[0] != '/' || strings.HasPrefix(b, "//") || !utf8.ValidString(b) {
		return false
	}
	for _, r := range b {
		if r < 0x20 || r == 0x7f || r == '\\' || unicode.IsSpace(r) || unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	u, err := url.Parse(b)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	// A path whose percent-decoding starts a new authority is off-site
	// for some parsers ("/%2F/evil.example").
	if p, err := url.PathUnescape(u.EscapedPath()); err != nil || strings.HasPrefix(p, "//") || strings.Contains(p, "\\") {
		return false
	}
	return true
}

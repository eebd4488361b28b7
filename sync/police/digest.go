package police

import (
	"crypto/md5" //nolint:gosec // RFC 2617 Digest is MD5; GA/T 1400 platforms speak it
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// Challenge is a parsed WWW-Authenticate: Digest header (RFC 7616).
type Challenge struct {
	Realm     string
	Nonce     string
	Opaque    string
	Algorithm string // "MD5" (default), "MD5-sess", "SHA-256", "SHA-256-sess"
	QOP       []string
	Stale     bool
}

// maxChallenge bounds the header we are willing to parse.
const maxChallenge = 4096

// ParseChallenge parses the value of a WWW-Authenticate header holding a
// Digest challenge. Other schemes, a missing nonce, an unknown algorithm
// or a qop offer without "auth" are errors.
func ParseChallenge(h string) (Challenge, error) {
	var c Challenge
	if len(h) > maxChallenge {
		return c, errors.New("digest challenge: header too long")
	}
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Digest") {
		return c, fmt.Errorf("digest challenge: scheme %q, want Digest", truncate(scheme, 32))
	}
	params, err := parseParams(rest)
	if err != nil {
		return c, err
	}
	c.Realm = params["realm"]
	c.Nonce = params["nonce"]
	c.Opaque = params["opaque"]
	c.Algorithm = params["algorithm"]
	c.Stale = strings.EqualFold(params["stale"], "true")
	if c.Algorithm == "" {
		c.Algorithm = "MD5"
	}
	switch strings.ToUpper(c.Algorithm) {
	case "MD5", "MD5-SESS", "SHA-256", "SHA-256-SESS":
		c.Algorithm = strings.ToUpper(c.Algorithm)
	default:
		return c, fmt.Errorf("digest challenge: algorithm %q not supported", truncate(c.Algorithm, 32))
	}
	if c.Nonce == "" {
		return c, errors.New("digest challenge: no nonce")
	}
	if q, ok := params["qop"]; ok {
		for _, v := range strings.Split(q, ",") {
			if v = strings.TrimSpace(v); v != "" {
				c.QOP = append(c.QOP, v)
			}
		}
		if !c.offers("auth") {
			return c, fmt.Errorf("digest challenge: qop %q has no auth", truncate(q, 32))
		}
	}
	return c, nil
}

func (c Challenge) offers(q string) bool {
	for _, v := range c.QOP {
		if strings.EqualFold(v, q) {
			return true
		}
	}
	return false
}

// parseParams splits `k=v, k="quoted \" v"` lists.
func parseParams(s string) (map[string]string, error) {
	out := map[string]string{}
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return out, nil
		}
		j := i
		for j < len(s) && s[j] != '=' && s[j] != ',' && s[j] != ' ' {
			j++
		}
		key := strings.ToLower(s[i:j])
		if key == "" || j >= len(s) || s[j] != '=' {
			return nil, fmt.Errorf("digest challenge: malformed parameter near %q", truncate(s[i:], 16))
		}
		j++
		var val strings.Builder
		if j < len(s) && s[j] == '"' {
			j++
			closed := false
			for j < len(s) {
				ch := s[j]
				if ch == '\\' && j+1 < len(s) {
					val.WriteByte(s[j+1])
					j += 2
					continue
				}
				if ch == '"' {
					closed = true
					j++
					break
				}
				val.WriteByte(ch)
				j++
			}
			if !closed {
				return nil, errors.New("digest challenge: unterminated quoted string")
			}
		} else {
			k := j
			for j < len(s) && s[j] != ',' && s[j] != ' ' && s[j] != '\t' {
				j++
			}
			val.WriteString(s[k:j])
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("digest challenge: parameter %q given twice", truncate(key, 16))
		}
		out[key] = val.String()
		i = j
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// digestState answers one challenge, counting nonce uses.
type digestState struct {
	ch Challenge
	nc uint32
}

func (c Challenge) newHash() hash.Hash {
	if strings.HasPrefix(c.Algorithm, "SHA-256") {
		return sha256.New()
	}
	return md5.New() //nolint:gosec // see import
}

func (c Challenge) h(parts ...string) string {
	hh := c.newHash()
	hh.Write([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(hh.Sum(nil))
}

// authorize returns the Authorization header value for method and uri.
func (d *digestState) authorize(method, uri, user, pass string) string {
	d.nc++
	c := d.ch
	cnonce := newCnonce()
	ha1 := c.h(user, c.Realm, pass)
	if strings.HasSuffix(c.Algorithm, "-SESS") {
		ha1 = c.h(ha1, c.Nonce, cnonce)
	}
	ha2 := c.h(method, uri)
	nc := fmt.Sprintf("%08x", d.nc)
	var resp string
	qop := ""
	if c.offers("auth") {
		qop = "auth"
		resp = c.h(ha1, c.Nonce, nc, cnonce, qop, ha2)
	} else {
		resp = c.h(ha1, c.Nonce, ha2)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username=%q, realm=%q, nonce=%q, uri=%q, algorithm=%s, response=%q`,
		user, c.Realm, c.Nonce, uri, c.Algorithm, resp)
	if c.Opaque != "" {
		fmt.Fprintf(&b, `, opaque=%q`, c.Opaque)
	}
	if qop != "" {
		fmt.Fprintf(&b, `, qop=%s, nc=%s, cnonce=%q`, qop, nc, cnonce)
	}
	return b.String()
}

func newCnonce() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// DigestResponse is a parsed Authorization: Digest header, for servers
// (the simulator) to verify.
type DigestResponse struct {
	Username, Realm, Nonce, URI, Response, Algorithm, Opaque, QOP, NC, CNonce string
}

// ParseAuthorization parses an Authorization: Digest header.
func ParseAuthorization(h string) (DigestResponse, error) {
	var r DigestResponse
	if len(h) > maxChallenge {
		return r, errors.New("digest authorization: header too long")
	}
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Digest") {
		return r, errors.New("digest authorization: not Digest")
	}
	p, err := parseParams(rest)
	if err != nil {
		return r, err
	}
	r = DigestResponse{p["username"], p["realm"], p["nonce"], p["uri"], p["response"], p["algorithm"], p["opaque"], p["qop"], p["nc"], p["cnonce"]}
	if r.Algorithm == "" {
		r.Algorithm = "MD5"
	}
	if r.Username == "" || r.Nonce == "" || r.Response == "" || r.URI == "" {
		return r, errors.New("digest authorization: username, nonce, uri and response are required")
	}
	return r, nil
}

// Verify reports whether r answers a challenge for method with password.
func (r DigestResponse) Verify(method, pass string) bool {
	c := Challenge{Realm: r.Realm, Nonce: r.Nonce, Algorithm: strings.ToUpper(r.Algorithm)}
	ha1 := c.h(r.Username, r.Realm, pass)
	if strings.HasSuffix(c.Algorithm, "-SESS") {
		ha1 = c.h(ha1, r.Nonce, r.CNonce)
	}
	ha2 := c.h(method, r.URI)
	var want string
	if r.QOP != "" {
		want = c.h(ha1, r.Nonce, r.NC, r.CNonce, r.QOP, ha2)
	} else {
		want = c.h(ha1, r.Nonce, ha2)
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(r.Response)) == 1
}

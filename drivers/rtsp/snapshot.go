package rtsp

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
)

// maxSnapshot bounds a snapshot download; camera JPEGs are 50–800 KB.
const maxSnapshot = 8 << 20

// snapshotter fetches a JPEG from the camera's HTTP snapshot URL, with the
// camera's credentials (Digest or Basic, as the camera asks).
type snapshotter struct {
	url        string // without credentials
	user, pass string
	client     *http.Client
	basic      *basicPolicy // nil: Basic only over https
}

// fetch downloads one snapshot.
func (s *snapshotter) fetch(ctx context.Context) ([]byte, error) {
	res, err := s.get(ctx, "")
	if err != nil {
		return nil, err
	}
	if res.StatusCode == http.StatusUnauthorized && s.user != "" {
		challenges := res.Header.Values("WWW-Authenticate")
		res.Body.Close()
		var authz string
		digest, basic := "", false
		for _, c := range challenges {
			lc := strings.ToLower(strings.TrimSpace(c))
			switch {
			case strings.HasPrefix(lc, "digest ") && digest == "":
				digest = strings.TrimSpace(c)
			case lc == "basic" || strings.HasPrefix(lc, "basic "):
				basic = true
			}
		}
		switch {
		case digest != "": // preferred whenever offered
			if authz, err = digestAuthorization(digest, s.user, s.pass, http.MethodGet, s.url); err != nil {
				return nil, err
			}
		case basic:
			scheme, _, _ := strings.Cut(s.url, "://")
			if !s.basic.mayBasic(scheme) {
				return nil, fmt.Errorf("snapshot: %w", ErrBasicRefused)
			}
			req, _ := http.NewRequest(http.MethodGet, s.url, nil)
			req.SetBasicAuth(s.user, s.pass)
			authz = req.Header.Get("Authorization")
		default:
			return nil, errors.New("snapshot: the camera asks for an authentication scheme other than Digest or Basic")
		}
		if res, err = s.get(ctx, authz); err != nil {
			return nil, err
		}
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("snapshot: camera answered %s", res.Status)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxSnapshot+1))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if len(b) > maxSnapshot {
		return nil, errors.New("snapshot: larger than 8MiB")
	}
	if len(b) < 4 || b[0] != 0xff || b[1] != 0xd8 {
		return nil, errors.New("snapshot: the camera did not send a JPEG")
	}
	return b, nil
}

func (s *snapshotter) get(ctx context.Context, authz string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := s.client.Do(req)
	if err != nil {
		// net/http errors quote the URL, which carries no credentials here.
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return res, nil
}

// digestAuthorization answers an RFC 7616 Digest challenge (MD5, qop=auth
// or none), which is what IP cameras ask for.
func digestAuthorization(challenge, user, pass, method, rawURL string) (string, error) {
	params := map[string]string{}
	for _, part := range splitAuthParams(strings.TrimSpace(challenge[len("digest "):])) {
		k, v, ok := strings.Cut(part, "=")
		if ok {
			params[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	if alg := strings.ToUpper(params["algorithm"]); alg != "" && alg != "MD5" {
		return "", fmt.Errorf("snapshot: digest algorithm %s not supported", alg)
	}
	uri := rawURL
	if i := strings.Index(rawURL, "://"); i >= 0 {
		if j := strings.IndexByte(rawURL[i+3:], '/'); j >= 0 {
			uri = rawURL[i+3+j:]
		} else {
			uri = "/"
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `Digest username="%s", realm="%s", nonce="%s", uri="%s"`, user, params["realm"], params["nonce"], uri)
	qop := ""
	for _, q := range strings.Split(params["qop"], ",") {
		if strings.TrimSpace(q) == "auth" {
			qop = "auth"
		}
	}
	if qop != "" {
		var cn [8]byte
		rand.Read(cn[:])
		cnonce := hex.EncodeToString(cn[:])
		resp := digestResponse(user, params["realm"], pass, method, uri, params["nonce"], cnonce, "auth")
		fmt.Fprintf(&b, `, qop=auth, nc=00000001, cnonce="%s", response="%s"`, cnonce, resp)
	} else {
		fmt.Fprintf(&b, `, response="%s"`, digestResponse(user, params["realm"], pass, method, uri, params["nonce"], "", ""))
	}
	if o := params["opaque"]; o != "" {
		fmt.Fprintf(&b, `, opaque="%s"`, o)
	}
	if params["algorithm"] != "" {
		b.WriteString(", algorithm=MD5")
	}
	return b.String(), nil
}

// digestResponse computes the MD5 digest response (nc is always 1: one
// request per challenge).
func digestResponse(user, realm, pass, method, uri, nonce, cnonce, qop string) string {
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := h(user + ":" + realm + ":" + pass)
	ha2 := h(method + ":" + uri)
	if qop == "" {
		return h(ha1 + ":" + nonce + ":" + ha2)
	}
	return h(ha1 + ":" + nonce + ":00000001:" + cnonce + ":" + qop + ":" + ha2)
}

// splitAuthParams splits on commas outside quotes.
func splitAuthParams(s string) []string {
	var out []string
	quoted := false
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case ',':
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// saveSnapshot stores a JPEG beside the clips and returns its evidence.
func (s *clipStore) saveSnapshot(jpeg []byte, kind string, incident time.Time) (event.Evidence, error) {
	day := incident.UTC().Format("2006-01-02")
	name := incident.UTC().Format("150405.000Z") + "-" + strings.ReplaceAll(kind, ".", "_") + ".jpg"
	rel := filepath.ToSlash(filepath.Join(s.device, day, name))
	path := filepath.Join(s.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return event.Evidence{}, fmt.Errorf("save snapshot: %w", err)
	}
	if err := os.WriteFile(path+".tmp", jpeg, 0o640); err != nil {
		return event.Evidence{}, fmt.Errorf("save snapshot: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return event.Evidence{}, fmt.Errorf("save snapshot: %w", err)
	}
	sum := sha256.Sum256(jpeg)
	return event.Evidence{Type: event.EvidenceSnapshot, Ref: "clips/" + rel, MediaType: "image/jpeg",
		SHA256: hex.EncodeToString(sum[:]), Size: int64(len(jpeg))}, nil
}

// newSnapshotter builds the fetcher for options.snapshot_url, taking the
// camera's credentials when the URL has none.
func newSnapshotter(raw string, rtspUser, rtspPass string, timeout time.Duration) (*snapshotter, error) {
	if raw == "" {
		return nil, nil
	}
	s := &snapshotter{user: rtspUser, pass: rtspPass, client: &http.Client{Timeout: timeout}}
	u, err := parseHTTPURL(raw)
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		u.User = nil
	}
	s.url = u.String()
	return s, nil
}

func parseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q: want an http:// or https:// URL", config.RedactURL(raw))
	}
	return u, nil
}

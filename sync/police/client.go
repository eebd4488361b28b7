package police

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

// ErrUnauthorized means the platform no longer knows this node (HTTP 401,
// or a refused keepalive): register again.
var ErrUnauthorized = errors.New("viid: not registered (401)")

// HTTPError is a non-2xx answer other than 401.
type HTTPError struct {
	Code       int
	RetryAfter time.Duration
	Body       string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("viid: HTTP %d %s", e.Code, truncate(strings.TrimSpace(e.Body), 120))
}

// Client speaks the GA/T 1400 system and write endpoints for one node.
type Client struct {
	Base     string // https://host:port, without /VIID
	User     string
	Pass     string
	DeviceID string
	HTTP     *http.Client
	Loc      *time.Location
	Chunk    int

	mu  sync.Mutex
	dig *digestState

	tmu  sync.Mutex
	tsam TimeSample
}

// TimeSample is one reading of the platform's clock.
type TimeSample struct {
	ReadAt  time.Time     // local time of the reading
	Offset  time.Duration // platform minus local, at ReadAt
	RTT     time.Duration
	Mode    string // SystemTimeObject.TimeMode
	Quality event.TimeQuality
}

func (c *Client) url(path string) string { return strings.TrimRight(c.Base, "/") + path }

func (c *Client) do(ctx context.Context, method, path, ctype string, body io.Reader, size int64, auth string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json,application/*+json")
	req.Header.Set("User-Identify", c.DeviceID)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return c.HTTP.Do(req)
}

// digestCall sends a small body with HTTP Digest: the cached challenge
// first when there is one, else (or on 401) unauthenticated to get one.
func (c *Client) digestCall(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	for attempt := 0; attempt < 2; attempt++ {
		c.mu.Lock()
		auth := ""
		if c.dig != nil {
			auth = c.dig.authorize(method, path, c.User, c.Pass)
		}
		c.mu.Unlock()
		resp, err := c.do(ctx, method, path, ContentType, bytes.NewReader(body), int64(len(body)), auth)
		if err != nil {
			return nil, err
		}
		b, rerr := readBody(resp)
		if resp.StatusCode == http.StatusUnauthorized {
			ch, perr := ParseChallenge(resp.Header.Get("WWW-Authenticate"))
			if perr != nil {
				return nil, fmt.Errorf("viid %s: %w", path, perr)
			}
			c.mu.Lock()
			had := c.dig != nil && !ch.Stale
			c.dig = &digestState{ch: ch}
			c.mu.Unlock()
			if had && attempt > 0 {
				return nil, fmt.Errorf("viid %s: credentials refused", path)
			}
			continue
		}
		if rerr != nil {
			return nil, rerr
		}
		if err := statusErr(resp, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return nil, fmt.Errorf("viid %s: credentials refused", path)
}

func readBody(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return nil, fmt.Errorf("viid: read response: %w", err)
	}
	return b, nil
}

func statusErr(resp *http.Response, body []byte) error {
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return ErrUnauthorized
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	}
	e := &HTTPError{Code: resp.StatusCode, Body: string(body)}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

func single(body []byte) error {
	sts, err := ParseResponse(body)
	if err != nil {
		return err
	}
	if !sts[0].OK() {
		return fmt.Errorf("viid: status %d %s", sts[0].StatusCode, truncate(sts[0].StatusString, 80))
	}
	return nil
}

// Register performs System/Register with the digest exchange.
func (c *Client) Register(ctx context.Context) error {
	c.mu.Lock()
	c.dig = nil // a new registration starts from a fresh challenge
	c.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"RegisterObject": map[string]string{"DeviceID": c.DeviceID}})
	b, err := c.digestCall(ctx, http.MethodPost, "/VIID/System/Register", body)
	if err != nil {
		return err
	}
	return single(b)
}

// UnRegister performs System/UnRegister.
func (c *Client) UnRegister(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{"UnRegisterObject": map[string]string{"DeviceID": c.DeviceID}})
	b, err := c.digestCall(ctx, http.MethodPost, "/VIID/System/UnRegister", body)
	if err != nil {
		return err
	}
	return single(b)
}

// Keepalive performs System/Keepalive. A 401 or a refusing status means
// the platform dropped the node: ErrUnauthorized.
func (c *Client) Keepalive(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{"KeepaliveObject": map[string]string{"DeviceID": c.DeviceID}})
	resp, err := c.do(ctx, http.MethodPost, "/VIID/System/Keepalive", ContentType, bytes.NewReader(body), int64(len(body)), "")
	if err != nil {
		return err
	}
	b, err := readBody(resp)
	if err != nil {
		return err
	}
	if err := statusErr(resp, b); err != nil {
		return err
	}
	if err := single(b); err != nil {
		return fmt.Errorf("%w: %v", ErrUnauthorized, err)
	}
	return nil
}

// ReadTime reads System/Time and keeps the sample. The quality is synced
// only when the platform says its clock is network-synchronised and the
// round trip bounds the error to under a second.
func (c *Client) ReadTime(ctx context.Context) (TimeSample, error) {
	t0 := time.Now()
	resp, err := c.do(ctx, http.MethodGet, "/VIID/System/Time", "", nil, 0, "")
	if err != nil {
		return TimeSample{}, err
	}
	b, err := readBody(resp)
	if err != nil {
		return TimeSample{}, err
	}
	if err := statusErr(resp, b); err != nil {
		return TimeSample{}, err
	}
	t1 := time.Now()
	st, server, err := ParseSystemTime(b, c.Loc)
	if err != nil {
		return TimeSample{}, err
	}
	rtt := t1.Sub(t0)
	mid := t0.Add(rtt / 2)
	s := TimeSample{ReadAt: mid, Offset: server.Sub(mid).Round(time.Second), RTT: rtt, Mode: st.TimeMode, Quality: event.Unsynced}
	if st.TimeMode == "1" && rtt < time.Second {
		s.Quality = event.Synced
	}
	c.tmu.Lock()
	c.tsam = s
	c.tmu.Unlock()
	return s, nil
}

// Time is the last System/Time sample (zero before the first).
func (c *Client) Time() TimeSample {
	c.tmu.Lock()
	defer c.tmu.Unlock()
	return c.tsam
}

// Now implements edge.Clock from the platform's clock: local time plus
// the last offset, synced while a synced sample is under an hour old
// (the platform's second resolution bounds the error at about 1 s).
func (c *Client) Now() (time.Time, event.TimeQuality) {
	s := c.Time()
	now := time.Now()
	if s.ReadAt.IsZero() {
		return now, event.Unsynced
	}
	q := s.Quality
	if now.Sub(s.ReadAt) > time.Hour {
		q = event.Unsynced
	}
	return now.Add(s.Offset), q
}

// PostJSON writes a list envelope and returns the per-record statuses.
func (c *Client) PostJSON(ctx context.Context, path string, v any) ([]StatusObject, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, http.MethodPost, path, ContentType, bytes.NewReader(body), int64(len(body)), "")
	if err != nil {
		return nil, err
	}
	b, err := readBody(resp)
	if err != nil {
		return nil, err
	}
	if err := statusErr(resp, b); err != nil {
		return nil, err
	}
	return ParseResponse(b)
}

// PostData streams size bytes from r to path (…/{id}/Data) through a
// buffer of c.Chunk bytes: the evidence is never held whole in memory.
func (c *Client) PostData(ctx context.Context, path, ctype string, r io.Reader, size int64) error {
	chunk := c.Chunk
	if chunk <= 0 {
		chunk = DefaultChunk
	}
	body := struct{ io.Reader }{bufio.NewReaderSize(r, chunk)}
	resp, err := c.do(ctx, http.MethodPost, path, ctype, body, size, "")
	if err != nil {
		return err
	}
	b, err := readBody(resp)
	if err != nil {
		return err
	}
	if err := statusErr(resp, b); err != nil {
		return err
	}
	return single(b)
}

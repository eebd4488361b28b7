package rtsp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Snapshots through ONVIF: without a configured snapshot_url, the driver
// asks the camera's ONVIF device service where its JPEG snapshot lives
// (GetCapabilities, or GetServices → media service; GetProfiles → first
// profile; GetSnapshotUri → URI), once per RTSP session, and then fetches
// the JPEG there like a configured snapshot_url.

const (
	// maxSOAPResponse bounds an ONVIF answer; GetProfiles of a camera with
	// many profiles is the largest, some tens of KB.
	maxSOAPResponse = 512 << 10
	// onvifRequestTimeout bounds each SOAP request.
	onvifRequestTimeout = 5 * time.Second
	// onvifRetryAfter: a failed lookup is repeated at most this often in
	// one session, so a camera without ONVIF costs one try per incident
	// burst, not one per incident.
	onvifRetryAfter = 5 * time.Minute
	// maxSOAPDepth and maxSOAPTokens bound the parser's work.
	maxSOAPDepth  = 64
	maxSOAPTokens = 200000
	maxSOAPItems  = 64 // profiles, services kept
	maxSOAPText   = 4096
)

const (
	nsDevice = "http://www.onvif.org/ver10/device/wsdl"
	nsMedia  = "http://www.onvif.org/ver10/media/wsdl"
	nsMedia2 = "http://www.onvif.org/ver20/media/wsdl"
)

// soapResponse is what parseSOAP found in an ONVIF answer. Elements are
// matched by local name only: vendors bind the same namespaces to
// different prefixes (env/SOAP-ENV/s, tds/tt/trt) or to none.
type soapResponse struct {
	Body        string // local name of the first element in the Body
	Fault       *soapFault
	MediaXAddr  string         // GetCapabilities: Capabilities/Media/XAddr
	Services    []onvifService // GetServices
	Profiles    []string       // GetProfiles: profile tokens, in order
	SnapshotURI string         // GetSnapshotUri: MediaUri/Uri (media2: Uri)
}

type soapFault struct {
	Code, Subcode, Reason string
}

type onvifService struct {
	Namespace, XAddr string
}

// parseSOAP reads an ONVIF SOAP answer (1.2, or 1.1 for faults). It never
// panics on any input (see FuzzSOAPResponse) and bounds depth, tokens and
// kept text.
func parseSOAP(b []byte) (*soapResponse, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = false // tolerate a stray & or a missing close tag from embedded web servers
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	r := &soapResponse{}
	var stack []string
	var text strings.Builder
	inSnap := 0 // depth of GetSnapshotUriResponse, 0 outside
	sawEnvelope := false
	for n := 0; ; n++ {
		if n > maxSOAPTokens {
			return r, errors.New("answer too complex")
		}
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			if r.Body != "" {
				break // a truncated tail after what we need: keep what was read
			}
			return r, fmt.Errorf("not XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			name := t.Name.Local
			parent := at(stack, 1)
			if len(stack) >= maxSOAPDepth {
				return r, errors.New("answer nested too deeply")
			}
			stack = append(stack, name)
			text.Reset()
			if name == "Envelope" && len(stack) == 1 {
				sawEnvelope = true
			}
			if parent == "Body" && r.Body == "" {
				r.Body = name
				if name == "Fault" {
					r.Fault = &soapFault{}
				}
			}
			switch {
			case name == "GetSnapshotUriResponse" && inSnap == 0:
				inSnap = len(stack)
			case name == "Profiles" && parent == "GetProfilesResponse" && len(r.Profiles) < maxSOAPItems:
				for _, a := range t.Attr {
					if a.Name.Local == "token" && a.Value != "" {
						r.Profiles = append(r.Profiles, a.Value)
					}
				}
			case name == "Service" && parent == "GetServicesResponse" && len(r.Services) < maxSOAPItems:
				r.Services = append(r.Services, onvifService{})
			}
		case xml.CharData:
			if text.Len() < maxSOAPText {
				text.Write(t[:min(len(t), maxSOAPText-text.Len())])
			}
		case xml.EndElement:
			if len(stack) == 0 {
				continue // non-strict mode lets a stray end tag through
			}
			name, parent, grand := at(stack, 1), at(stack, 2), at(stack, 3)
			v := strings.TrimSpace(text.String())
			text.Reset()
			switch {
			case name == "XAddr" && parent == "Media" && grand == "Capabilities":
				if r.MediaXAddr == "" {
					r.MediaXAddr = v
				}
			case (name == "Namespace" || name == "XAddr") && parent == "Service" && grand == "GetServicesResponse":
				if len(r.Services) > 0 {
					s := &r.Services[len(r.Services)-1]
					if name == "Namespace" {
						s.Namespace = v
					} else {
						s.XAddr = v
					}
				}
			case name == "Uri" && inSnap > 0 && (parent == "MediaUri" || parent == "GetSnapshotUriResponse"):
				if r.SnapshotURI == "" {
					r.SnapshotURI = v
				}
			case r.Fault != nil && name == "Value" && parent == "Code":
				r.Fault.Code = v
			case r.Fault != nil && name == "Value" && parent == "Subcode":
				r.Fault.Subcode = v // nested subcodes: the innermost closes last
			case r.Fault != nil && ((name == "Text" && parent == "Reason") || name == "faultstring"):
				if r.Fault.Reason == "" {
					r.Fault.Reason = v
				}
			case r.Fault != nil && name == "faultcode":
				r.Fault.Code = v
			}
			if len(stack) == inSnap {
				inSnap = 0
			}
			stack = stack[:len(stack)-1]
		}
	}
	if !sawEnvelope || r.Body == "" {
		return r, errors.New("not a SOAP answer")
	}
	return r, nil
}

// at returns the i-th name from the top of the stack (1 = top), or "".
func at(stack []string, i int) string {
	if len(stack) < i {
		return ""
	}
	return stack[len(stack)-i]
}

// onvifSnapshots finds and fetches the camera's ONVIF snapshot.
type onvifSnapshots struct {
	device     string // device service URL, without credentials
	user, pass string
	client     *http.Client
	now        func() time.Time
	basic      *basicPolicy // for the JPEG at the snapshot URI

	session atomic.Uint64 // bumped at each RTSP session: the cache is per session

	mu      sync.Mutex // held during a lookup: concurrent incidents ask once
	uri     string
	uriFor  uint64
	failErr error
	failFor uint64
	failAt  time.Time
	lookups int // lookups made, for tests
}

// newONVIFSnapshots builds the ONVIF snapshot fetcher for a camera at
// rtspHost with the camera's credentials. device is options.onvif_url,
// or "" for the default http://<host>/onvif/device_service.
func newONVIFSnapshots(device, rtspHost, user, pass string) (*onvifSnapshots, error) {
	if device == "" {
		device = "http://" + rtspHost + "/onvif/device_service"
	}
	u, err := parseHTTPURL(device)
	if err != nil {
		return nil, err
	}
	u.User = nil
	return &onvifSnapshots{device: u.String(), user: user, pass: pass, now: time.Now,
		client: &http.Client{
			Timeout: onvifRequestTimeout,
			// A camera answering a SOAP POST with a redirect is broken or
			// not a camera; following it could carry the digest elsewhere.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}, nil
}

// newSession forgets the snapshot URI: the camera may have rebooted with
// other settings since.
func (o *onvifSnapshots) newSession() { o.session.Add(1) }

// fetch returns a JPEG from the camera's ONVIF snapshot URI.
func (o *onvifSnapshots) fetch(ctx context.Context) ([]byte, error) {
	uri, err := o.snapshotURI(ctx)
	if err != nil {
		return nil, err
	}
	s := &snapshotter{url: uri, user: o.user, pass: o.pass, client: o.client, basic: o.basic}
	jpeg, err := s.fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("onvif %w", err)
	}
	return jpeg, nil
}

// snapshotURI returns the cached URI of this session, or asks the camera.
func (o *onvifSnapshots) snapshotURI(ctx context.Context) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	sess := o.session.Load()
	if o.uri != "" && o.uriFor == sess {
		return o.uri, nil
	}
	if o.failErr != nil && o.failFor == sess && o.now().Sub(o.failAt) < onvifRetryAfter {
		return "", o.failErr
	}
	uri, err := o.resolve(ctx)
	if err != nil {
		o.failErr, o.failFor, o.failAt = err, sess, o.now()
		return "", err
	}
	o.uri, o.uriFor, o.failErr = uri, sess, nil
	return uri, nil
}

// resolve asks the device for its snapshot URI.
func (o *onvifSnapshots) resolve(ctx context.Context) (string, error) {
	o.lookups++
	ns, media := nsMedia, ""
	res, err := o.call(ctx, o.device, nsDevice, "GetCapabilities",
		`<GetCapabilities xmlns="`+nsDevice+`"><Category>Media</Category></GetCapabilities>`)
	if errors.Is(err, errONVIFAuth) {
		return "", err // GetServices would be refused the same way
	}
	if err == nil {
		media = res.MediaXAddr
	}
	if media == "" {
		// Newer devices (Profile T) may answer GetServices only.
		res, err2 := o.call(ctx, o.device, nsDevice, "GetServices",
			`<GetServices xmlns="`+nsDevice+`"><IncludeCapability>false</IncludeCapability></GetServices>`)
		if err2 != nil {
			if err != nil {
				return "", err
			}
			return "", err2
		}
		var media2 string
		for _, s := range res.Services {
			switch strings.TrimSpace(s.Namespace) {
			case nsMedia:
				media = s.XAddr
			case nsMedia2:
				media2 = s.XAddr
			}
		}
		if media == "" && media2 != "" {
			ns, media = nsMedia2, media2
		}
		if media == "" {
			return "", errors.New("onvif: the camera offers no media service")
		}
	}
	addr, err := o.rebase(media)
	if err != nil {
		return "", fmt.Errorf("onvif: media service address: %w", err)
	}
	res, err = o.call(ctx, addr, ns, "GetProfiles", `<GetProfiles xmlns="`+ns+`"/>`)
	if err != nil {
		return "", err
	}
	if len(res.Profiles) == 0 {
		return "", errors.New("onvif: the camera has no media profile")
	}
	var tok bytes.Buffer
	xml.EscapeText(&tok, []byte(res.Profiles[0]))
	res, err = o.call(ctx, addr, ns, "GetSnapshotUri",
		`<GetSnapshotUri xmlns="`+ns+`"><ProfileToken>`+tok.String()+`</ProfileToken></GetSnapshotUri>`)
	if err != nil {
		return "", err
	}
	if res.SnapshotURI == "" {
		return "", errors.New("onvif: the camera has no snapshot URI")
	}
	uri, err := o.rebase(res.SnapshotURI)
	if err != nil {
		return "", fmt.Errorf("onvif: snapshot URI: %w", err)
	}
	return uri, nil
}

// rebase checks an address the camera gave and points it at the host
// the gateway reaches the camera by: cameras report their own idea of
// their address, which is wrong behind NAT or with a second interface.
// The port and path are kept; credentials in it are dropped (the
// camera's own are used).
func (o *onvifSnapshots) rebase(raw string) (string, error) {
	u, err := parseHTTPURL(raw)
	if err != nil {
		return "", err
	}
	dev, _ := url.Parse(o.device)
	u.User = nil
	if port := u.Port(); port != "" {
		u.Host = net.JoinHostPort(dev.Hostname(), port)
	} else if u.Scheme == dev.Scheme {
		u.Host = dev.Host
	} else {
		u.Host = hostOnly(dev.Hostname())
	}
	return u.String(), nil
}

func hostOnly(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// errONVIFAuth marks a refusal of the credentials.
var errONVIFAuth = errors.New("camera refused the credentials")

// authHint follows errONVIFAuth in messages.
const authHint = "check the camera's user and password (some models keep ONVIF users apart) and its clock (WS-Security checks it)"

// call sends one SOAP request with a WS-Security UsernameToken
// (PasswordDigest); a device that answers 401 gets the request again with
// HTTP Digest instead.
func (o *onvifSnapshots) call(ctx context.Context, addr, ns, op, body string) (*soapResponse, error) {
	action := ns + "/" + op
	res, err := o.post(ctx, addr, action, o.envelope(body, true), "")
	if err != nil {
		return nil, fmt.Errorf("onvif %s: %w", op, err)
	}
	if res.StatusCode == http.StatusUnauthorized && o.user != "" {
		challenge := res.Header.Get("WWW-Authenticate")
		drain(res)
		if !strings.HasPrefix(strings.ToLower(challenge), "digest ") {
			return nil, fmt.Errorf("onvif %s: %w (401): %s", op, errONVIFAuth, authHint)
		}
		authz, err := digestAuthorization(challenge, o.user, o.pass, http.MethodPost, addr)
		if err != nil {
			return nil, fmt.Errorf("onvif %s: %w", op, err)
		}
		if res, err = o.post(ctx, addr, action, o.envelope(body, false), authz); err != nil {
			return nil, fmt.Errorf("onvif %s: %w", op, err)
		}
	}
	defer drain(res)
	if res.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("onvif %s: %w (401): %s", op, errONVIFAuth, authHint)
	}
	b, err := io.ReadAll(io.LimitReader(res.Body, maxSOAPResponse+1))
	if err != nil {
		return nil, fmt.Errorf("onvif %s: %w", op, err)
	}
	if len(b) > maxSOAPResponse {
		return nil, fmt.Errorf("onvif %s: answer larger than %d KiB", op, maxSOAPResponse>>10)
	}
	r, perr := parseSOAP(b)
	if r != nil && r.Fault != nil {
		return nil, faultError(op, r.Fault)
	}
	if res.StatusCode != http.StatusOK {
		if res.StatusCode == http.StatusNotFound {
			return nil, fmt.Errorf("onvif %s: no ONVIF service at that address (404): set options.onvif_url or onvif: off", op)
		}
		return nil, fmt.Errorf("onvif %s: camera answered %s", op, res.Status)
	}
	if perr != nil {
		return nil, fmt.Errorf("onvif %s: %w", op, perr)
	}
	return r, nil
}

// faultError turns a SOAP fault into an error an installer can act on.
// Fault texts come from the camera: they are cut short and never carry
// what we sent.
func faultError(op string, f *soapFault) error {
	code := f.Subcode
	if code == "" {
		code = f.Code
	}
	if _, local, ok := strings.Cut(code, ":"); ok {
		code = local
	}
	switch strings.ToLower(code) {
	case "notauthorized", "failedauthentication", "invalidsecurity", "invalidsecuritytoken", "failedcheck":
		return fmt.Errorf("onvif %s: %w (%s): %s", op, errONVIFAuth, code, authHint)
	}
	reason := f.Reason
	if len(reason) > 120 {
		reason = reason[:120] + "…"
	}
	return fmt.Errorf("onvif %s: camera answered a fault %s: %s", op, code, reason)
}

func drain(res *http.Response) {
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
}

func (o *onvifSnapshots) post(ctx context.Context, addr, action string, env []byte, authz string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, addr, bytes.NewReader(env))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", `application/soap+xml; charset=utf-8; action="`+action+`"`)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	// net/http errors quote addr, which carries no credentials.
	res, err := o.client.Do(req)
	if err != nil {
		var ne net.Error
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("nothing listens at the camera's ONVIF address: set options.onvif_url (another port?) or onvif: \"off\": %w", err)
		case errors.As(err, &ne) && ne.Timeout():
			return nil, fmt.Errorf("no answer from the camera's ONVIF service: %w", err)
		}
	}
	return res, err
}

// envelope wraps a request body in a SOAP 1.2 envelope, with a
// WS-Security UsernameToken when wsse and the camera has a user:
// PasswordDigest = Base64(SHA-1(nonce + created + password)).
func (o *onvifSnapshots) envelope(body string, wsse bool) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` +
		`<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">`)
	if wsse && o.user != "" {
		var nonce [16]byte
		rand.Read(nonce[:])
		created := o.now().UTC().Format("2006-01-02T15:04:05.000Z")
		b.WriteString(`<s:Header><wsse:Security s:mustUnderstand="1" ` +
			`xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd" ` +
			`xmlns:wsu="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">` +
			`<wsse:UsernameToken><wsse:Username>`)
		xml.EscapeText(&b, []byte(o.user))
		b.WriteString(`</wsse:Username><wsse:Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">`)
		b.WriteString(passwordDigest(nonce[:], created, o.pass))
		b.WriteString(`</wsse:Password><wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">`)
		b.WriteString(base64.StdEncoding.EncodeToString(nonce[:]))
		b.WriteString(`</wsse:Nonce><wsu:Created>` + created + `</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header>`)
	}
	b.WriteString(`<s:Body>` + body + `</s:Body></s:Envelope>`)
	return b.Bytes()
}

// passwordDigest is the WS-Security UsernameToken PasswordDigest.
func passwordDigest(nonce []byte, created, pass string) string {
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(pass))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

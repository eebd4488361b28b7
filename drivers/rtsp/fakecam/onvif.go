package fakecam

import (
	"bytes"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// The simulated ONVIF services speak like a Hikvision camera: SOAP 1.2
// with env/tds/trt/tt prefixes, and addresses naming the camera's own LAN
// address (192.168.1.64) rather than the one the client used, as real
// cameras behind NAT or with two interfaces do; clients must rebase them.
const onvifLANHost = "192.168.1.64"

// ONVIFURL is the camera's ONVIF device service, or "" when Options.ONVIF
// is off.
func (c *Camera) ONVIFURL() string {
	if c.httpAddr == "" || !c.opts.ONVIF {
		return ""
	}
	return "http://" + c.httpAddr + "/onvif/device_service"
}

// ONVIFRequests is how many requests for op (GetCapabilities, …,
// "snapshot" for the JPEG) the camera has answered, authorised or not.
func (c *Camera) ONVIFRequests(op string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.onvifReq[op]
}

func (c *Camera) countONVIF(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.onvifReq == nil {
		c.onvifReq = map[string]int{}
	}
	c.onvifReq[op]++
}

// soapRequest is what the fake reads from a request.
type soapRequest struct {
	op                             string // first element in the Body
	user, password, nonce, created string
	passwordType, profileToken     string
	hasSecurity                    bool
}

func readSOAPRequest(b []byte) (soapRequest, error) {
	var r soapRequest
	d := xml.NewDecoder(bytes.NewReader(b))
	var stack []string
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return r, nil
		}
		if err != nil {
			return r, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) > 0 && stack[len(stack)-1] == "Body" && r.op == "" {
				r.op = t.Name.Local
			}
			if t.Name.Local == "Security" {
				r.hasSecurity = true
			}
			if t.Name.Local == "Password" {
				for _, a := range t.Attr {
					if a.Name.Local == "Type" {
						r.passwordType = a.Value
					}
				}
			}
			stack = append(stack, t.Name.Local)
			text.Reset()
		case xml.CharData:
			text.Write(t)
		case xml.EndElement:
			v := strings.TrimSpace(text.String())
			switch t.Name.Local {
			case "Username":
				r.user = v
			case "Password":
				r.password = v
			case "Nonce":
				r.nonce = v
			case "Created":
				r.created = v
			case "ProfileToken":
				r.profileToken = v
			}
			text.Reset()
			stack = stack[:len(stack)-1]
		}
	}
}

// wsseOK checks a UsernameToken PasswordDigest, and that Created is
// within five minutes of the camera's clock, as cameras do.
func (c *Camera) wsseOK(r soapRequest) bool {
	if !r.hasSecurity || r.user != c.opts.User || !strings.HasSuffix(r.passwordType, "#PasswordDigest") {
		return false
	}
	nonce, err := base64.StdEncoding.DecodeString(r.nonce)
	if err != nil || len(nonce) == 0 {
		return false
	}
	created, err := time.Parse(time.RFC3339Nano, r.created)
	if err != nil || time.Since(created).Abs() > 5*time.Minute {
		return false
	}
	h := sha1.New()
	h.Write(nonce)
	h.Write([]byte(r.created))
	h.Write([]byte(c.onvifPassword()))
	want := base64.StdEncoding.EncodeToString(h.Sum(nil))
	return subtle.ConstantTimeCompare([]byte(want), []byte(r.password)) == 1
}

func (c *Camera) onvifRoutes(mux *http.ServeMux, pic []byte) {
	_, port, _ := net.SplitHostPort(c.httpAddr)
	lan := "http://" + net.JoinHostPort(onvifLANHost, port)
	serve := func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			return
		}
		req, err := readSOAPRequest(b)
		if err != nil || req.op == "" {
			soapFault(w, http.StatusBadRequest, "env:Sender", "ter:WellFormed", "bad request")
			return
		}
		c.countONVIF(req.op)
		if c.opts.User != "" {
			if c.opts.ONVIFDigest {
				if !c.digestOKWith(r, c.onvifPassword()) {
					c.challenge(w)
					return
				}
			} else if !c.wsseOK(req) {
				// ONVIF Core §5.12: a sender not authorised gets a fault.
				soapFault(w, http.StatusBadRequest, "env:Sender", "ter:NotAuthorized", "Sender not Authorized")
				return
			}
		}
		var body string
		switch req.op {
		case "GetCapabilities":
			body = `<tds:GetCapabilitiesResponse><tds:Capabilities>` +
				`<tt:Device><tt:XAddr>` + lan + `/onvif/device_service</tt:XAddr></tt:Device>` +
				`<tt:Events><tt:XAddr>` + lan + `/onvif/Events</tt:XAddr><tt:WSSubscriptionPolicySupport>true</tt:WSSubscriptionPolicySupport></tt:Events>` +
				`<tt:Media><tt:XAddr>` + lan + `/onvif/Media</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>true</tt:RTPMulticast>` +
				`<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media>` +
				`</tds:Capabilities></tds:GetCapabilitiesResponse>`
		case "GetServices":
			body = `<tds:GetServicesResponse><tds:Service><tds:Namespace>http://www.onvif.org/ver10/device/wsdl</tds:Namespace>` +
				`<tds:XAddr>` + lan + `/onvif/device_service</tds:XAddr><tds:Version><tt:Major>17</tt:Major><tt:Minor>12</tt:Minor></tds:Version></tds:Service>` +
				`<tds:Service><tds:Namespace>http://www.onvif.org/ver10/media/wsdl</tds:Namespace><tds:XAddr>` + lan + `/onvif/Media</tds:XAddr>` +
				`<tds:Version><tt:Major>17</tt:Major><tt:Minor>12</tt:Minor></tds:Version></tds:Service></tds:GetServicesResponse>`
		case "GetProfiles":
			body = `<trt:GetProfilesResponse><trt:Profiles token="Profile_1" fixed="true"><tt:Name>mainStream</tt:Name>` +
				`<tt:VideoSourceConfiguration token="VideoSourceToken"><tt:Name>VideoSourceConfig</tt:Name><tt:SourceToken>VideoSource_1</tt:SourceToken></tt:VideoSourceConfiguration>` +
				`<tt:VideoEncoderConfiguration token="VideoEncoderToken_1"><tt:Name>VideoEncoder_1</tt:Name><tt:Encoding>H264</tt:Encoding></tt:VideoEncoderConfiguration>` +
				`</trt:Profiles><trt:Profiles token="Profile_2" fixed="true"><tt:Name>subStream</tt:Name></trt:Profiles></trt:GetProfilesResponse>`
		case "GetSnapshotUri":
			if req.profileToken != "Profile_1" && req.profileToken != "Profile_2" {
				soapFault(w, http.StatusBadRequest, "env:Sender", "ter:NoProfile", "no such profile")
				return
			}
			body = `<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>` + lan + `/onvif-http/snapshot?` + req.profileToken + `</tt:Uri>` +
				`<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot>` +
				`<tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetSnapshotUriResponse>`
		default:
			soapFault(w, http.StatusBadRequest, "env:Receiver", "ter:ActionNotSupported", "not supported")
			return
		}
		writeSOAP(w, http.StatusOK, body)
	}
	mux.HandleFunc("POST /onvif/device_service", serve)
	mux.HandleFunc("POST /onvif/Media", serve)
	mux.HandleFunc("GET /onvif-http/snapshot", func(w http.ResponseWriter, r *http.Request) {
		c.countONVIF("snapshot")
		if c.opts.User != "" && !c.digestOKWith(r, c.onvifPassword()) {
			c.challenge(w)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(pic)
	})
}

func (c *Camera) onvifPassword() string {
	if c.opts.ONVIFPassword != "" {
		return c.opts.ONVIFPassword
	}
	return c.opts.Password
}

func (c *Camera) challenge(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm="IPCAM", qop="auth", nonce="%s", opaque="5ccc069c403ebaf9f0171e9517f40e41"`, c.nonce))
	http.Error(w, "unauthorized", http.StatusUnauthorized)
}

const soapHead = `<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error" ` +
	`xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" ` +
	`xmlns:tt="http://www.onvif.org/ver10/schema"><env:Body>`

func writeSOAP(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/soap+xml; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, soapHead+body+`</env:Body></env:Envelope>`)
}

func soapFault(w http.ResponseWriter, status int, code, subcode, reason string) {
	writeSOAP(w, status, `<env:Fault><env:Code><env:Value>`+code+`</env:Value><env:Subcode><env:Value>`+subcode+
		`</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">`+reason+`</env:Text></env:Reason></env:Fault>`)
}

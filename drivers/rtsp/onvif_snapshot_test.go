package rtsp

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/drivers/rtsp/fakecam"
)

// SOAP answers in the shapes vendors send: Hikvision (env/tds/trt/tt,
// SOAP 1.2), Dahua (SOAP-ENV with a long namespace list, &amp; in the
// URI), Axis (SOAP-ENV, GetServices with capabilities, media on
// /onvif/services), a media2 answer, a default-namespace answer, and
// faults in SOAP 1.2 and 1.1.
var soapCases = []struct {
	name string
	doc  string
	want soapResponse
	err  bool
}{
	{
		name: "hikvision GetCapabilities",
		doc: `<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:soapenc="http://www.w3.org/2003/05/soap-encoding" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"><env:Body><tds:GetCapabilitiesResponse><tds:Capabilities><tt:Media><tt:XAddr>http://192.168.1.64/onvif/Media</tt:XAddr><tt:StreamingCapabilities><tt:RTPMulticast>true</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities><tt:Extension><tt:ProfileCapabilities><tt:MaximumNumberOfProfiles>10</tt:MaximumNumberOfProfiles></tt:ProfileCapabilities></tt:Extension></tt:Media></tds:Capabilities></tds:GetCapabilitiesResponse></env:Body></env:Envelope>`,
		want: soapResponse{Body: "GetCapabilitiesResponse", MediaXAddr: "http://192.168.1.64/onvif/Media"},
	},
	{
		name: "hikvision GetProfiles",
		doc: `<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"><env:Body><trt:GetProfilesResponse><trt:Profiles token="Profile_1" fixed="true"><tt:Name>mainStream</tt:Name><tt:VideoSourceConfiguration token="VideoSourceToken"><tt:Name>VideoSourceConfig</tt:Name><tt:UseCount>2</tt:UseCount><tt:SourceToken>VideoSource_1</tt:SourceToken><tt:Bounds x="0" y="0" width="1920" height="1080"></tt:Bounds></tt:VideoSourceConfiguration><tt:VideoEncoderConfiguration token="VideoEncoderToken_1"><tt:Name>VideoEncoder_1</tt:Name><tt:Encoding>H264</tt:Encoding></tt:VideoEncoderConfiguration></trt:Profiles><trt:Profiles token="Profile_2" fixed="true"><tt:Name>subStream</tt:Name></trt:Profiles></trt:GetProfilesResponse></env:Body></env:Envelope>`,
		want: soapResponse{Body: "GetProfilesResponse", Profiles: []string{"Profile_1", "Profile_2"}},
	},
	{
		name: "hikvision GetSnapshotUri",
		doc: `<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"><env:Body><trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>http://192.168.1.64/onvif-http/snapshot?Profile_1</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetSnapshotUriResponse></env:Body></env:Envelope>`,
		want: soapResponse{Body: "GetSnapshotUriResponse", SnapshotURI: "http://192.168.1.64/onvif-http/snapshot?Profile_1"},
	},
	{
		name: "dahua GetCapabilities",
		doc: `<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:SOAP-ENC="http://www.w3.org/2003/05/soap-encoding" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl">
 <SOAP-ENV:Header></SOAP-ENV:Header>
 <SOAP-ENV:Body>
  <tds:GetCapabilitiesResponse>
   <tds:Capabilities>
    <tt:Analytics><tt:XAddr>http://192.168.1.108/onvif/analytics_service</tt:XAddr></tt:Analytics>
    <tt:Device><tt:XAddr>http://192.168.1.108/onvif/device_service</tt:XAddr></tt:Device>
    <tt:Media>
      <tt:XAddr>http://192.168.1.108/onvif/media_service</tt:XAddr>
    </tt:Media>
   </tds:Capabilities>
  </tds:GetCapabilitiesResponse>
 </SOAP-ENV:Body>
</SOAP-ENV:Envelope>`,
		want: soapResponse{Body: "GetCapabilitiesResponse", MediaXAddr: "http://192.168.1.108/onvif/media_service"},
	},
	{
		name: "dahua GetProfiles",
		doc:  `<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"><SOAP-ENV:Header></SOAP-ENV:Header><SOAP-ENV:Body><trt:GetProfilesResponse><trt:Profiles fixed="true" token="MediaProfile00000"><tt:Name>MediaProfile_Channel1_MainStream</tt:Name><tt:VideoSourceConfiguration token="000"><tt:Name>VideoSourceConfig_Channel1</tt:Name></tt:VideoSourceConfiguration></trt:Profiles><trt:Profiles fixed="true" token="MediaProfile00001"><tt:Name>MediaProfile_Channel1_SubStream1</tt:Name></trt:Profiles></trt:GetProfilesResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>`,
		want: soapResponse{Body: "GetProfilesResponse", Profiles: []string{"MediaProfile00000", "MediaProfile00001"}},
	},
	{
		name: "dahua GetSnapshotUri",
		doc:  `<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"><SOAP-ENV:Header></SOAP-ENV:Header><SOAP-ENV:Body><trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>http://192.168.1.108/onvifsnapshot/media_service/snapshot?channel=1&amp;subtype=0</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetSnapshotUriResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>`,
		want: soapResponse{Body: "GetSnapshotUriResponse", SnapshotURI: "http://192.168.1.108/onvifsnapshot/media_service/snapshot?channel=1&subtype=0"},
	},
	{
		name: "axis GetServices",
		doc: `<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:trt="http://www.onvif.org/ver10/media/wsdl"><SOAP-ENV:Header/><SOAP-ENV:Body><tds:GetServicesResponse><tds:Service><tds:Namespace>http://www.onvif.org/ver10/device/wsdl</tds:Namespace><tds:XAddr>http://192.168.0.90/onvif/device_service</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service><tds:Service><tds:Namespace>http://www.onvif.org/ver10/media/wsdl</tds:Namespace><tds:XAddr>http://192.168.0.90/onvif/services</tds:XAddr><tds:Capabilities><trt:Capabilities SnapshotUri="true" Rotation="true"><trt:ProfileCapabilities MaximumNumberOfProfiles="16"/></trt:Capabilities></tds:Capabilities><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version></tds:Service><tds:Service><tds:Namespace>http://www.onvif.org/ver20/media/wsdl</tds:Namespace><tds:XAddr>http://192.168.0.90/onvif/services</tds:XAddr><tds:Version><tt:Major>18</tt:Major><tt:Minor>12</tt:Minor></tds:Version></tds:Service></tds:GetServicesResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>`,
		want: soapResponse{Body: "GetServicesResponse", Services: []onvifService{
			{"http://www.onvif.org/ver10/device/wsdl", "http://192.168.0.90/onvif/device_service"},
			{"http://www.onvif.org/ver10/media/wsdl", "http://192.168.0.90/onvif/services"},
			{"http://www.onvif.org/ver20/media/wsdl", "http://192.168.0.90/onvif/services"},
		}},
	},
	{
		name: "axis GetSnapshotUri",
		doc: `<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema"><SOAP-ENV:Header/><SOAP-ENV:Body><trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>http://192.168.0.90/onvif-cgi/jpg/image.cgi?resolution=1920x1080&amp;compression=30</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect><tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri></trt:GetSnapshotUriResponse></SOAP-ENV:Body></SOAP-ENV:Envelope>`,
		want: soapResponse{Body: "GetSnapshotUriResponse", SnapshotURI: "http://192.168.0.90/onvif-cgi/jpg/image.cgi?resolution=1920x1080&compression=30"},
	},
	{
		name: "media2 GetSnapshotUri",
		doc:  `<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><tr2:GetSnapshotUriResponse xmlns:tr2="http://www.onvif.org/ver20/media/wsdl"><tr2:Uri>http://10.0.0.5/snap.jpg</tr2:Uri></tr2:GetSnapshotUriResponse></s:Body></s:Envelope>`,
		want: soapResponse{Body: "GetSnapshotUriResponse", SnapshotURI: "http://10.0.0.5/snap.jpg"},
	},
	{
		name: "default namespaces, no prefixes",
		doc:  `<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body><GetProfilesResponse xmlns="http://www.onvif.org/ver10/media/wsdl"><Profiles token="p0"><Name xmlns="http://www.onvif.org/ver10/schema">main</Name></Profiles></GetProfilesResponse></Body></Envelope>`,
		want: soapResponse{Body: "GetProfilesResponse", Profiles: []string{"p0"}},
	},
	{
		name: "fault NotAuthorized (SOAP 1.2)",
		doc:  `<?xml version="1.0" encoding="UTF-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>`,
		want: soapResponse{Body: "Fault", Fault: &soapFault{Code: "env:Sender", Subcode: "ter:NotAuthorized", Reason: "Sender not Authorized"}},
	},
	{
		name: "fault nested subcodes",
		doc:  `<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"><SOAP-ENV:Body><SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>SOAP-ENV:Sender</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>ter:InvalidArgVal</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>ter:NoProfile</SOAP-ENV:Value></SOAP-ENV:Subcode></SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">no profile</SOAP-ENV:Text></SOAP-ENV:Reason></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>`,
		want: soapResponse{Body: "Fault", Fault: &soapFault{Code: "SOAP-ENV:Sender", Subcode: "ter:NoProfile", Reason: "no profile"}},
	},
	{
		name: "fault SOAP 1.1",
		doc:  `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode><faultstring>Not Authorized</faultstring></soap:Fault></soap:Body></soap:Envelope>`,
		want: soapResponse{Body: "Fault", Fault: &soapFault{Code: "soap:Client", Reason: "Not Authorized"}},
	},
	{
		name: "uri outside GetSnapshotUriResponse is not taken",
		doc:  `<e:Envelope xmlns:e="x"><e:Body><GetStreamUriResponse><MediaUri><Uri>rtsp://cam/stream</Uri></MediaUri></GetStreamUriResponse></e:Body></e:Envelope>`,
		want: soapResponse{Body: "GetStreamUriResponse"},
	},
	{name: "html login page", doc: `<html><body>login</body></html>`, err: true},
	{name: "empty", doc: ``, err: true},
	{name: "not xml", doc: "\x00\x01garbage", err: true},
}

func TestParseSOAP(t *testing.T) {
	for _, tc := range soapCases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSOAP([]byte(tc.doc))
			if tc.err {
				if err == nil {
					t.Fatalf("no error; got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Body != tc.want.Body || got.MediaXAddr != tc.want.MediaXAddr || got.SnapshotURI != tc.want.SnapshotURI ||
				strings.Join(got.Profiles, ",") != strings.Join(tc.want.Profiles, ",") || len(got.Services) != len(tc.want.Services) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			for i := range got.Services {
				if got.Services[i] != tc.want.Services[i] {
					t.Errorf("service %d: %+v, want %+v", i, got.Services[i], tc.want.Services[i])
				}
			}
			if (got.Fault == nil) != (tc.want.Fault == nil) || (got.Fault != nil && *got.Fault != *tc.want.Fault) {
				t.Errorf("fault %+v, want %+v", got.Fault, tc.want.Fault)
			}
		})
	}
}

func TestParseSOAPLimits(t *testing.T) {
	deep := `<Envelope><Body><X>` + strings.Repeat("<a>", 200) + strings.Repeat("</a>", 200) + `</X></Body></Envelope>`
	if _, err := parseSOAP([]byte(deep)); err == nil {
		t.Error("200 levels deep accepted")
	}
	many := `<Envelope><Body><GetProfilesResponse>` + strings.Repeat(`<Profiles token="p"/>`, 1000) + `</GetProfilesResponse></Body></Envelope>`
	r, err := parseSOAP([]byte(many))
	if err != nil || len(r.Profiles) != maxSOAPItems {
		t.Errorf("%d profiles kept (%v), want %d", len(r.Profiles), err, maxSOAPItems)
	}
	long := `<Envelope><Body><GetSnapshotUriResponse><MediaUri><Uri>http://h/` + strings.Repeat("a", 100000) + `</Uri></MediaUri></GetSnapshotUriResponse></Body></Envelope>`
	if r, err := parseSOAP([]byte(long)); err != nil || len(r.SnapshotURI) > maxSOAPText {
		t.Errorf("long text: %v, %d bytes kept", err, len(r.SnapshotURI))
	}
}

func FuzzSOAPResponse(f *testing.F) {
	for _, tc := range soapCases {
		f.Add([]byte(tc.doc))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, _ := parseSOAP(b)
		if r == nil {
			t.Fatal("nil result")
		}
		if len(r.Profiles) > maxSOAPItems || len(r.Services) > maxSOAPItems || len(r.SnapshotURI) > maxSOAPText || len(r.MediaXAddr) > maxSOAPText {
			t.Fatalf("limits exceeded: %d profiles, %d services", len(r.Profiles), len(r.Services))
		}
	})
}

// TestPasswordDigest checks the WS-Security digest against the example
// of the ONVIF Application Programmer's Guide (§6.1.1.3).
func TestPasswordDigest(t *testing.T) {
	nonce, _ := base64.StdEncoding.DecodeString("LKqI6G/AikKCQrN0zqZFlg==")
	if got := passwordDigest(nonce, "2010-09-16T07:50:45Z", "userpassword"); got != "tuOSpGlFlIXsozq4HFNeeGeFLEI=" {
		t.Fatalf("digest %s", got)
	}
}

func TestFaultError(t *testing.T) {
	err := faultError("GetProfiles", &soapFault{Code: "env:Sender", Subcode: "ter:NotAuthorized", Reason: "Sender not Authorized"})
	if !errors.Is(err, errONVIFAuth) || !strings.Contains(err.Error(), "NotAuthorized") {
		t.Errorf("%v", err)
	}
	err = faultError("GetSnapshotUri", &soapFault{Code: "env:Receiver", Subcode: "ter:ActionNotSupported", Reason: strings.Repeat("x", 500)})
	if errors.Is(err, errONVIFAuth) || len(err.Error()) > 250 {
		t.Errorf("%v", err)
	}
}

// TestONVIFRebaseAndErrors: addresses the camera names are pointed at the
// host the gateway uses; a 404 or an HTML page says plainly what is
// wrong; the password never appears in an error.
func TestONVIFRebaseAndErrors(t *testing.T) {
	o, err := newONVIFSnapshots("", "10.1.2.3", "admin", "Sec-Ret-1")
	if err != nil || o.device != "http://10.1.2.3/onvif/device_service" {
		t.Fatalf("%v %q", err, o.device)
	}
	for in, want := range map[string]string{
		"http://192.168.1.64/onvif/Media":              "http://10.1.2.3/onvif/Media",
		"http://192.168.1.64:8080/onvif/Media":         "http://10.1.2.3:8080/onvif/Media",
		"http://u:p@192.168.1.64/snap?ch=1&x=2":        "http://10.1.2.3/snap?ch=1&x=2",
		"https://192.168.1.64/onvif-http/snapshot?P_1": "https://10.1.2.3/onvif-http/snapshot?P_1",
	} {
		if got, err := o.rebase(in); err != nil || got != want {
			t.Errorf("rebase %s = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := o.rebase("rtsp://192.168.1.64/x"); err == nil {
		t.Error("rtsp URI accepted as snapshot")
	}

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/html/onvif/device_service":
			w.Write([]byte("<html>login</html>"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for path, want := range map[string]string{
		srv.URL + "/onvif/device_service":      "404",
		srv.URL + "/html/onvif/device_service": "not a SOAP answer",
		closedURL + "/onvif/device_service":    "nothing listens",
	} {
		o, _ := newONVIFSnapshots(path, "", "admin", "Sec-Ret-1")
		_, err := o.fetch(context.Background())
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Sec-Ret-1") {
			t.Errorf("%s: %v", path, err)
		}
		// The failure is remembered for the session: no second lookup.
		o.fetch(context.Background())
		if o.lookups != 1 {
			t.Errorf("%s: %d lookups, want 1", path, o.lookups)
		}
	}
}

// TestONVIFLookupOncePerSession: the snapshot URI is asked for once per
// RTSP session and asked again after a new session starts.
func TestONVIFLookupOncePerSession(t *testing.T) {
	cam, err := fakecam.Start(fakecam.Options{User: "admin", Password: "Cache-Pass-1", ONVIF: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	o, err := newONVIFSnapshots(cam.ONVIFURL(), "", "admin", "Cache-Pass-1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if i == 2 {
			o.newSession()
		}
		if jpeg, err := o.fetch(ctx); err != nil || len(jpeg) < 100 {
			t.Fatalf("fetch %d: %v", i, err)
		}
	}
	if o.lookups != 2 || cam.ONVIFRequests("GetSnapshotUri") != 2 || cam.ONVIFRequests("snapshot") < 3 {
		t.Errorf("%d lookups, %d GetSnapshotUri, %d snapshots; want 2, 2, 3", o.lookups,
			cam.ONVIFRequests("GetSnapshotUri"), cam.ONVIFRequests("snapshot"))
	}
}

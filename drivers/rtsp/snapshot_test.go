package rtsp

import (
	"strings"
	"testing"
)

// TestDigestResponse checks the digest computation against RFC 2617 §3.5.
func TestDigestResponse(t *testing.T) {
	got := digestResponse("Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html",
		"dcd98b7102dd2f0e8b11d0f600bfb0c093", "0a4f113b", "auth")
	if got != "6629fae49393a05397450978507c4ef1" {
		t.Fatalf("digest response %s", got)
	}
	h, err := digestAuthorization(`Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`,
		"Mufasa", "Circle Of Life", "GET", "http://www.nowhere.org/dir/index.html")
	if err != nil || !strings.Contains(h, `uri="/dir/index.html"`) || !strings.Contains(h, "qop=auth,") || !strings.Contains(h, `opaque="5ccc069c403ebaf9f0171e9517f40e41"`) {
		t.Fatalf("authorization %q, %v", h, err)
	}
	if _, err := digestAuthorization(`Digest realm="r", nonce="n", algorithm=SHA-512-256`, "u", "p", "GET", "http://h/"); err == nil {
		t.Fatal("unsupported algorithm accepted")
	}
}

package police

import (
	"strings"
	"testing"
)

var responseCases = []struct {
	name  string
	body  string
	codes []int
	ids   []string
	err   bool
}{
	{"single", `{"ResponseStatusObject":{"Id":"1","RequestURL":"/VIID/System/Register","StatusCode":0,"StatusString":"OK","LocalTime":"20260101000000"}}`, []int{0}, []string{"1"}, false},
	{"string code", `{"ResponseStatusObject":{"Id":"1","StatusCode":"4"}}`, []int{4}, []string{"1"}, false},
	{"list", `{"ResponseStatusListObject":{"ResponseStatusObject":[{"Id":"a","StatusCode":0},{"Id":"b","StatusCode":1}]}}`, []int{0, 1}, []string{"a", "b"}, false},
	{"collapsed list", `{"ResponseStatusListObject":{"ResponseStatusObject":{"Id":"a","StatusCode":2}}}`, []int{2}, []string{"a"}, false},
	{"empty list", `{"ResponseStatusListObject":{}}`, nil, nil, true},
	{"neither", `{"Foo":1}`, nil, nil, true},
	{"bad code", `{"ResponseStatusObject":{"StatusCode":"x"}}`, nil, nil, true},
	{"negative code", `{"ResponseStatusObject":{"StatusCode":-1}}`, nil, nil, true},
	{"not json", `<html>`, nil, nil, true},
}

func TestParseResponse(t *testing.T) {
	for _, c := range responseCases {
		t.Run(c.name, func(t *testing.T) {
			sts, err := ParseResponse([]byte(c.body))
			if (err != nil) != c.err {
				t.Fatalf("err %v, want error %v", err, c.err)
			}
			if len(sts) != len(c.codes) {
				t.Fatalf("%d statuses, want %d", len(sts), len(c.codes))
			}
			for i := range sts {
				if sts[i].StatusCode != c.codes[i] || sts[i].ID != c.ids[i] {
					t.Fatalf("status %d: %+v", i, sts[i])
				}
			}
		})
	}
}

func FuzzParseResponse(f *testing.F) {
	for _, c := range responseCases {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sts, err := ParseResponse(b)
		if err == nil && len(sts) == 0 {
			t.Fatal("no error and no status")
		}
		for _, s := range sts {
			if s.StatusCode < 0 {
				t.Fatal("negative status code")
			}
		}
	})
}

var challengeCases = []struct {
	name, h string
	realm   string
	nonce   string
	alg     string
	err     bool
}{
	{"wvp", `Digest realm="viid", nonce="abc123", qop="auth"`, "viid", "abc123", "MD5", false},
	{"unquoted and opaque", `Digest realm=viid,nonce=n1,opaque="o",algorithm=MD5,qop="auth,auth-int"`, "viid", "n1", "MD5", false},
	{"sha256 stale", `digest realm="r", nonce="n", algorithm=SHA-256, stale=true`, "r", "n", "SHA-256", false},
	{"escaped", `Digest realm="a \"b\"", nonce="n"`, `a "b"`, "n", "MD5", false},
	{"basic", `Basic realm="x"`, "", "", "", true},
	{"no nonce", `Digest realm="x"`, "", "", "", true},
	{"unterminated", `Digest realm="x, nonce="n`, "", "", "", true},
	{"bad alg", `Digest realm="x", nonce="n", algorithm=SHA-1`, "", "", "", true},
	{"qop without auth", `Digest realm="x", nonce="n", qop="auth-int"`, "", "", "", true},
	{"dup", `Digest nonce="a", nonce="b"`, "", "", "", true},
	{"garbage", `Digest ===`, "", "", "", true},
}

func TestParseChallenge(t *testing.T) {
	for _, c := range challengeCases {
		t.Run(c.name, func(t *testing.T) {
			ch, err := ParseChallenge(c.h)
			if (err != nil) != c.err {
				t.Fatalf("err %v, want error %v", err, c.err)
			}
			if err == nil && (ch.Realm != c.realm || ch.Nonce != c.nonce || ch.Algorithm != c.alg) {
				t.Fatalf("%+v", ch)
			}
		})
	}
}

// TestDigestRoundTrip checks our answer against our verifier and the
// RFC 2617 §3.5 example.
func TestDigestRoundTrip(t *testing.T) {
	ch, err := ParseChallenge(`Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`)
	if err != nil {
		t.Fatal(err)
	}
	d := &digestState{ch: ch}
	h := d.authorize("GET", "/dir/index.html", "Mufasa", "Circle Of Life")
	a, err := ParseAuthorization(h)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Verify("GET", "Circle Of Life") || a.Verify("GET", "wrong") || a.Verify("POST", "Circle Of Life") {
		t.Fatal("verify")
	}
	if a.NC != "00000001" || !strings.Contains(h, `opaque="5ccc069c403ebaf9f0171e9517f40e41"`) {
		t.Fatal(h)
	}
	// RFC 2617's worked example, with its cnonce.
	a.CNonce, a.Response = "0a4f113b", "6629fae49393a05397450978507c4ef1"
	if !a.Verify("GET", "Circle Of Life") {
		t.Fatal("RFC 2617 example response does not verify")
	}
}

func FuzzParseChallenge(f *testing.F) {
	for _, c := range challengeCases {
		f.Add(c.h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		ch, err := ParseChallenge(h)
		if err != nil {
			return
		}
		if ch.Nonce == "" {
			t.Fatal("accepted a challenge without nonce")
		}
		d := &digestState{ch: ch}
		if _, err := ParseAuthorization(d.authorize("POST", "/VIID/System/Register", "u", "p")); err != nil && ch.Realm == "" {
			return
		}
	})
}

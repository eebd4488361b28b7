package fakecam

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"image"
	"image/jpeg"
	"net"
	"net/http"
	"strings"
	"time"
)

// snapshotJPEG draws a frame like the video's: grey with the box.
func snapshotJPEG() []byte {
	img := image.NewYCbCr(image.Rect(0, 0, 320, 240), image.YCbCrSubsampleRatio420)
	for i := range img.Y {
		img.Y[i] = bgLuma
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = bgCb, bgCr
	}
	for y := 16; y < 32; y++ {
		for x := 0; x < 16; x++ {
			img.Y[y*img.YStride+x] = boxLuma
		}
	}
	var b bytes.Buffer
	_ = jpeg.Encode(&b, img, &jpeg.Options{Quality: 70})
	return b.Bytes()
}

// startSnapshots serves GET /snapshot.jpg, behind digest authentication
// when the camera has a user.
func (c *Camera) startSnapshots(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("snapshot server: %w", err)
	}
	pic := snapshotJPEG()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /snapshot.jpg", func(w http.ResponseWriter, r *http.Request) {
		if h := r.Header.Get("Authorization"); h != "" {
			c.sawAuth(h)
		}
		if c.opts.User != "" && c.opts.BasicAuth {
			if u, p, ok := r.BasicAuth(); !ok || u != c.opts.User || p != c.opts.Password {
				w.Header().Set("WWW-Authenticate", `Basic realm="IPCAM"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		} else if c.opts.User != "" && !c.digestOK(r) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm="IPCAM", qop="auth", nonce="%s", opaque="5ccc069c403ebaf9f0171e9517f40e41"`, c.nonce))
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(pic)
	})
	if c.opts.ONVIF {
		c.onvifRoutes(mux, pic)
	}
	c.http = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	c.httpAddr = ln.Addr().String()
	go c.http.Serve(ln)
	return nil
}

// SnapshotURL is the camera's HTTP snapshot URL (without credentials), or
// "" when Options.Snapshots is off.
func (c *Camera) SnapshotURL() string {
	if c.httpAddr == "" || !c.opts.Snapshots {
		return ""
	}
	return "http://" + c.httpAddr + "/snapshot.jpg"
}

func (c *Camera) digestOK(r *http.Request) bool { return c.digestOKWith(r, c.opts.Password) }

func (c *Camera) digestOKWith(r *http.Request, password string) bool {
	h := r.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Digest ") {
		return false
	}
	p := map[string]string{}
	for _, part := range strings.Split(h[len("Digest "):], ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok {
			p[k] = strings.Trim(v, `"`)
		}
	}
	md := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := md(c.opts.User + ":IPCAM:" + password)
	ha2 := md(r.Method + ":" + p["uri"])
	want := md(ha1 + ":" + p["nonce"] + ":" + p["nc"] + ":" + p["cnonce"] + ":" + p["qop"] + ":" + ha2)
	return p["username"] == c.opts.User && p["nonce"] == c.nonce && p["uri"] == r.URL.RequestURI() && p["response"] == want
}

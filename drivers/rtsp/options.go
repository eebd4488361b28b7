package rtsp

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
)

// Options are a camera's `options:` in the configuration. Every field has
// a default (see defaultOptions); sample.yaml documents each one.
type Options struct {
	// Transport is tcp (interleaved in the RTSP connection: no inbound
	// ports, no UDP loss on large I-frames), udp, or auto (UDP first, TCP
	// if nothing arrives in 3 s).
	Transport string `yaml:"transport"`
	// Username and Password override the credentials in the address, so
	// the password can live in a file ("file:/etc/lintel/cam.pass").
	Username string        `yaml:"username"`
	Password config.Secret `yaml:"password"`
	// AllowBasicAuth lets the password go out as Basic authentication
	// over plain rtsp:// and http:// (the password itself, readable by
	// anyone on the path or answering at the camera's address). Off, only
	// Digest is answered there; over rtsps:// and https:// Basic is fine.
	AllowBasicAuth bool `yaml:"allow_basic_auth"`
	// ReadTimeout ends a session that receives nothing at all (then the
	// driver reconnects); it is also the dial and request timeout.
	ReadTimeout config.Duration `yaml:"read_timeout"`
	// VideoLostAfter: no video for this long while the session is up
	// raises camera.video_lost.
	VideoLostAfter config.Duration `yaml:"video_lost_after"`
	// ReconnectMax caps the backoff between reconnection attempts.
	ReconnectMax config.Duration `yaml:"reconnect_max"`
	// PreRoll and PostRoll are the clip's length before and after the
	// incident.
	PreRoll  config.Duration `yaml:"pre_roll"`
	PostRoll config.Duration `yaml:"post_roll"`
	// BufferMax caps the memory of this camera's ring buffer (the
	// pre-roll; a clip being cut holds about one GOP more while it is
	// written); BufferTotal caps the rings of all cameras together (the
	// smallest value configured on any camera wins).
	BufferMax   config.Size `yaml:"buffer_max"`
	BufferTotal config.Size `yaml:"buffer_total"`
	// Clips turns evidence clips on or off for this camera.
	Clips string `yaml:"clips"`
	// ClipDir is where clips go; default <data_dir>/clips. Clips of a
	// camera live in <clip_dir>/<device id>/.
	ClipDir string `yaml:"clip_dir"`
	// ClipQuota caps this camera's clips on disk (oldest deleted first);
	// ClipRetention deletes clips older than this.
	ClipQuota     config.Size     `yaml:"clip_quota"`
	ClipRetention config.Duration `yaml:"clip_retention"`
	// SnapshotURL is the camera's HTTP snapshot (JPEG) URL; when set, a
	// snapshot is attached to every incident that gets a clip. The RTSP
	// credentials are used unless the URL has its own.
	SnapshotURL string `yaml:"snapshot_url"`
	// ONVIF is auto (without snapshot_url, ask the camera's ONVIF device
	// service for its snapshot URI) or off. ONVIFURL is that service;
	// default http://<camera host>/onvif/device_service.
	ONVIF    string `yaml:"onvif"`
	ONVIFURL string `yaml:"onvif_url"`
	// FloorBands map image heights to floors for the start-floor estimate
	// of falling objects.
	FloorBands []FloorBand `yaml:"floor_bands"`
}

func defaultOptions() Options {
	return Options{
		Transport:      "tcp",
		ReadTimeout:    config.Duration(10 * time.Second),
		VideoLostAfter: config.Duration(5 * time.Second),
		ReconnectMax:   config.Duration(30 * time.Second),
		PreRoll:        config.Duration(10 * time.Second),
		PostRoll:       config.Duration(10 * time.Second),
		BufferMax:      config.Size(16 << 20),
		BufferTotal:    config.Size(128 << 20),
		Clips:          "on",
		ONVIF:          "auto",
		ClipQuota:      config.Size(2 << 30),
		ClipRetention:  config.Duration(30 * 24 * time.Hour),
	}
}

// decodeOptions decodes and checks a device's options, reporting problems
// at their positions. It does no I/O.
func decodeOptions(r *config.Reporter, path string, d config.Device) Options {
	o := defaultOptions()
	d.Options.Decode(r, &o)
	p := path + ".options"
	switch o.Transport {
	case "tcp", "udp", "auto":
	default:
		r.At(p+".transport", "%q: want tcp, udp or auto", o.Transport)
	}
	if u, err := url.Parse(d.Address); err == nil && u.Scheme == "rtsps" && o.Transport == "udp" {
		r.At(p+".transport", "rtsps runs over TCP only: use tcp")
	}
	check := func(key string, v config.Duration, lo, hi time.Duration) {
		if v.Std() < lo || v.Std() > hi {
			r.At(p+"."+key, "%s: want between %s and %s", v, lo, hi)
		}
	}
	check("read_timeout", o.ReadTimeout, time.Second, 5*time.Minute)
	check("video_lost_after", o.VideoLostAfter, time.Second, time.Hour)
	check("reconnect_max", o.ReconnectMax, time.Second, time.Hour)
	check("pre_roll", o.PreRoll, 0, 2*time.Minute)
	check("post_roll", o.PostRoll, 0, 2*time.Minute)
	if o.ClipRetention.Std() < time.Hour {
		r.At(p+".clip_retention", "%s is too short: at least 1h", o.ClipRetention)
	}
	if o.BufferMax < 1<<20 {
		r.At(p+".buffer_max", "%s is too small: at least 1MiB", o.BufferMax)
	}
	if o.BufferTotal < o.BufferMax {
		r.At(p+".buffer_total", "%s is smaller than buffer_max %s", o.BufferTotal, o.BufferMax)
	}
	if o.ClipQuota < 16<<20 {
		r.At(p+".clip_quota", "%s is too small: at least 16MiB", o.ClipQuota)
	}
	switch o.Clips {
	case "on", "off":
	default:
		r.At(p+".clips", "%q: want on or off", o.Clips)
	}
	if o.ClipDir != "" && !filepath.IsAbs(o.ClipDir) {
		r.At(p+".clip_dir", "%q: want an absolute path", o.ClipDir)
	}
	if o.SnapshotURL != "" {
		if _, err := parseHTTPURL(o.SnapshotURL); err != nil {
			r.At(p+".snapshot_url", "%v", err)
		}
	}
	switch o.ONVIF {
	case "auto", "off":
	default:
		r.At(p+".onvif", "%q: want auto or off", o.ONVIF)
	}
	if o.ONVIFURL != "" {
		if u, err := parseHTTPURL(o.ONVIFURL); err != nil {
			r.At(p+".onvif_url", "%v", err)
		} else if u.User != nil {
			// The camera's credentials are used; a second copy here would
			// be one more place for a password to leak from.
			r.At(p+".onvif_url", "%q: no credentials here: the camera's user and password are used", config.RedactURL(o.ONVIFURL))
		}
	}
	for i, b := range o.FloorBands {
		bp := fmt.Sprintf("%s.floor_bands[%d]", p, i)
		if b.YMin < 0 || b.YMax > 1 || b.YMin >= b.YMax {
			r.At(bp, "y_min %g, y_max %g: want 0 <= y_min < y_max <= 1 (0 is the top of the image)", b.YMin, b.YMax)
		}
		if b.Floor < -5 || b.Floor > 200 {
			r.At(bp+".floor", "%d: want a floor number between -5 and 200", b.Floor)
		}
	}
	return o
}

func validateDevice(r *config.Reporter, c *config.Config, path string, d config.Device) {
	decodeOptions(r, path, d)
	if d.Profile == "" {
		return // reported by config
	}
	if _, _, ok := c.ProfilePath("cameras", d.Profile); !ok {
		return // reported by config
	}
	prof, err := LoadProfile(c, d.Profile)
	if err != nil {
		r.At(path+".profile", "%v", err)
		return
	}
	if len(prof.Kinds) > 0 && !contains(prof.Kinds, d.Kind) {
		r.At(path+".profile", "profile %q is for %v devices, not %s", d.Profile, prof.Kinds, d.Kind)
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// DeviceAllowsBasic reports a configured device's allow_basic_auth.
func DeviceAllowsBasic(d config.Device) bool {
	o, err := optionsAtRuntime(d)
	return err == nil && o.AllowBasicAuth
}

// ErrMalformedURL stands for a URL parse error. The parser's own error
// quotes the input, password included (golang/go#53993), and even its
// inner error can quote part of the authority ("invalid port \":w0rd\""),
// so none of it is shown.
var ErrMalformedURL = errors.New("malformed URL: check the host and port, and percent-encode ':', '@', '/', '#' and '?' in the user and password (@ → %40, : → %3A, / → %2F)")

// optionsAtRuntime decodes a device's options again when the driver
// starts, with the same strict decoder and positioned problems as
// validation.
func optionsAtRuntime(d config.Device) (Options, error) {
	o := defaultOptions()
	err := d.Options.DecodeStrict(&o)
	return o, err
}

// DeviceURL returns the URL the driver dials for a configured device, with
// the username and password options applied, and its transport option.
// The URL carries the password: show it only through config.RedactURL.
func DeviceURL(d config.Device) (rawURL, transport string, err error) {
	o, err := optionsAtRuntime(d)
	if err != nil {
		return "", "", err
	}
	u, err := url.Parse(d.Address)
	if err != nil {
		return "", "", fmt.Errorf("address %s: %w", config.RedactURL(d.Address), ErrMalformedURL)
	}
	if o.Username != "" || !o.Password.IsZero() {
		user := o.Username
		if user == "" && u.User != nil {
			user = u.User.Username()
		}
		pass, err := o.Password.Reveal()
		if err != nil {
			return "", "", fmt.Errorf("camera password: %w", err)
		}
		u.User = url.UserPassword(user, pass)
	}
	return u.String(), o.Transport, nil
}

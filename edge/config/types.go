package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written with units ("90s", "6h", "1h30m").
// A bare number is rejected: "30" could mean seconds or minutes.
type Duration time.Duration

// UnmarshalConfigScalar implements [Unmarshaler].
func (d *Duration) UnmarshalConfigScalar(s string) error {
	if s == "0" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		if _, nerr := strconv.ParseFloat(s, 64); nerr == nil {
			return fmt.Errorf("%q has no unit; write e.g. \"%ss\" or \"%sm\"", s, s, s)
		}
		return fmt.Errorf("%q is not a duration like \"30s\", \"5m\" or \"6h\"", s)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", s)
	}
	*d = Duration(v)
	return nil
}

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// Size is a byte count written with an optional binary unit: "512MiB",
// "64KiB", "1GiB" or a plain number of bytes.
type Size int64

// UnmarshalConfigScalar implements [Unmarshaler].
func (s *Size) UnmarshalConfigScalar(v string) error {
	t := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000}, {"B", 1}} {
		if strings.HasSuffix(t, u.suf) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suf)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size like \"256MiB\"", v)
	}
	if n > (1<<62)/mult {
		return fmt.Errorf("%q is too large", v)
	}
	*s = Size(n * mult)
	return nil
}

func (s Size) String() string {
	switch {
	case s >= 1<<30 && s%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", s>>30)
	case s >= 1<<20 && s%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", s>>20)
	case s >= 1<<10 && s%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", s>>10)
	}
	return strconv.FormatInt(int64(s), 10)
}

// Secret is a password, token or key. In the file it is written as
// "file:/etc/lintel/mqtt.pass" (read when used; the recommended form),
// "env:LINTEL_MQTT_PASSWORD", or literally. It prints, logs and encodes as
// "REDACTED" so it cannot leak through a dump, a log line or a page.
type Secret struct {
	src string
}

// Redacted is what a secret shows instead of its value.
const Redacted = "REDACTED"

// NewSecret returns a literal secret (for tests and programmatic configs).
func NewSecret(v string) Secret { return Secret{src: v} }

// UnmarshalConfigScalar implements [Unmarshaler].
func (s *Secret) UnmarshalConfigScalar(v string) error {
	if rest, ok := strings.CutPrefix(v, "file:"); ok && !strings.HasPrefix(rest, "/") {
		return errors.New("file: secrets need an absolute path")
	}
	if rest, ok := strings.CutPrefix(v, "env:"); ok && rest == "" {
		return errors.New("env: secrets need a variable name")
	}
	s.src = v
	return nil
}

// IsZero reports whether no secret was given.
func (s Secret) IsZero() bool { return s.src == "" }

// Source describes where the secret comes from without revealing it.
func (s Secret) Source() string {
	switch {
	case s.src == "":
		return ""
	case strings.HasPrefix(s.src, "file:"), strings.HasPrefix(s.src, "env:"):
		return s.src
	}
	return "inline"
}

// Reveal returns the secret's value, reading its file or variable. Only
// the code that hands the secret to a protocol calls it.
func (s Secret) Reveal() (string, error) {
	switch {
	case strings.HasPrefix(s.src, "file:"):
		b, err := os.ReadFile(strings.TrimPrefix(s.src, "file:"))
		if err != nil {
			return "", fmt.Errorf("read secret: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	case strings.HasPrefix(s.src, "env:"):
		name := strings.TrimPrefix(s.src, "env:")
		v, ok := os.LookupEnv(name)
		if !ok {
			return "", &UnsetEnvError{Var: name}
		}
		return v, nil
	}
	return s.src, nil
}

// UnsetEnvError is Reveal's error for an env: secret whose variable is
// not set, so the command that reports it can say which one to set.
type UnsetEnvError struct{ Var string }

func (e *UnsetEnvError) Error() string {
	return "secret: environment variable " + e.Var + " is not set"
}

func (s Secret) String() string { return Redacted }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalYAML implements yaml.Marshaler.
func (s Secret) MarshalYAML() (any, error) { return Redacted, nil }

// RedactURL hides the password of a URL with credentials
// ("rtsp://admin:pw@10.0.0.7/s" → "rtsp://admin:REDACTED@10.0.0.7/s").
// Strings that are not URLs are returned unchanged.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		// An unparsable URL may still carry credentials: cut "user:pw@".
		if i := strings.Index(s, "://"); i >= 0 {
			if j := strings.LastIndexByte(s[i+3:], '@'); j >= 0 {
				return s[:i+3] + Redacted + "@" + s[i+3+j+1:]
			}
		}
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), Redacted)
	}
	// url.String escapes the placeholder nowhere, so this is stable.
	return u.String()
}

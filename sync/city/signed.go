package city

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lintel-edge/lintel/edge"
	"github.com/lintel-edge/lintel/edge/event"
)

// SignedCommand is one downlink message on {prefix}/cmd: an envelope,
// the id of the platform key that signed it, and the Ed25519 signature.
//
//	{"envelope":{"id":"c-1842","command":"gate.open","args":{"device":"gate-south"},
//	  "actor":"ops:zhang","issued_at":"2026-11-27T03:00:00Z","expires_at":"2026-11-27T03:05:00Z",
//	  "gateway":"gw-01"},"key_id":"city-2026a","sig":"…base64…"}
//
// The signature is over SignaturePrefix followed by [Canonical] of the
// envelope (docs/city-platform.md has test vectors). The gateway checks it
// before it reads anything else, then reads the canonical bytes, never the
// wire bytes, so what was verified is exactly what is applied.
type SignedCommand struct {
	Envelope json.RawMessage `json:"envelope"`
	KeyID    string          `json:"key_id"`
	Sig      string          `json:"sig"`
}

// Envelope is what the platform signs.
type Envelope struct {
	ID        string          `json:"id"`
	Command   string          `json:"command"`
	Args      json.RawMessage `json:"args"`
	Actor     string          `json:"actor"`
	IssuedAt  string          `json:"issued_at"`
	ExpiresAt string          `json:"expires_at"`
	Gateway   string          `json:"gateway"`
}

// SignaturePrefix separates command signatures from anything else a
// platform key might sign.
const SignaturePrefix = "lintel.cmd/v1\n"

// Refusal reasons, stable codes on cmd/result ("refused") and in
// command.refused events (data.reason).
const (
	ReasonMalformed    = "malformed"     // not a command message: bad JSON, fields missing or of the wrong form, too large
	ReasonUnsigned     = "unsigned"      // no signature (a plain command)
	ReasonNoKeys       = "no_keys"       // the gateway has no platform key configured: every command is refused
	ReasonUnknownKey   = "unknown_key"   // key_id names no configured key
	ReasonBadSignature = "bad_signature" // the signature does not verify
	ReasonWrongGateway = "wrong_gateway" // the envelope is for another gateway
	ReasonExpired      = "expired"       // expires_at has passed (beyond the clock-skew allowance)
	ReasonNotYetValid  = "not_yet_valid" // issued_at is in the future (beyond the allowance)
	ReasonTooLong      = "validity_too_long"
	ReasonClockUnset   = "clock_unset" // the gateway's clock is not set: validity cannot be checked
	ReasonReplay       = "replay"      // the id was seen before (kept until the command expires)
	ReasonRetained     = "retained"    // a retained message: commands are never taken from the broker's store
	ReasonBusy         = "busy"        // the command queue is full: nothing applied, retry with the same id
	ReasonUnavailable  = "unavailable" // the id could not be recorded durably: nothing applied, retry
	ReasonRejected     = "rejected"    // verified, but its handler refused it (unknown command, bad args)
)

// Refusal is why a command was not applied, with what it claimed (for
// the result and the audit event; none of it is trusted).
type Refusal struct {
	Reason string
	Detail string
	// Claimed fields, bounded and sanitised.
	ID, Command, Actor, KeyID string
}

func (r *Refusal) Error() string {
	if r.Detail == "" {
		return r.Reason
	}
	return r.Reason + ": " + r.Detail
}

// PlatformKey is one public key of the platform.
type PlatformKey struct {
	ID  string
	Key ed25519.PublicKey
}

// Verifier checks signed commands for one gateway.
type Verifier struct {
	Gateway string
	Keys    map[string]ed25519.PublicKey
	// MaxValidity bounds expires_at − issued_at.
	MaxValidity time.Duration
	// Skew is the clock-skew allowance when the gateway clock is synced;
	// UnsyncedSkew when it is not (NTP has not answered since boot).
	Skew, UnsyncedSkew time.Duration
}

// Verified is a command that passed every check but replay.
type Verified struct {
	Command             // ID, Command, Args (canonical), Actor as recorded: "platform:<key id>/<actor>"
	KeyID     string    // the key that signed it
	Claimed   string    // the envelope's actor as sent
	IssuedAt  time.Time //
	ExpiresAt time.Time
	// KeepUntil is how long the id must be remembered: expiry plus the
	// allowance, the last instant at which the command could still pass.
	KeepUntil time.Time
}

// Actor is how a verified command's actor is recorded: the key that
// vouched for it and the platform's own user. It cannot be confused with a
// status page account (those never contain ':' or '/').
func Actor(keyID, actor string) string { return "platform:" + keyID + "/" + actor }

// Allowance is the clock-skew allowance for a time quality.
func (v *Verifier) Allowance(q event.TimeQuality) time.Duration {
	if q == event.Synced {
		return v.Skew
	}
	return v.UnsyncedSkew
}

// Verify decodes and checks one message at now (of quality q). A refusal
// is returned as *Refusal.
func (v *Verifier) Verify(b []byte, now time.Time, q event.TimeQuality) (Verified, error) {
	var out Verified
	claims := claimed(b)
	refuse := func(reason, format string, a ...any) (Verified, error) {
		r := claims
		r.Reason, r.Detail = reason, fmt.Sprintf(format, a...)
		return out, &r
	}
	if len(b) > MaxCommandSize {
		return refuse(ReasonMalformed, "larger than %d bytes", MaxCommandSize)
	}
	if !utf8.Valid(b) {
		return refuse(ReasonMalformed, "not UTF-8")
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return refuse(ReasonMalformed, "not a JSON object")
	}
	if _, ok := probe["envelope"]; !ok {
		if _, plain := probe["command"]; plain {
			return refuse(ReasonUnsigned, "commands must be signed by the platform (envelope, key_id, sig)")
		}
	}
	var sc SignedCommand
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return refuse(ReasonMalformed, "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return refuse(ReasonMalformed, "data after the object")
	}
	if len(sc.Envelope) == 0 || sc.Sig == "" || sc.KeyID == "" {
		return refuse(ReasonUnsigned, "envelope, key_id and sig are all required")
	}
	if len(v.Keys) == 0 {
		return refuse(ReasonNoKeys, "no platform key is configured (sinks.city.commands.keys): every command is refused")
	}
	key, ok := v.Keys[sc.KeyID]
	if !ok {
		return refuse(ReasonUnknownKey, "key_id %q is not configured", trim(sc.KeyID))
	}
	sig, err := decodeSig(sc.Sig)
	if err != nil {
		return refuse(ReasonBadSignature, "%v", err)
	}
	canon, err := Canonical(sc.Envelope)
	if err != nil {
		return refuse(ReasonMalformed, "envelope: %v", err)
	}
	if !ed25519.Verify(key, signingInput(canon), sig) {
		return refuse(ReasonBadSignature, "signature does not verify with key %q", sc.KeyID)
	}
	// From here the envelope is the platform's word: read it from the
	// canonical bytes.
	var env Envelope
	d2 := json.NewDecoder(bytes.NewReader(canon))
	d2.DisallowUnknownFields()
	if err := d2.Decode(&env); err != nil {
		return refuse(ReasonMalformed, "envelope: %v", err)
	}
	claims.ID, claims.Command, claims.Actor = sanitize(env.ID), sanitize(env.Command), sanitize(env.Actor)
	switch {
	case !validToken(env.ID, 128, true):
		claims.ID = ""
		return refuse(ReasonMalformed, "id: want 1..128 printable ASCII characters")
	case !validName(env.Command):
		return refuse(ReasonMalformed, "command %q: want a name like alert.ack", trim(env.Command))
	case !validToken(env.Actor, 128, false):
		return refuse(ReasonMalformed, "actor: want 1..128 printable characters")
	case len(env.Args) == 0 || env.Args[0] != '{':
		return refuse(ReasonMalformed, "args: want a JSON object")
	}
	issued, err1 := parseStamp(env.IssuedAt)
	expires, err2 := parseStamp(env.ExpiresAt)
	if err := errors.Join(err1, err2); err != nil {
		return refuse(ReasonMalformed, "%v", err)
	}
	if env.Gateway != v.Gateway {
		return refuse(ReasonWrongGateway, "envelope is for gateway %q, this is %q", trim(env.Gateway), v.Gateway)
	}
	if !expires.After(issued) {
		return refuse(ReasonMalformed, "expires_at must be after issued_at")
	}
	if expires.Sub(issued) > v.MaxValidity {
		return refuse(ReasonTooLong, "valid for %s, at most %s is accepted", expires.Sub(issued), v.MaxValidity)
	}
	if now.Before(edge.EarliestSane) {
		return refuse(ReasonClockUnset, "the gateway clock reads %s: commands are refused until it is set", now.UTC().Format(time.RFC3339))
	}
	allow := v.Allowance(q)
	if now.After(expires.Add(allow)) {
		return refuse(ReasonExpired, "expired at %s; gateway clock %s (%s, allowance %s)", env.ExpiresAt, now.UTC().Format(time.RFC3339), q, allow)
	}
	if issued.After(now.Add(allow)) {
		return refuse(ReasonNotYetValid, "issued at %s, in the future; gateway clock %s (%s, allowance %s)", env.IssuedAt, now.UTC().Format(time.RFC3339), q, allow)
	}
	out = Verified{
		Command:  Command{ID: env.ID, Command: env.Command, Args: json.RawMessage(env.Args), Actor: Actor(sc.KeyID, env.Actor)},
		KeyID:    sc.KeyID,
		Claimed:  env.Actor,
		IssuedAt: issued, ExpiresAt: expires,
		KeepUntil: expires.Add(max(v.Skew, v.UnsyncedSkew)),
	}
	return out, nil
}

func signingInput(canon []byte) []byte {
	return append([]byte(SignaturePrefix), canon...)
}

// parseStamp reads an RFC 3339 UTC time ("2026-11-27T03:00:00Z",
// fractions allowed).
func parseStamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !strings.HasSuffix(s, "Z") {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339 in UTC, like 2026-11-27T03:00:00Z", trim(s))
	}
	return t, nil
}

func decodeSig(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != ed25519.SignatureSize {
				return nil, fmt.Errorf("sig: %d bytes, an Ed25519 signature has %d", len(b), ed25519.SignatureSize)
			}
			return b, nil
		}
	}
	return nil, errors.New("sig: not base64")
}

// claimed reads what a message says about itself, for refusals: nothing
// of it is trusted, all of it is bounded.
func claimed(b []byte) Refusal {
	var r Refusal
	if len(b) > MaxCommandSize {
		return r
	}
	var m struct {
		ID       string `json:"id"`
		Command  string `json:"command"`
		Actor    string `json:"actor"`
		KeyID    string `json:"key_id"`
		Envelope struct {
			ID      string `json:"id"`
			Command string `json:"command"`
			Actor   string `json:"actor"`
		} `json:"envelope"`
	}
	if json.Unmarshal(b, &m) != nil {
		// A structurally broken message may still name its id.
		r.ID = salvageID(b)
		return r
	}
	pick := func(a, b string) string {
		if a != "" {
			return a
		}
		return b
	}
	r.ID = pick(m.Envelope.ID, m.ID)
	if !validToken(r.ID, 128, true) {
		r.ID = ""
	}
	r.Command = sanitize(pick(m.Envelope.Command, m.Command))
	r.Actor = sanitize(pick(m.Envelope.Actor, m.Actor))
	r.KeyID = sanitize(m.KeyID)
	return r
}

// sanitize bounds a claimed string for logs and events: printable, at
// most 64 bytes.
func sanitize(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			b.WriteString("…")
			break
		}
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			r = '?'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Sign produces the signed message for env with key (the reference
// platform side: lintel receive sign). env.Args defaults to {}.
func Sign(env Envelope, keyID string, key ed25519.PrivateKey) ([]byte, error) {
	if len(env.Args) == 0 {
		env.Args = json.RawMessage("{}")
	}
	raw, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	canon, err := Canonical(raw)
	if err != nil {
		return nil, fmt.Errorf("canonical envelope: %w", err)
	}
	sig := ed25519.Sign(key, signingInput(canon))
	return json.Marshal(SignedCommand{Envelope: canon, KeyID: keyID, Sig: base64.StdEncoding.EncodeToString(sig)})
}

// ParsePublicKey reads an Ed25519 public key: 32 bytes in base64 (what
// lintel receive keygen prints), a base64 PKIX (SubjectPublicKeyInfo) DER,
// or a PEM "PUBLIC KEY" block (openssl pkey -pubout).
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		blk, _ := pem.Decode([]byte(s))
		if blk == nil {
			return nil, errors.New("not a PEM block")
		}
		return pkixEd25519(blk.Bytes)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("not base64 or PEM")
	}
	if len(b) == ed25519.PublicKeySize {
		return ed25519.PublicKey(b), nil
	}
	return pkixEd25519(b)
}

func pkixEd25519(der []byte) (ed25519.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, errors.New("not an Ed25519 public key (want 32 bytes base64, or PKIX)")
	}
	pk, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("a %T key; commands use Ed25519", k)
	}
	return pk, nil
}

// ParsePrivateKey reads an Ed25519 private key from PEM: "PRIVATE KEY"
// (PKCS #8, what lintel receive keygen and openssl genpkey -algorithm
// ed25519 write).
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block in the key file")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	pk, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("a %T key; commands use Ed25519", k)
	}
	return pk, nil
}

// MarshalPrivateKey encodes a private key as PEM PKCS #8.
func MarshalPrivateKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

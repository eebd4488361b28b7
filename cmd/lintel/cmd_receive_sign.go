package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lintel-edge/lintel/sync/city"
)

// The platform side of signed downlink commands (docs/city-platform.md
// "Commands"): `lintel receive keygen` makes a key pair, `lintel receive
// sign` makes a signed command to publish on {prefix}/cmd.
var receiveCommands = map[string]subcommand{
	"keygen": {summary: "make a platform key pair for signed commands: lintel receive keygen -out city-2026a.key", run: receiveKeygen},
	"sign":   {summary: "sign a downlink command: lintel receive sign -key K -key-id ID -gateway GW -command NAME [-args JSON]", run: receiveSign},
}

func receiveKeygen(_ context.Context, args []string, io stdio) error {
	fs := newFlags("receive keygen", io)
	out := fs.String("out", "", "private key file to write (PEM PKCS #8, mode 0600); the public key goes to <out>.pub (required)")
	id := fs.String("key-id", "", "key id to print in the configuration snippet (default: the file name)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr("-out FILE is required")
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	pemKey, err := city.MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write private key: %w (an existing key is never overwritten)", err)
	}
	_, werr := f.Write(pemKey)
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("write private key: %w", err)
	}
	pub64 := base64.StdEncoding.EncodeToString(pub)
	if err := os.WriteFile(*out+".pub", []byte(pub64+"\n"), 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	kid := *id
	if kid == "" {
		kid = trimExt(baseName(*out))
	}
	fmt.Fprintf(io.err, "私钥 private key: %s (0600; 只留在平台 keep it on the platform, never on a gateway)\n公钥 public key: %s.pub\n", *out, *out)
	fmt.Fprintf(io.out, "# sinks.city.commands in each gateway's lintel.yaml:\ncommands:\n  keys:\n    - {id: %s, public_key: %q}\n", kid, pub64)
	return nil
}

func receiveSign(_ context.Context, args []string, io stdio) error {
	fs := newFlags("receive sign", io)
	keyFile := fs.String("key", "", "platform private key (PEM PKCS #8 Ed25519: lintel receive keygen or openssl genpkey -algorithm ed25519) (required)")
	keyID := fs.String("key-id", "", "the key's id, as configured on the gateways (required)")
	gateway := fs.String("gateway", "", "the gateway that is to apply it (required)")
	command := fs.String("command", "", "command name, e.g. alert.ack, elder.mode, gate.open, resend (required)")
	argsJSON := fs.String("args", "{}", "the command's arguments: a JSON object")
	actor := fs.String("actor", "", "the platform user behind the command (required); recorded as platform:<key-id>/<actor>")
	id := fs.String("id", "", "command id (default: a new random one); unique per command")
	ttl := fs.Duration("ttl", 2*time.Minute, "validity: expires_at = now + ttl")
	issued := fs.String("issued-at", "", "issued_at in RFC 3339 UTC (default: now)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	for name, v := range map[string]string{"-key": *keyFile, "-key-id": *keyID, "-gateway": *gateway, "-command": *command, "-actor": *actor} {
		if v == "" {
			return usageErr("%s is required", name)
		}
	}
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		return fmt.Errorf("read key: %w", err)
	}
	key, err := city.ParsePrivateKey(b)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyFile, err)
	}
	if !json.Valid([]byte(*argsJSON)) || len(*argsJSON) == 0 || (*argsJSON)[0] != '{' {
		return usageErr("-args %q: want a JSON object", *argsJSON)
	}
	now := time.Now().UTC()
	if *issued != "" {
		if now, err = time.Parse(time.RFC3339, *issued); err != nil {
			return usageErr("-issued-at %q: want RFC 3339, e.g. 2026-11-27T03:00:00Z", *issued)
		}
		now = now.UTC()
	}
	if *ttl <= 0 {
		return usageErr("-ttl must be positive")
	}
	if *id == "" {
		r := make([]byte, 8)
		_, _ = rand.Read(r)
		*id = "c-" + hex.EncodeToString(r)
	}
	msg, err := city.Sign(city.Envelope{
		ID: *id, Command: *command, Args: json.RawMessage(*argsJSON), Actor: *actor, Gateway: *gateway,
		IssuedAt: now.Format(time.RFC3339), ExpiresAt: now.Add(*ttl).Format(time.RFC3339),
	}, *keyID, key)
	if err != nil {
		return err
	}
	fmt.Fprintln(io.out, string(msg))
	return nil
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[i+1:]
		}
	}
	return p
}

func trimExt(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '.' {
			return p[:i]
		}
	}
	return p
}

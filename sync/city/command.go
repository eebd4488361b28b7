package city

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// MaxCommandSize bounds a downlink message.
const MaxCommandSize = 64 << 10

// Command is one downlink message on {prefix}/cmd:
//
//	{"id":"c-1842","command":"alert.ack","args":{"alert":"gw-01:…:42"},"actor":"ops:zhang"}
//
// id is the platform's correlation id, echoed in the result; actor names
// the person or system behind the command and is recorded in the audit
// event.
type Command struct {
	ID      string          `json:"id"`
	Command string          `json:"command"`
	Args    json.RawMessage `json:"args,omitempty"`
	Actor   string          `json:"actor,omitempty"`
}

// CommandResult is published on {prefix}/cmd/result for every command,
// applied or not.
type CommandResult struct {
	ID      string `json:"id"`
	Command string `json:"command,omitempty"`
	OK      bool   `json:"ok"`
	Result  any    `json:"result,omitempty"`
	Error   string `json:"error,omitempty"`
}

// DefaultActor is recorded when a command names none.
const DefaultActor = "platform"

// DecodeCommand parses a downlink message strictly: one JSON object, no
// unknown fields, an id and a command name of bounded form, args an
// object. Anything else is an error and nothing is applied. On error the
// returned Command carries whatever id could be read, for the result.
func DecodeCommand(b []byte) (Command, error) {
	var c Command
	if len(b) > MaxCommandSize {
		return c, fmt.Errorf("command larger than %d bytes", MaxCommandSize)
	}
	if !utf8.Valid(b) {
		return c, errors.New("command is not UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		c = Command{ID: salvageID(b)}
		return c, fmt.Errorf("bad command json: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Command{ID: c.ID}, errors.New("bad command json: data after the object")
	}
	if !validToken(c.ID, 128, true) {
		id := c.ID
		if !validToken(id, 128, true) {
			id = ""
		}
		return Command{ID: id}, errors.New("id: want 1..128 printable ASCII characters")
	}
	if !validName(c.Command) {
		return c, fmt.Errorf("command %q: want a name like alert.ack", trim(c.Command))
	}
	switch a := bytes.TrimSpace(c.Args); {
	case len(a) == 0 || bytes.Equal(a, []byte("null")):
		c.Args = json.RawMessage("{}")
	case a[0] != '{':
		return c, errors.New("args: want a JSON object")
	default:
		c.Args = append(json.RawMessage(nil), a...)
	}
	if c.Actor == "" {
		c.Actor = DefaultActor
	} else if !validToken(c.Actor, 128, false) {
		return c, errors.New("actor: want up to 128 printable characters")
	}
	return c, nil
}

// salvageID reads just the id of a message that failed strict decoding,
// so the error result can still be correlated.
func salvageID(b []byte) string {
	var v struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(b, &v) != nil || !validToken(v.ID, 128, true) {
		return ""
	}
	return v.ID
}

func validToken(s string, max int, ascii bool) bool {
	if s == "" || len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (ascii && r > 0x7e) {
			return false
		}
	}
	return true
}

// validName accepts lower-case dotted or underscored names up to 64 bytes.
func validName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func trim(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}

// CmdResend is the built-in command that re-sends the ordered stream from
// a seq: {"from_seq": N}. The platform uses it after losing data on its
// side; the receiver de-duplicates what it already has.
const CmdResend = "resend"

type resendArgs struct {
	FromSeq uint64 `json:"from_seq"`
}

// decodeResend validates resend's args against the log's last seq.
func decodeResend(args json.RawMessage, lastSeq uint64) (resendArgs, error) {
	var a resendArgs
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return a, fmt.Errorf("args: %w", err)
	}
	if a.FromSeq < 1 || a.FromSeq > lastSeq {
		return a, fmt.Errorf("args.from_seq %d: want 1..%d (the last seq)", a.FromSeq, lastSeq)
	}
	return a, nil
}

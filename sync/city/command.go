package city

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// MaxCommandSize bounds a downlink message.
const MaxCommandSize = 64 << 10

// Command is a downlink command once its signed envelope has been
// verified (see [SignedCommand]): id is the platform's correlation id,
// echoed in the result; Actor is recorded in the audit event as
// "platform:<key id>/<actor>"; Args is the canonical JSON object.
type Command struct {
	ID      string          `json:"id"`
	Command string          `json:"command"`
	Args    json.RawMessage `json:"args,omitempty"`
	Actor   string          `json:"actor,omitempty"`
}

// CommandResult is published on {prefix}/cmd/result for every command,
// applied or not. Refused is the reason code of a refusal (see the
// Reason constants); a replay carries the first result, when the gateway
// still remembers it, in Original.
type CommandResult struct {
	ID       string         `json:"id"`
	Command  string         `json:"command,omitempty"`
	OK       bool           `json:"ok"`
	Result   any            `json:"result,omitempty"`
	Refused  string         `json:"refused,omitempty"`
	Error    string         `json:"error,omitempty"`
	Original *CommandResult `json:"original,omitempty"`
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

//go:build faulttest

package edge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sync"

	"github.com/lintel-edge/lintel/edge/event"
)

// The durability tap of the whole-daemon crash tests
// (cmd/lintel/reliability_*_test.go). Built only with -tags faulttest.
//
// With LINTEL_DURABLE_TAP=FILE in the environment, every batch that Emit
// made durable is appended to FILE as one line per event:
//
//	<event id> <content hash, 32 hex digits>\n
//
// in one write(2) per batch on an O_APPEND descriptor. A write that has
// returned is in the page cache and survives SIGKILL of the process (the
// tests kill the process, not the machine), so no fsync is needed. The
// file is the set of events the daemon reported durable: Jepsen's "ok"
// set. A batch that was durable but not yet written here when the process
// died is "unknown" to the oracle, which allows it either way. A kill
// during a large write may leave a torn last line; the test truncates it
// before it restarts the daemon.
//
// The content hash is what lets a listener tell two different events
// under one id from a redelivered copy. It covers the fields the city
// sink sends exactly as they are stored: kind, severity, device,
// household, time (Event v1's millisecond form) and data. Data is
// canonicalised (decoded and encoded again, keys sorted, numbers as
// written) so that a receiver can recompute the hash from the JSON it got
// whatever spacing or key order the encoder used.
func init() {
	path := os.Getenv("LINTEL_DURABLE_TAP")
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lintel: durable tap: %v\n", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	durableTap = func(evs []*event.Event) {
		buf := make([]byte, 0, 96*len(evs))
		for _, e := range evs {
			buf = append(buf, e.ID...)
			buf = append(buf, ' ')
			buf = hex.AppendEncode(buf, tapHash(e))
			buf = append(buf, '\n')
		}
		mu.Lock()
		defer mu.Unlock()
		if _, err := f.Write(buf); err != nil {
			// Not fatal: a missing line makes those events "unknown" to the
			// oracle, never a false loss. The test looks for this message.
			fmt.Fprintf(os.Stderr, "lintel: durable tap write failed: %v\n", err)
		}
	}
}

// tapHash is the first 16 bytes of SHA-256 over the content fields,
// each ended by a NUL byte.
func tapHash(e *event.Event) []byte {
	h := sha256.New()
	for _, s := range []string{
		string(e.Kind), string(e.Severity), e.Device, e.Household,
		e.Time.UTC().Format(event.TimeLayout), canonicalData(e.Data),
	} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return h.Sum(nil)[:16]
}

// canonicalData re-encodes a JSON object with sorted keys and numbers as
// written; anything that does not decode is hashed as it is.
func canonicalData(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return string(raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return string(raw)
	}
	return string(b)
}

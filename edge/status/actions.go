package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Command argument shapes the page sends. Handlers (rules engine, gate
// driver) must accept exactly these; docs/api.md lists them.
type (
	ackArgs struct {
		AlertID string `json:"alert_id"`
	}
	resolveArgs struct {
		AlertID string `json:"alert_id"`
		Outcome string `json:"outcome"`
		Reason  string `json:"reason,omitempty"` // required for false_alarm
		Note    string `json:"note,omitempty"`
	}
	modeArgs struct {
		Household string `json:"household"`
		Mode      string `json:"mode"`
		Until     string `json:"until,omitempty"` // RFC 3339; required for visitor
	}
	gateArgs struct {
		Device string `json:"device"`
	}
)

// API bodies (the id comes from the path).
type (
	resolveBody struct {
		Outcome string `json:"outcome"`
		Reason  string `json:"reason"`
		Note    string `json:"note"`
	}
	modeBody struct {
		Mode  string `json:"mode"`
		Until string `json:"until"`
	}
)

// Bounds the rules engine also enforces (bytes).
const (
	maxNote   = 1000
	maxReason = 500
	// maxModeSpan bounds away and hospital modes, as the rules engine
	// does: a forgotten mode must not switch protection off for good.
	maxModeSpan = 90 * 24 * time.Hour
)

var errInput = errors.New("invalid input")

func checkID(id string) error {
	if id == "" || len(id) > 160 || !utf8.ValidString(id) || strings.ContainsAny(id, "\x00\r\n/") {
		return fmt.Errorf("%w: id", errInput)
	}
	return nil
}

func checkResolve(outcome, reason, note string) error {
	ok := false
	for _, o := range outcomes {
		ok = ok || o == outcome
	}
	if !ok {
		return fmt.Errorf("%w: outcome %q: want one of %s", errInput, outcome, strings.Join(outcomes, ", "))
	}
	if outcome == "false_alarm" && strings.TrimSpace(reason) == "" {
		return fmt.Errorf("%w: a false alarm needs a reason (e.g. away at family, sensor fault)", errInput)
	}
	if len(note) > maxNote || !utf8.ValidString(note) {
		return fmt.Errorf("%w: note: at most %d bytes", errInput, maxNote)
	}
	if len(reason) > maxReason || !utf8.ValidString(reason) {
		return fmt.Errorf("%w: reason: at most %d bytes", errInput, maxReason)
	}
	return nil
}

// checkMode validates a mode and its end; until is RFC 3339 or, from a
// form, a datetime-local value in loc.
func checkMode(mode, until string, loc *time.Location, now time.Time) (string, error) {
	ok := false
	for _, m := range modes {
		ok = ok || m == mode
	}
	if !ok {
		return "", fmt.Errorf("%w: mode %q: want one of %s", errInput, mode, strings.Join(modes, ", "))
	}
	until = strings.TrimSpace(until)
	if mode == "normal" {
		return "", nil
	}
	if until == "" {
		return "", fmt.Errorf("%w: mode %s needs an end time", errInput, mode)
	}
	if len(until) > 40 {
		return "", fmt.Errorf("%w: until", errInput)
	}
	t, err := time.Parse(time.RFC3339, until)
	if err != nil {
		t, err = time.ParseInLocation("2006-01-02T15:04", until, loc)
	}
	if err != nil {
		return "", fmt.Errorf("%w: until %q: want a date and time", errInput, until)
	}
	if !t.After(now) || t.After(now.Add(maxModeSpan)) {
		return "", fmt.Errorf("%w: until must be within the next 90 days", errInput)
	}
	return t.UTC().Format(time.RFC3339), nil
}

// formArgs builds a command's arguments from a page form.
func formArgs(command string, r *http.Request, loc *time.Location, now time.Time) (json.RawMessage, error) {
	id := r.PathValue("id")
	if err := checkID(id); err != nil {
		return nil, err
	}
	var v any
	switch command {
	case "alert.ack":
		v = ackArgs{AlertID: id}
	case "alert.resolve":
		a := resolveArgs{AlertID: id, Outcome: r.PostFormValue("outcome"), Reason: strings.TrimSpace(r.PostFormValue("reason")),
			Note: strings.TrimSpace(r.PostFormValue("note"))}
		if err := checkResolve(a.Outcome, a.Reason, a.Note); err != nil {
			return nil, err
		}
		v = a
	case "elder.mode":
		u, err := checkMode(r.PostFormValue("mode"), r.PostFormValue("until"), loc, now)
		if err != nil {
			return nil, err
		}
		v = modeArgs{Household: id, Mode: r.PostFormValue("mode"), Until: u}
	case "gate.open":
		v = gateArgs{Device: id}
	default:
		return nil, fmt.Errorf("%w: command", errInput)
	}
	return json.Marshal(v)
}

// decodeStrict decodes one JSON object, rejecting unknown fields and
// trailing data. An empty body is an empty object.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%w: %s", errInput, jsonErr(err))
	}
	if _, err := d.Token(); err != io.EOF {
		return fmt.Errorf("%w: trailing data after the object", errInput)
	}
	return nil
}

// jsonErr keeps a decoding error short and free of echoed input.
func jsonErr(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q has the wrong type", te.Field)
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return "unknown field"
	}
	return "malformed JSON"
}

// apiArgs builds a command's arguments from an API body.
func apiArgs(command, id string, body []byte, loc *time.Location, now time.Time) (json.RawMessage, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var v any
	switch command {
	case "alert.ack", "gate.open":
		var empty struct{}
		if err := decodeStrict(body, &empty); err != nil {
			return nil, err
		}
		if command == "alert.ack" {
			v = ackArgs{AlertID: id}
		} else {
			v = gateArgs{Device: id}
		}
	case "alert.resolve":
		var b resolveBody
		if err := decodeStrict(body, &b); err != nil {
			return nil, err
		}
		b.Note, b.Reason = strings.TrimSpace(b.Note), strings.TrimSpace(b.Reason)
		if err := checkResolve(b.Outcome, b.Reason, b.Note); err != nil {
			return nil, err
		}
		v = resolveArgs{AlertID: id, Outcome: b.Outcome, Reason: b.Reason, Note: b.Note}
	case "elder.mode":
		var b modeBody
		if err := decodeStrict(body, &b); err != nil {
			return nil, err
		}
		u, err := checkMode(b.Mode, b.Until, loc, now)
		if err != nil {
			return nil, err
		}
		v = modeArgs{Household: id, Mode: b.Mode, Until: u}
	default:
		return nil, fmt.Errorf("%w: command", errInput)
	}
	return json.Marshal(v)
}

// pageCommands may be sent by a manager through the generic endpoint;
// an installer may send any registered command.
var pageCommands = map[string]bool{"alert.ack": true, "alert.resolve": true, "elder.mode": true, "gate.open": true}

// errNoCommands is returned when the page was started without a router.
var errNoCommands = errors.New("no command router")

func (s *Server) dispatch(r *http.Request, command string, args json.RawMessage, actor string) (any, error) {
	if s.opts.Commands == nil {
		return nil, errNoCommands
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	res, err := s.opts.Commands.Dispatch(ctx, command, args, actor, "web")
	ip := clientIP(r)
	if err != nil {
		s.met.actions.WithLabelValues(command, "error").Inc()
		s.log.Warn("action failed", "command", command, "account", actor, "ip", ip, "err", scrub(err.Error()))
		return nil, err
	}
	s.met.actions.WithLabelValues(command, "ok").Inc()
	s.log.Info("action applied", "command", command, "account", actor, "ip", ip)
	return res, nil
}

// unknownCommand is satisfied by edge.ErrUnknownCommand without importing
// edge: its text starts with "unknown command".
func isUnknownCommand(err error) bool {
	return errors.Is(err, errNoCommands) || strings.HasPrefix(err.Error(), "unknown command")
}

func commandErrorCode(err error) int {
	switch {
	case isUnknownCommand(err):
		return http.StatusNotImplemented
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusUnprocessableEntity
}

func (s *Server) commandError(lang, command string, err error) string {
	if isUnknownCommand(err) {
		return fmt.Sprintf(tr(lang, "err.nohandler"), command)
	}
	return fmt.Sprintf(tr(lang, "err.command"), command) + " " + scrub(err.Error())
}

func (s *Server) actionAPI(command string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeJSONError(w, http.StatusRequestEntityTooLarge, "too_large", "body too large")
			return
		}
		args, err := apiArgs(command, r.PathValue("id"), body, s.loc, s.now())
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "invalid", err.Error())
			return
		}
		s.runCommandAPI(w, r, command, args)
	}
}

func (s *Server) runCommandAPI(w http.ResponseWriter, r *http.Request, command string, args json.RawMessage) {
	res, err := s.dispatch(r, command, args, whoOf(r).account)
	if err != nil {
		kind := "command_failed"
		if isUnknownCommand(err) {
			kind = "no_handler"
		}
		writeJSONError(w, commandErrorCode(err), kind, s.commandError("en", command, err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "command": command, "result": res})
}

// apiCommand sends any command by name with a JSON object as arguments.
func (s *Server) apiCommand(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !pageCommands[name] && !whoOf(r).role.Allows(RoleInstaller) {
		writeJSONError(w, http.StatusForbidden, "forbidden", "your role may only send "+strings.Join(sortedCommands(), ", "))
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSONError(w, http.StatusRequestEntityTooLarge, "too_large", "body too large")
		return
	}
	args, err := commandBody(body)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	s.runCommandAPI(w, r, name, args)
}

// commandBody checks a generic command body is one JSON object.
func commandBody(body []byte) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := decodeStrict(body, &m); err != nil {
		return nil, err
	}
	if m == nil {
		m = map[string]json.RawMessage{}
	}
	return json.Marshal(m)
}

func sortedCommands() []string {
	return []string{"alert.ack", "alert.resolve", "elder.mode", "gate.open"}
}

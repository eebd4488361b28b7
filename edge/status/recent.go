package status

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"
)

// RecentLog is a slog.Handler that passes every record on and keeps the
// last warnings and errors for the diagnostics page ("recent errors").
// The daemon wraps its root handler with it and hands it to the page
// through Options.Recent.
type RecentLog struct {
	next  slog.Handler
	attrs []slog.Attr
	group string
	ring  *recentRing
}

type recentRing struct {
	mu   sync.Mutex
	recs []LogLine
}

// LogLine is one kept warning or error, rendered as text with URL
// credentials scrubbed.
type LogLine struct {
	Time  time.Time `json:"time"`
	Level string    `json:"level"`
	Text  string    `json:"text"`
}

const recentMax = 50

// secretAttr matches attribute keys whose values the page never shows,
// even to installers (the setup code is logged for the console only).
var secretAttr = regexp.MustCompile(`(?i)(password|passwd|secret|token|setup_code|api_key|private_key|credential)`)

// NewRecentLog wraps next.
func NewRecentLog(next slog.Handler) *RecentLog {
	return &RecentLog{next: next, ring: &recentRing{}}
}

// Enabled implements slog.Handler.
func (h *RecentLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *RecentLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(r.Message)
		add := func(a slog.Attr) {
			if h.group != "" {
				a.Key = h.group + "." + a.Key
			}
			if secretAttr.MatchString(a.Key) {
				fmt.Fprintf(&b, " %s=REDACTED", a.Key)
				return
			}
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value.Resolve())
		}
		for _, a := range h.attrs {
			add(a)
		}
		r.Attrs(func(a slog.Attr) bool { add(a); return true })
		line := LogLine{Time: r.Time, Level: r.Level.String(), Text: scrub(b.String())}
		h.ring.mu.Lock()
		h.ring.recs = append(h.ring.recs, line)
		if len(h.ring.recs) > recentMax {
			h.ring.recs = append([]LogLine(nil), h.ring.recs[len(h.ring.recs)-recentMax:]...)
		}
		h.ring.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (h *RecentLog) WithAttrs(as []slog.Attr) slog.Handler {
	cp := *h
	cp.next = h.next.WithAttrs(as)
	cp.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &cp
}

// WithGroup implements slog.Handler.
func (h *RecentLog) WithGroup(name string) slog.Handler {
	cp := *h
	cp.next = h.next.WithGroup(name)
	if cp.group != "" {
		name = cp.group + "." + name
	}
	cp.group = name
	return &cp
}

// Lines returns the kept lines, newest first.
func (h *RecentLog) Lines() []LogLine {
	h.ring.mu.Lock()
	defer h.ring.mu.Unlock()
	out := make([]LogLine, len(h.ring.recs))
	for i, l := range h.ring.recs {
		out[len(out)-1-i] = l
	}
	return out
}

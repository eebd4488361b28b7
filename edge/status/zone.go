package status

import (
	"regexp"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
	"github.com/lintel-edge/lintel/edge/event"
	"github.com/lintel-edge/lintel/edge/rules"
)

// compoundZone is the compound's zone: the rules' utc_offset (default
// +08:00), the one the alert reasons are written in. The host's zone
// (often UTC on a gateway) is never used for the page.
func compoundZone(c *config.Config) *time.Location { return rules.FromConfig(c).Zone() }

// clockQuality is the gateway clock's quality for the page header.
func (s *Server) clockQuality() string {
	if s.opts.Clock != nil {
		_, q := s.opts.Clock()
		return string(q)
	}
	q, _, _ := s.tr.clock()
	return string(q)
}

// QualityDiffers reports whether an event's time quality is worth its own
// badge: known and not the page's.
func (p *pageData) QualityDiffers(q event.TimeQuality) bool {
	return q != "" && string(q) != p.ClockQ
}

var rfc3339ish = regexp.MustCompile(`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})`)

// zoned rewrites every RFC 3339 time in raw text (event data, facts) to
// the compound's zone, so raw data shows the page's one clock too.
func (p *pageData) zoned(s string) string {
	return rfc3339ish.ReplaceAllStringFunc(s, func(m string) string {
		t, err := time.Parse(time.RFC3339Nano, m)
		if err != nil {
			return m
		}
		if t.IsZero() {
			return "—"
		}
		return t.In(p.loc).Format("2006-01-02T15:04:05.999Z07:00")
	})
}

// Raw is an event's data as text, its times in the compound's zone.
func (p *pageData) Raw(b []byte) string { return p.zoned(string(b)) }

// Pretty is data as indented JSON for the diagnostics page, its times in
// the compound's zone.
func (p *pageData) Pretty(v any) string { return p.zoned(prettyJSON(v)) }

package status

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lintel-edge/lintel/edge/config"
)

// Story is an alert told as a person reads it, in the page language:
// who, what, since when, what the gateway knows, what to do next. The
// raw fields stay behind the card's details toggle (Facts).
type Story struct {
	Who   string
	What  string
	Since string
	Knows string
	Next  string
}

// Story tells an alert in the page language.
func (p *pageData) Story(a Alert) Story {
	st := Story{Who: p.who(a), What: strings.TrimRight(p.AlertReason(a), "。. ")}
	if st.What == "" {
		st.What = p.Word("atype", a.Type)
	}
	since := a.Raised
	if t, ok := timeOf(a.Data["since"]); ok {
		since = t
	}
	if !since.IsZero() {
		st.Since = fmt.Sprintf(p.T("story.since"), p.Short(since), p.Ago(since))
	}
	st.Knows = p.knows(a)
	if a.State != "resolved" && a.Type != "" {
		st.Next = trOr(p.Lang, "next."+a.Type, "")
	}
	return st
}

// Short formats an instant in the compound's zone, to the minute.
func (p *pageData) Short(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.In(p.loc).Format("2006-01-02 15:04")
}

// who names the household by its configured label and place
// (3-1-301（3栋1单元301）), never by its id.
func (p *pageData) who(a Alert) string {
	label, place := "", ""
	if p.cfg != nil {
		if h, ok := p.cfg.Household(a.Household); ok {
			label, place = h.Label, p.PlaceName(h.Place)
		}
	}
	if label == "" && place == "" {
		if a.Place != "" {
			return a.Place
		}
		return a.Household
	}
	if label == "" || label == place {
		return place
	}
	if place == "" {
		return label
	}
	if p.Lang == "en" {
		return label + " (" + place + ")"
	}
	return label + "（" + place + "）"
}

// PlaceName renders a place with the configured building names:
// 3栋1单元301 in Chinese, "3栋, unit 1, flat 301" in English.
func (p *pageData) PlaceName(pl config.Place) string {
	bname := pl.Building
	named := false
	if p.cfg != nil {
		for _, b := range p.cfg.Compound.Buildings {
			if b.ID == pl.Building && b.Name != "" {
				bname, named = b.Name, true
			}
		}
	}
	var parts []string
	if p.Lang == "en" {
		if bname != "" {
			if !named {
				bname = "Building " + bname
			}
			parts = append(parts, bname)
		}
		if pl.Unit != "" {
			parts = append(parts, "unit "+pl.Unit)
		}
		if pl.Room != "" {
			parts = append(parts, "flat "+pl.Room)
		}
		if pl.Position != "" {
			parts = append(parts, pl.Position)
		}
		return strings.Join(parts, ", ")
	}
	s := bname
	if bname != "" && !named {
		s += "栋"
	}
	if pl.Unit != "" {
		s += pl.Unit + "单元"
	}
	s += pl.Room
	if pl.Position != "" {
		if s != "" {
			s += " "
		}
		s += pl.Position
	}
	return s
}

// knows says what the gateway knows and does not: presence and why, the
// mode when not normal, each sensor's last report, data health.
func (p *pageData) knows(a Alert) string {
	var parts []string
	if pr, ok := a.Data["presence"].(map[string]any); ok {
		state, _ := pr["state"].(string)
		s := p.Word("presence", state)
		if why := p.inLang(pr, "reason"); why != "" {
			s += p.paren(why)
		}
		if state != "" {
			parts = append(parts, s)
		}
	} else if s, ok := a.Data["presence"].(string); ok && s != "" {
		parts = append(parts, p.Word("presence", s))
	}
	if m, ok := a.Data["mode"].(string); ok && m != "" && m != "normal" {
		parts = append(parts, p.T("fact.mode")+p.colon()+p.Word("mode", m))
	}
	if ls, ok := a.Data["last_seen"].(map[string]any); ok && len(ls) > 0 {
		ids := make([]string, 0, len(ls))
		for id := range ls {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		var ss []string
		for _, id := range ids {
			ss = append(ss, p.sensorSeen(id, ls[id]))
		}
		parts = append(parts, strings.Join(ss, p.listSep()))
	}
	if dh, ok := a.Data["data_health"].(map[string]any); ok {
		if note := p.inLang(dh, "note"); note != "" {
			parts = append(parts, note)
		} else if st, _ := dh["status"].(string); st == "nodata" {
			parts = append(parts, p.T("story.nodata"))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf(p.T("story.knows"), strings.Join(parts, p.T("story.sep")))
}

// sensorSeen is one sensor's line: "门磁 5 分钟前上报", "motion sensor
// never heard from".
func (p *pageData) sensorSeen(id string, v any) string {
	role, state := "", "ok"
	var seen time.Time
	switch x := v.(type) {
	case map[string]any:
		role, _ = x["role"].(string)
		if s, _ := x["state"].(string); s != "" {
			state = s
		}
		seen, _ = timeOf(x["last_seen"])
	case string:
		seen, _ = timeOf(x)
	}
	name := id
	if role != "" && hasKey("dkind."+role) {
		name = tr(p.Lang, "dkind."+role)
	} else if p.cfg != nil {
		for _, d := range p.cfg.Devices {
			if d.ID == id && hasKey("dkind."+d.Kind) {
				name = tr(p.Lang, "dkind."+d.Kind)
			}
		}
	}
	if seen.IsZero() || state == "never_seen" {
		return fmt.Sprintf(p.T("story.never"), name)
	}
	s := fmt.Sprintf(p.T("story.seen"), name, p.Ago(seen))
	key := "sstate." + state
	if strings.HasPrefix(state, "stuck_") {
		key = "sstate.stuck"
	}
	if state != "ok" && hasKey(key) {
		s += p.paren(p.T(key))
	}
	return s
}

// inLang picks key_zh / key_en (or key for English) from m.
func (p *pageData) inLang(m map[string]any, key string) string {
	zh, _ := m[key+"_zh"].(string)
	en, _ := m[key+"_en"].(string)
	if en == "" {
		en, _ = m[key].(string)
	}
	if p.Lang == "en" {
		return en
	}
	return zh
}

func (p *pageData) paren(s string) string {
	if p.Lang == "en" {
		return " (" + s + ")"
	}
	return "（" + s + "）"
}

func (p *pageData) colon() string {
	if p.Lang == "en" {
		return ": "
	}
	return "："
}

func (p *pageData) listSep() string {
	if p.Lang == "en" {
		return ", "
	}
	return "，"
}

func timeOf(v any) (time.Time, bool) {
	s, ok := v.(string)
	if !ok || s == "" {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

// Facts are the raw explanation lines for installers, behind the card's
// details toggle: in the page language where the rules give both (note_zh
// or note_en, reason_zh or reason), times in the compound's zone, mode
// and presence words translated.
func (p *pageData) Facts(a Alert) []Fact {
	if a.Data == nil {
		out := make([]Fact, len(a.Why))
		for i, f := range a.Why {
			out[i] = Fact{Label: f.Label, Value: p.zoned(f.Value)}
		}
		return out
	}
	m := map[string]any{}
	for k, v := range a.Data {
		m[k] = v
	}
	if s, ok := m["mode"].(string); ok {
		m["mode"] = p.Word("mode", s)
	}
	if pr, ok := m["presence"].(map[string]any); ok {
		cp := map[string]any{}
		for k, v := range pr {
			cp[k] = v
		}
		if s, ok := cp["state"].(string); ok {
			cp["state"] = p.Word("presence", s)
		}
		m["presence"] = cp
	}
	out := factsOf(p.langOnly(m).(map[string]any))
	for i := range out {
		out[i].Value = p.zoned(out[i].Value)
	}
	return out
}

// langOnly drops the other language's texts from nested data: *_en (and
// a bare "reason" beside reason_zh) in Chinese, *_zh in English.
func (p *pageData) langOnly(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if p.Lang == "en" && strings.HasSuffix(k, "_zh") {
				continue
			}
			if p.Lang != "en" && (strings.HasSuffix(k, "_en") || (k == "reason" && x["reason_zh"] != nil)) {
				continue
			}
			out[k] = p.langOnly(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = p.langOnly(e)
		}
		return out
	case json.Number:
		return x.String()
	}
	return v
}

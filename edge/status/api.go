package status

import (
	"encoding/json"
	"net/http"
	"strconv"
)

func (s *Server) apiMe(w http.ResponseWriter, r *http.Request) {
	id := whoOf(r)
	out := map[string]any{"account": id.account, "role": id.role, "auth": "token"}
	if id.sess != nil {
		out["auth"] = "session"
		out["csrf_token"] = id.sess.csrf
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiOverview(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.overview())
}

func (s *Server) apiAlerts(w http.ResponseWriter, r *http.Request) {
	n := 20
	if v := r.URL.Query().Get("resolved"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 0 || k > 1000 {
			writeJSONError(w, http.StatusBadRequest, "invalid", "resolved: want 0–1000")
			return
		}
		n = k
	}
	al := s.alerts(n)
	if al == nil {
		al = []Alert{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": al})
}

func (s *Server) apiAlert(w http.ResponseWriter, r *http.Request) {
	a, ok := s.alertByID(r.PathValue("id"))
	if !ok {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such alert")
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *Server) apiHouseholds(w http.ResponseWriter, r *http.Request) {
	h := s.households()
	if h == nil {
		h = []Household{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"households": h})
}

func (s *Server) apiDevices(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"devices": s.devices()})
}

func (s *Server) apiBuses(w http.ResponseWriter, r *http.Request) {
	b := s.buses()
	if b == nil {
		b = []Bus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"buses": b})
}

func (s *Server) apiSinks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"sinks": s.sinks()})
}

func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventQuery(r.URL.Query(), s.loc)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	evs, next, err := s.findEvents(q)
	if err != nil {
		s.log.Error("events api", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "internal", "event log unavailable")
		return
	}
	out := map[string]any{"events": json.RawMessage("[]")}
	if len(evs) > 0 {
		out["events"] = evs
	}
	if next > 0 && len(evs) == q.Limit {
		out["next_before"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) apiEvent(w http.ResponseWriter, r *http.Request) {
	seq, err := strconv.ParseUint(r.PathValue("seq"), 10, 64)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid", "seq: want a number")
		return
	}
	e, ok, err := s.getEvent(seq)
	if err != nil {
		writeJSONError(w, http.StatusInternalServerError, "internal", "event log unavailable")
		return
	}
	if !ok {
		writeJSONError(w, http.StatusNotFound, "not_found", "no such event (never written, or already deleted)")
		return
	}
	writeJSON(w, http.StatusOK, e)
}

func (s *Server) apiDiagnostics(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.diagnostics())
}

func (s *Server) apiCommands(w http.ResponseWriter, r *http.Request) {
	names := []string{}
	if s.opts.Commands != nil {
		names = s.opts.Commands.Names()
	}
	writeJSON(w, http.StatusOK, map[string]any{"commands": names, "page_commands": sortedCommands()})
}

func prettyJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(b)
}

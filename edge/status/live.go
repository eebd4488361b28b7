package status

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// liveMsg is one server-sent event. The page refetches what changed; the
// message itself carries only counts and a seq, never event data.
type liveMsg struct {
	Type     string `json:"type"` // alerts, log
	Seq      uint64 `json:"seq"`
	Open     int    `json:"open"`
	Critical int    `json:"critical"`
}

// hub fans live messages out to the connected pages. A slow client
// misses messages (it refetches on the next one) and never slows the
// tracker.
type hub struct {
	max, perAccount int

	mu        sync.Mutex
	subs      map[chan liveMsg]string // → account
	byAccount map[string]int
}

// newHub bounds concurrent live streams (each holds a connection): max in
// all and perAccount for one account, so one viewer cannot take every
// slot.
func newHub(max, perAccount int) *hub {
	if max <= 0 {
		max = DefaultLiveMax
	}
	if perAccount <= 0 {
		perAccount = DefaultLivePerAcct
	}
	return &hub{max: max, perAccount: perAccount, subs: map[chan liveMsg]string{}, byAccount: map[string]int{}}
}

// subscribe takes a slot for account; "" and false when none is free
// (why: "account" or "all").
func (h *hub) subscribe(account string) (chan liveMsg, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byAccount[account] >= h.perAccount {
		return nil, "account"
	}
	if len(h.subs) >= h.max {
		return nil, "all"
	}
	c := make(chan liveMsg, 16)
	h.subs[c] = account
	h.byAccount[account]++
	return c, ""
}

func (h *hub) unsubscribe(c chan liveMsg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if a, ok := h.subs[c]; ok {
		delete(h.subs, c)
		if h.byAccount[a]--; h.byAccount[a] <= 0 {
			delete(h.byAccount, a)
		}
	}
}

func (h *hub) publish(m liveMsg) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.subs {
		select {
		case c <- m:
		default:
		}
	}
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// live streams server-sent events until the client leaves, its session
// ends, or the server shuts down.
func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	account := ""
	if id := whoOf(r); id != nil {
		account = id.account
	}
	c, full := s.hub.subscribe(account)
	if c == nil {
		w.Header().Set("Retry-After", "30")
		msg := "too many live clients"
		if full == "account" {
			msg = "too many live pages open for this account: close one"
		}
		http.Error(w, msg, http.StatusServiceUnavailable)
		return
	}
	defer s.hub.unsubscribe(c)
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(m liveMsg) error {
		b, _ := json.Marshal(m)
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", m.Type, b); err != nil {
			return err
		}
		return rc.Flush()
	}
	open, crit := s.alertCounts()
	if send(liveMsg{Type: "hello", Seq: s.opts.Log.LastSeq(), Open: open, Critical: crit}) != nil {
		return
	}
	id := whoOf(r)
	ping := time.NewTicker(15 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.shutdown:
			return
		case m := <-c:
			if send(m) != nil {
				return
			}
		case <-ping.C:
			// A session that expired or logged out stops its stream.
			if id != nil && id.sess != nil {
				if _, ok := s.sess.get(id.sess.id); !ok {
					return
				}
			}
			if _, err := fmt.Fprint(w, ": ping\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

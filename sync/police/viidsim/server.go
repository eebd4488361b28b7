// Package viidsim is a GA/T 1400 (VIID) platform simulator: HTTP Digest
// registration, keepalive expiry, configurable failures, and a record of
// everything received. `lintel sim viid` serves it; the police feed's
// tests run against it.
package viidsim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lintel-edge/lintel/sync/police"
)

// Options configures the simulator.
type Options struct {
	Realm    string
	Username string
	Password string
	ServerID string        // 20-digit VIIDServerID
	Expiry   time.Duration // a node not heard from this long must register again (default 180s)
	// RejectRecords refuses the first N records written (StatusCode 1,
	// retryable), one status per record, the rest of the list accepted.
	RejectRecords int
	// Fail503 answers the first N write requests with 503.
	Fail503 int
	// Slow delays every answer.
	Slow time.Duration
	// TimeMode is SystemTimeObject.TimeMode ("1" network-synced).
	TimeMode string
	Now      func() time.Time
}

// Server is the simulator; it is an http.Handler.
type Server struct {
	o  Options
	mu sync.Mutex

	nonces    map[string]time.Time
	lastSeen  map[string]time.Time // device id → last contact
	rejectN   int
	fail503   int
	received  Received
	dataBytes map[string]int64
}

// Received is what the simulator got, by kind.
type Received struct {
	Registers     int                       `json:"registers"`
	Challenges    int                       `json:"challenges"`
	UnRegisters   int                       `json:"unregisters"`
	Keepalives    int                       `json:"keepalives"`
	Expired       int                       `json:"expired"`
	Rejected      []string                  `json:"rejected"`    // record ids refused
	Attempts      map[string]int            `json:"attempts"`    // record id → times written
	Images        map[string]map[string]any `json:"images"`      // accepted ImageInfo by id
	VideoSlices   map[string]map[string]any `json:"videoslices"` // accepted VideoSliceInfo by id
	Scenes        map[string]map[string]any `json:"scenes"`
	DataSHA256    map[string]string         `json:"data_sha256"` // record id → sha256 of uploaded data
	Served503     int                       `json:"served_503"`
	MaxDataChunks int                       `json:"-"`
}

// New returns a simulator.
func New(o Options) *Server {
	if o.Realm == "" {
		o.Realm = "viid-sim"
	}
	if o.Expiry <= 0 {
		o.Expiry = 180 * time.Second
	}
	if o.ServerID == "" {
		o.ServerID = "34010000005030000001"
	}
	if o.TimeMode == "" {
		o.TimeMode = "1"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Server{o: o, nonces: map[string]time.Time{}, lastSeen: map[string]time.Time{},
		rejectN: o.RejectRecords, fail503: o.Fail503, dataBytes: map[string]int64{},
		received: Received{Attempts: map[string]int{}, Images: map[string]map[string]any{},
			VideoSlices: map[string]map[string]any{}, Scenes: map[string]map[string]any{}, DataSHA256: map[string]string{}}}
}

// Received returns a copy of what was received so far.
func (s *Server) Received() Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(s.received)
	var r Received
	_ = json.Unmarshal(b, &r)
	return r
}

// Expire forgets every registration (as if the platform restarted).
func (s *Server) Expire() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastSeen = map[string]time.Time{}
}

// SetFailures changes the failure knobs at run time.
func (s *Server) SetFailures(reject, fail503 int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectN, s.fail503 = reject, fail503
}

func (s *Server) status(w http.ResponseWriter, r *http.Request, id string, code int, msg string) {
	writeJSON(w, http.StatusOK, map[string]any{"ResponseStatusObject": s.statusObj(r, id, code, msg)})
}

func (s *Server) statusObj(r *http.Request, id string, code int, msg string) map[string]any {
	return map[string]any{"Id": id, "RequestURL": r.URL.Path, "StatusCode": code, "StatusString": msg,
		"LocalTime": s.o.Now().In(shanghai).Format(police.VIIDTime)}
}

var shanghai = func() *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return l
}()

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", police.ContentType)
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) challenge(w http.ResponseWriter, stale bool) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	n := hex.EncodeToString(b[:])
	s.nonces[n] = s.o.Now()
	s.received.Challenges++
	h := `Digest realm="` + s.o.Realm + `", nonce="` + n + `", qop="auth", algorithm=MD5, opaque="sim"`
	if stale {
		h += ", stale=true"
	}
	w.Header().Set("WWW-Authenticate", h)
	http.Error(w, "unauthorized", http.StatusUnauthorized)
}

// digestOK verifies the Authorization header (locked).
func (s *Server) digestOK(r *http.Request) (ok, stale bool) {
	a, err := police.ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil || a.Username != s.o.Username || a.Realm != s.o.Realm {
		return false, false
	}
	t, known := s.nonces[a.Nonce]
	if !known || s.o.Now().Sub(t) > 5*time.Minute {
		return false, true
	}
	return a.Verify(r.Method, s.o.Password), false
}

// alive reports whether the caller's node is registered and fresh, and
// refreshes it (locked).
func (s *Server) alive(r *http.Request) bool {
	id := r.Header.Get("User-Identify")
	t, ok := s.lastSeen[id]
	if !ok {
		return false
	}
	if s.o.Now().Sub(t) > s.o.Expiry {
		delete(s.lastSeen, id)
		s.received.Expired++
		return false
	}
	s.lastSeen[id] = s.o.Now()
	return true
}

func deviceOf(body []byte, obj string) string {
	var m map[string]map[string]any
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	id, _ := m[obj]["DeviceID"].(string)
	return id
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.o.Slow > 0 {
		time.Sleep(s.o.Slow)
	}
	if r.URL.Path == "/sim/received" {
		writeJSON(w, http.StatusOK, s.Received())
		return
	}
	if strings.HasSuffix(r.URL.Path, "/Data") {
		s.data(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch r.URL.Path {
	case "/VIID/System/Register", "/VIID/System/UnRegister":
		ok, stale := s.digestOK(r)
		if !ok {
			s.challenge(w, stale)
			return
		}
		obj := "RegisterObject"
		if strings.HasSuffix(r.URL.Path, "UnRegister") {
			obj = "UnRegisterObject"
		}
		id := deviceOf(body, obj)
		if len(id) != 20 {
			s.status(w, r, id, police.StatusInvalidJSONContent, "DeviceID: want 20 digits")
			return
		}
		if obj == "RegisterObject" {
			s.received.Registers++
			s.lastSeen[id] = s.o.Now()
		} else {
			s.received.UnRegisters++
			delete(s.lastSeen, id)
		}
		s.status(w, r, id, police.StatusOK, "OK")
	case "/VIID/System/Keepalive":
		id := deviceOf(body, "KeepaliveObject")
		if r.Header.Get("User-Identify") == "" {
			r.Header.Set("User-Identify", id)
		}
		if !s.alive(r) {
			http.Error(w, "not registered", http.StatusUnauthorized)
			return
		}
		s.received.Keepalives++
		s.status(w, r, id, police.StatusOK, "OK")
	case "/VIID/System/Time":
		writeJSON(w, http.StatusOK, map[string]any{"SystemTimeObject": map[string]any{
			"VIIDServerID": s.o.ServerID, "TimeMode": s.o.TimeMode,
			"LocalTime": s.o.Now().In(shanghai).Format(police.VIIDTime), "TimeZone": "Asia/Shanghai"}})
	case police.PathImages, police.PathVideoSlices, police.PathScenes:
		if !s.alive(r) {
			http.Error(w, "not registered", http.StatusUnauthorized)
			return
		}
		if s.fail503 > 0 {
			s.fail503--
			s.received.Served503++
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		s.write(w, r, body)
	default:
		http.NotFound(w, r)
	}
}

// list shapes: resource → (list object, item array, info key, id key).
var shapes = map[string][4]string{
	police.PathImages:      {"ImageListObject", "Image", "ImageInfo", "ImageID"},
	police.PathVideoSlices: {"VideoSliceListObject", "VideoSlice", "VideoSliceInfo", "VideoID"},
	police.PathScenes:      {"SceneListObject", "SceneObject", "", "SceneID"},
}

func (s *Server) write(w http.ResponseWriter, r *http.Request, body []byte) {
	sh := shapes[r.URL.Path]
	var env map[string]map[string][]map[string]any
	if err := json.Unmarshal(body, &env); err != nil || env[sh[0]] == nil {
		s.status(w, r, "", police.StatusInvalidJSONFormat, "want "+sh[0])
		return
	}
	var out []map[string]any
	for _, item := range env[sh[0]][sh[1]] {
		info := item
		if sh[2] != "" {
			info, _ = item[sh[2]].(map[string]any)
		}
		id, _ := info[sh[3]].(string)
		s.received.Attempts[id]++
		switch {
		case len(id) != 41 && len(id) != 48:
			out = append(out, s.statusObj(r, id, police.StatusInvalidJSONContent, sh[3]+": want 41 or 48 digits"))
		case s.rejectN > 0:
			s.rejectN--
			s.received.Rejected = append(s.received.Rejected, id)
			out = append(out, s.statusObj(r, id, police.StatusOtherError, "rejected by simulator"))
		default:
			switch r.URL.Path {
			case police.PathImages:
				s.received.Images[id] = info
			case police.PathVideoSlices:
				s.received.VideoSlices[id] = info
			default:
				s.received.Scenes[id] = info
			}
			out = append(out, s.statusObj(r, id, police.StatusOK, "OK"))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ResponseStatusListObject": map[string]any{"ResponseStatusObject": out}})
}

// data receives …/{id}/Data, hashing it as it streams in.
func (s *Server) data(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 4 {
		http.NotFound(w, r)
		return
	}
	id := parts[2]
	s.mu.Lock()
	alive := s.alive(r)
	_, img := s.received.Images[id]
	_, vid := s.received.VideoSlices[id]
	s.mu.Unlock()
	if !alive {
		http.Error(w, "not registered", http.StatusUnauthorized)
		return
	}
	if !img && !vid {
		s.mu.Lock()
		s.status(w, r, id, police.StatusInvalidOperation, "no such record")
		s.mu.Unlock()
		return
	}
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(r.Body, 1<<30))
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.received.DataSHA256[id] = hex.EncodeToString(h.Sum(nil))
	s.dataBytes[id] = n
	s.status(w, r, id, police.StatusOK, "OK")
}

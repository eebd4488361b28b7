package city

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// StateStore is the durable key/value state the sink keeps its seen
// command ids in; *store.Store implements it.
type StateStore interface {
	PutState(ctx context.Context, ns, key string, version uint32, val []byte) error
	DeleteState(ctx context.Context, ns, key string) error
	ListState(ns string) (map[string][]byte, error)
}

// seenVersion is the format of a seen-id value.
const seenVersion = 1

// seenEntry is what is kept of a command id: until when it must be
// remembered (its expiry plus the largest clock allowance) and when it
// arrived, both in Unix milliseconds.
type seenEntry struct {
	Keep int64 `json:"keep"`
	Recv int64 `json:"recv"`
}

// seenIDs remembers every verified command id until the command could no
// longer pass the expiry check, durably: a replay is refused after any
// number of other commands and after a restart. An id is recorded before
// its command is applied, so a crash in between loses the command (the
// platform sees no result and must send a new one) but never applies it
// twice.
type seenIDs struct {
	st  StateStore
	ns  string
	max int

	mu      sync.Mutex
	m       map[string]seenEntry
	loadErr error
}

func newSeenIDs(st StateStore, ns string, max int) *seenIDs {
	return &seenIDs{st: st, ns: ns, max: max, m: map[string]seenEntry{}}
}

// load reads the ids kept by earlier runs. A failure is remembered: every
// command is then refused (unavailable) rather than applied unprotected.
func (s *seenIDs) load() error {
	vals, err := s.st.ListState(s.ns)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.loadErr = fmt.Errorf("load seen command ids: %w", err)
		return s.loadErr
	}
	for id, v := range vals {
		var e seenEntry
		if json.Unmarshal(v, &e) != nil {
			// Unreadable: keep it forever rather than forget it.
			e = seenEntry{Keep: 1<<62 - 1}
		}
		s.m[id] = e
	}
	return nil
}

func (s *seenIDs) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadErr
}

func (s *seenIDs) get(id string) (seenEntry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	return e, ok
}

func (s *seenIDs) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// room reports how many more ids fit.
func (s *seenIDs) room() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.max - len(s.m)
}

// putConcurrency bounds the state writes in flight; the store commits
// concurrent writes together, so a batch of ids costs about one sync.
const putConcurrency = 64

// record makes ids durable and returns, per id, nil or why it could not
// be recorded. An id is in memory from the start (a second copy in the
// same batch is a replay) and is removed again if its write failed.
func (s *seenIDs) record(ctx context.Context, ids []string, entries []seenEntry) []error {
	errs := make([]error, len(ids))
	s.mu.Lock()
	for i, id := range ids {
		s.m[id] = entries[i]
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, putConcurrency)
	for i := range ids {
		b, _ := json.Marshal(entries[i])
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = s.st.PutState(ctx, s.ns, ids[i], seenVersion, b)
		})
	}
	wg.Wait()
	s.mu.Lock()
	for i, err := range errs {
		if err != nil {
			delete(s.m, ids[i])
		}
	}
	s.mu.Unlock()
	return errs
}

// prune forgets ids whose commands can no longer pass, by a synced clock
// (an unsynced clock may be far ahead: then nothing is forgotten).
func (s *seenIDs) prune(ctx context.Context, now time.Time) (int, error) {
	cut := now.UnixMilli()
	var old []string
	s.mu.Lock()
	for id, e := range s.m {
		if e.Keep < cut {
			old = append(old, id)
		}
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	n := 0
	sem := make(chan struct{}, putConcurrency)
	for _, id := range old {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			err := s.st.DeleteState(ctx, s.ns, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			n++
			s.mu.Lock()
			delete(s.m, id)
			s.mu.Unlock()
		})
	}
	wg.Wait()
	return n, firstErr
}

// memState is a StateStore in memory, for a sink built without one
// (tests): ids are then forgotten at restart.
type memState struct {
	mu sync.Mutex
	m  map[string]map[string][]byte
}

func (m *memState) PutState(_ context.Context, ns, key string, _ uint32, val []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]map[string][]byte{}
	}
	if m.m[ns] == nil {
		m.m[ns] = map[string][]byte{}
	}
	m.m[ns][key] = append([]byte(nil), val...)
	return nil
}

func (m *memState) DeleteState(_ context.Context, ns, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m[ns], key)
	return nil
}

func (m *memState) ListState(ns string) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range m.m[ns] {
		out[k] = append([]byte(nil), v...)
	}
	return out, nil
}

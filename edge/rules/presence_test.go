package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/lintel-edge/lintel/edge/event"
)

func (h *harness) presence() Presence {
	h.t.Helper()
	return h.e.Snapshot().Households[0].Presence
}

func (h *harness) wantPresence(state, reasonPart string) {
	h.t.Helper()
	p := h.presence()
	if p.State != state || !strings.Contains(p.Reason, reasonPart) {
		h.t.Fatalf("presence %s (%q), want %s with %q; events: %s", p.State, p.Reason, state, reasonPart, h.dump())
	}
}

// A caller or a delivery at the door while the elder is out is outside
// the door: it neither brings the elder home nor counts as activity, and
// the peephole's own motion detector (the landing) does not either.
func TestPeepholeVisitorWhileAwayStaysAway(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 8, 30))
	h.goOut(at(0, 9, 0))
	h.advance(at(0, 9, 40))
	h.wantPresence(PresenceAway, "no motion inside")
	h.send(event.PeepholeVisitor, "p1", at(0, 10, 0))
	h.send(event.PeepholeDoorbell, "p1", at(0, 10, 0).Add(10*time.Second))
	h.send(event.MotionDetected, "p1", at(0, 10, 1))
	h.send(event.PeepholeVisitor, "p1", at(0, 10, 1).Add(30*time.Second))
	h.advance(at(0, 11, 0))
	h.wantPresence(PresenceAway, "no motion inside")
	if la := h.e.Snapshot().Households[0].LastActivity; !la.Equal(at(0, 9, 0).Add(20 * time.Second).UTC()) {
		t.Fatalf("last activity %s: the peephole counted as the elder's activity", la.In(cst))
	}
	// Still out 12 h after leaving: the visitor did not reset anything.
	h.advance(at(0, 21, 30))
	h.wantRaised(RuleNotReturned, 1, at(0, 21, 0).Add(20*time.Second))
	h.wantRaised(RuleVisitorLoitering, 0, time.Time{})
}

// Someone answering the door (a visitor at the peephole, motion inside,
// the door opens) is not a departure: presence stays home however still
// the elder is afterwards, so a fall after the visit is caught.
func TestAnsweredDoorIsNotADeparture(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 0))
	h.send(event.PeepholeVisitor, "p1", at(0, 14, 0))
	h.send(event.PeepholeDoorbell, "p1", at(0, 14, 0).Add(20*time.Second))
	h.send(event.MotionDetected, "m1", at(0, 14, 0).Add(40*time.Second))
	h.send(event.DoorOpened, "d1", at(0, 14, 1))
	h.send(event.DoorClosed, "d1", at(0, 14, 3))
	h.advance(at(0, 15, 0))
	h.wantPresence(PresenceHome, "answered the door")
	if p := h.presence(); !strings.Contains(p.ReasonZh, "开门应答") || !p.Since.Equal(at(0, 9, 0).UTC()) {
		t.Fatalf("presence %+v: want the answer explained and the home period kept", p)
	}
	h.advance(at(0, 20, 10))
	ev := h.wantRaised(RuleInactivity, 1, at(0, 20, 3))
	pr, _ := dataOf(ev)["presence"].(map[string]any)
	if !strings.Contains(toStr(pr["reason"]), "answered the door") {
		t.Fatalf("alert presence %v: want the reasoning kept", pr)
	}

	// The elder coming home, seen at the door by the peephole with no one
	// moving inside, is not someone answering.
	h2 := newHarness(t)
	h2.home(at(0, 8, 30))
	h2.goOut(at(0, 9, 0))
	h2.advance(at(0, 10, 0))
	h2.send(event.PeepholeVisitor, "p1", at(0, 11, 0))
	h2.send(event.DoorOpened, "d1", at(0, 11, 0).Add(20*time.Second))
	h2.send(event.DoorClosed, "d1", at(0, 11, 0).Add(40*time.Second))
	// A door cycle while away is a return: home at once, on the door's
	// word (with the peephole's visitor named as the other explanation).
	h2.wantPresence(PresenceHome, "came back through the door")
	if p := h2.presence(); !strings.Contains(p.Reason, "visitor with a key") || p.Basis != BasisDoor {
		t.Fatalf("presence %+v: want the visitor named and basis door", p)
	}
	h2.send(event.MotionDetected, "m1", at(0, 11, 3))
	h2.wantPresence(PresenceHome, "came back through the door")
}

// A peephole that recognises the resident and reports the direction
// decides the door cycle at once: leaving is away without waiting for
// away_after, coming back is home before any motion, and the arrival
// is not taken for a departure afterwards.
func TestPeepholeSeesElderLeaveAndReturn(t *testing.T) {
	h := newHarness(t)
	h.home(at(0, 9, 59))
	h.send(event.DoorOpened, "d1", at(0, 10, 0))
	h.send(event.PeepholeVisitor, "p1", at(0, 10, 0).Add(10*time.Second), map[string]any{"resident": true, "direction": "out"})
	h.send(event.DoorClosed, "d1", at(0, 10, 0).Add(30*time.Second))
	h.wantPresence(PresenceAway, "peephole (p1) saw the elder leave")
	if p := h.presence(); !p.Since.Equal(at(0, 10, 0).Add(30 * time.Second).UTC()) {
		t.Fatalf("away since %s, want the door closing", p.Since.In(cst))
	}
	h.send(event.PeepholeVisitor, "p1", at(0, 11, 0), map[string]any{"resident": true, "direction": "in"})
	h.wantPresence(PresenceHome, "saw the elder come back")
	h.send(event.DoorOpened, "d1", at(0, 11, 0).Add(10*time.Second))
	h.send(event.DoorClosed, "d1", at(0, 11, 0).Add(30*time.Second))
	h.advance(at(0, 12, 0))
	h.wantPresence(PresenceHome, "saw the elder come back")
	h.wantRaised(RuleVisitorLoitering, 0, time.Time{})

	// Leaving at night, seen by the peephole: the night limit applies
	// from the door closing.
	h2 := newHarness(t)
	h2.home(at(0, 23, 0))
	h2.send(event.DoorOpened, "d1", at(0, 23, 30))
	h2.send(event.DoorClosed, "d1", at(0, 23, 31))
	h2.send(event.PeepholeVisitor, "p1", at(0, 23, 32), map[string]any{"resident": true, "direction": "leaving"})
	h2.wantPresence(PresenceAway, "saw the elder leave")
	h2.advance(at(1, 1, 0))
	h2.wantRaised(RuleNotReturned, 1, at(1, 0, 31))
}

package police

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lintel-edge/lintel/edge/event"
)

// TestPolicyPrivacy pushes 10,000 generated events of every known kind,
// with household ids, dwelling places, personal data keys and evidence,
// through the default policy and a wide configured one: nothing outside
// the allow-list leaves, and no household or elder data at all.
func TestPolicyPrivacy(t *testing.T) {
	wide := DefaultAllow()
	// A config asking for everything it can, plus forbidden things that
	// NewPolicy must drop even if validation were bypassed.
	for _, k := range event.Kinds() {
		wide[string(k)] = []string{FieldSeverity, FieldDevice, FieldPlaceBuilding, FieldPlacePosition, FieldEvidence,
			"data.rule", "data.topic", "household", "place.room", "place.unit", "data.name", "data.phone", "data.elder", "data.face_crop"}
	}
	for name, allow := range map[string]map[string][]string{"default": DefaultAllow(), "wide": wide} {
		t.Run(name, func(t *testing.T) {
			p := NewPolicy(allow, false)
			rng := rand.New(rand.NewPCG(1, 2))
			kinds := event.Kinds()
			sent := 0
			for i := 0; i < 10000; i++ {
				k := kinds[i%len(kinds)]
				e := genEvent(rng, k, uint64(i+1))
				f, ok := p.Apply(e)
				if !ok {
					continue
				}
				sent++
				if Forbidden(k) != "" || e.Household != "" {
					t.Fatalf("%s with household %q was sent", k, e.Household)
				}
				set := map[string]bool{}
				for _, fl := range allow[string(k)] {
					set[fl] = true
				}
				for _, fl := range f.Fields() {
					if !set[fl] {
						t.Fatalf("%s: field %s sent but not allowed", k, fl)
					}
					if neverFields[fl] != "" || faceField(fl) {
						t.Fatalf("%s: forbidden field %s sent", k, fl)
					}
				}
				b, _ := json.Marshal(f)
				for _, secret := range []string{"hh-", "张", "1380013", "room-", "unit-", "face-"} {
					if strings.Contains(string(b), secret) {
						t.Fatalf("%s: %q leaked: %s", k, secret, b)
					}
				}
				// and what reaches the wire:
				bld := builder{ids: IDs{Prefix: "3401000000119", Loc: shanghaiLoc(t)}, gateway: "gw", evidence: func(event.Evidence) (bool, string) { return true, "" }}
				for _, r := range bld.build(f) {
					wb, _ := json.Marshal(r.info)
					for _, secret := range []string{"hh-", "张", "1380013", "room-", "unit-", "face-"} {
						if strings.Contains(string(wb), secret) {
							t.Fatalf("%s: %q reached the wire: %s", k, secret, wb)
						}
					}
				}
			}
			if sent == 0 {
				t.Fatal("nothing was sent: the test proves nothing")
			}
			t.Logf("%d of 10000 events passed the %s policy", sent, name)
		})
	}
}

func genEvent(rng *rand.Rand, k event.Kind, seq uint64) *event.Event {
	e := event.New(k)
	e.Seq, e.ID = seq, fmt.Sprintf("gw:ep:%d", seq)
	e.Device = fmt.Sprintf("dev-%d", rng.IntN(20))
	e.TimeQuality = event.Synced
	if rng.IntN(3) == 0 {
		e.Household = fmt.Sprintf("hh-%d", rng.IntN(100))
	}
	e.Place = &event.Place{Building: "3栋", Position: "east-facade"}
	if rng.IntN(2) == 0 {
		e.Place.Unit, e.Place.Room = "unit-1", "room-301"
	}
	e.WithData(map[string]any{
		"rule": "r1", "topic": "tns1:X", "name": "张三", "phone": "13800138000", "elder": "hh-7",
		"face_crop": "face-abc", "start_floor": rng.IntN(30),
	})
	if rng.IntN(2) == 0 {
		e.Evidence = []event.Evidence{{Type: event.EvidenceSnapshot, Ref: "clips/d/x.jpg", SHA256: strings.Repeat("a", 64), Size: 3}}
	}
	return e
}

func TestPolicyFacesNeedLegalBasis(t *testing.T) {
	allow := map[string][]string{"camera.falling_object": {"data.face_crop"}}
	if f, _ := NewPolicy(allow, false).Apply(genEvent(rand.New(rand.NewPCG(3, 4)), event.CameraFallingObject, 1)); f != nil && f.Data["face_crop"] != nil {
		t.Fatal("face data sent with faces disabled")
	}
}

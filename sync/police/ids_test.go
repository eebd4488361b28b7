package police

import (
	"testing"
	"time"
)

func shanghaiLoc(t testing.TB) *time.Location {
	l, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestIDs(t *testing.T) {
	x := IDs{Prefix: "3401000000119", Devices: map[string]string{"cam-1": "34010000001190000042"}, Loc: shanghaiLoc(t)}
	if got := x.Device("cam-1"); got != "34010000001190000042" {
		t.Fatalf("configured id: %s", got)
	}
	g := x.Device("cam-2")
	if !IsDigits(g, 20) || g[:13] != "3401000000119" || g != x.Device("cam-2") {
		t.Fatalf("generated id %q", g)
	}
	at := time.Date(2026, 3, 1, 2, 3, 4, 0, time.UTC)
	r := x.Record(g, TypeImage, at, 123456, 2)
	if !IsDigits(r, 41) || r[20:22] != TypeImage || r[22:36] != "20260301100304" || r[36:] != "34562" {
		t.Fatalf("record id %q", r)
	}
	if o := x.Object(r, TypeScene, 1); !IsDigits(o, 48) {
		t.Fatalf("object id %q", o)
	}
}

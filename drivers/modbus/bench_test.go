package modbus

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scatteredProfile writes a register map like a real controller's:
// clusters of 4–10 values with 0–3 unused registers between them, the
// clusters far apart (30–150 registers), some 32-bit values, plus a
// cluster of input registers. Seeded, so every run polls the same maps.
func scatteredProfile(rng *rand.Rand, name string) (string, int) {
	var b strings.Builder
	fmt.Fprintf(&b, "model: scattered %s\npoints:\n", name)
	useful, n := 0, 0
	addr := rng.IntN(20)
	for c := 0; c < 4; c++ {
		table := "holding"
		if c == 3 {
			table, addr = "input", rng.IntN(40)
		}
		for i, k := 0, 4+rng.IntN(7); i < k; i++ {
			typ, w := "u16", 1
			if rng.IntN(4) == 0 {
				typ, w = "u32", 2
			}
			fmt.Fprintf(&b, "  - {name: p%d, table: %s, address: %d, type: %s, class: telemetry}\n", n, table, addr, typ)
			n++
			useful += w
			addr += w + rng.IntN(4)
		}
		addr += 30 + rng.IntN(120)
	}
	return b.String(), useful
}

type benchResult struct {
	useful, regs, txns, timeouts uint64
	wall, wire                   time.Duration
}

func (r benchResult) usefulPerSec() float64 { return float64(r.useful) / r.wall.Seconds() }

// runBench polls 32 simulated devices on one 9600 8N1 RTU bus with wire
// timing for d, and optionally one dead unit, and returns the counters.
func runBench(tb testing.TB, d time.Duration, onePerPoint, dead, dense bool) benchResult {
	dir := tb.TempDir()
	rng := rand.New(rand.NewPCG(42, 7))
	sim := NewSim(SimWire{Baud: 9600, Parity: "none", StopBits: 1, Turnaround: 2 * time.Millisecond}, testLogger(tb))
	var devs strings.Builder
	path := ""
	for u := 1; u <= 32; u++ {
		y, _ := scatteredProfile(rng, strconv.Itoa(u))
		if dense {
			y = denseProfile(u)
		}
		name := fmt.Sprintf("scat-%d", u)
		must(tb, os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(y), 0o644))
		p, err := ParseProfile(name+".yaml", []byte(y))
		must(tb, err)
		sim.Add(uint8(u), p)
	}
	path = startRTUSim(tb, sim)
	opts := fmt.Sprintf("baud: 9600, parity: none, stop_bits: 1, telemetry_interval: 500ms, one_request_per_point: %v", onePerPoint)
	for u := 1; u <= 32; u++ {
		fmt.Fprintf(&devs, "  - {id: d%d, kind: sensor, driver: modbus, address: \"rtu://%s\", profile: scat-%d, options: {unit: %d, %s}}\n", u, path, u, u, opts)
	}
	if dead {
		// Unit 99 is configured but absent: its timeouts and backoff are
		// the whole cost of a dead device.
		fmt.Fprintf(&devs, "  - {id: dead, kind: sensor, driver: modbus, address: \"rtu://%s\", profile: scat-1, options: {unit: 99, %s}}\n", path, opts)
	}
	cfg := parseConfig(tb, devs.String(), dir)
	rec := newRecorder()
	buses := startBuses(tb, cfg, rec, nil)
	// Let every device be polled once, then measure a steady window.
	time.Sleep(d / 4)
	s0 := buses[0].Stats()
	t0 := time.Now()
	time.Sleep(d)
	s1 := buses[0].Stats()
	tb.Logf("whole run: %d transactions, %d timeouts, %d resyncs, %d reopens", s1.Transactions, s1.Timeouts, s1.Resyncs, s1.Reopens)
	return benchResult{
		useful: s1.UsefulItems - s0.UsefulItems, regs: s1.ReadItems - s0.ReadItems,
		txns: s1.Transactions - s0.Transactions, timeouts: s1.Timeouts - s0.Timeouts,
		wall: time.Since(t0), wire: s1.WireTime - s0.WireTime,
	}
}

// physicalLimit9600 is R_max(125) at 9600 8N1 (tech.md §4.3).
const physicalLimit9600 = 444.4

func benchDuration() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("LINTEL_BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 8 * time.Second
}

// BenchmarkRTU9600 measures useful registers per second on a saturated
// 9600 8N1 bus of 32 devices with scattered maps, for the merged plan and
// for one request per point in the same run, and the cost of one dead
// device. Run with -benchtime 1x: each mode polls for a fixed wall time.
func BenchmarkRTU9600(b *testing.B) {
	d := benchDuration()
	for _, mode := range []struct {
		name                     string
		onePerPoint, dead, dense bool
	}{{"merged", false, false, false}, {"one_per_point", true, false, false}, {"merged_with_dead_device", false, true, false}, {"dense_125", false, false, true}} {
		b.Run(mode.name, func(b *testing.B) {
			var r benchResult
			for range b.N {
				r = runBench(b, d, mode.onePerPoint, mode.dead, mode.dense)
			}
			b.ReportMetric(r.usefulPerSec(), "useful_regs/s")
			b.ReportMetric(100*r.usefulPerSec()/physicalLimit9600, "%_of_444")
			b.ReportMetric(100*float64(r.wire)/float64(r.wall), "%_wire_busy")
			b.ReportMetric(float64(r.txns)/r.wall.Seconds(), "requests/s")
			b.ReportMetric(100*float64(r.useful)/float64(max(r.regs, 1)), "%_useful_of_read")
			b.ReportMetric(float64(r.timeouts), "timeouts")
		})
	}
}

// denseProfile is the best case: 125 consecutive registers, one request
// per poll, every register useful (the physical limit's own assumption).
func denseProfile(u int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "model: dense %d\npoints:\n", u)
	for a := 0; a < 125; a++ {
		fmt.Fprintf(&b, "  - {name: r%d, table: holding, address: %d, class: telemetry}\n", a, a)
	}
	return b.String()
}

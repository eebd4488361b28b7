package rules

import "testing"

// BenchmarkReplayPopulationLegacy is BenchmarkReplayPopulation with the
// engine as it was before learned limits (Settings.Legacy), the baseline
// of the learned engine's cost in the same run.
func BenchmarkReplayPopulationLegacy(b *testing.B) {
	elders, days := evalSize()
	p := Simulate(SimOptions{Elders: elders, Days: days, Seed: 6})
	p.Settings.Legacy = true
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := ReplayPopulation(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(p.Records)), "events/op")
}

//go:build race

package rules

// raceEnabled is true when the tests run under the race detector, which
// slows the engine several times: the evaluation then runs a smaller
// population.
const raceEnabled = true

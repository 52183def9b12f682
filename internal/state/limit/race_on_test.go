//go:build race

package limit_test

// raceEnabled shrinks the heaviest tests: the race detector makes them ~15x slower.
const raceEnabled = true

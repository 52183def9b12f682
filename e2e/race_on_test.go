//go:build race

package e2e

// processBuildFlags build a wsgate process like the test binary: under -race
// the process gets the race detector too (and reuses the packages the test
// build already compiled with it).
var processBuildFlags = []string{"-race"}

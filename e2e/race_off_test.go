//go:build !race

package e2e

var processBuildFlags []string

// Package examples embeds the reference configuration, examples/wsgate.yaml, so
// that `wsgate config example` prints the very file the repository documents
// (and its loading test checks).
package examples

import _ "embed"

// Config is examples/wsgate.yaml.
//
//go:embed wsgate.yaml
var Config []byte

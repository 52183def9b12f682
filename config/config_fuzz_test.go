package config

import "testing"

// FuzzParse: any bytes as a config file give a config or an error, never a panic,
// and whatever parses can be validated.
func FuzzParse(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:1\n"))
	f.Add([]byte("limits: {max_message_bytes: 0}\n"))
	f.Add([]byte("auth:\n  keys:\n    - {id: a, algorithms: [HS256], secret: x}\n"))
	f.Add([]byte("rate: {tiers: {default: {messages: {rate: -1}}}}"))
	f.Add([]byte("routes: [{path: /x, upstream: 'ws://a'}]"))
	f.Add([]byte("timeouts: {idle: banana}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		_ = c.Validate()
	})
}

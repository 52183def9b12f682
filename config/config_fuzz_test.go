package config

import (
	"errors"
	"testing"
)

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
			// What the position-aware check passes, the decoder accepts: a
			// type error never reaches the user as a Go decoder message.
			var ve *ValidationError
			if !errors.As(err, &ve) && len(checkYAML("f", data, nil)) == 0 {
				t.Fatalf("checked clean but decode failed: %v", err)
			}
			return
		}
		_ = c.Validate()
	})
}

// FuzzCheckEnv: any WSGATE_* variable gives an error or nothing, never a panic;
// a variable the check accepts also loads.
func FuzzCheckEnv(f *testing.F) {
	for _, s := range []string{"WSGATE_LISTEN=1.2.3.4:5", "WSGATE_LIMITS__MAX_MESSAGE_BYTES=16k", "WSGATE_RATE__TIERS__PRO__MESSAGES__RATE=5",
		"WSGATE_LOG=x", "WSGATE_=1", "WSGATE_A____B=1", "WSGATE_TIMEOUTS__IDLE=30", "WSGATE_ROUTES=x", "WSGATE_TRUSTED_PROXIES=10.0.0.0/8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, kv string) {
		if len(checkEnv([]string{kv}, positions{})) == 0 {
			if _, err := Load("", []string{kv}); err != nil {
				t.Fatalf("%q passed the check but did not load: %v", kv, err)
			}
		}
	})
}

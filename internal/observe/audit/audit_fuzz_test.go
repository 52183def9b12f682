package audit

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/observe/redact"
)

// FuzzLogMessage feeds untrusted message bodies through LogMessage: every
// output line must be valid JSON and free of the registered secret.
func FuzzLogMessage(f *testing.F) {
	f.Add([]byte(`{"token":"x","text":"secret-value-1234"}`), 16)
	f.Add([]byte(`[1,2,{"a":[{"password":"p"}]}]`), 256)
	f.Add([]byte("\xff\xfe secret-value-1234 "+jwt), 5)
	f.Add([]byte(`{"n":1e999,"m":123456789012345678901234567890}`), 0)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		const secret = "secret-value-1234"
		r := redact.New(redact.Options{})
		r.Add(secret)
		if max < 0 {
			max = -max
		}
		var buf bytes.Buffer
		l, err := New(Options{Output: &buf, MessageSampleRate: 1, MessageMaxBytes: max%1024 + 1}, r)
		if err != nil {
			t.Fatal(err)
		}
		l.LogMessage("c", "u", string(data), data)
		l.Close()
		out := buf.String()
		if out == "" {
			if l.Stats().Errors == 0 {
				t.Fatal("no line and no error")
			}
			return
		}
		if !json.Valid([]byte(strings.TrimSpace(out))) {
			t.Fatalf("invalid JSON line: %q", out)
		}
		if strings.Contains(out, secret) {
			t.Fatalf("secret leaked: %q", out)
		}
	})
}

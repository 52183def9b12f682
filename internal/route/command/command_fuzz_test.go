package command_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/wsgate/wsgate/internal/route/command"
)

// FuzzResult: whatever a backend answers, the client gets valid JSON or an error.
func FuzzResult(f *testing.F) {
	for _, s := range []string{`{"a":1}`, ``, `null`, `{`, "\"\xff\"", ` [1, 2] `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		backend := command.Func(func(context.Context, command.Request) (json.RawMessage, error) { return answer, nil })
		res, err := backend.Call(context.Background(), command.Request{Name: "x"})
		if err != nil {
			if command.Classify(err) != command.KindBadResponse {
				t.Fatalf("kind %v", err)
			}
			return
		}
		if reply := command.Result([]byte(`"ref"`), res); !json.Valid(reply) {
			t.Fatalf("invalid reply %q", reply)
		}
	})
}

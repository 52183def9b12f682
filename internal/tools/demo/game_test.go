package demo

import (
	"context"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/route/hook"
)

func TestGamesReferee(t *testing.T) {
	g := NewGames()
	mv := func(user, payload string) hook.PublishReply {
		t.Helper()
		r, err := g.Publish(context.Background(), hook.PublishEvent{Identity: hook.Identity{User: user}, Channel: "ttt:1", Payload: []byte(payload)})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	steps := []struct{ user, payload, want string }{
		{"a", `{"cell":4}`, ""},
		{"a", `{"cell":0}`, "not your turn"},
		{"b", `{"cell":4}`, "that cell is taken"},
		{"c", `{"cell":1}`, "this game already has two players"},
		{"b", `{"cell":0}`, ""},
		{"a", `{"cell":3}`, ""},
		{"b", `{"cell":1}`, ""},
		{"a", `{"cell":5}`, ""}, // X: 3 4 5 wins
		{"b", `{"cell":2}`, "the game is over"},
		{"c", `{"reset":true}`, "only a player may reset, after the game ends"},
		{"b", `{"reset":true}`, ""},
	}
	for i, s := range steps {
		r := mv(s.user, s.payload)
		if s.want == "" && !r.Allow || s.want != "" && (r.Allow || r.Reason != s.want) {
			t.Fatalf("step %d %s %s: %+v, want %q", i, s.user, s.payload, r, s.want)
		}
		if i == 7 && !strings.Contains(string(r.Payload), `"winner":"X"`) {
			t.Fatalf("no winner in %s", r.Payload)
		}
	}
}

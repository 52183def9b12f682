package demo

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"github.com/wsgate/wsgate/internal/route/hook"
)

//go:embed game.html
var gamePage []byte

// Game namespace and move schema of the tic-tac-toe demo (dev mode only).
const (
	GameNamespace = "ttt"
	MoveSchema    = "ttt_move"
	// MoveSchemaJSON: a move is {"cell":0..8}, or {"reset":true} after a game ends.
	MoveSchemaJSON = `{"type":"object","properties":{"cell":{"type":"integer","minimum":0,"maximum":8},"reset":{"const":true}},"additionalProperties":false,"minProperties":1,"maxProperties":1}`
)

// maxGames bounds the games held in memory: a dev page must not grow the
// process without limit. A move in a new game beyond it is refused.
const maxGames = 1000

// Games is the referee of the tic-tac-toe demo: the publish hook of the ttt
// namespace. It refuses illegal moves (out of turn, taken cell, a third
// player, after the end) and rewrites a legal move into the authoritative
// state, so every client renders the same board. State is in this process:
// it is a single-node demo.
type Games struct {
	mu    sync.Mutex
	games map[string]*game
}

type game struct {
	board   [9]byte // 0, 'X' or 'O'
	players [2]string
	turn    int // 0: X, 1: O
	winner  string
}

// NewGames returns an empty referee.
func NewGames() *Games { return &Games{games: map[string]*game{}} }

// Publish is a hook.Funcs.Publish.
func (g *Games) Publish(_ context.Context, ev hook.PublishEvent) (hook.PublishReply, error) {
	var mv struct {
		Cell  *int `json:"cell"`
		Reset bool `json:"reset"`
	}
	if err := json.Unmarshal(ev.Payload, &mv); err != nil {
		return hook.PublishReply{Reason: "not a move"}, nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.games[ev.Channel]
	if st == nil {
		if len(g.games) >= maxGames {
			return hook.PublishReply{Reason: "too many games on this demo server"}, nil
		}
		st = &game{}
		g.games[ev.Channel] = st
	}
	me := -1
	for i, p := range st.players {
		if p == ev.User {
			me = i
		}
	}
	if mv.Reset {
		if st.winner == "" || me < 0 {
			return hook.PublishReply{Reason: "only a player may reset, after the game ends"}, nil
		}
		*st = game{}
		return hook.PublishReply{Allow: true, Payload: st.render("", -1, "reset by "+ev.User)}, nil
	}
	if mv.Cell == nil {
		return hook.PublishReply{Reason: "not a move"}, nil
	}
	if me < 0 {
		switch {
		case st.players[0] == "":
			st.players[0], me = ev.User, 0
		case st.players[1] == "":
			st.players[1], me = ev.User, 1
		default:
			return hook.PublishReply{Reason: "this game already has two players"}, nil
		}
	}
	cell := *mv.Cell
	switch {
	case st.winner != "":
		return hook.PublishReply{Reason: "the game is over"}, nil
	case me != st.turn:
		return hook.PublishReply{Reason: "not your turn"}, nil
	case st.board[cell] != 0:
		return hook.PublishReply{Reason: "that cell is taken"}, nil
	}
	mark := "XO"[me]
	st.board[cell] = mark
	st.turn = 1 - st.turn
	st.winner = winner(st.board)
	return hook.PublishReply{Allow: true, Payload: st.render(ev.User, cell, "")}, nil
}

var lines = [8][3]int{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {0, 3, 6}, {1, 4, 7}, {2, 5, 8}, {0, 4, 8}, {2, 4, 6}}

func winner(b [9]byte) string {
	for _, l := range lines {
		if b[l[0]] != 0 && b[l[0]] == b[l[1]] && b[l[1]] == b[l[2]] {
			return string(b[l[0]])
		}
	}
	for _, c := range b {
		if c == 0 {
			return ""
		}
	}
	return "draw"
}

func (st *game) render(by string, cell int, note string) []byte {
	var board strings.Builder
	for _, c := range st.board {
		if c == 0 {
			c = '.'
		}
		board.WriteByte(c)
	}
	out := map[string]any{"board": board.String(), "x": st.players[0], "o": st.players[1],
		"next": string("XO"[st.turn]), "winner": st.winner}
	if by != "" {
		out["by"], out["cell"] = by, cell
	}
	if note != "" {
		out["note"] = note
	}
	b, _ := json.Marshal(out) // strings and ints always marshal
	return b
}

func serveGame(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' wss: ws:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(gamePage)
}

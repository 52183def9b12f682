package command_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/route/command"
)

func newBackend(t *testing.T, h http.HandlerFunc, opts command.HTTPOptions) *command.HTTP {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	opts.URL = srv.URL
	b, err := command.NewHTTP(opts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHTTPRoundTrip(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("X-Secret") != "s3" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		var req command.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"name": req.Name, "user": req.User, "conn": req.ConnID, "echo": req.Payload})
	}, command.HTTPOptions{Headers: http.Header{"X-Secret": {"s3"}}})
	res, err := b.Call(context.Background(), command.Request{Name: "roll", Payload: json.RawMessage(`{"d":6}`), User: "alice", ConnID: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"conn":"c1","echo":{"d":6},"name":"roll","user":"alice"}`
	if string(res) != want {
		t.Fatalf("got %s want %s", res, want)
	}
	if got := string(command.Result([]byte(`7`), res)); got != `{"type":"command_result","ref":7,"result":`+want+`}` {
		t.Fatalf("reply %s", got)
	}
	if !json.Valid(command.Result(nil, nil)) {
		t.Fatal("Result(nil,nil) not JSON")
	}
}

func TestHTTPFailures(t *testing.T) {
	release := make(chan struct{})
	cases := []struct {
		name string
		h    http.HandlerFunc
		opts command.HTTPOptions
		kind command.Kind
	}{
		{"timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}, command.HTTPOptions{Timeout: 50 * time.Millisecond}, command.KindTimeout},
		{"status", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "nope", http.StatusInternalServerError)
		}, command.HTTPOptions{}, command.KindBackend},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://example.invalid/", http.StatusFound)
		}, command.HTTPOptions{}, command.KindBackend},
		{"not json", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, "hello")
		}, command.HTTPOptions{}, command.KindBadResponse},
		{"too big", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `"`+strings.Repeat("a", 200)+`"`)
		}, command.HTTPOptions{MaxResponseBytes: 100}, command.KindBadResponse},
	}
	backends := make([]*command.HTTP, len(cases))
	for i, tc := range cases {
		backends[i] = newBackend(t, tc.h, tc.opts)
	}
	t.Cleanup(func() { close(release) }) // registered last so it runs before the servers close
	for i, tc := range cases {
		b := backends[i]
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Call(context.Background(), command.Request{Name: "x"})
			var ce *command.Error
			if !errors.As(err, &ce) || ce.Kind != tc.kind {
				t.Fatalf("err = %v, want kind %s", err, tc.kind)
			}
		})
	}
}

func TestHTTPEmptyBodyIsNull(t *testing.T) {
	b := newBackend(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }, command.HTTPOptions{})
	res, err := b.Call(context.Background(), command.Request{Name: "x"})
	if err != nil || string(res) != "null" {
		t.Fatalf("res=%s err=%v", res, err)
	}
}

func TestNewHTTPRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x/", "/relative", "http://"} {
		if _, err := command.NewHTTP(command.HTTPOptions{URL: u}); err == nil {
			t.Errorf("URL %q accepted", u)
		}
	}
}

func TestFunc(t *testing.T) {
	f := command.Func(func(ctx context.Context, req command.Request) (json.RawMessage, error) {
		switch req.Name {
		case "ok":
			return json.RawMessage(`[1]`), nil
		case "slow":
			<-ctx.Done()
			return nil, ctx.Err()
		case "bad":
			return json.RawMessage(`{`), nil
		}
		return nil, errors.New("boom")
	})
	if res, err := f.Call(context.Background(), command.Request{Name: "ok"}); err != nil || string(res) != "[1]" {
		t.Fatalf("ok: %s %v", res, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	for name, kind := range map[string]command.Kind{"bad": command.KindBadResponse, "boom": command.KindBackend} {
		if _, err := f.Call(context.Background(), command.Request{Name: name}); command.Classify(err) != kind {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := f.Call(ctx, command.Request{Name: "slow"}); command.Classify(err) != command.KindTimeout {
		t.Errorf("slow: %v", err)
	}
}

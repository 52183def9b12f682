package room_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/route/command"
	"github.com/wsgate/wsgate/internal/route/room"
)

func TestCommandRoundTripAndTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req command.Request
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		switch req.Name {
		case "slow":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "fail":
			http.Error(w, "no", http.StatusBadGateway)
		default:
			_ = json.NewEncoder(w).Encode(map[string]any{"user": req.User, "conn": req.ConnID, "got": req.Payload})
		}
	}))
	defer srv.Close()
	defer close(release)
	backend, err := command.NewHTTP(command.HTTPOptions{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, room.Options{Commands: backend, CommandTimeout: 100 * time.Millisecond})
	c := newClient("c1", "alice", nil, nil)
	m := e.mustHandle(c, "command", 42, `{"name":"echo","payload":{"n":1}}`)
	res, _ := json.Marshal(m["result"])
	if m.str("type") != "command_result" || string(res) != `{"conn":"c1","got":{"n":1},"user":"alice"}` {
		t.Fatalf("result %v", m)
	}
	for name, code := range map[string]string{"slow": protocol.CodeCommandTimeout, "fail": protocol.CodeCommandBackend} {
		if err := e.handle(c, "command", 43, `{"name":"`+name+`"}`); err == nil || err.Code != code || err.Strike {
			t.Fatalf("%s: %v", name, err)
		}
		if m := c.expect(t, "error"); m.str("code") != code || m.num("ref") != 43 {
			t.Fatalf("%s reply %v", name, m)
		}
	}
	if err := e.handle(c, "command", 44, `{"name":"bad name!"}`); err == nil || err.Code != protocol.CodeBadRequest {
		t.Fatalf("bad name: %v", err)
	}
}

func TestCommandFunc(t *testing.T) {
	e := start(t, room.Options{Commands: command.Func(func(ctx context.Context, req command.Request) (json.RawMessage, error) {
		return json.RawMessage(`"pong"`), nil
	})})
	c := newClient("c1", "alice", nil, nil)
	if m := e.mustHandle(c, "command", 1, `{"name":"ping"}`); m["result"] != "pong" {
		t.Fatalf("%v", m)
	}
}

func TestPublishHandler(t *testing.T) {
	e := start(t, room.Options{MaxPublishBody: 1024})
	sub := newClient("c1", "alice", everyone, nil)
	e.subscribe(sub, "chat:lobby")
	srv := httptest.NewServer(e.s.PublishHandler([]string{"k1", "second-key"}))
	defer srv.Close()

	post := func(method string, hdr map[string]string, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+"/v1/publish", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	good := `{"channel":"chat:lobby","payload":{"news":true},"from":"backend"}`
	code, body := post("POST", map[string]string{"Authorization": "Bearer second-key"}, good)
	if code != 200 || !strings.Contains(body, `"offset":1`) {
		t.Fatalf("%d %s", code, body)
	}
	if m := sub.expect(t, "message"); m.str("from") != "backend" {
		t.Fatalf("%v", m)
	}
	if code, _ := post("POST", map[string]string{"X-API-Key": "k1"}, good); code != 200 {
		t.Fatalf("x-api-key: %d", code)
	}
	sub.expect(t, "message")
	for _, tc := range []struct {
		method string
		hdr    map[string]string
		body   string
		code   int
	}{
		{"POST", nil, good, 401},
		{"POST", map[string]string{"Authorization": "Bearer k2"}, good, 401},
		{"POST", map[string]string{"Authorization": "Basic k1"}, good, 401},
		{"POST", map[string]string{"X-API-Key": "k"}, good, 401},
		{"GET", map[string]string{"X-API-Key": "k1"}, "", 405},
		{"POST", map[string]string{"X-API-Key": "k1"}, `{"channel":"bad channel","payload":1}`, 400},
		{"POST", map[string]string{"X-API-Key": "k1"}, `{"channel":"nope:x","payload":1}`, 400},
		{"POST", map[string]string{"X-API-Key": "k1"}, `{"channel":"chat:x"}`, 400},
		{"POST", map[string]string{"X-API-Key": "k1"}, `{"channel":"chat:x","payload":1,"extra":2}`, 400},
		{"POST", map[string]string{"X-API-Key": "k1"}, `{"channel":"chat:x","payload":1} {}`, 400},
		{"POST", map[string]string{"X-API-Key": "k1"}, `{"channel":"chat:x","payload":"` + strings.Repeat("a", 2000) + `"}`, 413},
	} {
		if code, body := post(tc.method, tc.hdr, tc.body); code != tc.code {
			t.Errorf("%s %v %.60s: %d %s, want %d", tc.method, tc.hdr, tc.body, code, body, tc.code)
		}
	}
	sub.quiet(t)

	// No keys configured: everything is refused.
	closed := httptest.NewServer(e.s.PublishHandler(nil))
	defer closed.Close()
	req, _ := http.NewRequest("POST", closed.URL, strings.NewReader(good))
	req.Header.Set("Authorization", "Bearer ")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("no keys: %d", resp.StatusCode)
	}
}

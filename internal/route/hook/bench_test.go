package hook

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkFuncHook is the protections' own cost around a Go hook (breaker,
// semaphore, timeout context).
func BenchmarkFuncHook(b *testing.B) {
	h, _ := New(KindPublish, NewFunc(KindPublish, Funcs{Publish: func(context.Context, PublishEvent) (PublishReply, error) {
		return PublishReply{Allow: true}, nil
	}}), Options{})
	ev := PublishEvent{Identity: Identity{User: "u", ConnID: "c"}, Channel: "game:1", Payload: []byte(`{"cell":4}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Publish(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHTTPHook is one signed HTTP publish hook call to a loopback
// backend (keep-alive), strict decode included.
func BenchmarkHTTPHook(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"allow":true}`)
	}))
	defer srv.Close()
	be, err := NewHTTP(HTTPOptions{URL: srv.URL, Key: testKey})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	h, _ := New(KindPublish, be, Options{})
	ev := PublishEvent{Identity: Identity{User: "u", ConnID: "c", Claims: map[string]any{"tier": "pro"}}, Channel: "game:1", Payload: []byte(`{"cell":4}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Publish(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
}

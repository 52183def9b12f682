package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func FuzzVerify(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	s := NewHMACSigner(secret, "k")
	good, err := s.Mint("alice", time.Hour, map[string]any{"aud": "wsgate"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.")
	f.Add(good[:len(good)-3])
	f.Add(strings.Repeat(".", 100))
	v, err := NewVerifier(context.Background(), Options{Keys: []Key{{ID: "k", Secret: string(secret)}, {Secret: strings.Repeat("z", 64), Algorithms: []string{"HS512"}}}}, nil)
	if err != nil {
		f.Fatal(err)
	}
	defer v.Close()
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Verify(context.Background(), tok)
		if err != nil {
			if Reason(err) == "" {
				t.Fatal("error without reason")
			}
			return
		}
		if id.Subject == "" || id.ExpiresAt.IsZero() {
			t.Fatalf("accepted identity without subject/exp: %+v", id)
		}
	})
}

func FuzzParseSubprotocols(f *testing.F) {
	f.Add("chat.v1, bearer, eyJ.a.b")
	f.Add("token.abc,chat")
	f.Add(",,,")
	f.Add("bearer")
	f.Add("a\tb, c")
	f.Add(strings.Repeat("x,", 40))
	f.Fuzz(func(t *testing.T, h string) {
		protos, err := parseSubprotocols([]string{h})
		if err != nil {
			return
		}
		if len(protos) > MaxSubprotocols {
			t.Fatalf("%d entries", len(protos))
		}
		for _, p := range protos {
			if p == "" || strings.ContainsAny(p, ", \t") || len(p) > maxSubprotocolBytes {
				t.Fatalf("bad entry %q", p)
			}
		}
		app, cred, err := splitTokenProtocols(protos)
		if err != nil {
			return
		}
		for _, p := range app {
			if cred.Value != "" && p == cred.Value {
				t.Fatalf("token %q left in app protocols %v", cred.Value, app)
			}
			if len(p) > len("token.") && strings.EqualFold(p[:len("token.")], "token.") {
				t.Fatalf("token-carrying entry %q left in app protocols", p)
			}
			if strings.EqualFold(p, SubprotocolMarker) {
				t.Fatalf("marker left in app protocols %v", app)
			}
		}
	})
}

func FuzzExtract(f *testing.F) {
	f.Add("Bearer abc", "chat, bearer, tok", "t=x", "ticket=abc")
	f.Add("", "", "", "token=x&token=y")
	f.Add("Basic", ",", "t=a; t=b", "%zz")
	f.Fuzz(func(t *testing.T, authz, proto, cookie, query string) {
		r := httptest.NewRequest(http.MethodGet, "/ws", nil)
		r.URL.RawQuery = query
		r.Header.Set("Authorization", authz)
		r.Header.Set("Sec-WebSocket-Protocol", proto)
		r.Header.Set("Cookie", cookie)
		cred, app, err := Extract(r, ExtractOptions{CookieName: "t", AllowQueryToken: true})
		if err == nil && (cred.Value == "" || len(cred.Value) > MaxTokenBytes) {
			t.Fatalf("bad credential %+v", cred)
		}
		if len(app) > MaxSubprotocols {
			t.Fatal("too many app protocols")
		}
	})
}

package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	const jwtish = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln"
	type hdr = map[string][]string
	cases := []struct {
		name    string
		target  string
		headers hdr
		opts    ExtractOptions
		source  CredentialSource
		value   string
		echo    string
		app     []string
		err     error // nil = success
	}{
		{name: "none", target: "/ws", err: ErrNoCredential},
		{name: "bearer", target: "/ws", headers: hdr{"Authorization": {"Bearer " + jwtish}}, source: SourceBearer, value: jwtish},
		{name: "bearer lowercase scheme", target: "/ws", headers: hdr{"Authorization": {"bearer  " + jwtish}}, source: SourceBearer, value: jwtish},
		{name: "basic refused", target: "/ws", headers: hdr{"Authorization": {"Basic dTpw"}}, err: ErrBadCredential},
		{name: "bearer empty", target: "/ws", headers: hdr{"Authorization": {"Bearer "}}, err: ErrBadCredential},
		{name: "bearer no space", target: "/ws", headers: hdr{"Authorization": {"Bearer"}}, err: ErrBadCredential},
		{name: "two authorization", target: "/ws", headers: hdr{"Authorization": {"Bearer a", "Bearer b"}}, err: ErrBadCredential},
		{name: "bearer with space in token", target: "/ws", headers: hdr{"Authorization": {"Bearer a b"}}, err: ErrBadCredential},
		{name: "subprotocol marker", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {"chat.v1, bearer, " + jwtish}},
			source: SourceSubprotocol, value: jwtish, echo: "bearer", app: []string{"chat.v1"}},
		{name: "subprotocol marker first, split headers", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {"bearer", jwtish + ",chat.v2"}},
			source: SourceSubprotocol, value: jwtish, echo: "bearer", app: []string{"chat.v2"}},
		{name: "subprotocol token. form", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {"token." + jwtish + ", chat.v1"}},
			source: SourceSubprotocol, value: jwtish, app: []string{"chat.v1"}},
		{name: "marker without token", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {"chat.v1, bearer"}}, err: ErrBadCredential},
		{name: "two tokens", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {"bearer, a, token.b"}}, err: ErrBadCredential},
		{name: "empty entry", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {"chat.v1,,x"}}, err: ErrBadCredential},
		{name: "bad char", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {"chat v1"}}, err: ErrBadCredential},
		{name: "too many", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {strings.Repeat("a,", 32) + "b"}}, err: ErrBadCredential},
		{name: "duplicate", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {"a, a"}}, err: ErrBadCredential},
		{name: "app only", target: "/ws", headers: hdr{"Sec-WebSocket-Protocol": {"chat.v1, chat.v2"}}, app: []string{"chat.v1", "chat.v2"}, err: ErrNoCredential},
		{name: "bearer and token subprotocol: ambiguous", target: "/ws", headers: hdr{"Authorization": {"Bearer h"}, "Sec-WebSocket-Protocol": {"chat.v1, bearer, s"}},
			err: ErrAmbiguousCredential, app: []string{"chat.v1"}},
		{name: "bearer and token. subprotocol: ambiguous", target: "/ws", headers: hdr{"Authorization": {"Bearer h"}, "Sec-WebSocket-Protocol": {"chat.v1, token.s"}},
			err: ErrAmbiguousCredential},
		{name: "two Authorization headers: ambiguous", target: "/ws", headers: hdr{"Authorization": {"Bearer h", "Bearer i"}}, err: ErrAmbiguousCredential},
		{name: "cookie", target: "/ws", headers: hdr{"Cookie": {"wsgate_token=" + jwtish}}, opts: ExtractOptions{CookieName: "wsgate_token"}, source: SourceCookie, value: jwtish},
		{name: "cookie disabled", target: "/ws", headers: hdr{"Cookie": {"wsgate_token=" + jwtish}}, err: ErrNoCredential},
		{name: "cookie twice", target: "/ws", headers: hdr{"Cookie": {"t=a; t=b"}}, opts: ExtractOptions{CookieName: "t"}, err: ErrBadCredential},
		{name: "ticket", target: "/ws?ticket=abc_-1", source: SourceTicket, value: "abc_-1"},
		{name: "ticket twice", target: "/ws?ticket=a&ticket=b", err: ErrBadCredential},
		{name: "ticket empty", target: "/ws?ticket=", err: ErrBadCredential},
		{name: "query token disabled", target: "/ws?token=" + jwtish, err: ErrBadCredential},
		{name: "query token enabled", target: "/ws?token=" + jwtish, opts: ExtractOptions{AllowQueryToken: true}, source: SourceQuery, value: jwtish},
		{name: "ticket before query token", target: "/ws?token=x&ticket=y", opts: ExtractOptions{AllowQueryToken: true}, source: SourceTicket, value: "y"},
		{name: "bad query", target: "/ws?ticket=%zz", err: ErrBadCredential},
		{name: "too long", target: "/ws", headers: hdr{"Authorization": {"Bearer " + strings.Repeat("a", MaxTokenBytes+1)}}, err: ErrBadCredential},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, tc.target, nil)
			for k, vs := range tc.headers {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			cred, app, err := Extract(r, tc.opts)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if tc.app != nil && !slices.Equal(app, tc.app) {
					t.Fatalf("app = %v, want %v", app, tc.app)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cred.Source != tc.source || cred.Value != tc.value || cred.EchoProtocol != tc.echo {
				t.Fatalf("cred = %+v", cred)
			}
			if !slices.Equal(app, tc.app) {
				t.Fatalf("app = %v, want %v", app, tc.app)
			}
			for _, p := range app {
				if p == tc.value {
					t.Fatal("token left in app protocols")
				}
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	u, _ := url.Parse("wss://user:pw@h.example/ws?ticket=SECRET&token=T0K&room=lobby#frag")
	got := RedactURL(u)
	if strings.Contains(got, "SECRET") || strings.Contains(got, "T0K") || strings.Contains(got, "pw") || strings.Contains(got, "lobby") || strings.Contains(got, "frag") {
		t.Fatalf("leaked: %s", got)
	}
	if !strings.Contains(got, "ticket=REDACTED") || !strings.Contains(got, "/ws") {
		t.Fatalf("got %s", got)
	}
	bad := &url.URL{Path: "/ws", RawQuery: "a=%zz;SECRET"}
	if got := RedactURL(bad); strings.Contains(got, "SECRET") {
		t.Fatalf("leaked: %s", got)
	}
	if RedactURL(nil) != "" {
		t.Fatal("nil")
	}
	if orig := u.RawQuery; !strings.Contains(orig, "SECRET") {
		t.Fatal("RedactURL modified its argument")
	}
}

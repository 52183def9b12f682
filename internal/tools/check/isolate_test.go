package check

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Against a loopback target every probe connection comes from its own
// 127.x address, never 127.0.0.1 (where the user's browser is).
func TestProbesUseTheirOwnSourceAddresses(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	snapshot := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[string]int{}
		for k, v := range seen {
			out[k] = v
		}
		clear(seen)
		return out
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		seen[host]++
		mu.Unlock()
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	rep, err := Run(context.Background(), &Options{URL: url, Secret: testSecret,
		Only: []string{"no-credential", "malformed-token", "expired-token", "bad-signature", "alg-none", "handshake-rate"}})
	if err != nil {
		t.Fatal(err)
	}
	got := snapshot()
	if got["127.0.0.1"] != 0 {
		t.Errorf("%d probe connections from 127.0.0.1", got["127.0.0.1"])
	}
	// 1+1+1+1+3 single probes, and the 60-attempt flood from one address.
	if len(got) < 7 {
		t.Errorf("%d distinct source addresses, want one per probe connection: %v", len(got), got)
	}
	flood := 0
	for _, n := range got {
		flood = max(flood, n)
	}
	if flood != handshakeFlood {
		t.Errorf("the handshake flood used %d connections from its address, want %d from one", flood, handshakeFlood)
	}
	if r := rep.Result("handshake-rate"); r == nil || r.Status != Fail {
		t.Errorf("handshake-rate: %+v", r)
	}
	// Without isolation, all come from one address.
	_, err = Run(context.Background(), &Options{URL: url, NoIsolation: true, Only: []string{"no-credential", "malformed-token"}})
	if got := snapshot(); err != nil || len(got) != 1 {
		t.Errorf("--no-isolation: %v %v", err, got)
	}
}

// Against a remote target the checks that may get the auditor banned run
// after the others, and crash probes last.
func TestRemoteOrder(t *testing.T) {
	sel := selectChecks(&Options{}, true)
	phase := 0
	for _, c := range sel {
		p := 0
		if c.banProne {
			p = 1
		}
		if c.crash {
			p = 2
		}
		if p < phase {
			t.Fatalf("%s (phase %d) after phase %d", c.name, p, phase)
		}
		phase = p
	}
	if sel[len(sel)-1].name != "malformed-host" || sel[0].name != "tls-version" {
		t.Fatalf("order %s … %s", sel[0].name, sel[len(sel)-1].name)
	}
}

// A refusal after the credential was accepted is analysed as what it is,
// never reported as a credential problem.
func TestMidRunRefusalIsNotACredentialError(t *testing.T) {
	e := &env{o: &Options{}, cred: &creds{valid: "x"}, sh: &shared{baseDone: true}, check: "oversize"}
	r := e.needConn(&refusedError{a: attempt{status: http.StatusTooManyRequests}})
	if r.Status != Error || !strings.Contains(r.Got, "not a credential problem") || !strings.Contains(r.Got, "slot leak") || strings.Contains(r.Fix, "credential (") {
		t.Fatalf("%+v", r)
	}
	if len(e.sh.notes) != 1 {
		t.Fatalf("notes %q", e.sh.notes)
	}
	// Before any success it is the credential.
	e.sh = &shared{baseDone: true, baseErr: errors.New("refused")}
	if r := e.needConn(&refusedError{a: attempt{status: http.StatusUnauthorized}}); !strings.Contains(r.Fix, "credential") {
		t.Fatalf("%+v", r)
	}
}

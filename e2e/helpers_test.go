package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/wsgate/wsgate/internal/wsgatetest"
)

// ticketFor asks s for a one-time ticket for sub (a token with claims is minted for
// it) and returns the ticket and, when the server has integrity master keys, the
// per-user signing key object.
func ticketFor(t *testing.T, s *wsgatetest.Server, sub string, claims map[string]any) (string, json.RawMessage) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.HTTPURL+"/v1/tickets", nil)
	req.Header.Set("Authorization", "Bearer "+s.Token(t, sub, claims))
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out struct {
		Ticket    string          `json:"ticket"`
		Integrity json.RawMessage `json:"integrity"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(body, &out) != nil || out.Ticket == "" {
		t.Fatalf("ticket endpoint: %d %s", resp.StatusCode, body)
	}
	return out.Ticket, out.Integrity
}

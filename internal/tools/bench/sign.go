package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	wsclient "github.com/wsgate/wsgate/client"
)

// maxTicketBody bounds what is read from the ticket endpoint.
const maxTicketBody = 64 << 10

// newHTTPClient is the client for POST /v1/tickets: same TLS trust as the
// WebSocket dials, bounded by Timeout.
func (d *dialer) newHTTPClient() *http.Client {
	return &http.Client{
		Timeout: d.o.Timeout,
		Transport: &http.Transport{
			TLSClientConfig:     d.tls,
			DialContext:         d.netDial,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     5 * time.Second,
		},
	}
}

// ticketURL is the ticket endpoint on the host of connection n's endpoint.
func (d *dialer) ticketURL(n int) (string, error) {
	u, err := url.Parse(d.url(n))
	if err != nil {
		return "", fmt.Errorf("url: %w", err)
	}
	scheme := "http"
	if u.Scheme == "wss" {
		scheme = "https"
	}
	return (&url.URL{Scheme: scheme, Host: u.Host, Path: "/v1/tickets"}).String(), nil
}

// hmacKey fetches the per-user integrity key of connection n's subject.
func (d *dialer) hmacKey(ctx context.Context, n int) (kid string, key []byte, err error) {
	tok, err := d.token(n)
	if err != nil {
		return "", nil, err
	}
	u, err := d.ticketURL(n)
	if err != nil {
		return "", nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	if err != nil {
		return "", nil, fmt.Errorf("ticket request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := d.http.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("ticket request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTicketBody))
	if err != nil {
		return "", nil, fmt.Errorf("ticket response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, &statusError{code: resp.StatusCode}
	}
	var out struct {
		Integrity json.RawMessage `json:"integrity"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", nil, fmt.Errorf("ticket response: %w", err)
	}
	if len(out.Integrity) == 0 {
		return "", nil, errNoKey
	}
	return wsclient.ParseHMACKey(out.Integrity)
}

// newSigner builds connection n's signer bound to the id from its welcome.
func (d *dialer) newSigner(n int, kid string, key []byte, connID string) (*wsclient.Signer, error) {
	if connID == "" {
		return nil, errNoConnID
	}
	s, err := wsclient.NewHMACSigner(kid, key, d.subject(n), nil)
	if err != nil {
		return nil, err
	}
	s.Bind(connID)
	return s, nil
}

// findString reads the JSON string value after key (e.g. `"conn_id":`) when
// it has no escapes; ids never do.
func findString(b []byte, key string) (string, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return "", false
	}
	rest := bytes.TrimLeft(b[i+len(key):], " ")
	if len(rest) == 0 || rest[0] != '"' {
		return "", false
	}
	rest = rest[1:]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || j > 256 || bytes.IndexByte(rest[:j], '\\') >= 0 {
		return "", false
	}
	return string(rest[:j]), true
}

var (
	errNoKey    = errors.New("the ticket endpoint sent no integrity key (is integrity configured on the server?)")
	errNoConnID = errors.New("the welcome message has no conn_id to bind signatures to")
)

package command

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
)

// Request is one `command` message together with the caller's identity.
type Request struct {
	Name    string          `json:"name"`
	Payload json.RawMessage `json:"payload,omitempty"`
	User    string          `json:"user"`
	ConnID  string          `json:"conn_id"`
	Claims  map[string]any  `json:"claims,omitempty"`
}

// Backend executes commands. Call must honour ctx (it carries the deadline) and
// return valid JSON on success.
type Backend interface {
	Call(ctx context.Context, req Request) (json.RawMessage, error)
}

// Kind classifies a failed call; it is what the client gets to see.
type Kind string

// Failure kinds.
const (
	KindTimeout     Kind = "timeout"       // the backend did not answer before the deadline
	KindBackend     Kind = "backend_error" // the backend refused, failed or was unreachable
	KindBadResponse Kind = "bad_response"  // the answer was not JSON or too large
)

// Error is a failed call. Err holds the detail for logs; only Kind reaches clients.
type Error struct {
	Kind Kind
	Err  error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "command: " + string(e.Kind)
	}
	return "command: " + string(e.Kind) + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Classify maps any error returned by a Backend to its Kind: a *Error keeps its own,
// deadline errors are KindTimeout and everything else is KindBackend.
func Classify(err error) Kind {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Kind
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout
	}
	return KindBackend
}

// Func adapts a Go function to Backend (library mode). Its result must be valid
// JSON; a nil result is relayed as null.
type Func func(ctx context.Context, req Request) (json.RawMessage, error)

// Call implements Backend.
func (f Func) Call(ctx context.Context, req Request) (json.RawMessage, error) {
	res, err := f(ctx, req)
	if err != nil {
		return nil, &Error{Kind: Classify(err), Err: err}
	}
	if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return nil, &Error{Kind: KindTimeout, Err: ctx.Err()}
	}
	if len(res) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(res) {
		return nil, &Error{Kind: KindBadResponse, Err: errors.New("handler returned invalid JSON")}
	}
	return res, nil
}

// HTTPOptions configures NewHTTP.
type HTTPOptions struct {
	// URL receives a POST with the Request as JSON. Required; http or https.
	URL string
	// Timeout bounds one call, including reading the answer. Default 5s.
	Timeout time.Duration
	// Headers are added to every request (e.g. a shared secret for the backend).
	Headers http.Header
	// MaxResponseBytes caps the answer; larger answers are KindBadResponse. Default 64 KiB.
	MaxResponseBytes int64
	// HTTPClient defaults to a client that never follows redirects.
	HTTPClient *http.Client
}

// Defaults.
const (
	DefaultTimeout          = 5 * time.Second
	DefaultMaxResponseBytes = 64 << 10
)

// HTTP is a Backend that POSTs to an application endpoint.
type HTTP struct {
	opts HTTPOptions
}

// NewHTTP validates opts and returns the backend.
func NewHTTP(opts HTTPOptions) (*HTTP, error) {
	req, err := http.NewRequest(http.MethodPost, opts.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("command: bad URL: %w", err)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" || req.URL.Host == "" {
		return nil, fmt.Errorf("command: URL %q must be absolute http(s)", opts.URL)
	}
	defaults.Positive(&opts.Timeout, DefaultTimeout)
	defaults.Positive(&opts.MaxResponseBytes, DefaultMaxResponseBytes)
	if opts.HTTPClient == nil {
		// Redirects are refused: a 3xx is a backend error, not an invitation to
		// send the caller's claims somewhere else.
		opts.HTTPClient = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	opts.Headers = opts.Headers.Clone()
	return &HTTP{opts: opts}, nil
}

// Call implements Backend. A 2xx answer whose body is valid JSON is relayed;
// an empty 2xx body becomes null.
func (h *HTTP) Call(ctx context.Context, req Request) (json.RawMessage, error) {
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	body, err := json.Marshal(req)
	if err != nil {
		return nil, &Error{Kind: KindBackend, Err: fmt.Errorf("encode request: %w", err)}
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, h.opts.URL, bytes.NewReader(body))
	if err != nil {
		return nil, &Error{Kind: KindBackend, Err: fmt.Errorf("build request: %w", err)}
	}
	for k, vs := range h.opts.Headers {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	resp, err := h.opts.HTTPClient.Do(hr)
	if err != nil {
		return nil, h.fail(ctx, fmt.Errorf("post %s: %w", req.Name, err))
	}
	defer resp.Body.Close()
	// Read one byte past the limit to tell "exactly at the limit" from "too big".
	data, err := io.ReadAll(io.LimitReader(resp.Body, h.opts.MaxResponseBytes+1))
	if err != nil {
		return nil, h.fail(ctx, fmt.Errorf("read answer to %s: %w", req.Name, err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &Error{Kind: KindBackend, Err: fmt.Errorf("%s: backend status %d", req.Name, resp.StatusCode)}
	}
	if int64(len(data)) > h.opts.MaxResponseBytes {
		return nil, &Error{Kind: KindBadResponse, Err: fmt.Errorf("%s: answer larger than %d bytes", req.Name, h.opts.MaxResponseBytes)}
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return json.RawMessage("null"), nil
	}
	if !json.Valid(data) {
		return nil, &Error{Kind: KindBadResponse, Err: fmt.Errorf("%s: answer is not JSON", req.Name)}
	}
	return data, nil
}

func (h *HTTP) fail(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Kind: KindTimeout, Err: err}
	}
	return &Error{Kind: KindBackend, Err: err}
}

// Result encodes the success reply `{"type":"command_result","ref":<ref>,"result":<result>}`.
// ref is the raw JSON of the request id (omitted when nil); result must be valid JSON.
func Result(ref []byte, result json.RawMessage) []byte {
	b := make([]byte, 0, len(result)+len(ref)+48)
	b = append(b, `{"type":"command_result"`...)
	if len(ref) > 0 {
		b = append(b, `,"ref":`...)
		b = append(b, ref...)
	}
	b = append(b, `,"result":`...)
	if len(result) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, result...)
	}
	return append(b, '}')
}

// Interface guards.
var (
	_ Backend = (*HTTP)(nil)
	_ Backend = Func(nil)
)

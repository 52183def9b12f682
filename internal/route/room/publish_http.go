package room

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/wsgate/wsgate/internal/conn/protocol"
)

// PublishHandler serves POST /v1/publish for backends:
//
//	Authorization: Bearer <key>   (or X-API-Key: <key>)
//	{"channel":"chat:lobby","payload":{…},"from":"optional sender"}
//
// answering 200 {"offset":N,"epoch":"…"}. A missing or wrong key gets 401 before
// the body is read; with no keys configured every request gets 401 (fail closed).
// Keys are compared in constant time against all configured keys. Bodies are capped
// at Options.MaxPublishBody (413 beyond). Errors are {"error":code}.
func (s *Service) PublishHandler(apiKeys []string) http.Handler {
	sums := make([][32]byte, 0, len(apiKeys))
	for _, k := range apiKeys {
		if k != "" {
			sums = append(sums, sha256.Sum256([]byte(k)))
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !keyOK(sums, presentedKey(r)) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wsgate"`)
			writeJSONError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed")
			return
		}
		body := http.MaxBytesReader(w, r.Body, s.opts.MaxPublishBody)
		req, err := decodePublishBody(body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				writeJSONError(w, http.StatusRequestEntityTooLarge, "too_large")
				return
			}
			writeJSONError(w, http.StatusBadRequest, protocol.CodeBadRequest)
			return
		}
		pos, err := s.Publish(r.Context(), req.Channel, req.Payload, req.From)
		if err != nil {
			var e *protocol.Error
			if errors.As(err, &e) {
				writeJSONError(w, http.StatusBadRequest, e.Code)
				return
			}
			s.log.Warn("server publish failed", "channel", req.Channel, "err", err)
			writeJSONError(w, http.StatusServiceUnavailable, protocol.CodeInternal)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(pos)
	})
}

type publishBody struct {
	Channel string          `json:"channel"`
	Payload json.RawMessage `json:"payload"`
	From    string          `json:"from"`
}

// decodePublishBody parses one strict JSON object (unknown fields and trailing
// data refused).
func decodePublishBody(r io.Reader) (publishBody, error) {
	var b publishBody
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return b, err
	}
	if dec.More() {
		return b, errors.New("trailing data after the JSON object")
	}
	if b.Channel == "" || len(b.Payload) == 0 {
		return b, errors.New("channel and payload are required")
	}
	return b, nil
}

func presentedKey(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
		return ""
	}
	return r.Header.Get("X-API-Key")
}

// keyOK compares the hash of key with every configured hash, never stopping
// early, so timing reveals neither which key matched nor any key's length.
func keyOK(sums [][32]byte, key string) bool {
	if key == "" {
		return false
	}
	got := sha256.Sum256([]byte(key))
	ok := 0
	for i := range sums {
		ok |= subtle.ConstantTimeCompare(got[:], sums[i][:])
	}
	return ok == 1
}

func writeJSONError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":"` + code + `"}`))
}

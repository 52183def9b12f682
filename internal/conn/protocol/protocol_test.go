package protocol

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docSection returns the body of the "## title" section of docs/protocol.md.
func docSection(t *testing.T, title string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "protocol.md"))
	if err != nil {
		t.Fatalf("read docs/protocol.md: %v", err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("docs/protocol.md has no %q section", "## "+title)
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	return sec
}

// docCloseTable parses the "Close codes" table of docs/protocol.md into
// code → backticked reason texts of its row.
func docCloseTable(t *testing.T) map[CloseCode][]string {
	t.Helper()
	sec := docSection(t, "Close codes")
	row := regexp.MustCompile(`^\| (\d{4}) \| ([^|]*) \|`)
	tick := regexp.MustCompile("`([^`]+)`")
	rows := map[CloseCode][]string{}
	for line := range strings.SplitSeq(sec, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		code := CloseCode(n)
		if _, dup := rows[code]; dup {
			t.Errorf("docs/protocol.md lists close code %d twice", code)
		}
		rows[code] = []string{}
		for _, tm := range tick.FindAllStringSubmatch(m[2], -1) {
			rows[code] = append(rows[code], tm[1])
		}
	}
	if len(rows) == 0 {
		t.Fatal("docs/protocol.md: no rows parsed from the close-code table")
	}
	return rows
}

// TestDocsMatchCloseTable keeps docs/protocol.md and closeTable from drifting: each
// reason's code and text is in the doc's row for that code, each quoted text in the
// doc is a reason's, and every code the doc lists is a named constant.
func TestDocsMatchCloseTable(t *testing.T) {
	doc := docCloseTable(t)
	known := []CloseCode{CloseNormal, CloseGoingAway, CloseProtocolError, CloseUnsupportedData,
		CloseInvalidPayload, ClosePolicyViolation, CloseMessageTooBig, CloseInternalError, CloseServiceRestart,
		CloseTryAgainLater, CloseTokenExpired, CloseIdle, CloseKeepalive, CloseHookRefused}
	for _, c := range known {
		if _, ok := doc[c]; !ok {
			t.Errorf("close code %d is not in docs/protocol.md", c)
		}
	}
	for c := range doc {
		if !slices.Contains(known, c) {
			t.Errorf("docs/protocol.md lists close code %d, which package protocol does not name", c)
		}
	}
	for r := CloseReason(1); r < numReasons; r++ {
		if r.Text() == "" {
			t.Errorf("reason %d has no text", r)
		}
		if !slices.Contains(doc[r.Code()], r.Text()) {
			t.Errorf("reason %q: docs/protocol.md's row for %d does not list `%s` (it lists %q)", r, r.Code(), r.Text(), doc[r.Code()])
		}
	}
	for c, texts := range doc {
		for _, text := range texts {
			found := false
			for r := CloseReason(1); r < numReasons; r++ {
				found = found || r.Code() == c && r.Text() == text
			}
			if !found {
				t.Errorf("docs/protocol.md: close %d `%s` is no reason in closeTable", c, text)
			}
		}
	}
}

func TestCloseReasonOutOfRange(t *testing.T) {
	for _, r := range []CloseReason{0, -1, numReasons, 1000} {
		if r.Code() != CloseInternalError || r.Text() != "internal error" {
			t.Errorf("reason %d: %d %q, want 1011 internal error", int(r), r.Code(), r.Text())
		}
	}
	if len(ReasonSlowConsumer.Text()) > 123 {
		t.Error("close reason over 123 bytes")
	}
}

func TestErrorEncode(t *testing.T) {
	cases := []struct {
		e    Error
		want string
	}{
		{Error{Code: CodeUnknownType}, `{"type":"error","code":"unknown_type"}`},
		{Error{Code: CodeInvalidMessage, Message: "bad", Path: "/payload/text", Ref: []byte(`"q2"`)},
			`{"type":"error","code":"invalid_message","message":"bad","path":"/payload/text","ref":"q2"}`},
		{Error{Code: CodeRateLimited, Message: "rate limit exceeded", Ref: []byte(`7`), RetryAfter: 1500*time.Microsecond + 1},
			`{"type":"error","code":"rate_limited","message":"rate limit exceeded","ref":7,"retry_after_ms":2}`},
		{Error{Code: CodeHookRefused, Message: "a<b>&\"c\"\\\n\x01\xff\u2028"},
			`{"type":"error","code":"hook_refused","message":"a\u003cb\u003e\u0026\"c\"\\\n\u0001\ufffd\u2028"}`},
	}
	for _, c := range cases {
		got := string(c.e.Encode())
		if got != c.want {
			t.Errorf("Encode:\n got %s\nwant %s", got, c.want)
		}
		if !json.Valid([]byte(got)) {
			t.Errorf("Encode: invalid JSON %s", got)
		}
	}
}

// TestEncodeStringMatchesEncodingJSON: the reply's strings are the bytes
// encoding/json would write (room replies were json.Marshal before).
func TestEncodeStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", "<script>&", "\u2028\u2029", "tab\there", "\x00\x1f\x7f", "é€😀", "bad\xc3(", `q"\`} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

// TestClientTypesHaveBuiltinSchemas: every client type has a built-in schema and
// every built-in schema is a client type.
func TestClientTypesHaveBuiltinSchemas(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "schema", "builtin", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no built-in schemas found: %v", err)
	}
	var got []string
	for _, f := range files {
		if n := strings.TrimSuffix(filepath.Base(f), ".json"); n != "defs" {
			got = append(got, n)
		}
	}
	want := slices.Sorted(slices.Values(ClientTypes))
	if !slices.Equal(got, want) {
		t.Errorf("built-in schemas %v, ClientTypes %v", got, want)
	}
}

// TestDocsListErrorCodes: every error code a client can receive is in
// docs/protocol.md's "Errors" table.
func TestDocsListErrorCodes(t *testing.T) {
	sec := docSection(t, "Errors")
	src, err := os.ReadFile("error.go")
	if err != nil {
		t.Fatal(err)
	}
	codes := regexp.MustCompile(`(?m)^\s+Code\w+\s+= "([a-z_]+)"`).FindAllStringSubmatch(string(src), -1)
	if len(codes) < 20 {
		t.Fatalf("found only %d error codes in error.go", len(codes))
	}
	for _, m := range codes {
		code := m[1]
		if code == CodeIntegrityPrefix {
			code += "unsigned"
		}
		if !strings.Contains(sec, "`"+code+"`") {
			t.Errorf("error code %q is not in docs/protocol.md's Errors table", code)
		}
	}
}

func TestIsToken(t *testing.T) {
	for s, want := range map[string]bool{
		"chat.v1": true, "eyJhbGciOi.eyJzdWIiOi.c2ln": true, "a!#$%&'*+-.^_`|~z": true,
		"": false, "a b": false, "a,b": false, "a\r\nX-Evil: 1": false, `"quoted"`: false, "é": false,
	} {
		if got := IsToken(s, 64); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", s, got, want)
		}
	}
	if IsToken("abcd", 3) {
		t.Error("IsToken ignores max")
	}
}

package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/observe/redact"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/logbuf"
)

const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func TestSchemaAndFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	l, err := New(Options{Path: path, Now: func() time.Time { return now }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Event{Event: HandshakeRejected, ConnID: "c1", IP: "203.0.113.9", User: "bob",
		Route: "/chat", Reason: "origin", Status: 403, Detail: map[string]any{"origin": "https://evil.example"}})
	l.Log(Event{Event: ConnectionClosed, ConnID: "c2", Code: 1008})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
	lines := readLines(t, path)
	if len(lines) != 2 {
		t.Fatalf("got %d lines", len(lines))
	}
	want := map[string]any{"ts": "2026-01-02T03:04:05.000006Z", "event": "handshake_rejected", "conn_id": "c1",
		"ip": "203.0.113.9", "user": "bob", "route": "/chat", "reason": "origin", "status": 403.0,
		"detail": map[string]any{"origin": "https://evil.example"}}
	if fmt.Sprint(lines[0]) != fmt.Sprint(want) {
		t.Errorf("line 0 = %v\nwant     %v", lines[0], want)
	}
	if _, ok := lines[1]["status"]; ok {
		t.Errorf("zero fields must be omitted: %v", lines[1])
	}
	if lines[1]["code"] != 1008.0 {
		t.Errorf("code = %v", lines[1]["code"])
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := New(Options{Path: path, MaxBytes: 1000, MaxFiles: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		l.Log(Event{Event: Violation, ConnID: fmt.Sprintf("conn-%04d", i), Reason: "schema"})
		if i%10 == 0 {
			time.Sleep(time.Millisecond) // let the writer interleave with rotation
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Written != n || s.Dropped != 0 || s.Errors != 0 {
		t.Fatalf("stats = %+v", s)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[audit.log audit.log.1 audit.log.2 audit.log.3]" {
		t.Fatalf("files = %v", names)
	}
	// Every file is within bounds, and the kept lines are the newest ones,
	// in order, across the files.
	var all []map[string]any
	for _, name := range []string{"audit.log.3", "audit.log.2", "audit.log.1", "audit.log"} {
		st, _ := os.Stat(filepath.Join(dir, name))
		if st.Size() > 1000 {
			t.Errorf("%s is %d bytes", name, st.Size())
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", name, st.Mode().Perm())
		}
		all = append(all, readLines(t, filepath.Join(dir, name))...)
	}
	if len(all) == 0 || all[len(all)-1]["conn_id"] != fmt.Sprintf("conn-%04d", n-1) {
		t.Fatalf("newest line missing")
	}
	first := 0
	fmt.Sscanf(all[0]["conn_id"].(string), "conn-%d", &first)
	for i, m := range all {
		if m["conn_id"] != fmt.Sprintf("conn-%04d", first+i) {
			t.Fatalf("line %d = %v, want conn-%04d", i, m["conn_id"], first+i)
		}
	}
}

func TestReopenAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for range 2 {
		l, err := New(Options{Path: path}, nil)
		if err != nil {
			t.Fatal(err)
		}
		l.Log(Event{Event: ConfigReloaded})
		l.Close()
	}
	if got := len(readLines(t, path)); got != 2 {
		t.Fatalf("got %d lines, want 2 (append, not truncate)", got)
	}
}

func TestRedaction(t *testing.T) {
	r := redact.New(redact.Options{})
	ticket, admin := "tkt-0123456789abcdef", "admin-token-5f4dcc3b5aa7"
	r.Add(ticket)
	r.Add(admin)
	var buf bytes.Buffer
	l, err := New(Options{Output: &buf, MessageSampleRate: 1}, r)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Event{Event: HandshakeRejected, Route: "/ws?ticket=" + ticket, Reason: "bad ticket " + ticket,
		User: jwt, Detail: map[string]any{
			"authorization": "Bearer whatever-unregistered",
			"cookie":        "sid=unregistered-cookie",
			"nested":        map[string]any{"api_key": "unregistered-key", "note": "admin " + admin},
			"list":          []string{ticket, "fine"},
			"url":           "https://x/cb?code=unregistered-code",
		}})
	l.Log(Event{Event: AdminAction, Detail: map[string]any{"headers": map[string][]string{"X-Admin-Token": {admin}}}})
	l.LogMessage("c1", "u", "chat", []byte(`{"text":"hi `+ticket+`","password":"hunter2-unregistered","n":12345678901}`))
	l.LogMessage("c1", "u", "raw", []byte("not json but "+jwt))
	l.Close()
	out := buf.String()
	for _, s := range []string{ticket, admin, jwt, "whatever-unregistered", "unregistered-cookie",
		"unregistered-key", "unregistered-code", "hunter2-unregistered", "ticket="} {
		if strings.Contains(out, s) {
			t.Errorf("audit output leaks %q:\n%s", s, out)
		}
	}
	for _, s := range []string{`"route":"/ws?REDACTED"`, `"fine"`, `12345678901`} {
		if !strings.Contains(out, s) {
			t.Errorf("audit output lacks %q:\n%s", s, out)
		}
	}
}

func TestConcurrentLogAndDrops(t *testing.T) {
	var buf logbuf.Buffer
	l, err := New(Options{Output: &buf, QueueSize: 16}, nil)
	if err != nil {
		t.Fatal(err)
	}
	const goroutines, per = 8, 500
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range per {
				l.Log(Event{Event: Strike, ConnID: fmt.Sprintf("g%d-%d", g, i)})
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	s := l.Stats()
	if s.Written+s.Dropped != goroutines*per {
		t.Fatalf("written %d + dropped %d != %d", s.Written, s.Dropped, goroutines*per)
	}
	lines := strings.Count(buf.String(), "\n")
	if uint64(lines) != s.Written {
		t.Fatalf("%d lines on disk, Written=%d", lines, s.Written)
	}
	l.Log(Event{Event: Strike}) // after Close: dropped, no panic
	if l.Stats().Dropped != s.Dropped+1 {
		t.Fatal("Log after Close not counted as dropped")
	}
}

func TestCloseFlushes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := New(Options{Path: path, QueueSize: 10000}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		l.Log(Event{Event: Kick, ConnID: fmt.Sprint(i)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := len(readLines(t, path)); got != 5000 {
		t.Fatalf("%d lines after Close, want 5000", got)
	}
}

func TestSamplingAndTruncation(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Options{Output: &buf, MessageSampleRate: 0.25, MessageMaxBytes: 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	l.sample = func() float64 { i++; return float64(i%4) / 4 } // 0, .25, .5, .75, ...: one in four < .25
	for range 100 {
		l.LogMessage("c", "u", "t", []byte("ééééééééééééé")) // 2-byte runes
	}
	l.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 25 {
		t.Fatalf("sampled %d of 100 at rate 0.25", len(lines))
	}
	var m struct {
		Event  string
		Detail struct {
			Data      string
			Size      int
			Truncated bool
		}
	}
	if err := json.Unmarshal([]byte(lines[0]), &m); err != nil {
		t.Fatal(err)
	}
	if m.Event != Message || m.Detail.Data != "ééééé" || m.Detail.Size != 26 || !m.Detail.Truncated {
		t.Fatalf("message line = %+v", m)
	}

	// Off by default.
	var off bytes.Buffer
	l2, _ := New(Options{Output: &off}, nil)
	l2.LogMessage("c", "u", "t", []byte("x"))
	l2.Close()
	if off.Len() != 0 {
		t.Fatal("message logging must be off by default")
	}
}

func TestDisabledAndNil(t *testing.T) {
	l, err := New(Options{}, nil)
	if err != nil || l.Enabled() {
		t.Fatalf("disabled logger: %v %v", l.Enabled(), err)
	}
	l.Log(Event{Event: Ban})
	l.LogMessage("c", "u", "t", nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var nilL *Logger
	nilL.Log(Event{})
	_ = nilL.Close()
	if _, err := New(Options{MessageSampleRate: 2}, nil); err == nil {
		t.Fatal("sample rate 2 accepted")
	}
	if _, err := New(Options{Path: filepath.Join(t.TempDir(), "missing", "a.log")}, nil); err == nil {
		t.Fatal("unopenable path accepted")
	}
}

func TestLogSealedMessage(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Options{Output: &buf, MessageSampleRate: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !l.SampleMessage() {
		t.Fatal("sample rate 1 drew no sample")
	}
	l.LogSealedMessage("c1", "u", "publish", "trades:x", "k2", 96)
	l.Close()
	out := buf.String()
	for _, s := range []string{`"sealed":true`, `"sealed_by":"k2"`, `"channel":"trades:x"`, `"size":96`} {
		if !strings.Contains(out, s) {
			t.Errorf("sealed message record lacks %s: %s", s, out)
		}
	}
	if strings.Contains(out, `"data"`) {
		t.Errorf("sealed message record has a body: %s", out)
	}
	off, _ := New(Options{Output: &bytes.Buffer{}}, nil)
	defer off.Close()
	if off.SampleMessage() {
		t.Error("sample rate 0 drew a sample")
	}
}

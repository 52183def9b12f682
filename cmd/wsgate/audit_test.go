package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/observe/audit"
)

func keygen(t *testing.T, path string) {
	t.Helper()
	out, code := runCode(t, "audit", "keygen", path)
	if code != 0 || !regexp.MustCompile(`key id [0-9a-f]{16}`).MatchString(out) {
		t.Fatalf("keygen: %d %s", code, out)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode: %v %v", st, err)
	}
	if _, code := runCode(t, "audit", "keygen", path); code == 0 {
		t.Fatal("keygen overwrote an existing key")
	}
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func editLines(t *testing.T, path string, fn func(lines []string) []string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(b), "\n")
	lines = fn(lines[:len(lines)-1]) // the last element is "" after the final newline
	if err := os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}
}

// `wsgate audit verify` passes an untouched rotated, signed log (given as a
// directory, a glob or files in any order) and reports an edited, a deleted
// and a reordered record by file:line with exit status 1.
func TestAuditVerifyBinary(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "checkpoint.pem")
	keygen(t, keyFile)
	key, err := audit.LoadSigningKey(keyFile, "")
	if err != nil {
		t.Fatal(err)
	}
	logs := filepath.Join(dir, "logs")
	if err := os.Mkdir(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(audit.Options{Path: filepath.Join(logs, "audit.log"), MaxBytes: 4000, MaxFiles: 50, QueueSize: 1000,
		Chain: true, CheckpointKey: key, CheckpointEvery: 10, CheckpointInterval: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		l.Log(audit.Event{Event: audit.HandshakeRejected, IP: "203.0.113.9", User: "alice", Reason: "origin", Status: 403, ConnID: fmt.Sprint(i)})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(logs, "audit.log.2")
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("log did not rotate twice: %v", err)
	}
	pub := keyFile + ".pub"

	ents, err := os.ReadDir(logs)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string // lexical order (audit.log, audit.log.1, audit.log.10, …): not the chain's
	for _, e := range ents {
		listed = append(listed, filepath.Join(logs, e.Name()))
	}
	for _, args := range [][]string{{logs}, {filepath.Join(logs, "audit.log*")}, listed} {
		out, code := runCode(t, append([]string{"audit", "verify", "--pubkey", pub, "--from-genesis", "--max-unsigned", "0"}, args...)...)
		if code != 0 || !strings.HasPrefix(out, "OK ") || !strings.Contains(out, "signatures verified") {
			t.Fatalf("untouched log (%v): status %d\n%s", args, code, out)
		}
	}

	// Each tampering, on a copy of the set: the first broken record, by
	// file and line, and exit status 1.
	eventLine := func(lines []string, from int) int {
		for i := from; i < len(lines); i++ {
			if strings.Contains(lines[i], `"event":"handshake_rejected"`) {
				return i
			}
		}
		t.Fatal("no event line")
		return -1
	}
	for _, tc := range []struct {
		name string
		do   func(lines []string) ([]string, int) // edited lines, 1-based line reported
		want string
	}{
		{"edited", func(ls []string) ([]string, int) {
			i := eventLine(ls, 3)
			ls[i] = strings.Replace(ls[i], `"status":403`, `"status":200`, 1)
			return ls, i + 2 // the next record no longer links to it
		}, "chain broken"},
		{"deleted", func(ls []string) ([]string, int) {
			i := eventLine(ls, 3)
			return append(ls[:i:i], ls[i+1:]...), i + 1
		}, "missing"},
		{"reordered", func(ls []string) ([]string, int) {
			i := eventLine(ls, 3)
			ls[i], ls[i+1] = ls[i+1], ls[i]
			return ls, i + 1
		}, "out of order"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp := copyDir(t, logs)
			var at int
			editLines(t, filepath.Join(cp, "audit.log.2"), func(ls []string) []string {
				ls, at = tc.do(ls)
				return ls
			})
			out, code := runCode(t, "audit", "verify", "--pubkey", pub, cp)
			want := fmt.Sprintf("FAIL %s:%d: ", filepath.Join(cp, "audit.log.2"), at)
			if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, tc.want) {
				t.Fatalf("status %d, want 1 and %q…%q in:\n%s", code, want, tc.want, out)
			}
		})
	}

	// Another key's public half: the checkpoints are not its.
	keygen(t, filepath.Join(dir, "other.pem"))
	if out, code := runCode(t, "audit", "verify", "--pubkey", filepath.Join(dir, "other.pem.pub"), logs); code != 1 || !strings.Contains(out, "key id") {
		t.Fatalf("other key: %d %s", code, out)
	}
	// Unreadable input is status 2, not a verdict.
	if out, code := runCode(t, "audit", "verify", filepath.Join(dir, "missing.log")); code != 2 {
		t.Fatalf("missing file: %d %s", code, out)
	}
}

// The server writes a chained, signed log from its configuration, a restart
// continues the chain in the same file, and each checkpoint — the one
// written on shutdown included — is shipped to syslog.
func TestServeAuditChainAcrossRestart(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	shipped := make(chan string, 1000)
	go func() {
		b := make([]byte, 4096)
		for {
			n, _, err := pc.ReadFrom(b)
			if err != nil {
				return // the listener was closed at the end of the test
			}
			select {
			case shipped <- string(b[:n]):
			default:
			}
		}
	}()
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "checkpoint.pem")
	keygen(t, keyFile)
	logPath := filepath.Join(dir, "audit.log")
	cfg := filepath.Join(dir, "wsgate.yaml")
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
insecure_plaintext: true
auth:
  keys:
    - {id: k, algorithms: [HS256], secret: %q}
admin:
  listen: ""
log:
  level: info
  format: json
audit:
  path: %q
  chain: true
  checkpoint_key_file: %q
  checkpoint_every: 2
  ship_syslog: "udp://%s"
`, strings.Repeat("s", 32), logPath, keyFile, pc.LocalAddr())
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	total := 0
	for run, n := range []int{3, 2} {
		total += n
		serveAndReject(t, cfg, logPath, n, total)
		out, code := runCode(t, "audit", "verify", "--pubkey", keyFile+".pub", "--from-genesis", logPath)
		if code != 0 || !strings.Contains(out, "signatures verified") || strings.Contains(out, "not yet covered") {
			t.Fatalf("after run %d: status %d\n%s", run+1, code, out)
		}
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if c := strings.Count(string(b), `"event":"chain_anchor"`); c != 1 {
		t.Fatalf("%d anchors in one file after a restart, want 1:\n%s", c, b)
	}
	// The last line is the shutdown checkpoint; syslog got its hash.
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	m := regexp.MustCompile(`"event":"checkpoint","detail":\{"seq":(\d+),"hash":"([0-9a-f]{64})"`).FindStringSubmatch(lines[len(lines)-1])
	if m == nil {
		t.Fatalf("last line is not a checkpoint: %s", lines[len(lines)-1])
	}
	want := "checkpoint - seq=" + m[1] + " hash=" + m[2]
	deadline := time.After(10 * time.Second)
	for {
		select {
		case msg := <-shipped:
			if strings.Contains(msg, want) {
				return
			}
		case <-deadline:
			t.Fatalf("syslog did not receive %q within 10s", want)
		}
	}
}

// serveAndReject starts the server, makes n refused handshakes, waits until
// the log holds want refusals, and stops the server with SIGTERM.
func serveAndReject(t *testing.T, cfg, logPath string, n, want int) {
	t.Helper()
	p := startProc(t, []string{"WSGATE_ADMIN__LISTEN="}, "serve", "--config", cfg)
	addr := p.wait(t, regexp.MustCompile(`"msg":"listening".*?"addr":"([^"]+)"`), 45*time.Second)[1]
	for range n {
		if _, _, err := dial(t, "ws://"+addr+"/ws", "", nil); err == nil {
			t.Fatal("handshake without a token accepted")
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(logPath)
		if strings.Count(string(b), `"event":"handshake_rejected"`) >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit log did not reach %d refused handshakes within 15s:\n%s", want, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.stop(t); err != nil {
		t.Fatalf("server exit: %v", err)
	}
}

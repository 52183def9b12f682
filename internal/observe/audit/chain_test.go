package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/tools/wsgatetest/logbuf"
	"github.com/wsgate/wsgate/internal/tools/wsgatetest/wait"
)

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// writeChained logs n events into dir/audit.log with the chain on and
// returns the rotated set, oldest first.
func writeChained(t *testing.T, dir string, o Options, n int) []string {
	t.Helper()
	o.Path = filepath.Join(dir, "audit.log")
	o.Chain = true
	if o.QueueSize == 0 {
		o.QueueSize = n + 16
	}
	l, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		l.Log(Event{Event: Violation, ConnID: fmt.Sprintf("conn-%04d", i), User: "alice", Reason: "schema"})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Written != uint64(n) || s.Dropped != 0 || s.Errors != 0 {
		t.Fatalf("stats = %+v, want %d written", s, n)
	}
	files, err := OrderFiles([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func mustVerify(t *testing.T, files []string, o VerifyOptions) *Report {
	t.Helper()
	rep, err := Verify(files, o)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem != nil {
		t.Fatalf("untouched log reported broken: %v", rep.Problem)
	}
	return rep
}

func fileLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(b), "\n")[:strings.Count(string(b), "\n")]
}

// The documented scheme, recomputed independently: seq and prev are the
// last two members, prev is the SHA-256 of the previous line's bytes
// without its newline, the first record is a genesis anchor.
func TestChainScheme(t *testing.T) {
	dir := t.TempDir()
	files := writeChained(t, dir, Options{}, 3)
	lines := fileLines(t, files[0])
	if len(lines) != 4 {
		t.Fatalf("%d lines, want anchor + 3", len(lines))
	}
	if !strings.HasPrefix(lines[0], `{"ts":"`) || !strings.Contains(lines[0], `"event":"chain_anchor","detail":{"reason":"genesis"},"seq":1,"prev":"`+strings.Repeat("0", 64)+`"}`) {
		t.Fatalf("anchor = %s", lines[0])
	}
	for i := 1; i < len(lines); i++ {
		sum := sha256.Sum256([]byte(strings.TrimSuffix(lines[i-1], "\n")))
		want := fmt.Sprintf(`,"seq":%d,"prev":"%s"}`+"\n", i+1, hex.EncodeToString(sum[:]))
		if !strings.HasSuffix(lines[i], want) {
			t.Fatalf("line %d = %s\nwant suffix %s", i+1, lines[i], want)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &m); err != nil || m["user"] != "alice" {
			t.Fatalf("line %d not the event: %v %v", i+1, m, err)
		}
	}
	rep := mustVerify(t, files, VerifyOptions{FromGenesis: true, LimitUnsigned: true, MaxUnsigned: 4})
	if r, _ := Verify(files, VerifyOptions{LimitUnsigned: true, MaxUnsigned: 3}); r.Problem == nil || r.Problem.Line != 4 || !strings.Contains(r.Problem.Msg, "4 records after the last signed checkpoint") {
		t.Fatalf("unsigned chain passed a limit of 3: %+v", r.Problem)
	}
	if rep.Records != 4 || rep.FirstSeq != 1 || rep.LastSeq != 4 || rep.UnsignedTail != 4 || rep.SignaturesChecked() {
		t.Fatalf("report = %+v", rep)
	}
}

// Rotation keeps the chain: each file starts with an anchor naming the file
// it continues, ends with a signed checkpoint, and stays within max_bytes.
func TestChainRotationAndCheckpoints(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	const maxBytes = 4000
	files := writeChained(t, dir, Options{MaxBytes: maxBytes, MaxFiles: 50, CheckpointKey: key, CheckpointEvery: 7, CheckpointInterval: -1}, 300)
	if len(files) < 5 {
		t.Fatalf("only %d files: %v", len(files), files)
	}
	for i, f := range files {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > maxBytes {
			t.Errorf("%s is %d bytes > max_bytes", f, st.Size())
		}
		lines := fileLines(t, f)
		rec, err := ParseRecord([]byte(strings.TrimSuffix(lines[0], "\n")))
		if err != nil || rec.Event != ChainAnchor {
			t.Fatalf("%s starts with %s (%v)", f, lines[0], err)
		}
		if i > 0 && !strings.Contains(lines[0], `"reason":"rotate","prev_file":"audit.log.1"`) {
			t.Errorf("%s anchor = %s", f, lines[0])
		}
		last, _ := ParseRecord([]byte(strings.TrimSuffix(lines[len(lines)-1], "\n")))
		if last.Event != Checkpoint {
			t.Errorf("%s does not end with a checkpoint: %s", f, lines[len(lines)-1])
		}
	}
	rep := mustVerify(t, files, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(key)}, FromGenesis: true, LimitUnsigned: true})
	if rep.SignaturesVerified < 300/7 || rep.UnsignedTail != 0 || rep.Files != len(files) {
		t.Fatalf("report = %+v", rep)
	}
	// The wrong key, or the right key id without the key, are told apart.
	other := testKey(t)
	if rep, _ := Verify(files, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(other)}}); rep.Problem == nil || !strings.Contains(rep.Problem.Msg, "signed by key id") {
		t.Fatalf("wrong key: %+v", rep.Problem)
	}
	if rep, _ := Verify(files, VerifyOptions{KeyID: KeyID(pub(other))}); rep.Problem == nil || !strings.Contains(rep.Problem.Msg, "key id") {
		t.Fatalf("wrong key id: %+v", rep.Problem)
	}
	mustVerify(t, files, VerifyOptions{KeyID: KeyID(pub(key))})
	// Verifying from the middle of the set passes but says where it starts,
	// unless the genesis is required.
	rep = mustVerify(t, files[2:], VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(key)}})
	if rep.ContinuesFrom == "" || rep.FirstSeq == 1 {
		t.Fatalf("partial set: %+v", rep)
	}
	if rep, _ := Verify(files[2:], VerifyOptions{FromGenesis: true}); rep.Problem == nil {
		t.Fatal("partial set passed with FromGenesis")
	}
}

// A restart continues the chain in the same file; a file that does not end
// in a chained record is rotated away and a new chain starts; an empty
// current file continues the rotated one.
func TestChainRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	key := testKey(t)
	for range 3 {
		writeChained(t, dir, Options{CheckpointKey: key}, 5)
	}
	lines := fileLines(t, path)
	// anchor, then 3 × (5 events + the checkpoint on Close), one anchor only.
	if len(lines) != 1+3*6 || strings.Count(strings.Join(lines, ""), ChainAnchor) != 1 {
		t.Fatalf("%d lines:\n%s", len(lines), strings.Join(lines, ""))
	}
	mustVerify(t, []string{path}, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(key)}, FromGenesis: true})

	// Empty current file (a crash right after rotation): continue .1.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	files := writeChained(t, dir, Options{CheckpointKey: key}, 2)
	if first := fileLines(t, path)[0]; !strings.Contains(first, `"reason":"resume","prev_file":"audit.log.1","prev_seq":19`) {
		t.Fatalf("resume anchor = %s", first)
	}
	mustVerify(t, files, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(key)}, FromGenesis: true})

	// A torn last line cannot be continued: the file is rotated away and
	// a new chain starts; verify of the whole set names the damage.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"ts":"x","event":"kick"`); err != nil {
		t.Fatal(err)
	}
	f.Close()
	files = writeChained(t, dir, Options{MaxFiles: 10}, 2)
	if len(files) != 3 {
		t.Fatalf("files = %v", files)
	}
	if first := fileLines(t, path)[0]; !strings.Contains(first, `"reason":"genesis","prev_file":"audit.log.1","note":`) {
		t.Fatalf("new chain anchor = %s", first)
	}
	mustVerify(t, files[2:], VerifyOptions{FromGenesis: true})
	rep, _ := Verify(files, VerifyOptions{})
	if rep.Problem == nil || rep.Problem.File != files[1] || !strings.Contains(rep.Problem.Msg, "truncated") {
		t.Fatalf("torn line: %+v", rep.Problem)
	}
}

// Enabling the chain on an existing plain log rotates the plain file away.
func TestChainOverPlainLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := New(Options{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Event{Event: Kick})
	l.Close()
	files := writeChained(t, dir, Options{}, 1)
	if len(files) != 2 || len(fileLines(t, files[0])) != 1 {
		t.Fatalf("files = %v", files)
	}
	mustVerify(t, files[1:], VerifyOptions{FromGenesis: true})
	if rep, _ := Verify(files, VerifyOptions{}); rep.Problem == nil || rep.Problem.Line != 1 || rep.Problem.File != files[0] {
		t.Fatalf("plain file accepted: %+v", rep.Problem)
	}
}

// Each kind of tampering is reported at the first broken record, by file
// and line.
func TestVerifyDetectsTampering(t *testing.T) {
	key := testKey(t)
	src := t.TempDir()
	orig := writeChained(t, src, Options{MaxBytes: 4000, MaxFiles: 50, CheckpointKey: key, CheckpointEvery: 10, CheckpointInterval: -1}, 120)
	if len(orig) < 3 {
		t.Fatalf("want >= 3 files, got %v", orig)
	}
	type edit func(t *testing.T, files []string) (wantFile string, wantLine int, wantMsg string)
	replaceLines := func(t *testing.T, f string, fn func([]string) []string) {
		t.Helper()
		if err := os.WriteFile(f, []byte(strings.Join(fn(fileLines(t, f)), "")), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cases := map[string]edit{
		"edited": func(t *testing.T, fs []string) (string, int, string) {
			at := 0
			replaceLines(t, fs[1], func(l []string) []string {
				for at = 4; !strings.Contains(l[at], `"user":"alice"`); at++ {
				}
				l[at] = strings.Replace(l[at], `"user":"alice"`, `"user":"mallory"`, 1)
				return l
			})
			return fs[1], at + 2, "chain broken"
		},
		"edited last record of a file": func(t *testing.T, fs []string) (string, int, string) {
			replaceLines(t, fs[0], func(l []string) []string {
				i := len(l) - 1
				l[i] = strings.Replace(l[i], `"event":"checkpoint"`, `"event":"checkpoinT"`, 1)
				return l
			})
			return fs[1], 1, "chain broken"
		},
		"deleted": func(t *testing.T, fs []string) (string, int, string) {
			replaceLines(t, fs[1], func(l []string) []string { return append(l[:3], l[4:]...) })
			return fs[1], 4, "missing"
		},
		"reordered": func(t *testing.T, fs []string) (string, int, string) {
			replaceLines(t, fs[1], func(l []string) []string { l[3], l[4] = l[4], l[3]; return l })
			return fs[1], 4, "missing or out of order"
		},
		"truncated": func(t *testing.T, fs []string) (string, int, string) {
			b, _ := os.ReadFile(fs[0])
			os.WriteFile(fs[0], b[:len(b)-10], 0o600)
			return fs[0], len(fileLines(t, fs[0])) + 1, "truncated"
		},
		"first record deleted": func(t *testing.T, fs []string) (string, int, string) {
			replaceLines(t, fs[1], func(l []string) []string { return l[1:] })
			return fs[1], 1, "does not start with a chain_anchor"
		},
		"file deleted": func(t *testing.T, fs []string) (string, int, string) {
			os.Remove(fs[1])
			return fs[2], 1, "missing"
		},
		"files swapped": func(t *testing.T, fs []string) (string, int, string) {
			a, _ := os.ReadFile(fs[0])
			b, _ := os.ReadFile(fs[1])
			os.WriteFile(fs[0], b, 0o600)
			os.WriteFile(fs[1], a, 0o600)
			return fs[0], 1, "this file continues"
		},
		"forged signature": func(t *testing.T, fs []string) (string, int, string) {
			var at int
			replaceLines(t, fs[1], func(l []string) []string {
				for i, s := range l {
					if strings.Contains(s, `"event":"checkpoint"`) {
						var r struct{ Detail checkpointDetail }
						json.Unmarshal([]byte(s), &r)
						sig := ed25519.Sign(testKey(t), CheckpointMessage(r.Detail.Seq, r.Detail.Hash, "x"))
						l[i] = strings.Replace(s, r.Detail.Sig, base64.StdEncoding.EncodeToString(sig), 1)
						at = i + 1
						break
					}
				}
				return l
			})
			return fs[1], at, "bad checkpoint signature"
		},
	}
	for name, e := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			var files []string
			for _, f := range orig {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				dst := filepath.Join(dir, filepath.Base(f))
				if err := os.WriteFile(dst, b, 0o600); err != nil {
					t.Fatal(err)
				}
				files = append(files, dst)
			}
			wantFile, wantLine, wantMsg := e(t, files)
			if name == "files swapped" {
				// Verified as given: the swapped content is out of order.
				rep, err := Verify(files, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(key)}, FromGenesis: true})
				if err != nil || rep.Problem == nil || !strings.Contains(rep.Problem.Msg, wantMsg) || rep.Problem.File != wantFile {
					t.Fatalf("problem = %+v, %v", rep.Problem, err)
				}
				return
			}
			var kept []string
			for _, f := range files {
				if _, err := os.Stat(f); err == nil {
					kept = append(kept, f)
				}
			}
			rep, err := Verify(kept, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(key)}})
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Problem
			if p == nil {
				t.Fatal("tampering not detected")
			}
			if p.File != wantFile || p.Line != wantLine || !strings.Contains(p.Msg, wantMsg) {
				t.Fatalf("problem = %v\nwant %s:%d: …%s…", p, wantFile, wantLine, wantMsg)
			}
		})
	}
}

// Checkpoints are also written on a timer when records were written, and
// never for an idle log.
func TestCheckpointInterval(t *testing.T) {
	key := testKey(t)
	var buf logbuf.Buffer
	l, err := New(Options{Output: &buf, Chain: true, CheckpointKey: key, CheckpointInterval: 5 * time.Millisecond, CheckpointEvery: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Event{Event: Kick})
	// Wait for a timed checkpoint covering the record (seq 2, after the
	// anchor); an earlier one may cover the anchor alone.
	wait.For(t, "a timed checkpoint over the record", 10*time.Second, func() bool {
		return strings.Contains(buf.String(), `"event":"checkpoint","detail":{"seq":2,`)
	})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// An idle chain is never re-signed: no checkpoint follows a checkpoint.
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	for i := 1; i < len(lines); i++ {
		if strings.Contains(lines[i], `"event":"checkpoint"`) && strings.Contains(lines[i-1], `"event":"checkpoint"`) {
			t.Fatalf("checkpoint after checkpoint at line %d:\n%s", i+1, buf.String())
		}
	}
}

func TestChainOptions(t *testing.T) {
	key := testKey(t)
	if _, err := New(Options{Output: &bytes.Buffer{}, CheckpointKey: key}, nil); err == nil {
		t.Fatal("key without chain accepted")
	}
	if _, err := New(Options{Output: &bytes.Buffer{}, Chain: true, CheckpointKey: key[:10]}, nil); err == nil {
		t.Fatal("short key accepted")
	}
	// Chain records bypass redaction: key_id and sig must stay readable.
	var buf bytes.Buffer
	l, err := New(Options{Output: &buf, Chain: true, CheckpointKey: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Log(Event{Event: Kick})
	l.Close()
	if !strings.Contains(buf.String(), `"key_id":"`+KeyID(pub(key))+`","sig":"`) {
		t.Fatalf("checkpoint redacted or missing: %s", buf.String())
	}
}

func TestLoadKeys(t *testing.T) {
	dir := t.TempDir()
	key := testKey(t)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pder, err := x509.MarshalPKIXPublicKey(pub(key))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, text := range map[string]string{
		"pem":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"seed":   "base64:" + base64.StdEncoding.EncodeToString(key.Seed()) + "\n",
		"raw64":  base64.RawURLEncoding.EncodeToString(key),
		"inline": "",
	} {
		var got ed25519.PrivateKey
		if name == "inline" {
			got, err = LoadSigningKey("", "base64:"+base64.StdEncoding.EncodeToString(key.Seed()))
		} else {
			got, err = LoadSigningKey(write(name, text), "")
		}
		if err != nil || !got.Equal(key) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, text := range map[string]string{
		"pem": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder})),
		"b64": base64.StdEncoding.EncodeToString(pub(key)),
	} {
		got, err := LoadPublicKey(write("pub-"+name, text))
		if err != nil || !got.Equal(pub(key)) {
			t.Errorf("public %s: %v", name, err)
		}
	}
	if _, err := LoadSigningKey("", "base64:"+base64.StdEncoding.EncodeToString(make([]byte, 16))); err == nil {
		t.Error("16-byte seed accepted")
	}
	bad := append(ed25519.PrivateKey{}, key...)
	bad[40] ^= 1
	if _, err := LoadSigningKey("", base64.StdEncoding.EncodeToString(bad)); err == nil {
		t.Error("inconsistent 64-byte key accepted")
	}
	if _, err := LoadPublicKey(write("short", base64.StdEncoding.EncodeToString(make([]byte, 31)))); err == nil {
		t.Error("31-byte public key accepted")
	}
	if _, err := LoadSigningKey(filepath.Join(dir, "missing"), ""); err == nil {
		t.Error("missing file accepted")
	}
}

func TestOrderFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"audit.log", "audit.log.1", "audit.log.2", "audit.log.10"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	j := func(ns ...string) string {
		for i, n := range ns {
			ns[i] = filepath.Join(dir, n)
		}
		return fmt.Sprint(ns)
	}
	want := j("audit.log.10", "audit.log.2", "audit.log.1", "audit.log")
	for _, args := range [][]string{
		{dir},
		{filepath.Join(dir, "audit.log*")},
		{filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.log.1"), filepath.Join(dir, "audit.log.10"), filepath.Join(dir, "audit.log.2")},
	} {
		got, err := OrderFiles(args)
		if err != nil || fmt.Sprint(got) != want {
			t.Errorf("OrderFiles(%v) = %v, %v; want %v", args, got, err, want)
		}
	}
	// Unrelated names are kept in the order given; in a directory they are an error.
	a, b := filepath.Join(dir, "x.jsonl"), filepath.Join(dir, "a.jsonl")
	os.WriteFile(a, nil, 0o600)
	os.WriteFile(b, nil, 0o600)
	if got, err := OrderFiles([]string{a, b}); err != nil || fmt.Sprint(got) != fmt.Sprint([]string{a, b}) {
		t.Errorf("explicit order changed: %v %v", got, err)
	}
	if _, err := OrderFiles([]string{dir}); err == nil {
		t.Error("mixed directory accepted")
	}
	if _, err := OrderFiles([]string{filepath.Join(dir, "nope*")}); err == nil {
		t.Error("empty glob accepted")
	}
	if _, err := OrderFiles([]string{filepath.Join(dir, "audit.log"), filepath.Join(dir, "audit.log")}); err == nil {
		t.Error("file given twice accepted")
	}
}

// A key replaced at a restart: the file holds checkpoints of both keys;
// verify needs both public keys and picks each by key id.
func TestVerifyKeyRotation(t *testing.T) {
	dir := t.TempDir()
	old, cur := testKey(t), testKey(t)
	writeChained(t, dir, Options{CheckpointKey: old}, 3)
	files := writeChained(t, dir, Options{CheckpointKey: cur}, 3)
	rep := mustVerify(t, files, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(old), pub(cur)}, FromGenesis: true})
	if rep.SignaturesVerified != 2 {
		t.Fatalf("report %+v", rep)
	}
	rep, err := Verify(files, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(cur)}})
	if err != nil || rep.Problem == nil || !strings.Contains(rep.Problem.Msg, "which no public key given has") {
		t.Fatalf("old key's checkpoint accepted without its key: %+v %v", rep.Problem, err)
	}
	if _, err := Verify(files, VerifyOptions{PublicKeys: []ed25519.PublicKey{pub(cur)}, KeyID: KeyID(pub(old))}); err == nil {
		t.Fatal("--key-id naming no given key accepted")
	}
}

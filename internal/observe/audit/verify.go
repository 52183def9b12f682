package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MaxLineBytes is the longest line the verifier reads; a longer one is
// reported as a problem rather than read into memory.
const MaxLineBytes = 16 << 20

// Record is the chain part of one audit line, as ParseRecord reads it.
type Record struct {
	Seq    uint64
	Prev   [sha256.Size]byte
	TS     string
	Event  string
	Detail json.RawMessage
}

// ParseRecord reads one chained line (without its '\n'). The line must be a
// JSON object whose last two members are exactly `"seq":N,"prev":"<64 hex>"`
// (the suffix the logger appends), N >= 1 in canonical decimal.
func ParseRecord(line []byte) (Record, error) {
	var r Record
	const prevKey, seqKey = `,"prev":"`, `"seq":`
	if !bytes.HasSuffix(line, []byte(`"}`)) {
		return r, errors.New(`does not end with the "prev" member`)
	}
	body := line[:len(line)-2]
	if len(body) < 2*sha256.Size+len(prevKey) {
		return r, errors.New("too short for a chained record")
	}
	hexPrev := body[len(body)-2*sha256.Size:]
	body = body[:len(body)-2*sha256.Size]
	if !bytes.HasSuffix(body, []byte(prevKey)) {
		return r, errors.New(`"prev" is not the last member`)
	}
	body = body[:len(body)-len(prevKey)]
	if _, err := hex.Decode(r.Prev[:], hexPrev); err != nil || !isLowerHex(hexPrev) {
		return r, errors.New(`"prev" is not 64 lowercase hex digits`)
	}
	i := bytes.LastIndex(body, []byte(seqKey))
	if i < 1 || (body[i-1] != ',' && body[i-1] != '{') {
		return r, errors.New(`"seq" does not come right before "prev"`)
	}
	digits := body[i+len(seqKey):]
	seq, err := strconv.ParseUint(string(digits), 10, 64)
	if err != nil || seq == 0 || digits[0] == '0' {
		return r, fmt.Errorf(`"seq" %q is not a positive decimal integer`, digits)
	}
	r.Seq = seq
	var v struct {
		TS     string          `json:"ts"`
		Event  string          `json:"event"`
		Detail json.RawMessage `json:"detail"`
		Seq    uint64          `json:"seq"`
		Prev   string          `json:"prev"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return r, fmt.Errorf("not a JSON object: %w", err)
	}
	if v.Seq != seq || v.Prev != string(hexPrev) {
		return r, errors.New(`"seq" or "prev" appears twice`)
	}
	r.TS, r.Event, r.Detail = v.TS, v.Event, v.Detail
	return r, nil
}

func isLowerHex(b []byte) bool {
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// VerifyOptions configures Verify.
type VerifyOptions struct {
	// PublicKeys check every checkpoint's signature, chosen by the
	// checkpoint's key id (several keys: the signing key was replaced over
	// the files' time span). None leaves signatures unchecked (the report
	// says so); then a checkpoint naming an unknown key id is a problem.
	PublicKeys []ed25519.PublicKey
	// KeyID, when set, is the key id every checkpoint must name.
	KeyID string
	// FromGenesis requires the first file to start a new chain (seq 1),
	// i.e. that no older file is missing from the set.
	FromGenesis bool
	// LimitUnsigned makes more than MaxUnsigned records after the last
	// checkpoint (all of them when there is none) a problem: stripped
	// checkpoints or a rebuilt, unsigned chain. 0 suits a set closed by a
	// rotation or shutdown, which ends with a checkpoint.
	LimitUnsigned bool
	MaxUnsigned   uint64
}

// Problem is the first broken or missing record found.
type Problem struct {
	File string
	Line int // 1-based
	Msg  string
}

func (p *Problem) Error() string { return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg) }

// Report is the outcome of Verify.
type Report struct {
	Files, Records         int
	FirstSeq, LastSeq      uint64
	LastHash               string // hex SHA-256 of the last record
	ContinuesFrom          string // prev of the first anchor when the chain starts before the first file
	Checkpoints            int
	SignaturesVerified     int
	LastSignedSeq          uint64 // seq covered by the last checkpoint (0: none)
	LastSignedFile         string
	Problem                *Problem // nil when the files are intact
	SkippedEmpty           []string // empty files (a crash right after rotation)
	UnsignedTail           uint64   // records after the last checkpoint
	signatureCheckDisabled bool
}

// SignaturesChecked reports whether checkpoint signatures were verified.
func (r *Report) SignaturesChecked() bool { return !r.signatureCheckDisabled }

// verifier walks the records of every file in order.
type verifier struct {
	o    VerifyOptions
	rep  Report
	seq  uint64 // last seq seen
	head [sha256.Size]byte
	have bool // head is known (a record has been seen)
	// where the last record was, to name it when the next one does not link
	lastFile string
	lastLine int
	// seq of the last checkpoint record
	lastCheckpoint uint64
	keys           map[string]ed25519.PublicKey // by key id
}

// Verify checks files, oldest first (use OrderFiles for a rotated set). It
// returns an error only when a file cannot be read; a broken chain is
// Report.Problem.
func Verify(files []string, o VerifyOptions) (*Report, error) {
	v, err := newVerifier(o)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if err := v.file(f); err != nil {
			return nil, err
		}
		if v.rep.Problem != nil {
			break
		}
	}
	return v.finish(strings.Join(files, ",")), nil
}

func newVerifier(o VerifyOptions) (*verifier, error) {
	v := &verifier{o: o}
	v.rep.signatureCheckDisabled = len(o.PublicKeys) == 0
	v.keys = make(map[string]ed25519.PublicKey, len(o.PublicKeys))
	for _, k := range o.PublicKeys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("audit: public key of %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		v.keys[KeyID(k)] = k
	}
	if o.KeyID != "" && len(v.keys) > 0 && v.keys[o.KeyID] == nil {
		return nil, fmt.Errorf("audit: key id %s does not name a public key given", o.KeyID)
	}
	return v, nil
}

// finish completes the report after the last file.
func (v *verifier) finish(names string) *Report {
	if v.rep.Problem == nil && v.rep.Records == 0 {
		v.rep.Problem = &Problem{File: names, Msg: "no chained records found"}
	}
	v.rep.LastSeq = v.seq
	if v.have {
		v.rep.LastHash = hex.EncodeToString(v.head[:])
	}
	switch {
	case v.rep.Records == 0:
	case v.lastCheckpoint == 0:
		v.rep.UnsignedTail = v.seq - v.rep.FirstSeq + 1
	default:
		// A checkpoint record protects itself (its ts is signed), so the
		// tail starts after it.
		v.rep.UnsignedTail = v.seq - v.lastCheckpoint
	}
	if v.rep.Problem == nil && v.o.LimitUnsigned && v.rep.UnsignedTail > v.o.MaxUnsigned {
		v.fail(v.lastFile, v.lastLine, fmt.Sprintf("%d records after the last signed checkpoint (seq %d), more than the %d allowed", v.rep.UnsignedTail, v.lastCheckpoint, v.o.MaxUnsigned))
	}
	return &v.rep
}

func (v *verifier) file(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("audit: verify: %w", err)
	}
	defer f.Close()
	return v.scan(name, f)
}

// scan checks the records read from r, named name in problems.
func (v *verifier) scan(name string, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	lineNo := 0
	var line []byte
	for {
		line = line[:0]
		complete := false
		for {
			frag, err := br.ReadSlice('\n')
			line = append(line, frag...)
			if err == nil {
				complete = true
				break
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("audit: verify: read %s: %w", name, err)
			}
			if len(line) > MaxLineBytes {
				v.fail(name, lineNo+1, fmt.Sprintf("line longer than %d bytes", MaxLineBytes))
				return nil
			}
		}
		if len(line) == 0 {
			break
		}
		lineNo++
		if !complete {
			v.fail(name, lineNo, "truncated record: the file ends in the middle of a line")
			return nil
		}
		if !v.record(name, lineNo, line[:len(line)-1]) {
			return nil
		}
	}
	if lineNo == 0 {
		v.rep.SkippedEmpty = append(v.rep.SkippedEmpty, name)
		return nil
	}
	v.rep.Files++
	return nil
}

func (v *verifier) fail(file string, line int, msg string) {
	v.rep.Problem = &Problem{File: file, Line: line, Msg: msg}
}

// record checks one line; false stops the walk (v.rep.Problem is set).
func (v *verifier) record(file string, lineNo int, line []byte) bool {
	rec, err := ParseRecord(line)
	if err != nil {
		v.fail(file, lineNo, "not a chained audit record: "+err.Error())
		return false
	}
	prevHex := hex.EncodeToString(rec.Prev[:])
	if lineNo == 1 {
		if rec.Event != ChainAnchor {
			v.fail(file, lineNo, fmt.Sprintf("file does not start with a %s record (seq %d): records missing at the start of the file", ChainAnchor, rec.Seq))
			return false
		}
		var d anchorDetail
		if err := json.Unmarshal(rec.Detail, &d); err != nil {
			v.fail(file, lineNo, "chain anchor detail unreadable: "+err.Error())
			return false
		}
		genesis := rec.Prev == zeroHash
		if genesis != (d.Reason == AnchorGenesis) || (genesis && rec.Seq != 1) {
			v.fail(file, lineNo, fmt.Sprintf("inconsistent chain anchor (reason %q, seq %d, prev %s)", d.Reason, rec.Seq, prevHex))
			return false
		}
		if !genesis && d.PrevSeq != rec.Seq-1 {
			v.fail(file, lineNo, fmt.Sprintf("chain anchor says it continues seq %d but has seq %d", d.PrevSeq, rec.Seq))
			return false
		}
		if !v.have {
			if v.o.FromGenesis && !genesis {
				v.fail(file, lineNo, fmt.Sprintf("the chain does not start here: this file continues seq %d (hash %s) from %q, which was not given", rec.Seq-1, prevHex, d.PrevFile))
				return false
			}
			if !genesis {
				v.rep.ContinuesFrom = prevHex
			}
			v.rep.FirstSeq = rec.Seq
			v.seq, v.head, v.have = rec.Seq-1, rec.Prev, true
		} else if genesis {
			v.fail(file, lineNo, fmt.Sprintf("a new chain starts here (%s) instead of continuing seq %d at %s:%d", noteOr(d.Note, "genesis"), v.seq, v.lastFile, v.lastLine))
			return false
		}
	} else if rec.Event == ChainAnchor {
		v.fail(file, lineNo, "chain anchor in the middle of a file")
		return false
	}
	if rec.Seq != v.seq+1 {
		what := "record(s) missing or out of order"
		if rec.Seq <= v.seq {
			what = "record out of order or repeated"
		}
		v.fail(file, lineNo, fmt.Sprintf("%s: expected seq %d after %s:%d, found seq %d", what, v.seq+1, orStart(v.lastFile), v.lastLine, rec.Seq))
		return false
	}
	if rec.Prev != v.head {
		v.fail(file, lineNo, fmt.Sprintf("chain broken: prev does not match the hash of the record before it (%s:%d, seq %d): that record was altered, or this one's prev was", orStart(v.lastFile), v.lastLine, v.seq))
		return false
	}
	if rec.Event == Checkpoint && !v.checkpoint(file, lineNo, rec, prevHex) {
		return false
	}
	v.seq, v.head = rec.Seq, sha256.Sum256(line)
	v.lastFile, v.lastLine = file, lineNo
	v.rep.Records++
	return true
}

func (v *verifier) checkpoint(file string, lineNo int, rec Record, prevHex string) bool {
	var d checkpointDetail
	if err := json.Unmarshal(rec.Detail, &d); err != nil {
		v.fail(file, lineNo, "checkpoint detail unreadable: "+err.Error())
		return false
	}
	if d.Seq != rec.Seq-1 || d.Hash != prevHex {
		v.fail(file, lineNo, fmt.Sprintf("checkpoint signs seq %d hash %s, but the record before it is seq %d hash %s", d.Seq, d.Hash, rec.Seq-1, prevHex))
		return false
	}
	if v.o.KeyID != "" && d.KeyID != v.o.KeyID {
		v.fail(file, lineNo, fmt.Sprintf("checkpoint signed by key id %q, want %q", d.KeyID, v.o.KeyID))
		return false
	}
	if len(v.keys) > 0 {
		k := v.keys[d.KeyID]
		if k == nil {
			v.fail(file, lineNo, fmt.Sprintf("checkpoint signed by key id %q, which no public key given has", d.KeyID))
			return false
		}
		sig, err := base64.StdEncoding.DecodeString(d.Sig)
		if err != nil || !ed25519.Verify(k, CheckpointMessage(d.Seq, d.Hash, rec.TS), sig) {
			v.fail(file, lineNo, fmt.Sprintf("bad checkpoint signature (seq %d, key id %s)", d.Seq, d.KeyID))
			return false
		}
		v.rep.SignaturesVerified++
	}
	v.rep.Checkpoints++
	v.rep.LastSignedSeq, v.rep.LastSignedFile = d.Seq, file
	v.lastCheckpoint = rec.Seq
	return true
}

func noteOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func orStart(file string) string {
	if file == "" {
		return "(start)"
	}
	return file
}

// OrderFiles expands directories and glob patterns and puts a rotated set in
// chain order. When every resulting name is BASE or BASE.N for one BASE, the
// order is BASE.N … BASE.2, BASE.1, BASE (oldest first, as rotation names
// them); otherwise the files are kept in the order given. A directory stands
// for the regular files in it.
func OrderFiles(args []string) ([]string, error) {
	var files []string
	expanded := false
	for _, a := range args {
		fi, err := os.Stat(a)
		switch {
		case err == nil && fi.IsDir():
			expanded = true
			ents, err := os.ReadDir(a)
			if err != nil {
				return nil, fmt.Errorf("audit: %w", err)
			}
			for _, e := range ents {
				if e.Type().IsRegular() {
					files = append(files, filepath.Join(a, e.Name()))
				}
			}
		case err == nil:
			files = append(files, a)
		case strings.ContainsAny(a, "*?["):
			expanded = true
			m, gerr := filepath.Glob(a)
			if gerr != nil {
				return nil, fmt.Errorf("audit: pattern %q: %w", a, gerr)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("audit: pattern %q matches no file", a)
			}
			files = append(files, m...)
		default:
			return nil, fmt.Errorf("audit: %w", err)
		}
	}
	if len(files) < 2 {
		return files, nil
	}
	type ranked struct {
		name string
		n    int // rotation index; 0 for BASE itself
	}
	var base string
	rs := make([]ranked, 0, len(files))
	for _, f := range files {
		b, n := f, 0
		if i := strings.LastIndexByte(f, '.'); i > 0 {
			if k, err := strconv.Atoi(f[i+1:]); err == nil && k > 0 && f[i+1] != '0' {
				b, n = f[:i], k
			}
		}
		if base == "" {
			base = b
		}
		if b != base {
			if expanded {
				return nil, fmt.Errorf("audit: %s and %s are not one rotated set (BASE, BASE.1, BASE.2 …): name the files in order, oldest first", base, f)
			}
			return files, nil // not one rotated set: keep the given order
		}
		rs = append(rs, ranked{f, n})
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		// Highest index first; BASE (0) last.
		ka, kb := a.n, b.n
		if ka == 0 {
			ka = -1
		}
		if kb == 0 {
			kb = -1
		}
		return kb - ka
	})
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.name
		if i > 0 && rs[i-1].n == r.n {
			return nil, fmt.Errorf("audit: %s given twice", r.name)
		}
	}
	return out, nil
}

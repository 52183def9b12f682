package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/wsgate/wsgate/internal/readfile"
)

// Chain record event names. They are written by the logger itself, never by
// callers; see docs/audit.md ("Tamper evidence").
const (
	// ChainAnchor is the first record of every chained file: it says which
	// chain the file continues (or that a new chain starts, "genesis").
	ChainAnchor = "chain_anchor"
	// Checkpoint carries an Ed25519 signature over the hash of the record
	// before it.
	Checkpoint = "checkpoint"
)

// Anchor reasons (detail.reason of a ChainAnchor record).
const (
	AnchorGenesis = "genesis" // a new chain: prev is all zeros, seq is 1
	AnchorRotate  = "rotate"  // the previous file was rotated away (to prev_file)
	AnchorResume  = "resume"  // a restart found the current file missing or empty and continued from prev_file
)

// Defaults for checkpoints when a key is configured.
const (
	DefaultCheckpointInterval = time.Minute
	DefaultCheckpointEvery    = 10000
)

// checkpointDomain prefixes every signed checkpoint message so a signature
// made by this key for anything else can never pass as a checkpoint.
const checkpointDomain = "wsgate-audit-checkpoint-v1"

// zeroHash is the prev of a genesis anchor.
var zeroHash [sha256.Size]byte

// Sizes used to keep max_bytes a hard bound with the chain on: every line
// grows by its seq/prev suffix, and the final checkpoint of a file must still
// fit before rotation.
const (
	chainSuffixMax    = len(`,"seq":18446744073709551615,"prev":""}`) + 2*sha256.Size
	checkpointLineMax = 512
	maxTailBytes      = 1 << 20 // longest last line read back on restart
	maxKeyFileBytes   = 64 << 10
	keyIDHexLen       = 16
)

// KeyID names an Ed25519 public key in checkpoints: the first 8 bytes of
// SHA-256 over the raw 32-byte key, in lowercase hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:])[:keyIDHexLen]
}

// CheckpointMessage is the exact byte string a checkpoint signs:
//
//	"wsgate-audit-checkpoint-v1\n" + seq + "\n" + hash + "\n" + ts
//
// where seq is the decimal seq of the record signed for, hash is that
// record's SHA-256 in lowercase hex, and ts is the checkpoint's own "ts".
func CheckpointMessage(seq uint64, hash, ts string) []byte {
	b := make([]byte, 0, len(checkpointDomain)+24+len(hash)+len(ts))
	b = append(b, checkpointDomain...)
	b = append(b, '\n')
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, '\n')
	b = append(b, hash...)
	b = append(b, '\n')
	b = append(b, ts...)
	return b
}

// anchorDetail is the detail of a ChainAnchor record.
type anchorDetail struct {
	Reason   string `json:"reason"`
	PrevFile string `json:"prev_file,omitempty"`
	PrevSeq  uint64 `json:"prev_seq,omitempty"`
	Note     string `json:"note,omitempty"`
}

// checkpointDetail is the detail of a Checkpoint record.
type checkpointDetail struct {
	Seq   uint64 `json:"seq"`
	Hash  string `json:"hash"`
	KeyID string `json:"key_id"`
	Sig   string `json:"sig"`
}

// chainRecord is the JSON shape of the records the chain writes itself. They
// bypass the redactor: their fields ("key_id", "sig") would be masked as
// credentials, and they hold nothing secret.
type chainRecord struct {
	TS     string `json:"ts"`
	Event  string `json:"event"`
	Detail any    `json:"detail"`
}

// chain is the hash-chain state. It is owned by the writer goroutine.
type chain struct {
	seq   uint64 // seq of the last record written; 0 before the first
	head  [sha256.Size]byte
	since int // records since the last checkpoint

	key   ed25519.PrivateKey
	keyID string

	buf []byte // reused for each chained line
}

// link appends the seq/prev suffix to one encoded line (`{…}\n`), advances
// the chain and returns the chained line. The result is valid until the next
// call.
func (c *chain) link(b []byte) ([]byte, error) {
	if len(b) < 3 || b[len(b)-1] != '\n' || b[len(b)-2] != '}' {
		return nil, errors.New("audit: chain: line is not a JSON object")
	}
	var hexPrev [2 * sha256.Size]byte
	hex.Encode(hexPrev[:], c.head[:])
	buf := append(c.buf[:0], b[:len(b)-2]...)
	if len(b) > 3 { // not "{}\n": members before ours need a comma
		buf = append(buf, ',')
	}
	buf = append(buf, `"seq":`...)
	buf = strconv.AppendUint(buf, c.seq+1, 10)
	buf = append(buf, `,"prev":"`...)
	buf = append(buf, hexPrev[:]...)
	buf = append(buf, `"}`...)
	c.head = sha256.Sum256(buf)
	c.seq++
	c.since++
	buf = append(buf, '\n')
	c.buf = buf
	return buf, nil
}

// encodeChainRecord encodes an anchor or checkpoint record (without suffix).
func encodeChainRecord(ts time.Time, event string, detail any) ([]byte, error) {
	b, err := json.Marshal(chainRecord{TS: ts.UTC().Format(time.RFC3339Nano), Event: event, Detail: detail})
	if err != nil {
		return nil, fmt.Errorf("audit: encode %s: %w", event, err)
	}
	return append(b, '\n'), nil
}

// checkpointRecord builds the checkpoint for the current head.
func (c *chain) checkpointRecord(now time.Time) ([]byte, CheckpointInfo, error) {
	ts := now.UTC().Format(time.RFC3339Nano)
	hash := hex.EncodeToString(c.head[:])
	sig := ed25519.Sign(c.key, CheckpointMessage(c.seq, hash, ts))
	info := CheckpointInfo{TS: ts, Seq: c.seq, Hash: hash, KeyID: c.keyID, Sig: base64.StdEncoding.EncodeToString(sig)}
	b, err := json.Marshal(chainRecord{TS: ts, Event: Checkpoint, Detail: checkpointDetail{
		Seq: info.Seq, Hash: info.Hash, KeyID: info.KeyID, Sig: info.Sig,
	}})
	if err != nil {
		return nil, info, fmt.Errorf("audit: encode checkpoint: %w", err)
	}
	return append(b, '\n'), info, nil
}

// tailState is what a restart learns from the end of an existing file.
type tailState struct {
	seq  uint64
	head [sha256.Size]byte
}

// readTail returns the chain state at the end of path. ok is false when the
// file is missing or empty (err nil), and err says why the end cannot be
// continued: not a chained record, cut off mid-line, or too long to read back.
func readTail(path string) (st tailState, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("audit: chain: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return st, false, fmt.Errorf("audit: chain: stat %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return st, false, nil
	}
	n := min(size, maxTailBytes+1)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil && !errors.Is(err, io.EOF) {
		return st, false, fmt.Errorf("audit: chain: read %s: %w", path, err)
	}
	if buf[len(buf)-1] != '\n' {
		return st, false, fmt.Errorf("audit: chain: %s ends with an incomplete line", path)
	}
	buf = buf[:len(buf)-1]
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 && n < size {
		return st, false, fmt.Errorf("audit: chain: last line of %s is longer than %d bytes", path, maxTailBytes)
	}
	last := buf[i+1:]
	rec, err := ParseRecord(last)
	if err != nil {
		return st, false, fmt.Errorf("audit: chain: last line of %s: %w", path, err)
	}
	return tailState{seq: rec.Seq, head: sha256.Sum256(last)}, true, nil
}

// LoadSigningKey reads an Ed25519 checkpoint key from a file or from inline
// text (set exactly one). Accepted forms: a PEM "PRIVATE KEY" (PKCS #8, as
// `openssl genpkey -algorithm ed25519` writes), or base64 of the 32-byte seed
// (or 64-byte private key), with or without a "base64:" prefix.
func LoadSigningKey(file, inline string) (ed25519.PrivateKey, error) {
	text := inline
	if file != "" {
		b, err := readfile.Bounded(file, maxKeyFileBytes)
		if err != nil {
			return nil, fmt.Errorf("audit: key file: %w", err)
		}
		text = string(b)
	}
	text = strings.TrimSpace(text)
	if blk, _ := pem.Decode([]byte(text)); blk != nil {
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("audit: checkpoint key: %w", err)
		}
		ek, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("audit: checkpoint key: %T is not an Ed25519 key", k)
		}
		return ek, nil
	}
	raw, err := decodeB64(strings.TrimPrefix(text, "base64:"))
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint key: not PEM and not base64: %w", err)
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		k := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
		if !bytes.Equal(k, raw) {
			return nil, errors.New("audit: checkpoint key: 64-byte key whose public half does not match its seed")
		}
		return k, nil
	}
	return nil, fmt.Errorf("audit: checkpoint key: %d bytes, want a 32-byte Ed25519 seed", len(raw))
}

// LoadPublicKey reads an Ed25519 public key from a file: a PEM "PUBLIC KEY"
// (PKIX, as `openssl pkey -pubout` writes) or base64 of the raw 32 bytes, with
// or without a "base64:" prefix.
func LoadPublicKey(file string) (ed25519.PublicKey, error) {
	b, err := readfile.Bounded(file, maxKeyFileBytes)
	if err != nil {
		return nil, fmt.Errorf("audit: key file: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if blk, _ := pem.Decode([]byte(text)); blk != nil {
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("audit: public key %s: %w", file, err)
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("audit: public key %s: %T is not an Ed25519 key", file, k)
		}
		return ek, nil
	}
	raw, err := decodeB64(strings.TrimPrefix(text, "base64:"))
	if err != nil {
		return nil, fmt.Errorf("audit: public key %s: not PEM and not base64: %w", file, err)
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("audit: public key %s: %d bytes, want 32", file, len(raw))
	}
	return ed25519.PublicKey(raw), nil
}

func decodeB64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("invalid base64")
}

// baseName is the file name recorded in anchors: the directory is where the
// server ran, not where a verifier will look.
func baseName(path string) string { return filepath.Base(path) }

// startChain sets up the chain before the writer starts: a stream starts a
// new chain; a file continues the chain its last line ends, or — when that
// line cannot be continued (unchained, cut off) — is rotated away so the new
// chain starts in a clean file; an empty file continues the rotated file.
func (l *Logger) startChain() error {
	c := &chain{}
	if k := l.opts.CheckpointKey; k != nil {
		c.key = k
		c.keyID = KeyID(k.Public().(ed25519.PublicKey))
	}
	l.ch2 = c
	if !l.rotates() {
		return l.anchor(anchorDetail{Reason: AnchorGenesis})
	}
	if l.size > 0 {
		st, ok, err := readTail(l.opts.Path)
		if ok {
			c.seq, c.head = st.seq, st.head
			return nil
		}
		note := "previous file does not end with a chained record"
		if err != nil {
			note = err.Error()
		}
		if err := l.rotate(); err != nil {
			return fmt.Errorf("audit: chain: %s cannot be continued and rotating it failed: %w", l.opts.Path, err)
		}
		if l.size > 0 {
			return fmt.Errorf("audit: chain: %s cannot be continued and was not rotated away", l.opts.Path)
		}
		return l.anchor(anchorDetail{Reason: AnchorGenesis, PrevFile: baseName(l.name(1)), Note: note})
	}
	st, ok, err := readTail(l.name(1))
	if ok {
		c.seq, c.head = st.seq, st.head
		return l.anchor(anchorDetail{Reason: AnchorResume, PrevFile: baseName(l.name(1)), PrevSeq: st.seq})
	}
	d := anchorDetail{Reason: AnchorGenesis}
	if err != nil {
		d.PrevFile, d.Note = baseName(l.name(1)), err.Error()
	}
	return l.anchor(d)
}

// anchor writes a chain_anchor record.
func (l *Logger) anchor(d anchorDetail) error {
	b, err := encodeChainRecord(l.opts.Now(), ChainAnchor, d)
	if err != nil {
		return err
	}
	if !l.emit(b) {
		return fmt.Errorf("audit: chain: writing the anchor of %s failed", l.opts.Path)
	}
	return nil
}

// anchorIfNew starts a freshly opened, empty file with an anchor continuing
// the chain. A non-empty file (a rotation whose rename failed) simply goes on.
func (l *Logger) anchorIfNew(reason string) {
	if l.ch2 == nil || l.size > 0 {
		return
	}
	d := anchorDetail{Reason: reason, PrevFile: baseName(l.name(1)), PrevSeq: l.ch2.seq}
	if l.ch2.seq == 0 {
		d = anchorDetail{Reason: AnchorGenesis}
	}
	if err := l.anchor(d); err != nil {
		l.errs.Add(1)
	}
}

// checkpoint writes a signed checkpoint over the current head.
func (l *Logger) checkpoint() {
	b, info, err := l.ch2.checkpointRecord(l.opts.Now())
	if err != nil {
		l.errs.Add(1)
		return
	}
	if l.emit(b) {
		l.checkpoints.Add(1)
		if l.opts.OnCheckpoint != nil {
			if l.rotates() {
				info.File = baseName(l.opts.Path)
			}
			l.opts.OnCheckpoint(info)
		}
	}
	l.ch2.since = 0
}

func (l *Logger) signs() bool { return l.ch2 != nil && l.ch2.key != nil }

// reserve is the room kept free in a file beyond the next line: its chain
// suffix and, when signing, the checkpoint that closes the file.
func (l *Logger) reserve() int64 {
	switch {
	case l.ch2 == nil:
		return 0
	case l.ch2.key != nil:
		return int64(chainSuffixMax + checkpointLineMax)
	}
	return int64(chainSuffixMax)
}

package encrypt

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vector.json")

func key(id string, fill byte) Key { return Key{ID: id, Secret: bytes.Repeat([]byte{fill}, 32)} }

func ring(t *testing.T, keys ...Key) *Keyring {
	t.Helper()
	r, err := NewKeyring(keys...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return r
}

func TestSealOpen(t *testing.T) {
	r := ring(t, key("k1", 1))
	msg := []byte(`{"price":101.5,"side":"buy"}`)
	env, id, err := r.Seal("trades:eurusd", msg)
	if err != nil || id != "k1" {
		t.Fatalf("Seal: %v, id %q", err, id)
	}
	if bytes.Contains(env, []byte("price")) || !IsSealed(env) {
		t.Fatalf("envelope leaks plaintext or lacks the version byte: %q", env)
	}
	if len(env) != 2+len("k1")+NonceSize+len(msg)+TagSize {
		t.Fatalf("envelope is %d bytes", len(env))
	}
	pt, id, err := r.Open("trades:eurusd", env)
	if err != nil || id != "k1" || !bytes.Equal(pt, msg) {
		t.Fatalf("Open = %q, %q, %v", pt, id, err)
	}
	env2, _, _ := r.Seal("trades:eurusd", msg)
	if bytes.Equal(env, env2) {
		t.Fatal("two seals of one message are equal: nonce not random")
	}
}

func TestOpenRefuses(t *testing.T) {
	r := ring(t, key("k1", 1))
	env, _, err := r.Seal("trades:a", []byte(`"x"`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		keyring *Keyring
		channel string
		env     []byte
		want    error
	}{
		{"other channel", r, "trades:b", env, ErrOpen},
		{"wrong secret same id", ring(t, key("k1", 2)), "trades:a", env, ErrOpen},
		{"key removed", ring(t, key("k2", 1)), "trades:a", env, ErrUnknownKey},
		{"truncated", r, "trades:a", env[:len(env)-1], ErrOpen},
		{"too short", r, "trades:a", env[:2+2+NonceSize], ErrMalformed},
		{"empty", r, "trades:a", nil, ErrMalformed},
		{"plaintext", r, "trades:a", []byte(`{"a":1}`), ErrMalformed},
		{"bad version", r, "trades:a", append([]byte{2}, env[1:]...), ErrMalformed},
	}
	for i := range len(env) {
		tampered := bytes.Clone(env)
		tampered[i] ^= 0x40
		want := ErrOpen
		switch {
		case i == 0 || i == 1:
			want = ErrMalformed
		case i < 4: // the key id: now an invalid or unknown id
			want = nil // any error
		}
		cases = append(cases, struct {
			name    string
			keyring *Keyring
			channel string
			env     []byte
			want    error
		}{"tampered byte " + string(rune('0'+i%10)), r, "trades:a", tampered, want})
	}
	for _, tc := range cases {
		pt, _, err := tc.keyring.Open(tc.channel, tc.env)
		if err == nil || pt != nil {
			t.Errorf("%s: Open = %q, %v; want an error and no plaintext", tc.name, pt, err)
			continue
		}
		if tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestRotation(t *testing.T) {
	old := ring(t, key("k1", 1))
	env1, _, _ := old.Seal("c:x", []byte(`1`))
	rotated := ring(t, key("k2", 2), key("k1", 1))
	env2, id, _ := rotated.Seal("c:x", []byte(`2`))
	if id != "k2" || rotated.SealingKeyID() != "k2" {
		t.Fatalf("rotated keyring seals under %q", id)
	}
	for _, env := range [][]byte{env1, env2} {
		if _, _, err := rotated.Open("c:x", env); err != nil {
			t.Fatalf("rotated keyring does not open: %v", err)
		}
	}
	retired := ring(t, key("k2", 2))
	if _, _, err := retired.Open("c:x", env1); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("envelope under a removed key: %v", err)
	}
}

func TestNewKeyringRefuses(t *testing.T) {
	for name, keys := range map[string][]Key{
		"none":         nil,
		"short secret": {{ID: "k", Secret: make([]byte, 31)}},
		"empty id":     {key("", 1)},
		"bad id":       {key("k 1", 1)},
		"long id":      {key(string(bytes.Repeat([]byte("a"), 65)), 1)},
		"duplicate":    {key("k", 1), key("k", 2)},
	} {
		if _, err := NewKeyring(keys...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// vector is testdata/vector.json, also printed in docs/encryption.md.
type vector struct {
	SecretHex  string `json:"master_secret_hex"`
	KeyID      string `json:"key_id"`
	Channel    string `json:"channel"`
	ChannelKey string `json:"channel_key_hex"`
	NonceHex   string `json:"nonce_hex"`
	Plaintext  string `json:"plaintext"`
	Envelope   string `json:"envelope_hex"`
}

func TestVector(t *testing.T) {
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i)
	}
	nonce := make([]byte, NonceSize)
	for i := range nonce {
		nonce[i] = byte(0xa0 + i)
	}
	v := vector{SecretHex: hex.EncodeToString(secret), KeyID: "k2026", Channel: "trades:eurusd",
		NonceHex: hex.EncodeToString(nonce), Plaintext: `{"price":1.0842,"qty":5}`}
	ck, err := ChannelKey(secret, v.KeyID, v.Channel)
	if err != nil {
		t.Fatal(err)
	}
	v.ChannelKey = hex.EncodeToString(ck)
	r := ring(t, Key{ID: v.KeyID, Secret: secret})
	env, _, err := r.sealWithNonce(v.Channel, []byte(v.Plaintext), nonce)
	if err != nil {
		t.Fatal(err)
	}
	v.Envelope = hex.EncodeToString(env)
	if *update {
		b, _ := json.MarshalIndent(v, "", "  ")
		if err := os.WriteFile("testdata/vector.json", append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("testdata/vector.json")
	if err != nil {
		t.Fatal(err)
	}
	var want vector
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	if v != want {
		t.Fatalf("test vector changed: the envelope format is a compatibility promise\n got %+v\nwant %+v", v, want)
	}
	// And the stored vector opens independently of sealWithNonce.
	stored, _ := hex.DecodeString(want.Envelope)
	pt, id, err := r.Open(want.Channel, stored)
	if err != nil || id != want.KeyID || string(pt) != want.Plaintext {
		t.Fatalf("vector does not open: %q %q %v", pt, id, err)
	}
}

func FuzzOpen(f *testing.F) {
	r, _ := NewKeyring(key("k1", 1))
	env, _, _ := r.Seal("c:x", []byte(`{"a":1}`))
	f.Add(env)
	f.Add([]byte{Version, 2, 'k', '1'})
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, _, err := r.Open("c:x", b)
		if err == nil && !bytes.Equal(pt, []byte(`{"a":1}`)) {
			t.Fatalf("opened forged bytes to %q", pt)
		}
		if err != nil && pt != nil {
			t.Fatal("plaintext returned with an error")
		}
	})
}

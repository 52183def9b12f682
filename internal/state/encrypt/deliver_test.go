package encrypt

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/wsgate/wsgate/internal/route/room"
)

// TestNamespaceKeyVector: the namespace key of docs/encryption.md ("Keys from
// the ticket endpoint"), checked independently with Python's cryptography.
func TestNamespaceKeyVector(t *testing.T) {
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i)
	}
	nk, err := NamespaceKey(secret, "k2026", "trades")
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(nk); got != "ead327bda1946554b84b16932467261f504d3943200deee61ae67cd2270dcaae" {
		t.Fatalf("namespace key %s", got)
	}
	ck, _ := ChannelKey(nk, "k2026", "trades:eurusd")
	if got := hex.EncodeToString(ck); got != "b340ec9c3d3dc21953d5e2db1f8eb10f4dfe1615c61418d70d72869c09b2add5" {
		t.Fatalf("channel key under the namespace key %s", got)
	}
}

func TestClientKeys(t *testing.T) {
	k1, k2 := key("e2", 1), key("e1", 2)
	keys := []Key{k1, k2}
	e2eNS := []string{"vault", "desk"}
	str := func(ks []DeliveredKey) string {
		var b bytes.Buffer
		for _, k := range ks {
			fmt.Fprintf(&b, "%s/%s%s ", k.ID, k.Namespace, k.Channel)
		}
		return b.String()
	}
	for _, tc := range []struct {
		patterns []string
		want     string
	}{
		{nil, ""},
		{[]string{"chat:*", "chat:lobby"}, ""},      // not an end_to_end namespace
		{[]string{"vault:*"}, "e2/vault e1/vault "}, // the whole namespace
		{[]string{"vault:**", "vault:*", "v*:*"}, "e2/vault e1/vault "}, // deduplicated
		{[]string{"*:*"}, "e2/desk e1/desk e2/vault e1/vault "},         // every namespace
		{[]string{"vault:a", "vault:b", "vault:a"}, "e2/vault:a e1/vault:a e2/vault:b e1/vault:b "},
		{[]string{"vault:*", "vault:a", "desk:x"}, "e2/vault e1/vault e2/desk:x e1/desk:x "},
		{[]string{"vault:a*", "vault:", "vault", "*", "*:a", "vaultx:*", "vault:a:b*"}, ""}, // nothing opens exactly these
	} {
		got, err := ClientKeys(keys, e2eNS, tc.patterns, room.MatchPattern)
		if err != nil {
			t.Fatal(err)
		}
		if str(got) != tc.want {
			t.Errorf("%q: got %q, want %q", tc.patterns, str(got), tc.want)
		}
	}
	// The keys are what the SDKs need: a namespace key is a master key for its
	// channels, a channel key opens exactly its channel.
	ks, _ := ClientKeys(keys, e2eNS, []string{"vault:*", "desk:x"}, room.MatchPattern)
	nk, _ := base64.RawURLEncoding.DecodeString(ks[0].Key)
	server, _ := NamespaceKey(k1.Secret, "e2", "vault")
	if !bytes.Equal(nk, server) {
		t.Fatal("namespace key")
	}
	nsRing := ring(t, Key{ID: "e2", Secret: nk})
	env, _, _ := nsRing.Seal("vault:any", []byte(`{"a":1}`))
	if _, _, err := nsRing.Open("vault:any", env); err != nil {
		t.Fatal(err)
	}
	ck, _ := base64.RawURLEncoding.DecodeString(ks[2].Key)
	deskNS, _ := NamespaceKey(k1.Secret, "e2", "desk")
	want, _ := ChannelKey(deskNS, "e2", "desk:x")
	if ks[2].Channel != "desk:x" || !bytes.Equal(ck, want) {
		t.Fatalf("channel key %+v", ks[2])
	}
	// Bounded whatever the claims hold.
	var many []string
	for i := range 3000 {
		many = append(many, fmt.Sprintf("vault:c%d", i))
	}
	got, _ := ClientKeys(keys, e2eNS, many, room.MatchPattern)
	if len(got) != maxDelivered {
		t.Fatalf("%d keys delivered", len(got))
	}
}

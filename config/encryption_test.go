package config

import (
	"strings"
	"testing"
)

const testEncSecret = "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

func TestEncryptionAtRestNeedsKeys(t *testing.T) {
	c := devValid()
	ns := c.Channels.Namespaces["chat"]
	ns.Encryption = "at_rest"
	c.Channels.Namespaces["chat"] = ns
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "channels.namespaces.chat.encryption") {
		t.Fatalf("at_rest without keys: %v", err)
	}
	c.Encryption.Keys = []string{"k2=" + testEncSecret}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	ns.Encryption = "sealed"
	c.Channels.Namespaces["chat"] = ns
	if err := c.Validate(); err == nil {
		t.Fatal("unknown encryption mode accepted")
	}
}

func TestEncryptionKeysChecked(t *testing.T) {
	for _, tc := range []struct{ entry, want string }{
		{"no-separator", "must be"},
		{"=" + testEncSecret, "must be"},
		{"bad id=" + testEncSecret, "key id"},
		{"k1=short", "at least 32"},
		{"k1=base64:!!!", "base64"},
	} {
		c := devValid()
		c.Encryption.Keys = []string{tc.entry}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.entry, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), "AAECAwQF") {
			t.Errorf("%q: the error shows the secret: %v", tc.entry, err)
		}
	}
	c := devValid()
	c.Encryption.Keys = []string{"k1=" + testEncSecret, "k1=" + testEncSecret}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate id: %v", err)
	}
}

func TestEncryptionKeysFromEnvironment(t *testing.T) {
	c, err := Load("", []string{"WSGATE_ENCRYPTION__KEYS=k2=" + testEncSecret + ",k1=" + testEncSecret,
		"WSGATE_CHANNELS__NAMESPACES__CHAT__ENCRYPTION=at_rest"})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Encryption.Keys) != 2 || c.Encryption.Keys[0] != "k2="+testEncSecret || c.Channels.Namespaces["chat"].Encryption != "at_rest" {
		t.Fatalf("from the environment: %q, %q", c.Encryption.Keys, c.Channels.Namespaces["chat"].Encryption)
	}
}

func TestEndToEndKeysChecked(t *testing.T) {
	c := devValid()
	c.Encryption.EndToEndKeys = []string{"e1=" + testEncSecret}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		atRest, e2e []string
		want        string
	}{
		{nil, []string{"bad id=" + testEncSecret}, "encryption.end_to_end_keys[0]"},
		{nil, []string{"e1=short"}, "at least 32"},
		{nil, []string{"e1=" + testEncSecret, "e1=" + testEncSecret}, "listed twice"},
		{[]string{"k1=" + testEncSecret}, []string{"e1=" + testEncSecret}, "reuses a secret"},
	} {
		c := devValid()
		c.Encryption.Keys, c.Encryption.EndToEndKeys = tc.atRest, tc.e2e
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error with %q", tc.e2e, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "AAECAwQF") {
			t.Errorf("%q: the error shows the secret: %v", tc.e2e, err)
		}
	}
}

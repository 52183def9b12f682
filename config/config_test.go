package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func devValid() *Config {
	c := Default()
	c.InsecurePlaintext = true
	c.Auth.Keys = []Key{{ID: "k", Algorithms: []string{"HS256"}, Secret: strings.Repeat("s", 32)}}
	return c
}

func TestDefaultNeedsKeysAndTLS(t *testing.T) {
	err := Default().Validate()
	if err == nil {
		t.Fatal("default config without keys or TLS must not validate")
	}
	for _, want := range []string{"tls.cert_file", "auth.keys"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestValidMinimal(t *testing.T) {
	if err := devValid().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestErrorNamesFieldAndFix(t *testing.T) {
	c := devValid()
	c.Limits.MaxMessageBytes = 0
	err := c.Validate()
	want := "limits.max_message_bytes: must be between 64 and 16777216, got 0"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatal("not a ValidationError")
	}
}

func TestNoneAlgorithmRefused(t *testing.T) {
	c := devValid()
	c.Auth.Keys[0].Algorithms = []string{"none"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "never allowed") {
		t.Fatalf("got %v", err)
	}
}

func TestLoadFileEnvPrecedenceAndUnknownKeys(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "c.yaml")
	yaml := `
insecure_plaintext: true
listen: 127.0.0.1:9000
auth:
  keys:
    - id: a
      algorithms: [HS256]
      secret: "` + strings.Repeat("x", 40) + `"
limits:
  max_message_bytes: 4096
timeouts:
  idle: 30s
rate:
  tiers:
    pro:
      messages: {rate: 100, burst: 200}
`
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p, []string{"WSGATE_LISTEN=127.0.0.1:9100", "WSGATE_LIMITS__MAX_FRAGMENTS=7", "WSGATE_TRUSTED_PROXIES=10.0.0.0/8,192.168.1.1", "OTHER=1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9100" {
		t.Errorf("env must override file: listen=%s", c.Listen)
	}
	if c.Limits.MaxMessageBytes != 4096 || c.Limits.MaxFragments != 7 || c.Timeouts.Idle != 30*time.Second {
		t.Errorf("file/env values not applied: %+v %v", c.Limits, c.Timeouts.Idle)
	}
	if len(c.TrustedProxies) != 2 {
		t.Errorf("comma list from env: %v", c.TrustedProxies)
	}
	if c.Limits.MaxHeaderBytes != 8192 {
		t.Errorf("defaults must survive: %d", c.Limits.MaxHeaderBytes)
	}
	pro := c.Rate.Tiers["pro"]
	if pro.Messages.Rate != 100 || pro.Bytes.Rate == 0 {
		t.Errorf("tier must inherit budgets it leaves out: %+v", pro)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(p, []byte("limits:\n  max_mesage_bytes: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(p, nil)
	if err == nil || !strings.Contains(err.Error(), "max_mesage_bytes") {
		t.Fatalf("unknown key must be an error naming it, got %v", err)
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	c, err := Load("../examples/wsgate.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Outside --dev the one problem is the secret the example publishes.
	err = c.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Errs) != 1 || !strings.Contains(err.Error(), "wsgate.yaml:47:15: auth.keys[0].secret: this is the example secret") {
		t.Fatalf("example config outside --dev: %v", err)
	}
	c.Dev = true
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Dev = false
	c.Auth.Keys[0].Secret = strings.Repeat("k", 32)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// Issue 15 item 8: type and parse errors give file:line:column, the key path, the
// bad value and the expected type, all at once, never Go internals or ”.
func TestLoadErrorsAllAtOnceWithPositions(t *testing.T) {
	f := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(f, []byte(`listen: 127.0.0.1:8443
limits:
  max_message_bytes: 16k
  max_mesage_bytes: 1
timeouts:
  idle: 30
  write: soon
auth:
  keys: "nope"
  tickets:
    enabled: maybe
bogus: 1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(f, []string{"WSGATE_LIMITS__MAX_HEADER_BYTES=lots", "WSGATE_LIMTS__X=1"})
	if err == nil {
		t.Fatal("loaded")
	}
	msg := err.Error()
	for _, want := range []string{
		f + `:3:22: limits.max_message_bytes: got "16k", expected an integer`,
		f + `:4:3: limits.max_mesage_bytes: unknown key: did you mean limits.max_message_bytes?`,
		f + `:6:9: timeouts.idle: got "30", expected a duration (a number alone has no unit: write e.g. 30s`,
		f + `:7:10: timeouts.write: got "soon", expected a duration`,
		f + `:9:9: auth.keys: got "nope", expected a list`,
		f + `:11:14: auth.tickets.enabled: got "maybe", expected true or false`,
		f + `:12:1: bogus: unknown key in the top level (known: `,
		`environment variable WSGATE_LIMITS__MAX_HEADER_BYTES: limits.max_header_bytes: got "lots", expected an integer`,
		`environment variable WSGATE_LIMTS__X: names no configuration key (limts is not a key of the top level: did you mean limits?)`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("missing %q in:\n%s", want, msg)
		}
	}
	for _, bad := range []string{"strconv", "''", "mapstructure", "decoding failed"} {
		if strings.Contains(msg, bad) {
			t.Errorf("message shows Go internals (%s):\n%s", bad, msg)
		}
	}
	// Semantic errors of a file that decodes point at the line too.
	if err := os.WriteFile(f, []byte("limits:\n  max_message_bytes: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), f+":2:22: limits.max_message_bytes: must be between") {
		t.Fatalf("semantic error without position: %v", err)
	}
	// A YAML syntax error names the file and line.
	if err := os.WriteFile(f, []byte("limits:\n  a: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(f, nil); err == nil || !strings.Contains(err.Error(), f+": line ") {
		t.Fatalf("syntax error: %v", err)
	}
}

func TestOriginPatterns(t *testing.T) {
	c := devValid()
	c.Origins.Allowed = []string{"https://app.example.com", "https://*.example.com", "https://a*.example.com", "example.com"}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "origins.allowed[2]") || !strings.Contains(err.Error(), "origins.allowed[3]") {
		t.Fatalf("got %v", err)
	}
}

func TestUnknownEnvironmentVariableNamed(t *testing.T) {
	_, err := Load("", []string{"WSGATE_NOT_A_KEY=1"})
	if err == nil || !strings.Contains(err.Error(), "WSGATE_NOT_A_KEY") {
		t.Fatalf("got %v", err)
	}
}

func TestAuditChainKeys(t *testing.T) {
	c, err := Load("", []string{"WSGATE_AUDIT__CHECKPOINT_KEY=base64:AAAA", "WSGATE_AUDIT__CHECKPOINT_EVERY=50"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Audit.CheckpointKey != "base64:AAAA" || c.Audit.CheckpointEvery != 50 || c.Audit.CheckpointInterval != time.Minute || c.Audit.Chain {
		t.Fatalf("audit = %+v", c.Audit)
	}
	c.InsecurePlaintext = true
	c.Auth = devValid().Auth
	err = c.Validate()
	if err == nil || !strings.Contains(err.Error(), "audit.chain") {
		t.Fatalf("key without chain: %v", err)
	}
	c.Audit.Chain = true
	c.Audit.CheckpointKeyFile = "k.pem"
	c.Audit.CheckpointInterval = 0
	err = c.Validate()
	for _, want := range []string{"audit.checkpoint_key: set one of", "audit.checkpoint_interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
	c.Audit.CheckpointKey, c.Audit.CheckpointKeyFile = "", ""
	c.Audit.ShipSyslog = "udp://127.0.0.1:514"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "audit.ship_webhook: shipping sends signed checkpoints") {
		t.Errorf("shipping without a key: %v", err)
	}
}

func TestHooksValidation(t *testing.T) {
	c := Default()
	c.Auth.Keys = []Key{{ID: "k", Algorithms: []string{"HS256"}, Secret: "0123456789abcdef0123456789abcdef"}}
	c.Hooks.Connect = Hook{URL: "https://app.internal/connect", FailurePolicy: "fail_sometimes", Timeout: time.Hour}
	c.Channels.Namespaces["game"] = Namespace{Hooks: NamespaceHooks{Publish: Hook{URL: "ftp://x"}},
		Limits: RoomLimits{MaxMembers: 2, Schema: "nope", PublishRate: RateLimit{Rate: 1}}}
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid hooks accepted")
	}
	for _, want := range []string{"hooks.signing_key", "hooks.connect.failure_policy", "hooks.connect.timeout",
		"channels.namespaces.game.hooks.publish.url", "channels.namespaces.game.limits.max_members",
		"channels.namespaces.game.limits.schema", "channels.namespaces.game.limits.publish_rate.burst"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("no %s in %v", want, err)
		}
	}
}

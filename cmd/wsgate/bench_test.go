package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// Flags that cannot work are refused before any connection is opened.
func TestBenchFlagValidation(t *testing.T) {
	cases := map[string][]string{
		"no url":           {},
		"two urls":         {"ws://127.0.0.1:1/", "ws://127.0.0.1:2/"},
		"bad mode":         {"ws://127.0.0.1:1/", "--mode", "flood"},
		"bad scheme":       {"http://127.0.0.1:1/"},
		"token and secret": {"ws://127.0.0.1:1/", "--token", "t", "--secret", "s"},
		"remote":           {"ws://192.0.2.1:1/"},
		"negative conns":   {"ws://127.0.0.1:1/", "-n", "-5"},
		"long duration":    {"ws://127.0.0.1:1/", "-d", "3h"},
		"bad claims":       {"ws://127.0.0.1:1/", "--secret", "s", "--claims", "[1]"},
		"procs":            {"ws://127.0.0.1:1/", "--procs", "0"},
		"cacert+insecure":  {"wss://127.0.0.1:1/", "--cacert", "x.pem", "--insecure"},
		"too many conns":   {"ws://127.0.0.1:1/", "--mode", "idle", "-n", "30000"},
	}
	for name, args := range cases {
		cmd := benchCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.ExecuteContext(context.Background())
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if name == "too many conns" && !strings.Contains(err.Error(), "--procs") {
			t.Errorf("%s: error does not point to --procs: %v", name, err)
		}
		if name == "remote" && !strings.Contains(err.Error(), "--allow-remote") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A run that only met refusals (nothing listens on port 1) says so on
// stderr and exits with the invalid-run status, not 0 with figures.
func TestBenchRefusalsExitInvalid(t *testing.T) {
	cmd := benchCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"ws://127.0.0.1:1/", "-n", "2", "-d", "50ms", "--timeout", "1s"})
	err := cmd.ExecuteContext(context.Background())
	if e, ok := err.(exitError); !ok || int(e) != benchExitInvalid {
		t.Fatalf("err %v, want exit status %d", err, benchExitInvalid)
	}
	if !strings.Contains(out.String(), "INVALID RUN") || !strings.Contains(errOut.String(), "INVALID RUN") {
		t.Fatalf("not loud enough:\n%s\n%s", out.String(), errOut.String())
	}
}

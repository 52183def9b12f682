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

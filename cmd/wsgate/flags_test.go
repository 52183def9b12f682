package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// deprecatedFlags are old spellings that keep working but never show in --help.
var deprecatedFlags = map[string]string{
	"server-pid": "pid",   // bench
	"claims":     "claim", // token, bench
}

// sharedFlags are the flags several subcommands have; each must be spelled the
// same everywhere it exists (and none of the listed misspellings may exist).
var sharedFlags = map[string][]string{
	"cacert":       {"ca", "ca-cert", "cafile", "ca-file"},
	"insecure":     {"insecure-skip-verify", "no-verify"},
	"allow-remote": {"allow-remote-target", "remote"},
	"token":        {"bearer", "jwt"},
	"secret":       {"hmac-secret", "key-secret"},
	"claim":        {},
	"pid":          {"server-pid"},
}

// Every subcommand's --help, from the built binary, lists the canonical names of
// the shared flags and none of the deprecated or inconsistent spellings.
func TestHelpListsCanonicalFlagsOnly(t *testing.T) {
	want := map[string][]string{
		"token":   {"--secret", "--claim"},
		"connect": {"--token", "--cacert", "--insecure"},
		"check":   {"--token", "--secret", "--claim", "--cacert", "--insecure", "--allow-remote"},
		"bench":   {"--token", "--secret", "--claim", "--cacert", "--insecure", "--allow-remote", "--pid"},
		"admin":   {"--admin-token"},
	}
	for sub, flags := range want {
		help, err := run(t, nil, sub, "--help")
		if err != nil {
			t.Fatalf("wsgate %s --help: %v\n%s", sub, err, help)
		}
		for _, f := range flags {
			if !strings.Contains(help, "  "+f+" ") && !strings.Contains(help, ", "+f+" ") {
				t.Errorf("wsgate %s --help does not list %s:\n%s", sub, f, help)
			}
		}
		listed := listedFlags(help)
		for old := range deprecatedFlags {
			if listed[old] {
				t.Errorf("wsgate %s --help lists the deprecated --%s", sub, old)
			}
		}
		for _, bad := range sharedFlags {
			for _, b := range bad {
				if listed[b] {
					t.Errorf("wsgate %s --help lists --%s, an inconsistent spelling", sub, b)
				}
			}
		}
	}
}

// listedFlags are the long flag names in a --help text's flag lists.
func listedFlags(help string) map[string]bool {
	got := map[string]bool{}
	for _, line := range strings.Split(help, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := f[0]
		if strings.HasPrefix(name, "-") && !strings.HasPrefix(name, "--") && len(f) > 1 {
			name = f[1] // "-c, --config string"
		}
		if n, ok := strings.CutPrefix(name, "--"); ok {
			got[n] = true
		}
	}
	return got
}

// The whole command tree, in process: no visible flag uses a misspelling of a
// shared flag, and every deprecated alias is hidden, marked deprecated and
// names its replacement, which exists on the same command.
func TestFlagNamesConsistentAcrossSubcommands(t *testing.T) {
	root := &cobra.Command{Use: "wsgate"}
	root.AddCommand(serveCmd(), tokenCmd(), connectCmd(), versionCmd(), adminCmd(), certsCmd(), configCmd())
	for _, c := range extraCommands {
		root.AddCommand(c())
	}
	bad := map[string]string{}
	for canon, spellings := range sharedFlags {
		for _, s := range spellings {
			bad[s] = canon
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if canon, ok := deprecatedFlags[f.Name]; ok {
				if !f.Hidden || f.Deprecated == "" || !strings.Contains(f.Deprecated, "--"+canon) {
					t.Errorf("%s: --%s is not a hidden deprecated alias of --%s (hidden %v, deprecated %q)",
						c.CommandPath(), f.Name, canon, f.Hidden, f.Deprecated)
				}
				if c.Flags().Lookup(canon) == nil {
					t.Errorf("%s: --%s is an alias of --%s, which this command lacks", c.CommandPath(), f.Name, canon)
				}
				return
			}
			if canon, ok := bad[f.Name]; ok && !f.Hidden {
				t.Errorf("%s: --%s should be spelled --%s as in the other subcommands", c.CommandPath(), f.Name, canon)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// The deprecated aliases still work, with a warning that names the new flag.
func TestDeprecatedFlagAliasesStillWork(t *testing.T) {
	secret := strings.Repeat("k", 32)
	tok, err := run(t, nil, "token", "--secret", secret, "--sub", "alice", "--claims", "tier=pro")
	if err != nil {
		t.Fatalf("token --claims: %v\n%s", err, tok)
	}
	if !strings.Contains(tok, "use --claim") {
		t.Errorf("token --claims printed no deprecation warning:\n%s", tok)
	}
	lines := strings.Fields(tok)
	if got := claimsOf(t, lines[len(lines)-1]); got["tier"] != "pro" {
		t.Errorf("token --claims lost the claim: %v", got)
	}

	// bench validates the target after parsing flags: a remote target is refused
	// naming --allow-remote, which shows the aliases parsed.
	for _, args := range [][]string{
		{"--server-pid", "1"},
		{"--secret", secret, "--claims", `{"tier":"pro"}`},
		{"--secret", secret, "--claim", "tier=pro"},
	} {
		out, err := run(t, nil, append([]string{"bench", "ws://192.0.2.1:1/ws"}, args...)...)
		if err == nil || !strings.Contains(out, "--allow-remote") || strings.Contains(out, "unknown flag") {
			t.Errorf("bench %v: %v\n%s", args, err, out)
		}
		if old := strings.TrimPrefix(args[len(args)-2], "--"); deprecatedFlags[old] != "" && !strings.Contains(out, "use --"+deprecatedFlags[old]) {
			t.Errorf("bench %v printed no deprecation warning:\n%s", args, out)
		}
	}
	out, err := run(t, nil, "bench", "ws://127.0.0.1:1/ws", "--secret", secret, "--claim", "tier")
	if err == nil || !strings.Contains(out, "want key=value") {
		t.Errorf("bench --claim without =: %v\n%s", err, out)
	}

	// The alias fills the same value as the canonical flag.
	cmd := benchCmd()
	var warn bytes.Buffer
	cmd.Flags().SetOutput(&warn)
	if err := cmd.ParseFlags([]string{"--server-pid", "42,43"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "use --pid") {
		t.Errorf("--server-pid: no deprecation warning (%q)", warn.String())
	}
	if pids, err := cmd.Flags().GetIntSlice("pid"); err != nil || len(pids) != 2 || pids[0] != 42 || pids[1] != 43 {
		t.Errorf("--server-pid 42,43 gave --pid %v (%v)", pids, err)
	}
}

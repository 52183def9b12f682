// Command wsgate is the wsgate binary: serve, token, connect, check, bench, version.
// It only parses flags and calls into the library; all logic lives in packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"
)

// version may be set at build time with -ldflags "-X main.version=v1.2.3"
// (scripts/release.sh does); otherwise the module version from the build info.
var version = ""

// buildVersion describes this binary: module version, VCS revision and dirty
// flag, and the Go version, from debug.ReadBuildInfo.
func buildVersion() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if v == "" {
			v = "unknown"
		}
		return v
	}
	if v == "" {
		v = bi.Main.Version // "(devel)" for a source-tree build, v1.2.3 for go install …@v1.2.3
	}
	var rev, at string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	out := v
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		out += " " + rev
		if dirty {
			out += "-dirty"
		}
		if at != "" {
			out += " " + at
		}
	}
	return out + " " + bi.GoVersion
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "wsgate",
		Short:         "A secure WebSocket server and gateway",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), tokenCmd(), connectCmd(), versionCmd(), adminCmd(), certsCmd(), configCmd())
	for _, c := range extraCommands {
		root.AddCommand(c())
	}
	if err := root.ExecuteContext(ctx); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee)) // the command already said why
		}
		fmt.Fprintln(os.Stderr, "wsgate:", err)
		os.Exit(1)
	}
}

// extraCommands lets other files add subcommands (check, bench) without touching main.
var extraCommands []func() *cobra.Command

// exitError carries an exit status without printing more.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version (module version, VCS revision, dirty flag, Go version)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "wsgate", buildVersion())
			return err
		},
	}
}

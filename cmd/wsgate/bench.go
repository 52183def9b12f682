package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/internal/tools/bench"
	"github.com/wsgate/wsgate/internal/tools/check"
)

func init() { extraCommands = append(extraCommands, benchCmd) }

// benchExitInvalid is the exit status of a run that measured refusals,
// errors or closes instead of traffic (Result.Problems).
const benchExitInvalid = 2

func benchCmd() *cobra.Command {
	var (
		o           bench.Options
		mode        string
		claimsJSON  string
		claims      []string
		procs       int
		asJSON      bool
		child       bool
		pids        []int
		subprotocol []string
		nodes       []string
	)
	cmd := &cobra.Command{
		Use:   "bench URL",
		Short: "Load-test a WebSocket server you own: echo, idle, fanout, handshake",
		Long: `Load-test a WebSocket server you own.

Modes:
  echo       N connections send {"type":"ping","id":k} and wait for the pong:
             round trips per second and latency percentiles.
  idle       hold N connections open for --duration; with --pid, the server's
             RSS before and after the ramp and per connection.
  fanout     N subscribers on --channel, then (after --settle, when the
             server's RSS is read) one publisher at --rate: delivery latency
             (from the publish time in the payload) and messages/s.
             --count 1: a single broadcast to every subscriber.
             --broadcast talks to servers that relay everything to everyone.
  handshake  N concurrent loops of connect (authenticated), welcome, close.

--pid samples /proc/PID of the server: CPU time per
operation (the stable figure when client and server share the cores) and RSS.
Several nodes of one cluster: --node URL (repeatable) spreads the connections
round robin over URL and the nodes; --pid P1,P2,... (one per endpoint, same
order) reports each node's RSS per connection and the sum.
--sign hmac (echo): fetch each user's integrity key from POST /v1/tickets and
send every ping as a signed envelope (docs/integrity.md).
Tokens: --secret mints an HS256 token per connection (sub bench-<n>), --token
sends one token everywhere. Targets must be loopback unless --allow-remote.
One process can open at most RLIMIT_NOFILE connections (20,000 here);
--procs N splits larger runs over N child processes and merges their results.

Refusals (HTTP 429/403/401/503 handshakes), error replies, timeouts and
server closes are counted. When a tenth of the work or more went that way,
the run measured the server saying no, not serving: the report says so
(INVALID RUN, with the reasons) and the command exits 2.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if child {
				return cobra.NoArgs(cmd, args)
			}
			return cobra.ExactArgs(1)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if child {
				return bench.ServeChild(cmd.Context(), os.Stdin, os.Stdout, os.Stderr)
			}
			o.URL = args[0]
			o.Mode = bench.Mode(mode)
			o.Nodes = nodes
			switch len(pids) {
			case 0:
			case 1:
				o.ServerPID = pids[0]
			default:
				o.ServerPIDs = pids
			}
			o.Subprotocols = subprotocol
			o.Progress = cmd.ErrOrStderr()
			if claimsJSON != "" {
				if err := json.Unmarshal([]byte(claimsJSON), &o.Claims); err != nil {
					return fmt.Errorf("--claims: want a JSON object: %w", err)
				}
			}
			if len(claims) > 0 {
				if o.Claims == nil {
					o.Claims = map[string]any{}
				}
				if err := check.AddClaims(o.Claims, claims); err != nil {
					return err
				}
			}
			exe, err := os.Executable()
			if err != nil && procs > 1 {
				return fmt.Errorf("--procs: %w", err)
			}
			res, err := bench.RunProcs(cmd.Context(), o, procs, []string{exe, "bench", "--child"})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				err = enc.Encode(res)
			} else {
				err = res.WriteTable(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if len(res.Problems) > 0 {
				// Loud on stderr too: a JSON report piped into a dashboard
				// must not pass for a measurement.
				fmt.Fprintf(cmd.ErrOrStderr(), "wsgate bench: INVALID RUN: %s\n", strings.Join(res.Problems, "; "))
				return exitError(benchExitInvalid)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "echo", "echo, idle, fanout or handshake")
	f.IntVarP(&o.Conns, "conns", "n", 0, "connections (subscribers for fanout, concurrency for handshake); default echo 100, idle 1000, fanout 100, handshake 10")
	f.DurationVarP(&o.Duration, "duration", "d", bench.DefaultDuration, "length of the measured phase (at most 1h)")
	f.Int64Var(&o.Count, "count", 0, "stop after this many round trips, handshakes or publications (0: only --duration)")
	f.Float64Var(&o.Rate, "rate", bench.DefaultRate, "fanout: publications per second")
	f.Float64Var(&o.Ramp, "ramp", bench.DefaultRamp, "new connections per second while ramping up")
	f.StringVar(&o.Channel, "channel", bench.DefaultChannel, "fanout channel")
	f.BoolVar(&o.Broadcast, "broadcast", false, "fanout against a server that relays every message to all clients (no subscribe; publish as {\"type\":\"data\"})")
	f.BoolVar(&o.NoWelcome, "no-welcome", false, "do not wait for a first server message after connecting")
	f.StringVar(&o.Token, "token", "", "bearer token for every connection")
	f.StringVar(&o.Secret, "secret", "", "HS256 secret to mint one token per connection (\"base64:…\" or raw)")
	f.StringVar(&o.KeyID, "kid", "", "kid header of minted tokens")
	f.StringArrayVar(&claims, "claim", nil, `claim of minted tokens key=value, repeatable (value parsed as JSON when it is JSON); any --claim replaces the default {"channels":{"sub":[CHANNEL],"pub":[CHANNEL]}}`)
	f.StringVar(&o.SubjectPrefix, "subject-prefix", bench.DefaultSubPrefix, "sub of minted tokens is PREFIX<n>")
	f.StringVar(&o.Origin, "origin", "", "Origin header to send")
	f.StringSliceVar(&subprotocol, "subprotocol", nil, "subprotocols to offer")
	f.StringVar(&o.CACertFile, "cacert", "", "PEM CA bundle to trust for wss://")
	f.BoolVar(&o.InsecureSkipVerify, "insecure", false, "wss:// without certificate verification (INSECURE: anyone in the path can read and change traffic)")
	f.IntSliceVar(&pids, "pid", nil, "server process id: report its CPU per operation and RSS from /proc (with --node: one per endpoint, comma-separated)")
	// Old spellings, still accepted but hidden: --pid and --claim are the names
	// the other subcommands use.
	f.IntSliceVar(&pids, "server-pid", nil, "")
	_ = f.MarkDeprecated("server-pid", "use --pid")
	f.StringVar(&claimsJSON, "claims", "", "")
	_ = f.MarkDeprecated("claims", "use --claim key=value (repeatable)")
	f.StringArrayVar(&nodes, "node", nil, "another endpoint of the same cluster (repeatable): connections go round robin over URL and the nodes")
	f.StringVar(&o.Sign, "sign", "", "echo: sign every ping (hmac: key from POST /v1/tickets, needs --secret)")
	f.IntVar(&o.Sources, "sources", 0, "spread connections over 127.0.0.1..N source addresses (0: one per 16,000 connections, 8 for handshake)")
	f.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a target that is not loopback (only servers you own)")
	f.DurationVar(&o.Timeout, "timeout", bench.DefaultTimeout, "wait at most this long for each reply (welcome, pong, ack)")
	f.DurationVar(&o.Settle, "settle", bench.DefaultSettle, "idle, fanout: pause after the ramp before reading the server's RSS")
	f.IntVar(&procs, "procs", 1, "split the connections over this many processes (1..64)")
	f.BoolVar(&asJSON, "json", false, "print the result as JSON")
	f.BoolVar(&child, "child", false, "internal: run as a --procs child (options on stdin)")
	_ = f.MarkHidden("child")
	return cmd
}

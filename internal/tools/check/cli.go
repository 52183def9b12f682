package check

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/internal/readfile"
)

// ExitError carries the exit status of a finished audit (ExitFail or
// ExitIncomplete); the report has already been printed.
type ExitError struct{ Code int }

func (e *ExitError) Error() string { return fmt.Sprintf("check: exit status %d", e.Code) }

// maxFileBytes bounds the files the command reads (keys, certificates).
const maxFileBytes = 1 << 20

func readSmallFile(flag, path string) ([]byte, error) {
	b, err := readfile.Bounded(path, maxFileBytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	return b, nil
}

// NewCommand returns the `check URL` command. The report goes to the
// command's stdout, progress lines to its stderr. When a check FAILs RunE
// returns *ExitError{ExitFail}; when one could not run, *ExitError{ExitIncomplete}.
func NewCommand() *cobra.Command {
	var (
		o                         Options
		keyFile, caFile, signFile string
		profileFile, format       string
		claims                    []string
		asJSON, quiet             bool
	)
	cmd := &cobra.Command{
		Use:   "check URL",
		Short: "Audit a WebSocket endpoint you own against the security guide",
		Long: `Probes one ws:// or wss:// endpoint against every weakness class of the
security guide: handshake authentication (no, malformed, expired, wrongly
signed, alg-none tokens; authentication after the upgrade), token claims
(no exp, no subject, huge lifetime, expiry mid-session), Origin (CSWSH), tokens
in the URL or echoed in Sec-WebSocket-Protocol, TLS, handshake hygiene (426,
oversized headers, slowloris, handshake floods), connection slots never
released, X-Forwarded-For spoofing, message size (and whether it is enforced
before buffering), JSON bombs, binary frames, invalid UTF-8, invalid JSON,
unknown types, replay, compression, idle timeout, keepalive, ping floods,
error leaks, bounded connection and message floods, and crashes on a
malformed Host or query. Details per check: docs/check.md.

Against a loopback target every probe connection comes from its own
127.x.y.z source address and each check mints tokens for its own user, so
one probe's refusal or ban cannot poison the next (nor your browser on
127.0.0.1). Against a remote target the checks that may get the auditor
banned run last.

Prints a report (--format text, json, sarif, junit or markdown); exits 0 when
clean, 2 when a check FAILs, 3 when none FAILs but one could not run (ERROR).
Targets outside loopback need --allow-remote: test only endpoints you own.`,
		Example: `  wsgate check wss://127.0.0.1:8443/ws --secret "$SECRET" --cacert dev-ca.pem
  wsgate check ws://127.0.0.1:8080/ --token "$TOKEN" --format json > report.json
  wsgate check wss://127.0.0.1:8443/ws --secret "$SECRET" --cacert ca.pem --format sarif > check.sarif
  wsgate check ws://127.0.0.1:8080/ --secret "$S" --profile ci/check-profile.yaml --skip keepalive`,
		Args:          cobra.ExactArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.URL = args[0]
			var err error
			if keyFile != "" {
				if o.KeyPEM, err = readSmallFile("--key", keyFile); err != nil {
					return err
				}
			}
			if caFile != "" {
				if o.CACertPEM, err = readSmallFile("--cacert", caFile); err != nil {
					return err
				}
			}
			if signFile != "" {
				if strings.HasPrefix(strings.TrimSpace(signFile), "{") {
					o.SigningKey = []byte(signFile)
				} else if o.SigningKey, err = readSmallFile("--signing-key", signFile); err != nil {
					return err
				}
			}
			if profileFile != "" {
				b, err := readSmallFile("--profile", profileFile)
				if err != nil {
					return err
				}
				if o.Profile, err = ParseProfile(b); err != nil {
					return fmt.Errorf("--profile %s: %w", profileFile, err)
				}
			}
			if asJSON {
				format = "json"
			}
			if !slices.Contains(Formats, format) {
				return fmt.Errorf("--format %q: want one of %s", format, strings.Join(Formats, ", "))
			}
			if len(claims) > 0 {
				o.Claims = map[string]any{}
				if err := AddClaims(o.Claims, claims); err != nil {
					return err
				}
			}
			if !quiet {
				o.Progress = cmd.ErrOrStderr()
			}
			rep, err := Run(cmd.Context(), &o)
			if err != nil {
				return err
			}
			if err := rep.WriteFormat(cmd.OutOrStdout(), format); err != nil {
				return err
			}
			if rep.ExitCode != ExitOK {
				return &ExitError{Code: rep.ExitCode}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.AllowRemote, "allow-remote", false, "allow a target that is not on loopback (only endpoints you own)")
	f.StringVar(&o.Token, "token", "", "a valid token for the target")
	f.StringVar(&o.TokenVia, "token-via", "header", "how the token travels: header, subprotocol, query or cookie:NAME")
	f.StringVar(&o.Secret, "secret", "", "HMAC secret to mint valid and bad tokens (\"base64:…\" or raw)")
	f.StringVar(&keyFile, "key", "", "PEM private key file to mint valid and bad tokens")
	f.StringVar(&o.Alg, "alg", "", "signing algorithm of minted tokens (default by key type)")
	f.StringVar(&o.Kid, "kid", "", "kid header of minted tokens")
	f.StringVar(&o.Subject, "sub", DefaultSubject, "subject of minted tokens")
	f.StringArrayVar(&claims, "claim", nil, "extra claim of minted tokens key=value (value parsed as JSON when it is JSON)")
	f.StringVar(&caFile, "cacert", "", "PEM file of CAs to trust for wss:// targets")
	f.BoolVar(&o.Insecure, "insecure", false, "INSECURE: skip certificate verification on the probes")
	f.StringVar(&o.Origin, "origin", "", "the legitimate Origin to send")
	f.StringSliceVar(&o.Subprotocols, "subprotocol", nil, "application subprotocol(s) to offer")
	f.StringVar(&o.Message, "message", DefaultMessage, "a valid message the server answers (sent by the flood)")
	f.StringVar(&signFile, "signing-key", "", "integrity key object {\"alg\":\"HS256\",\"kid\":…,\"key\":…} or a file holding it (replay check)")
	f.DurationVar(&o.Timeout, "timeout", DefaultTimeout, "bound of each connection attempt")
	f.DurationVar(&o.ReplyWait, "reply-wait", DefaultReplyWait, "how long to wait for a reaction to a probe message")
	f.DurationVar(&o.IdleWait, "idle-wait", DefaultIdleWait, "how long the idle check waits for the server to close")
	f.IntVar(&o.FloodMessages, "flood-messages", DefaultFloodMessages, "messages of the message flood (max 20000)")
	f.DurationVar(&o.FloodWindow, "flood-window", DefaultFloodWindow, "time window of the message flood (max 10s)")
	f.IntVar(&o.FloodConns, "flood-conns", DefaultFloodConns, "concurrent connections of the connection flood (max 500)")
	f.IntSliceVar(&o.PlainPorts, "plain-port", nil, "extra port(s) to try with ws:// for a wss:// target, e.g. 80 (max 4)")
	f.DurationVar(&o.CertExpiryWarn, "cert-warn", DefaultCertExpiryWarn, "warn when the certificate expires sooner")
	f.StringSliceVar(&o.Only, "only", nil, "run only these checks ("+strings.Join(CheckNames(), ",")+")")
	f.StringSliceVar(&o.Skip, "skip", nil, "skip these checks")
	f.StringVar(&format, "format", "text", "report format: "+strings.Join(Formats, ", "))
	f.BoolVar(&asJSON, "json", false, "print the report as JSON (same as --format json)")
	f.StringVar(&profileFile, "profile", "", "YAML/JSON file of expectations: allow_binary, allow_compression, allow_query_token, accept {check: reason}, strict [checks], skip [checks]")
	f.BoolVar(&o.Amplification, "amplification", false, "run the opt-in broadcast/slow-reader probe (sends chat messages other clients may see)")
	f.DurationVar(&o.KeepaliveWait, "keepalive-wait", DefaultKeepaliveWait, "how long the keepalive check waits for a server ping (max 2m)")
	f.DurationVar(&o.SlowWait, "slow-wait", DefaultSlowWait, "how long the slowloris check drips a request head (max 2m)")
	f.IntVar(&o.SlotCycles, "slot-cycles", DefaultSlotCycles, "connect/close cycles of the slot-leak check (max 200)")
	f.IntVar(&o.HeldConns, "held-conns", DefaultHeldConns, "connections the xff-spoof check holds from one address (max 200)")
	f.BoolVar(&o.NoIsolation, "no-isolation", false, "do not give each probe connection its own 127.x source address (loopback targets)")
	f.BoolVarP(&quiet, "quiet", "q", false, "no progress lines on stderr")
	return cmd
}

// AddClaims adds --claim key=value pairs to into; a value that parses as JSON
// is taken as JSON (so tier=pro is a string and n=3 a number). check, token
// and bench spell and parse --claim this same way.
func AddClaims(into map[string]any, kv []string) error {
	for _, c := range kv {
		k, v, ok := strings.Cut(c, "=")
		if !ok || k == "" {
			return fmt.Errorf("--claim %q: want key=value", c)
		}
		var j any
		if json.Unmarshal([]byte(v), &j) == nil {
			into[k] = j
		} else {
			into[k] = v
		}
	}
	return nil
}

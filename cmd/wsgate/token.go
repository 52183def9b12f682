package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/tools/check"
)

func tokenCmd() *cobra.Command {
	var (
		file, secret, sub, kid string
		ttl                    time.Duration
		claims                 []string
	)
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint a test token (HS256) from the configured key or --secret; `token inspect` explains one",
		Example: `  wsgate token --secret 'base64:…' --sub alice --ttl 15m --claim tier=pro
  wsgate token --config wsgate.yaml --sub bob --claim 'channels={"sub":["chat:*"]}'
  wsgate token inspect eyJ… --config wsgate.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sub == "" {
				return errors.New("--sub is required")
			}
			if ttl <= 0 {
				return fmt.Errorf("--ttl must be positive, got %s", ttl)
			}
			maxLife := config.Default().Auth.MaxLifetime
			where := "the default auth.max_lifetime"
			if file != "" {
				cfg, err := config.Load(file, os.Environ())
				if err != nil {
					return err
				}
				maxLife, where = cfg.Auth.MaxLifetime, file+"'s auth.max_lifetime"
				if secret == "" {
					for _, k := range cfg.Auth.Keys {
						if k.Secret != "" {
							secret = k.Secret
							if !cmd.Flags().Changed("kid") {
								kid = k.ID
							}
							break
						}
					}
					if secret == "" {
						return fmt.Errorf("%s: no auth.keys entry with a secret", file)
					}
				}
			}
			if secret == "" {
				return errors.New("give --secret or --config with an HMAC key in auth.keys")
			}
			if ttl > maxLife {
				fmt.Fprintf(cmd.ErrOrStderr(), "wsgate: warning: --ttl %s exceeds %s (%s): a server with it refuses this token (lifetime_too_long)\n", ttl, where, maxLife)
			}
			raw, err := auth.ParseSecret(secret)
			if err != nil {
				return fmt.Errorf("--secret: %w", err)
			}
			extra := map[string]any{}
			if err := check.AddClaims(extra, claims); err != nil {
				return err
			}
			tok, err := auth.NewHMACSigner(raw, kid).Mint(sub, ttl, extra)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), tok)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "config", "c", "", "configuration file whose first HMAC key signs (and whose auth.max_lifetime --ttl is checked against)")
	f.StringVar(&secret, "secret", "", "HMAC secret (\"base64:…\" or raw, >= 32 bytes)")
	f.StringVar(&kid, "kid", "", "key id header (default with --config: the key's id)")
	f.StringVar(&sub, "sub", "", "subject (user id)")
	f.DurationVar(&ttl, "ttl", 15*time.Minute, "lifetime")
	f.StringArrayVar(&claims, "claim", nil, "extra claim key=value, repeatable (value parsed as JSON when it is JSON)")
	// --claims was the name in some docs; keep it working, hidden.
	f.StringArrayVar(&claims, "claims", nil, "")
	_ = f.MarkDeprecated("claims", "use --claim (repeatable)")
	cmd.AddCommand(tokenInspectCmd())
	return cmd
}

func tokenInspectCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "inspect TOKEN",
		Short: "Decode a token and, with --config, verify it as the server would: which key, which claims, why refused",
		Long: `Decode a JWT (header and claims, times in UTC) and, with --config FILE, verify it
exactly as 'wsgate serve -c FILE' would: the keys and JWKS of auth, issuer,
audience, leeway and max_lifetime. Exit status 1 when the token is refused.
TOKEN "-" reads it from stdin (keeps it out of shell history).`,
		Example: "  wsgate token inspect \"$TOKEN\" --config /etc/wsgate/wsgate.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tok := args[0]
			if tok == "-" {
				b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), auth.MaxTokenBytes+1))
				if err != nil {
					return err
				}
				tok = string(b)
			}
			tok = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(tok), "Bearer "))
			w := cmd.OutOrStdout()
			header, claims, err := decodeJWT(tok)
			if err != nil {
				return fmt.Errorf("not a JWT: %w", err)
			}
			fmt.Fprintf(w, "header: alg=%v kid=%v typ=%v\n", header["alg"], orDash(header["kid"]), orDash(header["typ"]))
			fmt.Fprintln(w, "claims (unverified until the verdict below):")
			keys := make([]string, 0, len(claims))
			for k := range claims {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				v := claims[k]
				s, _ := json.Marshal(v)
				line := fmt.Sprintf("  %s: %s", k, s)
				if n, ok := v.(json.Number); ok && (k == "exp" || k == "iat" || k == "nbf") {
					if sec, err := n.Int64(); err == nil {
						t := time.Unix(sec, 0).UTC()
						line += fmt.Sprintf("  (%s, %s)", t.Format(time.RFC3339), rel(t))
					}
				}
				fmt.Fprintln(w, line)
			}
			if file == "" {
				fmt.Fprintln(w, "not verified: give --config FILE to verify it against a configuration")
				return nil
			}
			cfg, err := config.Load(file, os.Environ())
			if err != nil {
				return err
			}
			a := cfg.Auth
			alg, _ := header["alg"].(string)
			kid, _ := header["kid"].(string)
			var keys2 []auth.Key
			var usable []string
			for _, k := range a.Keys {
				keys2 = append(keys2, auth.Key{ID: k.ID, Algorithms: k.Algorithms, Secret: k.Secret, PublicKeyFile: k.PublicKeyFile, PublicKeyPEM: k.PublicKeyPEM})
				if (kid == "" || kid == k.ID) && contains(k.Algorithms, alg) {
					usable = append(usable, k.ID)
				}
			}
			switch {
			case len(usable) > 0:
				fmt.Fprintf(w, "keys of %s that may verify it (kid %q, alg %s): %s\n", file, kid, alg, strings.Join(usable, ", "))
			case a.JWKSURL != "":
				fmt.Fprintf(w, "no static key matches (kid %q, alg %s); the JWKS at %s is asked\n", kid, alg, a.JWKSURL)
			default:
				fmt.Fprintf(w, "no key of %s matches kid %q with alg %s\n", file, kid, alg)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 20*time.Second)
			defer cancel()
			v, err := auth.NewVerifier(ctx, auth.Options{
				Keys: keys2, JWKSURL: a.JWKSURL, JWKSRefresh: a.JWKSRefresh, JWKSMinRefresh: a.JWKSMinRefresh,
				Issuer: a.Issuer, Audience: a.Audience, Leeway: a.Leeway, MaxLifetime: a.MaxLifetime, SubjectClaim: a.SubjectClaim,
			}, slog.New(slog.DiscardHandler))
			if err != nil {
				return fmt.Errorf("%s: cannot build the verifier: %w", file, err)
			}
			defer v.Close()
			id, err := v.Verify(ctx, tok)
			if err != nil {
				fmt.Fprintf(w, "REFUSED (%s): %v\n%s", auth.Reason(err), err, hint(auth.Reason(err), a))
				return exitError(1)
			}
			fmt.Fprintf(w, "VALID for %s: subject %q, expires %s (%s)\n", file, id.Subject, id.ExpiresAt.UTC().Format(time.RFC3339), rel(id.ExpiresAt))
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", "", "configuration to verify the token against")
	return cmd
}

// hint says what to change for a refusal reason.
func hint(reason string, a config.Auth) string {
	switch reason {
	case auth.ReasonExpired:
		return "  mint a new token; the connection's authority ends at exp\n"
	case auth.ReasonLifetimeTooLong:
		return fmt.Sprintf("  exp-iat exceeds auth.max_lifetime (%s): mint with a shorter --ttl or raise auth.max_lifetime\n", a.MaxLifetime)
	case auth.ReasonWrongIssuer:
		return fmt.Sprintf("  auth.issuer is %q\n", a.Issuer)
	case auth.ReasonWrongAudience:
		return fmt.Sprintf("  auth.audience is %q\n", a.Audience)
	case auth.ReasonAlgNotAllowed, auth.ReasonUnknownKey:
		return "  the token's kid/alg must match an auth.keys entry (id, algorithms) or the JWKS\n"
	case auth.ReasonBadSignature:
		return "  signed with another secret/key than the one configured under this kid\n"
	case auth.ReasonMissingSubject:
		return fmt.Sprintf("  the %q claim (auth.subject_claim) is missing or empty\n", a.SubjectClaim)
	}
	return ""
}

func decodeJWT(tok string) (header, claims map[string]any, err error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, fmt.Errorf("want 3 dot-separated parts, got %d", len(parts))
	}
	dec := func(s string, into *map[string]any) error {
		b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
		if err != nil {
			return err
		}
		d := json.NewDecoder(strings.NewReader(string(b)))
		d.UseNumber()
		return d.Decode(into)
	}
	if err := dec(parts[0], &header); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	if err := dec(parts[1], &claims); err != nil {
		return nil, nil, fmt.Errorf("claims: %w", err)
	}
	return header, claims, nil
}

func rel(t time.Time) string {
	d := time.Until(t).Round(time.Second)
	if d < 0 {
		return (-d).String() + " ago"
	}
	return "in " + d.String()
}

func orDash(v any) any {
	if v == nil {
		return "-"
	}
	return v
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/auth"
)

func tokenCmd() *cobra.Command {
	var (
		file, secret, sub, kid string
		ttl                    time.Duration
		claims                 []string
	)
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint a test token (HS256) from the configured key or --secret",
		Example: `  wsgate token --secret 'base64:…' --sub alice --ttl 15m --claim tier=pro
  wsgate token --config wsgate.yaml --sub bob --claim 'channels={"sub":["chat:*"]}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sub == "" {
				return errors.New("--sub is required")
			}
			if ttl <= 0 {
				return fmt.Errorf("--ttl must be positive, got %s", ttl)
			}
			if secret == "" {
				if file == "" {
					return errors.New("give --secret or --config with an HMAC key in auth.keys")
				}
				cfg, err := config.Load(file, os.Environ())
				if err != nil {
					return err
				}
				for _, k := range cfg.Auth.Keys {
					if k.Secret != "" {
						secret, kid = k.Secret, k.ID
						break
					}
				}
				if secret == "" {
					return fmt.Errorf("%s: no auth.keys entry with a secret", file)
				}
			}
			raw, err := auth.ParseSecret(secret)
			if err != nil {
				return fmt.Errorf("--secret: %w", err)
			}
			extra := map[string]any{}
			for _, c := range claims {
				k, v, ok := strings.Cut(c, "=")
				if !ok || k == "" {
					return fmt.Errorf("--claim %q: want key=value", c)
				}
				var j any
				if json.Unmarshal([]byte(v), &j) == nil {
					extra[k] = j
				} else {
					extra[k] = v
				}
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
	f.StringVarP(&file, "config", "c", "", "configuration file whose first HMAC key signs")
	f.StringVar(&secret, "secret", "", "HMAC secret (\"base64:…\" or raw, >= 32 bytes)")
	f.StringVar(&kid, "kid", "", "key id header")
	f.StringVar(&sub, "sub", "", "subject (user id)")
	f.DurationVar(&ttl, "ttl", 15*time.Minute, "lifetime")
	f.StringArrayVar(&claims, "claim", nil, "extra claim key=value (value parsed as JSON when it is JSON)")
	return cmd
}

package main

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/examples"
	"github.com/wsgate/wsgate/internal/edge/auth"
)

func configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a configuration file, or print the reference configuration",
	}
	var dev bool
	validate := &cobra.Command{
		Use:   "validate FILE",
		Short: "Load FILE (plus WSGATE_* variables) and report every problem at once; exit 1 if any",
		Long: `Load FILE exactly as 'wsgate serve -c FILE' would (the WSGATE_* environment
included), and report every problem at once, each with file:line:column, the key,
the value and what was expected. Nothing is started; files the configuration
names (certificates, keys, schemas) are checked when they are read at start.`,
		Example: "  wsgate config validate /etc/wsgate/wsgate.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(args[0], os.Environ())
			if err != nil {
				return err
			}
			cfg.Dev = dev
			if err := cfg.Validate(); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\n", args[0])
			return err
		},
	}
	validate.Flags().BoolVar(&dev, "dev", false, "validate as --dev would see it (no TLS or keys needed, example secrets allowed)")
	example := &cobra.Command{
		Use:   "example",
		Short: "Print the reference configuration (examples/wsgate.yaml) with a freshly generated HMAC secret",
		Example: `  wsgate config example > wsgate.yaml
  wsgate serve -c wsgate.yaml     # after scripts/gen-certs.sh, which creates examples/certs/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := examples.Config
			for _, p := range config.PublishedSecrets {
				out = bytes.ReplaceAll(out, []byte(p), []byte(auth.NewSecret()))
			}
			_, err := cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.AddCommand(validate, example)
	return cmd
}

package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/server"
)

func serveCmd() *cobra.Command {
	var (
		file, listen, adminListen, logLevel string
		dev                                 bool
		devUnsafeConfig                     bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Long: `Run the server. Configuration comes from the defaults, then --config FILE,
then WSGATE_* environment variables, then these flags (later wins).

--dev runs a development server: random HMAC secret, self-signed localhost
certificate (cached in the user cache directory), loopback only, no automatic
bans, and a banner with a sample token. --dev refuses --config: it adds a key
whose secret the banner prints, which must never sit next to production keys.
--dev-unsafe-config lifts that refusal for tests and local experiments (a dev
server with your own namespaces or limits); it is logged as a warning at start.

SIGHUP, and POST /api/v1/reload on the admin listener, re-read --config FILE.`,
		Example: `  wsgate serve --dev
  wsgate serve --dev --listen 127.0.0.1:0      # any free ports; the banner says which
  wsgate serve --config /etc/wsgate/wsgate.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if devUnsafeConfig && !dev {
				return errors.New("--dev-unsafe-config only makes sense with --dev")
			}
			if dev && file != "" && !devUnsafeConfig {
				return errors.New("--dev refuses --config: dev mode adds a signing key whose secret it prints, " +
					"which must not be accepted next to the keys of a real configuration; " +
					"run --dev without --config, or run the file without --dev " +
					"(tests and local experiments: --dev-unsafe-config)")
			}
			cfg, err := config.Load(file, os.Environ())
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("listen") {
				cfg.Listen = listen
				// A free WebSocket port asks for a free admin port too, so two dev
				// servers (or a test) never collide on the admin default.
				if _, port, err := net.SplitHostPort(listen); err == nil && port == "0" &&
					!cmd.Flags().Changed("admin-listen") && cfg.Admin.Listen != "" {
					if host, _, err := net.SplitHostPort(cfg.Admin.Listen); err == nil {
						cfg.Admin.Listen = net.JoinHostPort(host, "0")
					}
				}
			}
			if cmd.Flags().Changed("admin-listen") {
				cfg.Admin.Listen = adminListen
			}
			// Flags win over the file at start and after every reload.
			override := func(c *config.Config) {
				if cmd.Flags().Changed("log-level") {
					c.Log.Level = logLevel
				}
			}
			override(cfg)
			opts := []wsgate.Option{wsgate.WithOverride(override)}
			var info *server.DevInfo
			if dev {
				if info, err = server.PrepareDev(cfg); err != nil {
					return err
				}
				info.Command = devCommand()
				opts = append(opts, server.WithDev(info))
				if file != "" {
					fmt.Fprintf(cmd.ErrOrStderr(), "wsgate: WARNING --dev-unsafe-config: the dev key (its secret is printed below) "+
						"is added to the keys of %s; never run a production configuration this way\n", file)
				}
			}
			if file != "" {
				opts = append(opts, wsgate.WithConfigFile(file))
			}
			srv, err := wsgate.New(cfg, opts...)
			if err != nil {
				return err
			}
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for range hup {
					srv.ReloadFile(file, os.Environ())
				}
			}()
			err = srv.ListenAndServe(cmd.Context(), func(l wsgate.Listening) {
				if info != nil {
					if err := printDevBanner(cmd.OutOrStdout(), cfg, info, l); err != nil {
						fmt.Fprintln(os.Stderr, "wsgate: banner:", err)
					}
				}
			})
			if errors.Is(err, syscall.EADDRINUSE) {
				return fmt.Errorf("%w\n  another process holds the port: stop it, or pick a free port with --listen 127.0.0.1:0 (the log and the --dev banner say which)", err)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "config", "c", "", "YAML configuration file")
	f.StringVar(&listen, "listen", "", "WebSocket listen address (host:0 picks free ports for it and the admin listener)")
	f.StringVar(&adminListen, "admin-listen", "", "admin listen address (\"\" disables)")
	f.StringVar(&logLevel, "log-level", "", "debug, info, warn or error")
	f.BoolVar(&dev, "dev", false, "development mode: random key, self-signed certificate, loopback only, no bans")
	f.BoolVar(&devUnsafeConfig, "dev-unsafe-config", false, "allow --dev with --config: adds the printed dev key to the file's keys (tests and local experiments only; logged as a warning)")
	return cmd
}

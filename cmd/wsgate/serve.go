package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
)

func serveCmd() *cobra.Command {
	var (
		file, listen, adminListen, logLevel string
		dev                                 bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the server",
		Long: `Run the server. Configuration comes from the defaults, then --config FILE,
then WSGATE_* environment variables, then these flags (later wins).

--dev runs a development server: random HMAC secret, self-signed localhost
certificate, loopback only, and a banner with a sample token.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file, os.Environ())
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("listen") {
				cfg.Listen = listen
			}
			if cmd.Flags().Changed("admin-listen") {
				cfg.Admin.Listen = adminListen
			}
			if cmd.Flags().Changed("log-level") {
				cfg.Log.Level = logLevel
			}
			var opts []wsgate.Option
			var info *wsgate.DevInfo
			if dev {
				if info, err = wsgate.PrepareDev(cfg); err != nil {
					return err
				}
				opts = append(opts, wsgate.WithDev(info))
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
					srv.ReloadFile(file, os.Environ(), info)
				}
			}()
			return srv.ListenAndServe(cmd.Context(), func(l wsgate.Listening) {
				if info != nil {
					if err := wsgate.PrintDevBanner(cmd.OutOrStdout(), cfg, info, l); err != nil {
						fmt.Fprintln(os.Stderr, "wsgate: banner:", err)
					}
				}
			})
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "config", "c", "", "YAML configuration file")
	f.StringVar(&listen, "listen", "", "WebSocket listen address (127.0.0.1:0 picks a free port)")
	f.StringVar(&adminListen, "admin-listen", "", "admin listen address (\"\" disables)")
	f.StringVar(&logLevel, "log-level", "", "debug, info, warn or error")
	f.BoolVar(&dev, "dev", false, "development mode: random key, self-signed certificate, loopback only")
	return cmd
}

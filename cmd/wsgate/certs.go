package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/internal/tools/certgen"
)

func certsCmd() *cobra.Command {
	var (
		dir, client string
		hosts       []string
		days        int
		force       bool
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Create a local CA, a server certificate and a client certificate (no openssl needed)",
		Long: `Create a local certificate authority and certificates issued by it, in --dir:

  ca.pem, ca-key.pem           the CA (clients trust ca.pem; tls.client_ca_file for mTLS)
  server.pem, server-key.pem   tls.cert_file / tls.key_file, valid for every --host
  client.pem, client-key.pem   a client certificate for mTLS (subject --client)

Keys are written 0600. Existing files are kept unless --force. A local CA suits
development, staging and private networks; a public endpoint wants a certificate
from a public CA.`,
		Example: `  wsgate certs --dir examples/certs
  wsgate certs --dir /etc/wsgate/tls --host ws.internal --host 10.0.0.5 --client svc-a`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if days < 1 || days > 3650 {
				return fmt.Errorf("--days must be between 1 and 3650, got %d", days)
			}
			if len(hosts) == 0 {
				return errors.New("--host: give at least one DNS name or IP address")
			}
			names := []string{"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem", "client-key.pem"}
			if !force {
				for _, n := range names {
					if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
						return fmt.Errorf("%s exists: keeping it (use --force to replace every certificate in %s)", filepath.Join(dir, n), dir)
					} else if !errors.Is(err, os.ErrNotExist) {
						return err
					}
				}
			}
			validity := time.Duration(days) * 24 * time.Hour
			ca, err := certgen.NewCA("wsgate local CA", validity)
			if err != nil {
				return err
			}
			caKey, err := ca.KeyPEM()
			if err != nil {
				return err
			}
			server, err := ca.Issue(hosts[0], hosts, false, validity)
			if err != nil {
				return err
			}
			cl, err := ca.Issue(client, []string{client}, true, validity)
			if err != nil {
				return err
			}
			p := func(n string) string { return filepath.Join(dir, n) }
			if err := (certgen.Pair{CertPEM: ca.PEM, KeyPEM: caKey}).Write(p("ca.pem"), p("ca-key.pem")); err != nil {
				return err
			}
			if err := server.Write(p("server.pem"), p("server-key.pem")); err != nil {
				return err
			}
			if err := cl.Write(p("client.pem"), p("client-key.pem")); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), `wrote %s/{ca,server,client}.pem and their -key.pem files (valid %d days)
server certificate for: %v
  tls.cert_file: %s
  tls.key_file:  %s
  clients trust: %s   (wsgate connect --cacert %s, curl --cacert %s)
  mTLS:          tls.client_ca_file: %s; client: %s + %s
`, dir, days, hosts, p("server.pem"), p("server-key.pem"), p("ca.pem"), p("ca.pem"), p("ca.pem"), p("ca.pem"), p("client.pem"), p("client-key.pem"))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "examples/certs", "directory to write to (created 0700)")
	f.StringSliceVar(&hosts, "host", []string{"localhost", "127.0.0.1", "::1"}, "DNS name or IP the server certificate is for (repeatable)")
	f.StringVar(&client, "client", "client", "subject (CN and SAN) of the client certificate")
	f.IntVar(&days, "days", 365, "validity in days")
	f.BoolVar(&force, "force", false, "replace existing files")
	return cmd
}

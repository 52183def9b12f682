package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/wsgate/wsgate/config"
)

// adminTokenEnv is where `wsgate admin` reads the admin token when --admin-token
// is not given. It is the variable that sets the server's admin.token, so one
// export configures both sides; any other WSGATE_* name would be an unknown
// configuration key for `wsgate serve` started from the same shell.
const adminTokenEnv = config.EnvPrefix + "ADMIN__TOKEN"

type adminClient struct {
	base, token string
	http        *http.Client
}

func adminCmd() *cobra.Command {
	var addr, token, file string
	cl := &adminClient{}
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Talk to a running server's admin API (bans, unban, reload)",
		Long: `Talk to a running server's admin API.

The address comes from --admin, else admin.listen of --config FILE, else
http://127.0.0.1:9090. The token comes from --admin-token, else the
` + adminTokenEnv + ` environment variable (the same variable that sets the
server's admin.token), else admin.token of --config FILE.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			var cfg *config.Config
			if file != "" {
				c, err := config.Load(file, os.Environ())
				if err != nil {
					return err
				}
				cfg = c
			}
			switch {
			case addr != "":
			case cfg != nil && cfg.Admin.Listen != "":
				addr = cfg.Admin.Listen
			default:
				addr = "127.0.0.1:9090"
			}
			if !strings.Contains(addr, "://") {
				addr = "http://" + addr
			}
			if _, err := url.Parse(addr); err != nil {
				return fmt.Errorf("--admin: %w", err)
			}
			switch {
			case token != "":
			case os.Getenv(adminTokenEnv) != "":
				token = os.Getenv(adminTokenEnv)
			case cfg != nil:
				token = cfg.Admin.Token
			}
			if token == "" {
				return fmt.Errorf("no admin token: give --admin-token, set %s, or --config FILE with admin.token", adminTokenEnv)
			}
			cl.base, cl.token = strings.TrimRight(addr, "/"), token
			cl.http = &http.Client{Timeout: 15 * time.Second}
			return nil
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&addr, "admin", "", "admin listener address or URL (default: admin.listen of --config, else 127.0.0.1:9090)")
	pf.StringVar(&token, "admin-token", "", "admin token (default: $"+adminTokenEnv+")")
	pf.StringVarP(&file, "config", "c", "", "configuration file to take admin.listen and admin.token from")

	cmd.AddCommand(&cobra.Command{
		Use:   "bans",
		Short: "List active bans",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var out struct {
				Bans []struct {
					Subject   string     `json:"subject"`
					Until     *time.Time `json:"until"`
					Permanent bool       `json:"permanent"`
					Reason    string     `json:"reason"`
				} `json:"bans"`
			}
			if err := cl.do(cmd.Context(), http.MethodGet, "/api/v1/bans", &out); err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SUBJECT\tUNTIL\tREASON")
			for _, b := range out.Bans {
				until := "permanent"
				if b.Until != nil {
					until = fmt.Sprintf("%s (in %s)", b.Until.UTC().Format(time.RFC3339), time.Until(*b.Until).Round(time.Second))
				}
				fmt.Fprintf(w, "%s\t%s\t%s\n", b.Subject, until, b.Reason)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if len(out.Bans) == 0 {
				fmt.Fprintln(cmd.ErrOrStderr(), "no active bans")
			} else {
				fmt.Fprintln(cmd.ErrOrStderr(), "lift one with: wsgate admin unban SUBJECT")
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:     "unban SUBJECT",
		Short:   "Lift a ban (SUBJECT is ip:ADDRESS or user:ID, as `admin bans` lists them)",
		Example: "  wsgate admin unban ip:127.0.0.1\n  wsgate admin unban user:alice",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			subject := args[0]
			if !strings.Contains(subject, ":") || net.ParseIP(subject) != nil {
				if net.ParseIP(subject) == nil {
					return fmt.Errorf("subject %q: want ip:ADDRESS or user:ID", subject)
				}
				subject = "ip:" + subject // a bare address is what people paste
			}
			var out struct {
				Unbanned string `json:"unbanned"`
			}
			if err := cl.do(cmd.Context(), http.MethodDelete, "/api/v1/bans/"+url.PathEscape(subject), &out); err != nil {
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "unbanned", out.Unbanned)
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "reload",
		Short: "Make the server re-read its configuration file (like SIGHUP)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cl.do(cmd.Context(), http.MethodPost, "/api/v1/reload", nil); err != nil {
				return err
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "reloaded")
			return err
		},
	})
	return cmd
}

// do calls the admin API and decodes a 2xx JSON answer into out; other answers
// become errors carrying the API's own explanation.
func (c *adminClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("admin API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("admin API: read: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error  string `json:"error"`
			Reason string `json:"reason"`
		}
		_ = json.Unmarshal(body, &e)
		msg := strings.TrimSpace(e.Error + " " + e.Reason)
		if msg == "" {
			msg = strings.TrimSpace(string(body))
		}
		if resp.StatusCode == http.StatusUnauthorized {
			msg += " (check --admin-token / $" + adminTokenEnv + ")"
		}
		return fmt.Errorf("admin API %s %s: %s: %s", method, path, resp.Status, msg)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(body, out); err != nil {
		return errors.Join(fmt.Errorf("admin API %s: unexpected answer", path), err)
	}
	return nil
}

package wsgate

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/auth"
	"github.com/wsgate/wsgate/internal/demo"
	"github.com/wsgate/wsgate/internal/listener"
)

// DevInfo is what `wsgate serve --dev` generated: everything is random per start
// and printed once in the banner.
type DevInfo struct {
	Secret      string // the HMAC secret, exactly as auth.keys[].secret takes it
	Certificate *tls.Certificate
	CertFile    string // PEM of the self-signed certificate, for clients to trust
	AdminToken  string
	PublishKey  string
}

// PrepareDev turns cfg into a development configuration: a random HMAC key, a
// self-signed localhost certificate, loopback-only listeners, random admin and
// publish keys. It never loosens anything that was not already unset.
func PrepareDev(cfg *config.Config) (*DevInfo, error) {
	cfg.Dev = true
	info := &DevInfo{Secret: auth.NewSecret(), AdminToken: randomToken(), PublishKey: randomToken()}
	cfg.Auth.Keys = append([]config.Key{{ID: "dev", Algorithms: []string{"HS256"}, Secret: info.Secret}}, cfg.Auth.Keys...)
	if cfg.Admin.Token == "" {
		cfg.Admin.Token = info.AdminToken
	} else {
		info.AdminToken = cfg.Admin.Token
	}
	cfg.Channels.PublishAPIKeys = append(cfg.Channels.PublishAPIKeys, info.PublishKey)
	addDevGame(cfg)
	// Development mode is loopback only, whatever the file says.
	for _, addr := range []*string{&cfg.Listen, &cfg.Admin.Listen} {
		if *addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(*addr)
		if err != nil {
			return nil, fmt.Errorf("dev: %q: %w", *addr, err)
		}
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			*addr = net.JoinHostPort("127.0.0.1", port)
		}
	}
	if !cfg.InsecurePlaintext && cfg.TLS.CertFile == "" {
		cert, pemBytes, err := listener.DevCertificate()
		if err != nil {
			return nil, err
		}
		info.Certificate = cert
		cfg.TLS.Certificate = cert
		f, err := os.CreateTemp("", "wsgate-dev-*.pem")
		if err != nil {
			return nil, fmt.Errorf("dev: write certificate: %w", err)
		}
		_, werr := f.Write(pemBytes)
		cerr := f.Close()
		if werr != nil || cerr != nil {
			return nil, fmt.Errorf("dev: write certificate: %v %v", werr, cerr)
		}
		info.CertFile = filepath.Clean(f.Name())
	}
	return info, nil
}

// addDevGame adds the tic-tac-toe demo's namespace (ttt) and move schema
// unless the configuration has its own: moves are client publishes under a
// per-game rate limit, refereed by an in-process publish hook (devGameHook).
func addDevGame(cfg *config.Config) {
	if _, ok := cfg.Channels.Namespaces[demo.GameNamespace]; ok {
		return
	}
	if cfg.Channels.Namespaces == nil {
		cfg.Channels.Namespaces = map[string]config.Namespace{}
	}
	if cfg.Schemas.Inline == nil {
		cfg.Schemas.Inline = map[string]string{}
	}
	if _, ok := cfg.Schemas.Inline[demo.MoveSchema]; !ok {
		cfg.Schemas.Inline[demo.MoveSchema] = demo.MoveSchemaJSON
	}
	cfg.Channels.Namespaces[demo.GameNamespace] = config.Namespace{ClientPublish: true, Limits: config.RoomLimits{
		MemberPublishRate: config.RateLimit{Rate: 1, Burst: 3}, // a person clicks; a bot bursts
		PublishRate:       config.RateLimit{Rate: 4, Burst: 8},
		MaxMessageBytes:   64,
		Schema:            demo.MoveSchema,
	}}
}

// WithDev tells New about PrepareDev's results (the dev page and token endpoint).
func WithDev(info *DevInfo) Option {
	return func(o *options) { o.dev = info }
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// PrintDevBanner writes the development banner: URL, secret, a sample token and a
// command to connect. It is loud on purpose: none of this is for production.
func PrintDevBanner(w io.Writer, cfg *config.Config, info *DevInfo, l Listening) error {
	secret, err := auth.ParseSecret(info.Secret)
	if err != nil {
		return err
	}
	tok, err := auth.NewHMACSigner(secret, "dev").Mint("dev-user", time.Hour, map[string]any{
		"channels": map[string]any{"sub": []string{"chat:*"}, "pub": []string{"chat:*"}},
	})
	if err != nil {
		return err
	}
	scheme, hscheme := "wss", "https"
	if !l.TLS {
		scheme, hscheme = "ws", "http"
	}
	url := fmt.Sprintf("%s://%s%s", scheme, l.Addr, cfg.Path)
	ca := ""
	if info.CertFile != "" {
		ca = " --cacert " + info.CertFile
	}
	_, err = fmt.Fprintf(w, `
==================== wsgate DEVELOPMENT MODE — NOT FOR PRODUCTION ====================
WebSocket URL:   %s
Demo page:       %s://%s/
Admin listener:  http://%s  (admin token: %s)
Dev HMAC secret: %s
                 (for auth.keys[].secret with algorithms [HS256], or wsgate token --secret)
Sample token (sub=dev-user, 1h):
%s

Connect:
  wsgate connect %s --token '%s'%s
Mint another:
  wsgate token --secret '%s' --sub alice --ttl 15m
=======================================================================================
`, url, hscheme, l.Addr, l.AdminAddr, info.AdminToken, info.Secret, tok, url, tok, ca, info.Secret)
	return err
}

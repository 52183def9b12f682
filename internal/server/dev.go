package server

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/tools/certgen"
	"github.com/wsgate/wsgate/internal/tools/demo"
)

// DevInfo is what `wsgate serve --dev` generated: the keys are random per start
// and printed once in the banner; the certificate is reused from a cache directory.
type DevInfo struct {
	Secret      string // the HMAC secret, exactly as auth.keys[].secret takes it
	Certificate *tls.Certificate
	CertFile    string // PEM of the self-signed certificate, for clients to trust
	AdminToken  string
	PublishKey  string
	// PageSecret guards the demo page's token endpoint (POST /dev/token): the
	// banner prints the page URL carrying it in the fragment.
	PageSecret string
	// Command is how the banner spells the wsgate command so that what it prints
	// works as pasted ("wsgate", a path, or "go run ./cmd/wsgate"); empty means
	// "wsgate".
	Command string
}

// PrepareDev turns cfg into a development configuration: a random HMAC key, a
// self-signed localhost certificate (cached, see devCertDir), loopback-only
// listeners, random admin and publish keys. It never loosens anything that was
// not already unset.
func PrepareDev(cfg *config.Config) (*DevInfo, error) {
	cfg.Dev = true
	info := &DevInfo{Secret: auth.NewSecret(), AdminToken: randomToken(), PublishKey: randomToken(), PageSecret: randomToken()}
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
		cert, file, err := certgen.DevCertificate(devCertDir())
		if err != nil {
			// A read-only home (CI, containers) must not stop a dev server: fall
			// back to a per-user directory under the temporary directory.
			var err2 error
			if cert, file, err2 = certgen.DevCertificate(tempCertDir()); err2 != nil {
				return nil, fmt.Errorf("dev: certificate: %w", errors.Join(err, err2))
			}
		}
		info.Certificate = cert
		cfg.TLS.Certificate = cert
		info.CertFile = file
	}
	return info, nil
}

// devCertDir is where --dev keeps its certificate: the user cache directory
// (os.UserCacheDir, e.g. ~/.cache/wsgate), or a per-user directory in the
// temporary directory when there is none.
func devCertDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "wsgate")
	}
	return tempCertDir()
}

func tempCertDir() string { return filepath.Join(os.TempDir(), "wsgate-"+strconv.Itoa(os.Getuid())) }

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

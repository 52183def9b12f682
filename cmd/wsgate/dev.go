package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/wsgate/wsgate"
	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/server"
	"github.com/wsgate/wsgate/internal/tools/demo"
)

// devCommand guesses how the user ran this binary, so the banner's commands work
// as pasted: "wsgate" when the running binary is the one on PATH, "go run
// ./cmd/wsgate" when it was built by go run (a go-build temporary directory), and
// the absolute path otherwise.
func devCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "wsgate"
	}
	if strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/wsgate"
	}
	if p, err := exec.LookPath("wsgate"); err == nil {
		if a, err := filepath.Abs(p); err == nil && sameFile(a, exe) {
			return "wsgate"
		}
	}
	return exe
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// printDevBanner writes the development banner: URL, secret, a sample token and
// commands that work as pasted. It is loud on purpose: none of this is for
// production.
func printDevBanner(w io.Writer, cfg *config.Config, info *server.DevInfo, l wsgate.Listening) error {
	secret, err := auth.ParseSecret(info.Secret)
	if err != nil {
		return err
	}
	claims := demo.Claims()
	tok, err := auth.NewHMACSigner(secret, "dev").Mint("dev-user", time.Hour, claims)
	if err != nil {
		return err
	}
	claimJSON, err := json.Marshal(claims["channels"])
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
		ca = " --cacert " + shellQuote(info.CertFile)
	}
	bin := info.Command
	if bin == "" {
		bin = "wsgate"
	}
	admin := "off"
	adminCmd := ""
	if l.AdminAddr != "" {
		admin = fmt.Sprintf("http://%s  (admin token: %s)", l.AdminAddr, info.AdminToken)
		adminCmd = fmt.Sprintf("Bans (none are placed for loopback clients under --dev):\n  %s admin bans --admin http://%s --admin-token '%s'\n", bin, l.AdminAddr, info.AdminToken)
	}
	_, err = fmt.Fprintf(w, `
==================== wsgate DEVELOPMENT MODE — NOT FOR PRODUCTION ====================
WebSocket URL:   %s
Demo page:       %s://%s/#dev=%s
Game demo:       %s://%s/game#dev=%s  (two browsers, one game id: anti-cheat hook)
                 (the #dev= part is this start's secret for the demo's token endpoint)
Admin listener:  %s
Dev HMAC secret: %s
                 (for auth.keys[].secret with algorithms [HS256], or wsgate token --secret)
Certificate:     %s  (reused across starts)
Abuse:           strikes never ban loopback clients in --dev; limits still apply
Sample token (sub=dev-user, 1h):
%s

Connect:
  %s connect %s --token '%s'%s
Mint another (same channel rights as the sample):
  %s token --secret '%s' --sub alice --ttl 15m --kid dev --claim 'channels=%s'
%s=======================================================================================
`, url, hscheme, l.Addr, info.PageSecret, hscheme, l.Addr, info.PageSecret, admin, info.Secret, orNone(info.CertFile), tok,
		bin, url, tok, ca, bin, info.Secret, claimJSON, adminCmd)
	return err
}

func orNone(s string) string {
	if s == "" {
		return "none (plaintext)"
	}
	return s
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

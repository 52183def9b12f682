package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/wsgate/wsgate/config"
	"github.com/wsgate/wsgate/internal/edge/listener"
)

// Listening reports where a server listens, once ListenAndServe has bound its sockets.
type Listening struct {
	Addr      string // the WebSocket listener, e.g. "127.0.0.1:8443"
	AdminAddr string // "" when the admin listener is off
	TLS       bool
}

// ListenAndServe binds the configured listeners (TLS, mTLS and handshake limits
// applied), calls ready with the bound addresses, serves until ctx is done, then
// shuts down gracefully within timeouts.drain.
func (s *Server) ListenAndServe(ctx context.Context, ready func(Listening)) error {
	cfg := s.config()
	tlsCfg, err := s.tlsConfig(cfg)
	if err != nil {
		return err
	}
	c := cfg.Limits.Connections
	pending := &listener.Pending{PerIP: c.PendingPerIP, Total: c.PendingTotal, Trusted: cfg.ParseTrustedProxies(),
		Key: ipPrefixes(cfg).Key, Log: s.log}
	ln, err := listener.Listen(cfg.Listen, tlsCfg, pending)
	if err != nil {
		return err
	}
	srv := listener.HTTPServer(s, listener.ServerOptions{
		ReadHeaderTimeout: cfg.Timeouts.ReadHeader, HandshakeTimeout: cfg.Timeouts.Handshake,
		MaxHeaderBytes: cfg.Limits.MaxHeaderBytes, Log: s.log, Pending: pending,
	})
	info := Listening{Addr: ln.Addr().String(), TLS: tlsCfg != nil}
	var adminSrv *http.Server
	var adminLn net.Listener
	if cfg.Admin.Listen != "" {
		adminLn, err = listener.Listen(cfg.Admin.Listen, nil, nil)
		if err != nil {
			_ = ln.Close()
			return err
		}
		adminSrv = listener.HTTPServer(s.AdminHandler(), listener.ServerOptions{
			ReadHeaderTimeout: cfg.Timeouts.ReadHeader, HandshakeTimeout: 0, MaxHeaderBytes: 16 << 10, Log: s.log,
		})
		info.AdminAddr = adminLn.Addr().String()
	}
	if cfg.InsecurePlaintext {
		s.log.Warn("INSECURE: serving plaintext ws:// (insecure_plaintext: true); only run this behind a TLS-terminating proxy")
	}
	if cfg.Auth.AllowQueryToken {
		s.log.Warn("INSECURE: tokens accepted in the query string (auth.allow_query_token: true); URLs end up in logs and browser history")
	}
	if cfg.Rate.FailOpen {
		s.log.Warn("rate limits fail open when their store cannot answer (rate.fail_open: true)")
	}
	s.log.Info("listening", "addr", info.Addr, "tls", info.TLS, "admin", info.AdminAddr, "path", cfg.Path)
	if ready != nil {
		ready(info)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if adminSrv != nil {
		go func() { errc <- adminSrv.Serve(adminLn) }()
	}
	var serveErr error
	why := "signal"
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		why = "listener failed"
	}
	started := time.Now()
	s.log.Info("shutting down: closing listeners, then draining connections with 1001",
		"reason", why, "connections", s.registry.Len(), "drain_timeout", cfg.Timeouts.Drain.String())
	// Stop accepting first, then drain hijacked WebSocket connections, which
	// http.Server.Shutdown does not track.
	dctx, cancel := context.WithTimeout(context.Background(), cfg.Timeouts.Drain)
	defer cancel()
	s.draining.Store(true)
	_ = ln.Close()
	shutErr := s.Shutdown(dctx)
	_ = srv.Shutdown(dctx)
	if adminSrv != nil {
		_ = adminSrv.Shutdown(dctx)
	}
	if shutErr != nil {
		// Clients that ignore the 1001 are dropped when the drain time is over; that
		// is the drain policy doing its job, not a failure of the process.
		s.log.Warn("graceful shutdown dropped connections", "err", shutErr)
	}
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) && !errors.Is(serveErr, net.ErrClosed) {
		s.log.Error("stopped", "err", serveErr, "took", time.Since(started).Round(time.Millisecond).String())
		return fmt.Errorf("serve: %w", serveErr)
	}
	s.log.Info("stopped", "took", time.Since(started).Round(time.Millisecond).String())
	return nil
}

func (s *Server) tlsConfig(cfg *config.Config) (*tls.Config, error) {
	if cfg.InsecurePlaintext {
		return nil, nil
	}
	o := listener.TLSOptions{
		CertFile: cfg.TLS.CertFile, KeyFile: cfg.TLS.KeyFile, MinVersion13: cfg.TLS.MinVersion == "1.3",
		ClientCAFile: cfg.TLS.ClientCAFile, ClientAuth: cfg.TLS.ClientAuth,
	}
	if cfg.TLS.CertFile == "" {
		o.Certificate = cfg.TLS.Certificate
	}
	return listener.TLSConfig(o)
}

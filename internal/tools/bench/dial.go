package bench

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/wsgate/wsgate/internal/conn/transport"
	"github.com/wsgate/wsgate/internal/edge/auth"
	"github.com/wsgate/wsgate/internal/tools/certgen"
)

// connsPerSource keeps each 127.0.0.x source well inside the ~28,000
// ephemeral ports Linux hands out per source address by default.
const connsPerSource = 16000

// dialer opens authenticated connections, spreading them over source addresses.
type dialer struct {
	o       Options
	tls     *tls.Config
	signer  *auth.Signer
	sources []net.IP // nil: let the kernel choose
	next    atomic.Uint64
	http    *http.Client // ticket endpoint (Sign only)
}

func newDialer(o Options) (*dialer, error) {
	d := &dialer{o: o}
	if o.Secret != "" {
		secret, err := auth.ParseSecret(o.Secret)
		if err != nil {
			return nil, fmt.Errorf("--secret: %w", err)
		}
		d.signer = auth.NewHMACSigner(secret, o.KeyID)
		if _, err := d.signer.Mint("probe", time.Minute, nil); err != nil {
			return nil, fmt.Errorf("--secret: %w", err)
		}
	}
	switch {
	case o.CACertFile != "":
		pool, err := certgen.LoadPool(o.CACertFile)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		d.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	case o.InsecureSkipVerify:
		d.tls = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // named as such, opt-in
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if o.Sign != "" {
		d.http = d.newHTTPClient()
	}
	n := sourceCount(o)
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.To4() != nil && ip.IsLoopback() && n > 1 {
		for i := o.SourceOffset + 1; i <= o.SourceOffset+n && i <= maxSources; i++ {
			d.sources = append(d.sources, net.IPv4(127, 0, 0, byte(i)))
		}
	}
	return d, nil
}

// sourceCount is how many source addresses a process with these options uses.
func sourceCount(o Options) int {
	switch {
	case o.Sources > 0:
		return o.Sources
	case o.Mode == Handshake:
		return 8
	}
	return max(1, (o.Conns+connsPerSource-1)/connsPerSource)
}

// target is the endpoint index of connection n (round robin over URL and
// Nodes, continued across child processes through SubjectOffset).
func (d *dialer) target(n int) int {
	return (d.o.SubjectOffset + n) % (1 + len(d.o.Nodes))
}

func (d *dialer) url(n int) string {
	if i := d.target(n); i > 0 {
		return d.o.Nodes[i-1]
	}
	return d.o.URL
}

func (d *dialer) subject(n int) string { return d.o.SubjectPrefix + strconv.Itoa(d.o.SubjectOffset+n) }

// token is the bearer token of connection n ("" for none).
func (d *dialer) token(n int) (string, error) {
	if d.signer == nil {
		return d.o.Token, nil
	}
	return d.signer.Mint(d.subject(n), time.Hour, d.o.Claims)
}

// header returns the upgrade headers for subject number n.
func (d *dialer) header(n int) (http.Header, error) {
	h := http.Header{}
	tok, err := d.token(n)
	if err != nil {
		return nil, err
	}
	if tok != "" {
		h.Set("Authorization", "Bearer "+tok)
	}
	if d.o.Origin != "" {
		h.Set("Origin", d.o.Origin)
	}
	return h, nil
}

func (d *dialer) netDial(ctx context.Context, network, addr string) (net.Conn, error) {
	if len(d.sources) == 0 {
		var nd net.Dialer
		return nd.DialContext(ctx, network, addr)
	}
	var last error
	for range len(d.sources) {
		src := d.sources[d.next.Add(1)%uint64(len(d.sources))]
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
		c, err := nd.DialContext(ctx, network, addr)
		if err == nil || !errors.Is(err, syscall.EADDRNOTAVAIL) {
			return c, err
		}
		last = err // this source is out of ports: try the next one
	}
	return nil, last
}

// dial opens connection number n with handler h; it does not start Serve.
func (d *dialer) dial(ctx context.Context, n int, h transport.Handler) (*transport.Conn, error) {
	hdr, err := d.header(n)
	if err != nil {
		return nil, err
	}
	do := &transport.DialOptions{
		Header: hdr, TLSConfig: d.tls, Subprotocols: d.o.Subprotocols,
		HandshakeTimeout: d.o.Timeout + 5*time.Second, NetDial: d.netDial,
	}
	do.Options.MaxMessageBytes = 1 << 20
	do.Options.AllowBinary = true
	do.Options.CloseTimeout = 2 * time.Second
	c, resp, err := transport.Dial(ctx, d.url(n), do, h)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, &statusError{code: resp.StatusCode}
		}
		return nil, err
	}
	return c, nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "handshake refused: HTTP " + strconv.Itoa(e.code) }

// errorKind names an error in a small, fixed vocabulary (the result keeps
// per-kind counts, which must stay bounded).
func errorKind(err error) string {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return "http " + strconv.Itoa(se.code)
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "too many open files"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no free source port"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, errNoWelcome):
		return "no welcome"
	case errors.Is(err, errSubscribe):
		return "subscribe refused"
	case errors.Is(err, errClosed):
		return "closed by server"
	case errors.Is(err, errNoKey), errors.Is(err, errNoConnID):
		return "no integrity key"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return "other"
}

var (
	errNoWelcome = errors.New("no first message from the server")
	errSubscribe = errors.New("subscribe not acknowledged")
	errClosed    = errors.New("connection closed by the server")
)

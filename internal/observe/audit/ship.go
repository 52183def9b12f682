package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/observe/offer"
)

// CheckpointInfo is a checkpoint as shipped off the host: enough to pin the
// chain head (seq and hash) and to check the signature later.
type CheckpointInfo struct {
	TS    string `json:"ts"`   // the checkpoint record's ts (part of what is signed)
	Seq   uint64 `json:"seq"`  // seq of the record signed for
	Hash  string `json:"hash"` // its SHA-256, lowercase hex
	KeyID string `json:"key_id"`
	Sig   string `json:"sig"`  // base64 Ed25519 signature of CheckpointMessage(Seq, Hash, TS)
	File  string `json:"file"` // base name of the file the checkpoint is in
}

// Shipper defaults.
const (
	DefaultShipQueue        = 256
	DefaultShipTimeout      = 5 * time.Second
	DefaultShipRetries      = 3
	DefaultShipDrainTimeout = 10 * time.Second
)

// ShipOptions configures a Shipper; at least one destination must be set.
type ShipOptions struct {
	// Webhook receives each checkpoint as a JSON POST (CheckpointInfo);
	// http:// or https://. 2xx is delivered; 5xx, 408, 429 and network
	// errors are retried with backoff; other statuses are failures.
	Webhook string
	// Syslog is "udp://host:port", "tcp://host:port" or "unix:///dev/log";
	// each checkpoint is one line at LOG_AUTH|LOG_NOTICE, tag "wsgate-audit".
	Syslog       string
	QueueSize    int           // checkpoints waiting; beyond it they are dropped and counted
	Timeout      time.Duration // per webhook attempt / syslog write
	Retries      int           // webhook retries after the first attempt; negative: none
	Backoff      time.Duration // first retry wait, doubled each time; default 500ms
	DrainTimeout time.Duration // how long Close keeps delivering what is queued
	Client       *http.Client  // default: no redirects followed
}

// ShipStats counts deliveries (one per destination and checkpoint).
type ShipStats struct {
	Delivered, Failed, Dropped uint64
}

// Shipper sends checkpoints to a webhook and/or syslog from a bounded queue
// drained by one goroutine it owns. Send never blocks.
type Shipper struct {
	o       ShipOptions
	network string
	addr    string
	ch      chan CheckpointInfo
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.RWMutex // Send holds it shared, Close exclusively: no send on a closed ch
	closed  bool
	once    sync.Once
	conn    net.Conn // syslog connection, owned by run
	host    string

	delivered, failed, dropped atomic.Uint64
}

// NewShipper validates o and starts the delivery goroutine.
func NewShipper(o ShipOptions) (*Shipper, error) {
	if o.Webhook == "" && o.Syslog == "" {
		return nil, errors.New("audit: shipper: no destination")
	}
	s := &Shipper{o: o}
	if o.Webhook != "" {
		u, err := url.Parse(o.Webhook)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, errors.New("audit: ship_webhook must be http(s)://host/…")
		}
	}
	if o.Syslog != "" {
		u, err := url.Parse(o.Syslog)
		if err != nil {
			return nil, fmt.Errorf("audit: ship_syslog: %w", err)
		}
		switch {
		case (u.Scheme == "udp" || u.Scheme == "tcp") && u.Host != "":
			s.network, s.addr = u.Scheme, u.Host
		case u.Scheme == "unix" && u.Path != "":
			s.network, s.addr = "unixgram", u.Path
		default:
			return nil, fmt.Errorf("audit: ship_syslog must be udp://host:port, tcp://host:port or unix:///path, got %q", o.Syslog)
		}
	}
	s.host, _ = os.Hostname()
	if s.host == "" {
		s.host = "-"
	}
	defaults.Positive(&s.o.QueueSize, DefaultShipQueue)
	defaults.Positive(&s.o.Timeout, DefaultShipTimeout)
	switch {
	case s.o.Retries == 0:
		s.o.Retries = DefaultShipRetries
	case s.o.Retries < 0:
		s.o.Retries = 0
	}
	defaults.Positive(&s.o.Backoff, 500*time.Millisecond)
	defaults.Positive(&s.o.DrainTimeout, DefaultShipDrainTimeout)
	if s.o.Client == nil {
		s.o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	s.ch = make(chan CheckpointInfo, s.o.QueueSize)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.done = make(chan struct{})
	go s.run()
	return s, nil
}

// Send queues c, or drops and counts it when the queue is full or closed.
// It is meant as Options.OnCheckpoint.
func (s *Shipper) Send(c CheckpointInfo) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	offer.Send(s.ch, c, s.closed, &s.dropped) // Close closes s.ch under s.mu
}

// Stats returns the delivery counters.
func (s *Shipper) Stats() ShipStats {
	return ShipStats{Delivered: s.delivered.Load(), Failed: s.failed.Load(), Dropped: s.dropped.Load()}
}

// Close stops accepting checkpoints, keeps delivering the queued ones for up
// to DrainTimeout (the last checkpoint, written on shutdown, matters most),
// then abandons the rest (counted as dropped). Close the audit Logger first.
// Safe to call twice.
func (s *Shipper) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.ch)
		s.mu.Unlock()
		t := time.NewTimer(s.o.DrainTimeout)
		defer t.Stop()
		select {
		case <-s.done:
		case <-t.C:
			s.cancel()
			<-s.done
		}
		s.cancel()
	})
	return nil
}

func (s *Shipper) run() {
	defer close(s.done)
	defer func() {
		if s.conn != nil {
			_ = s.conn.Close()
		}
	}()
	for c := range s.ch {
		if s.ctx.Err() != nil {
			s.dropped.Add(1)
			continue
		}
		if s.o.Webhook != "" {
			s.count(s.webhook(c))
		}
		if s.network != "" {
			s.count(s.syslog(c))
		}
	}
}

func (s *Shipper) count(err error) {
	if err != nil {
		s.failed.Add(1)
		return
	}
	s.delivered.Add(1)
}

var errPermanent = errors.New("permanent")

func (s *Shipper) webhook(c CheckpointInfo) error {
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("audit: ship: encode: %w", err)
	}
	wait := s.o.Backoff
	var last error
	for attempt := 0; attempt <= s.o.Retries; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(wait)
			select {
			case <-s.ctx.Done():
				t.Stop()
				return s.ctx.Err()
			case <-t.C:
			}
			wait *= 2
		}
		if last = s.post(body); last == nil || errors.Is(last, errPermanent) || s.ctx.Err() != nil {
			return last
		}
	}
	return last
}

func (s *Shipper) post(body []byte) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.o.Webhook, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("audit: ship: %w: %w", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wsgate-audit")
	resp, err := s.o.Client.Do(req)
	if err != nil {
		return fmt.Errorf("audit: ship: post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return fmt.Errorf("audit: ship: webhook answered %d", resp.StatusCode)
	}
	return fmt.Errorf("audit: ship: %w: webhook answered %d", errPermanent, resp.StatusCode)
}

// syslogPri is LOG_AUTH|LOG_NOTICE (4<<3 | 5).
const syslogPri = 37

// syslog writes one RFC 5424 line, dialling (again) when needed, every step
// bounded by Timeout; one retry after a failed write covers a restarted
// syslog daemon.
func (s *Shipper) syslog(c CheckpointInfo) error {
	msg := fmt.Sprintf("<%d>1 %s %s wsgate-audit %d checkpoint - seq=%d hash=%s key_id=%s ts=%s file=%s sig=%s\n",
		syslogPri, time.Now().UTC().Format(time.RFC3339Nano), s.host, os.Getpid(), c.Seq, c.Hash, c.KeyID, c.TS, c.File, c.Sig)
	var err error
	for range 2 {
		if s.conn == nil {
			d := net.Dialer{Timeout: s.o.Timeout}
			if s.conn, err = d.DialContext(s.ctx, s.network, s.addr); err != nil {
				s.conn = nil
				return fmt.Errorf("audit: ship: syslog dial: %w", err)
			}
		}
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.o.Timeout))
		if _, err = io.WriteString(s.conn, msg); err == nil {
			return nil
		}
		_ = s.conn.Close()
		s.conn = nil
	}
	return fmt.Errorf("audit: ship: syslog write: %w", err)
}

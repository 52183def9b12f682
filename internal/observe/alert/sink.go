package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/observe/offer"
)

// LogSink writes every alert to l at Warn level.
func LogSink(l *slog.Logger) Sink {
	return SinkFunc(func(a Alert) {
		top := make([]any, 0, len(a.TopIPs))
		for _, t := range a.TopIPs {
			top = append(top, t.IP+"="+fmt.Sprint(t.Count))
		}
		l.Warn("alert fired", "id", a.ID, "rule", a.Rule, "event", a.Event, "count", a.Count,
			"threshold", a.Threshold, "window", a.Window, "ip", a.IP, "top_ips", top, "auto_ban", a.AutoBan)
	})
}

// Webhook defaults.
const (
	DefaultWebhookTimeout    = 5 * time.Second
	DefaultWebhookRetries    = 3
	DefaultWebhookBackoff    = 500 * time.Millisecond
	DefaultWebhookMaxBackoff = 30 * time.Second
	DefaultWebhookQueue      = 100
)

// WebhookOptions tunes a Webhook.
type WebhookOptions struct {
	Timeout    time.Duration // per attempt; default 5s
	MaxRetries int           // retries after the first attempt; default 3, negative = none
	Backoff    time.Duration // wait before the first retry, doubled each time; default 500ms
	MaxBackoff time.Duration // cap on the wait; default 30s
	QueueSize  int           // alerts waiting for delivery; default 100, beyond it they are dropped
	// Headers are added to every request (e.g. an Authorization for the
	// receiver). Register their values with the redactor: they are secrets.
	Headers map[string]string
	// Client sends the requests; default a client with no redirects followed.
	Client *http.Client
}

// WebhookStats counts deliveries.
type WebhookStats struct {
	Delivered uint64 // accepted by the receiver (2xx)
	Failed    uint64 // given up after the retries or refused with a 4xx
	Dropped   uint64 // lost to a full queue or to Close
	Attempts  uint64 // HTTP requests made
}

// Webhook POSTs each alert as JSON to a URL, from a bounded queue drained
// by one goroutine it owns; Close stops it.
type Webhook struct {
	url    string
	opts   WebhookOptions
	ch     chan Alert
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	closed atomic.Bool
	once   sync.Once

	delivered, failed, dropped, attempts atomic.Uint64

	// sleep waits between attempts; tests replace it to observe the backoff.
	sleep func(ctx context.Context, d time.Duration) error
}

// errPermanent marks a response that retrying cannot fix.
var errPermanent = errors.New("alert: webhook refused the alert")

// WebhookSink starts a webhook sink for rawURL (http or https).
func WebhookSink(rawURL string, opts WebhookOptions) (*Webhook, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("alert: webhook url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alert: webhook url must be http(s)://host/..., got scheme %q", u.Scheme)
	}
	defaults.Positive(&opts.Timeout, DefaultWebhookTimeout)
	if opts.MaxRetries == 0 {
		opts.MaxRetries = DefaultWebhookRetries
	} else if opts.MaxRetries < 0 {
		opts.MaxRetries = 0
	}
	defaults.Positive(&opts.Backoff, DefaultWebhookBackoff)
	defaults.Positive(&opts.MaxBackoff, DefaultWebhookMaxBackoff)
	defaults.Positive(&opts.QueueSize, DefaultWebhookQueue)
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Webhook{url: rawURL, opts: opts, ch: make(chan Alert, opts.QueueSize), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), sleep: sleepCtx}
	go w.run()
	return w, nil
}

// Send queues a for delivery, or drops and counts it if the queue is full.
func (w *Webhook) Send(a Alert) { offer.Send(w.ch, a, w.closed.Load(), &w.dropped) }

// Stats returns the delivery counters.
func (w *Webhook) Stats() WebhookStats {
	return WebhookStats{Delivered: w.delivered.Load(), Failed: w.failed.Load(), Dropped: w.dropped.Load(), Attempts: w.attempts.Load()}
}

// Close abandons any delivery in progress and queued alerts (counted as
// dropped) and waits for the goroutine to end. Safe to call twice.
func (w *Webhook) Close() error {
	w.once.Do(func() {
		w.closed.Store(true)
		w.cancel()
		<-w.done
		w.dropped.Add(uint64(len(w.ch)))
	})
	return nil
}

func (w *Webhook) run() {
	defer close(w.done)
	for {
		select {
		case <-w.ctx.Done():
			return
		case a := <-w.ch:
			if err := w.deliver(w.ctx, a); err != nil {
				if w.ctx.Err() != nil {
					w.dropped.Add(1)
					return
				}
				w.failed.Add(1)
			} else {
				w.delivered.Add(1)
			}
		}
	}
}

func (w *Webhook) deliver(ctx context.Context, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("alert: encode %s: %w", a.ID, err)
	}
	backoff := w.opts.Backoff
	var last error
	for attempt := 0; attempt <= w.opts.MaxRetries; attempt++ {
		if attempt > 0 {
			if err := w.sleep(ctx, backoff); err != nil {
				return fmt.Errorf("alert: webhook retry wait: %w", err)
			}
			backoff = min(backoff*2, w.opts.MaxBackoff)
		}
		last = w.post(ctx, body)
		if last == nil || errors.Is(last, errPermanent) || ctx.Err() != nil {
			return last
		}
	}
	return last
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	w.attempts.Add(1)
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alert: webhook request: %w: %w", errPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "wsgate-alert")
	for k, v := range w.opts.Headers {
		req.Header.Set(k, v)
	}
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return fmt.Errorf("alert: webhook post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return fmt.Errorf("alert: webhook answered %d", resp.StatusCode)
	default:
		return fmt.Errorf("%w: status %d", errPermanent, resp.StatusCode)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

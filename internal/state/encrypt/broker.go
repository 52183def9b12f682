package encrypt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/wsgate/wsgate/internal/state/broker"
)

// errNoKeyring means a publication into an encrypted namespace found no keyring:
// refused rather than stored in plaintext.
var errNoKeyring = errors.New("encrypt: namespace is encrypted but no key is configured")

// Policy says which channels are sealed and with which keys. A nil Keyring with
// an empty Namespaces set turns the decorator into a pass-through (still
// opening nothing it cannot).
type Policy struct {
	Keyring *Keyring
	// Namespaces holds the namespaces ("<ns>:…", "" for channels without a
	// colon) whose publications are sealed.
	Namespaces map[string]bool
	// EndToEnd holds the namespaces whose clients seal: payloads must be
	// end-to-end envelopes (CheckEndToEnd); they are stored and relayed as is.
	EndToEnd map[string]bool
	// ClientKeys are encryption.end_to_end_keys: the ticket endpoint hands
	// clients keys derived from them for the end_to_end channels their tokens
	// grant (KeysFor). Nil: the application supplies its clients' keys.
	ClientKeys []Key
}

// KeysFor returns the end-to-end keys for a client whose token grants patterns
// (ClientKeys); nil without client keys or end_to_end namespaces.
func (p *Policy) KeysFor(patterns []string, match func(pattern, s string) bool) ([]DeliveredKey, error) {
	if p == nil || len(p.ClientKeys) == 0 || len(p.EndToEnd) == 0 || len(patterns) == 0 {
		return nil, nil
	}
	ns := make([]string, 0, len(p.EndToEnd))
	for n := range p.EndToEnd {
		ns = append(ns, n)
	}
	return ClientKeys(p.ClientKeys, ns, patterns, match)
}

func namespaceOf(channel string) string {
	ns, _, found := strings.Cut(channel, ":")
	if !found {
		return ""
	}
	return ns
}

// IsEndToEnd reports whether channel is in an end_to_end namespace.
func (p *Policy) IsEndToEnd(channel string) bool {
	return p != nil && len(p.EndToEnd) > 0 && p.EndToEnd[namespaceOf(channel)]
}

// Encrypted reports whether channel is in an encrypted namespace.
func (p *Policy) Encrypted(channel string) bool {
	if p == nil || len(p.Namespaces) == 0 {
		return false
	}
	return p.Namespaces[namespaceOf(channel)]
}

// Broker seals publications of encrypted namespaces on Publish and opens them on
// delivery and in History, around any broker.Broker. The inner broker (and
// whatever it writes to: memory, Redis streams, pub/sub) only ever sees sealed
// envelopes for those channels.
type Broker struct {
	inner  broker.Broker
	policy atomic.Pointer[Policy]
	log    atomic.Pointer[slog.Logger]
	// Dropped counts deliveries refused because they would not open.
	dropped atomic.Int64
}

// NewBroker decorates inner with p.
func NewBroker(inner broker.Broker, p *Policy) *Broker {
	b := &Broker{inner: inner}
	b.SetPolicy(p)
	b.log.Store(slog.New(slog.DiscardHandler))
	return b
}

var _ broker.Broker = (*Broker)(nil)

// SetPolicy swaps the keys and encrypted namespaces (configuration reload).
func (b *Broker) SetPolicy(p *Policy) {
	if p == nil {
		p = &Policy{}
	}
	b.policy.Store(p)
}

// Policy returns the policy in force.
func (b *Broker) Policy() *Policy { return b.policy.Load() }

// SetLogger sets where refused deliveries are reported.
func (b *Broker) SetLogger(l *slog.Logger) {
	if l != nil {
		b.log.Store(l)
	}
}

// Dropped is how many delivered publications were refused because they did not open.
func (b *Broker) Dropped() int64 { return b.dropped.Load() }

// Publish seals data when channel is encrypted, then publishes the envelope.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte, from string, opts broker.PublishOptions) (broker.StreamPosition, error) {
	p := b.policy.Load()
	if p.IsEndToEnd(channel) {
		// Every path into the broker (client publish, the publish API) lands
		// here: nothing but an envelope enters an end_to_end namespace.
		if err := CheckEndToEnd(data); err != nil {
			return broker.StreamPosition{}, fmt.Errorf("publish %q: %w", channel, err)
		}
	} else if p.Encrypted(channel) {
		if p.Keyring == nil {
			return broker.StreamPosition{}, errNoKeyring
		}
		env, _, err := p.Keyring.Seal(channel, data)
		if err != nil {
			return broker.StreamPosition{}, fmt.Errorf("seal %q: %w", channel, err)
		}
		data = env
	}
	return b.inner.Publish(ctx, channel, data, from, opts)
}

// open returns pub with its payload opened, or an error when it must not be
// handed on: a sealed payload that does not open (key removed, tampered, wrong
// channel), or a plaintext payload in an encrypted namespace (which wsgate never
// writes, so someone else did).
func (p *Policy) open(pub broker.Publication) (broker.Publication, error) {
	if !IsSealed(pub.Data) {
		if p.Encrypted(pub.Channel) {
			return pub, fmt.Errorf("%w: plaintext payload in an encrypted namespace", ErrMalformed)
		}
		return pub, nil
	}
	if p.Keyring == nil {
		return pub, fmt.Errorf("%w: no key configured", ErrUnknownKey)
	}
	pt, _, err := p.Keyring.Open(pub.Channel, pub.Data)
	if err != nil {
		return pub, err
	}
	pub.Data = pt
	return pub, nil
}

// History opens every publication. Recovery (since set) must be gap-free, so one
// that does not open fails it with broker.ErrRecoveryFailed (with the current
// position, as the broker contract wants). Without since, the latest
// publications are asked for: those that do not open are treated like expired
// history and only the newest run that opens is returned.
func (b *Broker) History(ctx context.Context, channel string, since *broker.StreamPosition, limit int) ([]broker.Publication, broker.StreamPosition, error) {
	pubs, pos, err := b.inner.History(ctx, channel, since, limit)
	if err != nil || len(pubs) == 0 {
		return pubs, pos, err
	}
	p := b.policy.Load()
	if !p.Encrypted(channel) && !slices.ContainsFunc(pubs, func(pub broker.Publication) bool { return IsSealed(pub.Data) }) {
		return pubs, pos, nil // nothing sealed, nothing that should be: as stored
	}
	out := make([]broker.Publication, len(pubs))
	first := 0
	for i, pub := range pubs {
		o, err := p.open(pub)
		if err != nil {
			if since != nil {
				return nil, pos, fmt.Errorf("%w: %q offset %d: %w", broker.ErrRecoveryFailed, channel, pub.Offset, err)
			}
			first = i + 1
			continue
		}
		out[i] = o
	}
	return out[first:], pos, nil
}

// Run delivers inner's events to h, opening publications; one that does not
// open is dropped and logged (never its bytes): the subscriber sees the offset
// gap and is sent recovery_failed, like any other loss.
func (b *Broker) Run(ctx context.Context, h broker.EventHandler) error {
	return b.inner.Run(ctx, opener{b, h})
}

type opener struct {
	b *Broker
	broker.EventHandler
}

func (o opener) HandlePublication(pub broker.Publication) {
	opened, err := o.b.policy.Load().open(pub)
	if err != nil {
		o.b.dropped.Add(1)
		o.b.log.Load().Warn("dropping publication that does not open", "channel", pub.Channel,
			"epoch", pub.Epoch, "offset", pub.Offset, "err", err)
		return
	}
	o.EventHandler.HandlePublication(opened)
}

// Subscribe, Unsubscribe and presence carry no payload: passed through.

func (b *Broker) Subscribe(ctx context.Context, channel string) error {
	return b.inner.Subscribe(ctx, channel)
}

func (b *Broker) Unsubscribe(ctx context.Context, channel string) error {
	return b.inner.Unsubscribe(ctx, channel)
}

func (b *Broker) AddPresence(ctx context.Context, channel string, info broker.ClientInfo) error {
	return b.inner.AddPresence(ctx, channel, info)
}

func (b *Broker) RemovePresence(ctx context.Context, channel string, connID string) error {
	return b.inner.RemovePresence(ctx, channel, connID)
}

func (b *Broker) Presence(ctx context.Context, channel string) ([]broker.ClientInfo, error) {
	return b.inner.Presence(ctx, channel)
}

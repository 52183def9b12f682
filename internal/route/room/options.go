package room

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/defaults"
	"github.com/wsgate/wsgate/internal/route/command"
)

// Namespace holds the defaults for every channel `ns:…` in it.
type Namespace struct {
	// ClientPublish lets clients publish (publish/chat/data) into the namespace's
	// channels, subject to their "pub" permissions. False (the zero value) means only
	// the server-side Publish API can publish: secure by default.
	ClientPublish bool
	// MaxSubscribers caps subscribers of one channel on this node (0 = unlimited).
	MaxSubscribers int
	// HistorySize and HistoryTTL bound retained history per channel; HistorySize 0
	// disables history and therefore recovery. HistoryTTL defaults to 10m when
	// HistorySize > 0.
	HistorySize int
	HistoryTTL  time.Duration
	// Presence tracks who is subscribed and answers `presence` requests.
	Presence bool
	// JoinLeave pushes `joined`/`left` events to subscribers (requires Presence).
	JoinLeave bool
	// Integrity, "hmac" or "pop", requires every client request that reads or writes
	// the namespace's channels (subscribe, history, presence, publish/chat/data) to
	// arrive signed in that mode (see IntegrityReporter), so only a connection that
	// holds the key receives the namespace's traffic; "" or "off" does not.
	Integrity string
	// SignOutput signs every message pushed from this namespace with
	// Options.SignOutput, so clients can verify it came from the server.
	SignOutput bool
	// Checks, when set, are the namespace's application checks (hooks and
	// per-room limits, internal/server). They travel with the namespace, so a
	// request is checked by the rules of the same SetNamespaces it was
	// resolved under: a reload swaps both at once. nil costs nothing.
	Checks Checks
}

// Checks are asked after the built-in checks of a request pass. A non-nil
// *protocol.Error refuses the request and is sent as the reply.
type Checks interface {
	// CheckSubscribe runs after the namespace, integrity and token-claim
	// checks, before the subscription is made.
	CheckSubscribe(ctx context.Context, c Client, ch string) *protocol.Error
	// CheckPublish runs after the built-in checks of a client publish, before
	// it reaches the broker; it returns the payload to publish (the same, or a
	// rewrite).
	CheckPublish(ctx context.Context, c Client, ch string, payload []byte) ([]byte, *protocol.Error)
}

// Options configures a Service. The zero value is usable: it gets DefaultNamespaces
// and the defaults below.
type Options struct {
	// Namespaces by name. A channel "ns:name" belongs to namespace "ns"; a channel
	// without ':' belongs to namespace "" and exists only if "" is configured.
	// nil means DefaultNamespaces().
	Namespaces map[string]Namespace
	// DefaultChannel receives chat/data from clients that name no channel and have
	// none current. Default "chat:lobby". Must be valid and in a configured namespace.
	DefaultChannel string
	// ChannelClaim is the token claim holding {"sub": [patterns], "pub": [patterns]}.
	// Default "channels".
	ChannelClaim string
	// SubscriptionTokenVerify checks a per-channel subscription token and returns its
	// claims; the token grants subscribe when claims "channel" equals the channel and
	// "sub" equals the client's user. It must accept only tokens typed as
	// subscription grants (auth.Verifier.VerifySubscription: typ "subscription"), so
	// that an access token with a "channel" claim is no grant. nil disables
	// subscription tokens.
	SubscriptionTokenVerify func(ctx context.Context, token string) (map[string]any, error)
	// MaxChannelsPerClient caps one connection's subscriptions. Default 64.
	MaxChannelsPerClient int
	// RecoveryBuffer caps live messages held per subscription while its history is
	// being replayed; overflowing it ends recovery with recovery_failed. Default 1024.
	RecoveryBuffer int
	// MaxHistoryLimit caps the `limit` of a history request. Default 100.
	MaxHistoryLimit int
	// MaxHistoryReplyBytes caps one history reply (at least one publication is
	// always sent). Default 64 KiB.
	MaxHistoryReplyBytes int
	// Commands answers `command` messages; nil makes them fail with command_unavailable.
	Commands command.Backend
	// CommandTimeout bounds one command call. Default 5s.
	CommandTimeout time.Duration
	// MaxPublishBody caps the body of POST /v1/publish. Default 64 KiB.
	MaxPublishBody int64
	// OpTimeout bounds broker calls made on behalf of Leave. Default 5s.
	OpTimeout time.Duration
	// SignOutput wraps an encoded push in the server's signature, for namespaces
	// with SignOutput; nil disables signing.
	SignOutput func(msg []byte) []byte
}

// Defaults.
const (
	DefaultChannel              = "chat:lobby"
	DefaultChannelClaim         = "channels"
	DefaultMaxChannelsPerClient = 64
	DefaultRecoveryBuffer       = 1024
	DefaultMaxHistoryLimit      = 100
	DefaultMaxHistoryReplyBytes = 64 << 10
	DefaultCommandTimeout       = 5 * time.Second
	DefaultMaxPublishBody       = 64 << 10
	DefaultHistoryTTL           = 10 * time.Minute
	DefaultOpTimeout            = 5 * time.Second
)

// DefaultNamespaces is what a Service gets when Options.Namespaces is nil: one
// namespace "chat" with client publish, 100 messages / 10 minutes of history,
// presence and join/leave events. Permissions still come from the client's token.
func DefaultNamespaces() map[string]Namespace {
	return map[string]Namespace{
		"chat": {ClientPublish: true, HistorySize: 100, HistoryTTL: 10 * time.Minute, Presence: true, JoinLeave: true},
	}
}

// withDefaults returns a copy of o with defaults applied and checks it.
func (o Options) withDefaults() (Options, error) {
	src := o.Namespaces
	if src == nil {
		src = DefaultNamespaces()
	}
	o.Namespaces = make(map[string]Namespace, len(src))
	for name, ns := range src {
		if name != "" && !validNamespaceName(name) {
			return o, fmt.Errorf("room: namespace %q: name must match [A-Za-z0-9_.-]{1,64}", name)
		}
		if ns.MaxSubscribers < 0 || ns.HistorySize < 0 || ns.HistoryTTL < 0 {
			return o, fmt.Errorf("room: namespace %q: negative limit", name)
		}
		if ns.HistorySize > 0 && ns.HistoryTTL == 0 {
			ns.HistoryTTL = DefaultHistoryTTL
		}
		if ns.JoinLeave && !ns.Presence {
			return o, fmt.Errorf("room: namespace %q: join_leave requires presence", name)
		}
		o.Namespaces[name] = ns
	}
	o.DefaultChannel = cmp.Or(o.DefaultChannel, DefaultChannel)
	ns, _, ok := parseChannel(o.DefaultChannel)
	if !ok {
		return o, fmt.Errorf("room: default channel %q is not a valid channel name", o.DefaultChannel)
	}
	if _, ok := o.Namespaces[ns]; !ok {
		return o, fmt.Errorf("room: default channel %q: namespace %q not configured", o.DefaultChannel, ns)
	}
	o.ChannelClaim = cmp.Or(o.ChannelClaim, DefaultChannelClaim)
	defaults.Positive(&o.MaxChannelsPerClient, DefaultMaxChannelsPerClient)
	defaults.Positive(&o.RecoveryBuffer, DefaultRecoveryBuffer)
	defaults.Positive(&o.MaxHistoryReplyBytes, DefaultMaxHistoryReplyBytes)
	defaults.Positive(&o.MaxHistoryLimit, DefaultMaxHistoryLimit)
	defaults.Positive(&o.CommandTimeout, DefaultCommandTimeout)
	defaults.Positive(&o.MaxPublishBody, DefaultMaxPublishBody)
	defaults.Positive(&o.OpTimeout, DefaultOpTimeout)
	return o, nil
}

// Validate reports whether New would accept o.
func (o Options) Validate() error {
	_, err := o.withDefaults()
	return err
}

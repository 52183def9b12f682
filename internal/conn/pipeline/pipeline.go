package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsgate/wsgate/internal/conn/protocol"
	"github.com/wsgate/wsgate/internal/conn/schema"
	"github.com/wsgate/wsgate/internal/state/limit"
)

// Message is an accepted client message.
type Message struct {
	// Type is the message type. For a known type it is the registry's own string
	// (safe as a bounded metric label); it is "" on an unknown_type reject.
	Type string
	// ID is the raw JSON of the top-level "id" member (the client's request id, to echo
	// as "ref"), nil if absent. On a reject it is set only when it is a short string or
	// number, so it can be passed to EncodeError as is.
	ID []byte
	// Raw is the whole message: the data passed to Process, or what a Verifier put in
	// its place.
	Raw []byte
	// Members locates the top-level members of Raw that later stages act on (see
	// Members); it always describes Raw, also after a Verifier replaced it.
	Members Members
	// Signed is set by a Verifier that checked the message's signature; routers use it
	// to require signatures per namespace.
	Signed bool
}

// Verifier is an optional stage (message integrity: signatures, replay) that runs after
// the structure scan and rate limits and before schema validation. Open may replace
// msg.Raw (the pipeline then scans the new body with the same limits and derives Type
// and ID from it) or only msg.Type (the schema of the new type applies). An error that
// is a *protocol.Error is returned as is; any other error becomes invalid_message with a strike.
type Verifier interface {
	// Open must not keep msg after it returns: the pipeline reuses it.
	Open(ctx context.Context, st *ConnState, msg *Message) error
}

// Pipeline checks client messages. It is safe for concurrent use by many connections.
type Pipeline struct {
	opts  Options
	tiers map[string]*namedTier // opts.Tiers, addressable (ConnState caches a pointer)
	lim   scanLimits
	reg   atomic.Pointer[schema.Registry]
	pool  sync.Pool // *scanner
}

// New builds a Pipeline from opts, applying defaults; with a nil opts.Registry it
// compiles the built-in schemas.
func New(opts Options) (*Pipeline, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	reg := o.Registry
	if reg == nil {
		if reg, err = schema.New(schema.Options{}); err != nil {
			return nil, fmt.Errorf("pipeline: built-in schemas: %w", err)
		}
	}
	p := &Pipeline{
		opts: o,
		lim:  scanLimits{depth: o.MaxDepth, keys: o.MaxKeys, array: o.MaxArray, str: o.MaxString, num: o.MaxNumber},
	}
	p.opts.Registry = nil // the live one is p.reg
	p.tiers = make(map[string]*namedTier, len(o.Tiers))
	for name, t := range o.Tiers {
		p.tiers[name] = &namedTier{Tier: t, name: name}
	}
	p.reg.Store(reg)
	p.pool.New = func() any { return newScanner(p.lim) }
	return p, nil
}

// SetRegistry swaps in a new schema registry (hot reload). Messages already being
// checked finish with the registry they started with. A nil r is ignored.
func (p *Pipeline) SetRegistry(r *schema.Registry) {
	if r != nil {
		p.reg.Store(r)
	}
}

// Registry returns the registry in use.
func (p *Pipeline) Registry() *schema.Registry { return p.reg.Load() }

// Process runs data, one complete text message from the connection st, through the
// stages, in order:
//
//  1. size: len(data) > MaxBytes → too_large, close 1009;
//  2. structure: the scanner (RFC 8259, UTF-8 in strings, depth, keys, array, string
//     and number limits, duplicate keys; top level an object with a string "type") →
//     invalid_json, limit_exceeded or invalid_message;
//  3. per-type size: TypeMaxBytes[type] → too_large, close 1009;
//  4. rate limits (connection, user, IP; messages and bytes; tier by st.Tier) →
//     rate_limited with RetryAfter, close 1008 on sustained abuse. The connection's
//     budgets are kept in st itself (GCRA, the Limiter's algorithm); the user's and
//     the IP's are shared through the Limiter, whose errors follow FailOpen;
//  5. the Verifier, if any;
//  6. dispatch: no schema for the type → unknown_type;
//  7. schema: the type's schema → invalid_message with Path. The schema's fast
//     validator accepts most valid messages from the scanned bytes; the rest are
//     decoded once and validated by jsonschema, the authority on every verdict.
//
// Rate limits come before the Verifier and schema so that every well-formed message is
// charged, valid or not, and the costliest stages are behind the budget; the cheap
// scan comes first because it yields the id to echo as ref.
//
// On success it returns the message and nil; on failure, the message as far as it was
// understood (ID usable as ref) and the Reject. Process keeps no reference to data
// after it returns, except through the returned Message.
func (p *Pipeline) Process(ctx context.Context, st *ConnState, data []byte) (Message, *protocol.Error) {
	msg, rej := p.process(ctx, st, data)
	if rej != nil {
		st.Rejected++
		if rej.Code == protocol.CodeRateLimited {
			st.RateLimited++
		}
	} else {
		st.Accepted++
	}
	return msg, rej
}

func (p *Pipeline) process(ctx context.Context, st *ConnState, data []byte) (Message, *protocol.Error) {
	msg := Message{Raw: data}
	if len(data) > p.opts.MaxBytes {
		return msg, tooLarge(p.opts.MaxBytes)
	}
	sc := p.pool.Get().(*scanner)
	defer func() {
		sc.release()
		p.pool.Put(sc)
	}()
	reg := p.reg.Load()

	sch, rej := p.check(sc, reg, &msg, data)
	// Every message is charged to the rate limit, well-formed or not: were only
	// valid ones charged, a flood of invalid messages would bypass the limit and
	// cost an error reply each (wsgate check: invalid-rate).
	if rrej := p.rate(ctx, st, len(data)); rrej != nil {
		return msg, rrej
	}
	if rej != nil {
		return msg, rej
	}
	if p.opts.Verifier != nil {
		before, beforeType := msg.Raw, msg.Type
		// The Verifier gets the pooled scanner's Message, not &msg: a pointer
		// passed through the interface escapes, and a Message allocated per
		// message was the pipeline's only allocation (the server always has a
		// Verifier). release clears it, so the pool keeps no message alive.
		vm := &sc.verify
		*vm = msg
		err := p.opts.Verifier.Open(ctx, st, vm)
		msg = *vm
		if err != nil {
			if r, ok := errors.AsType[*protocol.Error](err); ok {
				return msg, r
			}
			return msg, &protocol.Error{Code: protocol.CodeInvalidMessage, Message: "message verification failed", Strike: true}
		}
		switch {
		case !sameBytes(before, msg.Raw):
			if len(msg.Raw) > p.opts.MaxBytes {
				return msg, tooLarge(p.opts.MaxBytes)
			}
			if sch, rej = p.check(sc, reg, &msg, msg.Raw); rej != nil {
				return msg, rej
			}
		case msg.Type != beforeType:
			sch, _ = reg.Lookup(msg.Type)
			if sch != nil {
				msg.Type = sch.Type()
			}
		}
	}
	if sch == nil {
		msg.Type = ""
		return msg, &protocol.Error{Code: protocol.CodeUnknownType, Message: "unknown message type", Path: "/type", Strike: true}
	}
	// The fast validator proves most messages valid straight from the scanned bytes;
	// anything it cannot prove goes to jsonschema, which decides and words the error.
	if sch.Accepts(msg.Raw) {
		return msg, nil
	}
	v, err := decodeValue(msg.Raw)
	if err != nil {
		// Unreachable for scanned input; kept so a decoder bug refuses, never panics.
		return msg, &protocol.Error{Code: protocol.CodeInvalidJSON, Message: "malformed JSON", Strike: true}
	}
	if viol := sch.Validate(v); viol != nil {
		return msg, &protocol.Error{Code: protocol.CodeInvalidMessage, Message: viol.Message, Path: viol.Path, Strike: true}
	}
	return msg, nil
}

// check runs the structure scan, the top-level checks and the per-type size limit on
// data, filling msg.Type and msg.ID. sch is nil for an unknown type (not yet an error:
// a Verifier may still change the type).
func (p *Pipeline) check(sc *scanner, reg *schema.Registry, msg *Message, data []byte) (*schema.Schema, *protocol.Error) {
	msg.Raw, msg.Type, msg.ID, msg.Members = data, "", nil, Members{}
	res, fail, off := sc.scan(data)
	if safeRef(res.id) {
		msg.ID = res.id
	}
	if fail != scanOK {
		return nil, scanReject(fail, off, p.lim)
	}
	msg.Members = res.members
	if res.top != '{' {
		return nil, &protocol.Error{Code: protocol.CodeInvalidMessage, Message: "message must be a JSON object", Strike: true}
	}
	if !res.typFound {
		return nil, &protocol.Error{Code: protocol.CodeInvalidMessage, Message: "missing required property", Path: "/type", Strike: true}
	}
	if !res.typString {
		return nil, &protocol.Error{Code: protocol.CodeInvalidMessage, Message: "expected string", Path: "/type", Strike: true}
	}
	sch, ok := reg.LookupBytes(res.typ)
	if ok {
		msg.Type = sch.Type()
	} else {
		msg.Type = string(res.typ)
	}
	if max, ok := p.opts.TypeMaxBytes[string(res.typ)]; ok && len(data) > max {
		return sch, tooLarge(max)
	}
	return sch, nil
}

func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func tooLarge(max int) *protocol.Error {
	return &protocol.Error{Code: protocol.CodeTooLarge, Message: "message larger than " + strconv.Itoa(max) + " bytes", Close: protocol.ReasonTooBig, Strike: true}
}

func scanReject(f scanFail, off int, lim scanLimits) *protocol.Error {
	at := " at offset " + strconv.Itoa(off)
	r := &protocol.Error{Code: protocol.CodeLimitExceeded, Strike: true}
	switch f {
	case failSyntax:
		r.Code, r.Message = protocol.CodeInvalidJSON, "invalid JSON"+at
	case failUTF8:
		r.Code, r.Message = protocol.CodeInvalidJSON, "invalid UTF-8 in string"+at
	case failSurrogate:
		r.Code, r.Message = protocol.CodeInvalidJSON, "lone UTF-16 surrogate escape"+at
	case failDuplicate:
		r.Code, r.Message = protocol.CodeInvalidMessage, "duplicate key"+at
	case failDepth:
		r.Message = "nesting deeper than " + strconv.Itoa(lim.depth) + at
	case failKeys:
		r.Message = "object with more than " + strconv.Itoa(lim.keys) + " keys" + at
	case failArray:
		r.Message = "array with more than " + strconv.Itoa(lim.array) + " elements" + at
	case failString:
		r.Message = "string longer than " + strconv.Itoa(lim.str) + " bytes" + at
	case failNumber:
		r.Message = "number literal too long or exponent too large" + at
	default:
		r.Code, r.Message = protocol.CodeInvalidJSON, "invalid JSON"+at
	}
	return r
}

// Rate is the rate stage alone, for routes whose messages are not JSON (gateway
// routes in raw validation mode): the same budgets, keys, tiers and fail-open
// policy as Process, so a user's and an IP's budgets are shared between the
// built-in service, JSON routes and raw routes.
func (p *Pipeline) Rate(ctx context.Context, st *ConnState, size int) *protocol.Error {
	return p.rate(ctx, st, size)
}

// rate charges the message to the connection's, user's and IP's budgets, stopping at
// the first refusal (budgets charged before it stay charged: a refused message still
// cost the server its read). The connection's budgets are local to st (see
// connBudgets); the user's and IP's are asked of the shared Limiter. A nil Limiter
// turns rate limiting off altogether.
func (p *Pipeline) rate(ctx context.Context, st *ConnState, size int) *protocol.Error {
	lim := p.opts.Limiter
	if lim == nil {
		return nil
	}
	tier := st.tierOf(p)
	now := st.Now
	if tier.Messages.Rate > 0 || tier.Bytes.Rate > 0 {
		if now.IsZero() {
			now = p.opts.Now()
		}
		n := st.budgetNow(now)
		ok, retry := allowGCRA(&st.budget.msgTAT, tier.Messages, 1, n)
		if ok {
			ok, retry = allowGCRA(&st.budget.byTAT, tier.Bytes, size, n)
		}
		if !ok {
			return p.rateLimited(st, now, retry)
		}
	}
	k := st.limiterKeys(p.opts.KeyPrefix)
	charges := [...]limit.Charge{
		{Key: k.um, Limit: tier.UserMessages, Cost: 1}, {Key: k.ub, Limit: tier.UserBytes, Cost: size},
		{Key: k.im, Limit: tier.IPMessages, Cost: 1}, {Key: k.ib, Limit: tier.IPBytes, Cost: size},
	}
	// st.Now, the owner's time.Now for this message, spares the limiter a
	// clock read of its own.
	refused, retry, err := limit.AllowEachAt(ctx, lim, st.Now, charges[:], p.opts.FailOpen)
	switch {
	case err != nil:
		return &protocol.Error{Code: protocol.CodeUnavailable, Message: "rate limiter unavailable", RetryAfter: time.Second}
	case refused >= 0:
		if now.IsZero() {
			now = p.opts.Now()
		}
		return p.rateLimited(st, now, retry)
	}
	return nil
}

// rateLimited builds the refusal, closing the connection on sustained abuse.
func (p *Pipeline) rateLimited(st *ConnState, now time.Time, retry time.Duration) *protocol.Error {
	if retry < time.Millisecond {
		retry = time.Millisecond
	}
	r := &protocol.Error{Code: protocol.CodeRateLimited, Message: "rate limit exceeded", RetryAfter: retry, Strike: true}
	if p.opts.AbuseMax > 0 && st.abuseHit(now, p.opts.AbuseWindow) > float64(p.opts.AbuseMax) {
		r.Message = "sustained rate limit abuse"
		r.Close = protocol.ReasonRateLimit
	}
	return r
}

package client

import (
	"math/rand/v2"
	"time"
)

// backoff computes reconnect delays: exponential with full jitter, capped
// (AWS "Exponential Backoff and Jitter"): a crowd of clients dropped at once
// spreads its reconnects over the whole window instead of arriving together.
type backoff struct {
	min, max time.Duration
	attempt  int
}

func (b *backoff) next() time.Duration {
	ceil := b.min
	for i := 0; i < b.attempt && ceil < b.max; i++ {
		ceil *= 2
	}
	if ceil > b.max {
		ceil = b.max
	}
	b.attempt++
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

func (b *backoff) reset() { b.attempt = 0 }

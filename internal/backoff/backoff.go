// Package backoff computes retry delays: exponential growth with full
// jitter, capped, as the AWS architecture blog recommends.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy describes a backoff schedule. The zero value is not useful; use
// Default or fill every field.
type Policy struct {
	Initial time.Duration // first delay's upper bound
	Max     time.Duration // cap of the upper bound
	// Multiplier grows the bound after each attempt (default 2).
	Multiplier float64
}

// Default is 100ms doubling up to 10s.
var Default = Policy{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2}

// Delay returns the delay before retry number attempt (0-based): a random
// duration in [bound/2, bound] where bound = min(Max, Initial*Multiplier^attempt).
// Half the bound is kept fixed so a retry loop never spins.
func (p Policy) Delay(attempt int) time.Duration {
	m := p.Multiplier
	if m <= 1 {
		m = 2
	}
	bound := float64(p.Initial)
	for i := 0; i < attempt && bound < float64(p.Max); i++ {
		bound *= m
	}
	if bound > float64(p.Max) {
		bound = float64(p.Max)
	}
	half := bound / 2
	return time.Duration(half + rand.Float64()*half)
}

// Sleep waits for the delay of attempt, or until ctx is done (then it
// returns ctx.Err()).
func (p Policy) Sleep(ctx context.Context, attempt int) error {
	t := time.NewTimer(p.Delay(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

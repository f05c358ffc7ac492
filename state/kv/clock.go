package kv

import (
	"sync/atomic"
	"time"
)

// Clock tells processing time, which TTLs are measured in. Tests inject a
// ManualClock. Implementations must be safe for concurrent use.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// ManualClock is a Clock that only moves when told to. The zero value reads
// as the Unix epoch. It is safe for concurrent use.
type ManualClock struct {
	ns atomic.Int64 // Unix nanoseconds
}

// NewManualClock returns a ManualClock reading t.
func NewManualClock(t time.Time) *ManualClock {
	c := &ManualClock{}
	c.ns.Store(t.UnixNano())
	return c
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }

// Advance moves the clock forward by d (d must not be negative).
func (c *ManualClock) Advance(d time.Duration) {
	if d < 0 {
		panic("state: ManualClock.Advance with a negative duration")
	}
	c.ns.Add(int64(d))
}

// NowMillis returns clock's time in Unix milliseconds, the unit expiry times
// are stored in.
func NowMillis(c Clock) int64 { return c.Now().UnixMilli() }

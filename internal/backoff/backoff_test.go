package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayBounds(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2}
	for attempt := 0; attempt < 20; attempt++ {
		bound := 100 * time.Millisecond << attempt
		if bound > time.Second || bound <= 0 {
			bound = time.Second
		}
		for i := 0; i < 100; i++ {
			d := p.Delay(attempt)
			if d < bound/2 || d > bound {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, bound/2, bound)
			}
		}
	}
}

func TestSleepHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := Policy{Initial: time.Hour, Max: time.Hour}
	if err := p.Sleep(ctx, 0); err != context.Canceled {
		t.Fatalf("Sleep on cancelled ctx = %v", err)
	}
}

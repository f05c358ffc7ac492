package pebble_test

import (
	"testing"

	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/pebble"
	"github.com/weir-stream/weir/state/statetest"
)

func factory(exact bool) statetest.Factory {
	return func(t *testing.T, cfg kv.Config) state.Backend {
		b, err := pebble.Open(t.TempDir(), pebble.Options{Config: cfg, CacheSize: 8 << 20, ExactStats: exact})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

func TestConformance(t *testing.T) {
	statetest.Run(t, factory(false))
}

func TestConformanceExactStats(t *testing.T) {
	statetest.Run(t, factory(true))
}

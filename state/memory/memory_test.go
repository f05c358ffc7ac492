package memory_test

import (
	"testing"

	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
	"github.com/weir-stream/weir/state/statetest"
)

func newBackend(t *testing.T, cfg kv.Config) state.Backend {
	b, err := memory.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	statetest.Run(t, newBackend)
}

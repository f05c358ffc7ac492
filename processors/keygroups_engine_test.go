package processors

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state/kv"
)

// kgCheck counts the rows it saw whose Batch.KeyGroups entry is missing or
// differs from the key's own key group.
var kgCheck struct{ rows, carried, wrong atomic.Int64 }

// keyGroupProbe is a stateful processor keyed by __value__ that checks the
// key groups the engine's exchange hands it, and passes rows through.
type keyGroupProbe struct{}

func (keyGroupProbe) Keys(b *message.Batch, fn func(row int, key []byte)) error {
	col := message.AsBinary(b.Column(message.ValueColumn))
	for i := 0; i < b.NumRows(); i++ {
		fn(i, col.Bytes(i))
	}
	return nil
}

func (keyGroupProbe) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	col := message.AsBinary(b.Column(message.ValueColumn))
	for i := 0; i < b.NumRows(); i++ {
		kgCheck.rows.Add(1)
		if b.KeyGroups == nil {
			continue
		}
		kgCheck.carried.Add(1)
		if int(b.KeyGroups[i]) != kv.KeyGroupOf(col.Bytes(i), kv.DefaultMaxKeyGroups) {
			kgCheck.wrong.Add(1)
		}
	}
	return []*message.Batch{b}, nil
}

func (keyGroupProbe) Close(context.Context) error { return nil }

func init() {
	component.RegisterProcessor(component.Spec{Name: "test_key_group_probe", Stateful: true},
		func(*component.Config, component.Resources) (component.Processor, error) { return keyGroupProbe{}, nil })
}

// TestExchangeCarriesKeyGroups: behind the keyed exchange (thread_num > 1)
// every row arrives with its key's group, so keyed processors need not hash
// the key again (setCurrentKey); with one thread there is no exchange and
// no key groups.
func TestExchangeCarriesKeyGroups(t *testing.T) {
	var in strings.Builder
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&in, "key-%d\n", i%997)
	}
	for _, threads := range []int{1, 3} {
		kgCheck.rows.Store(0)
		kgCheck.carried.Store(0)
		kgCheck.wrong.Store(0)
		body := fmt.Sprintf(`
input: {type: file, path: IN, format: lines, batch_size: 64}
pipeline:
  thread_num: %d
  processors:
    - type: test_key_group_probe
output: {type: file, path: OUT}
`, threads)
		lines := runPipeline(t, body, in.String(), false)
		if len(lines) != 5000 || kgCheck.rows.Load() != 5000 {
			t.Fatalf("threads %d: %d lines out, %d rows seen, want 5000", threads, len(lines), kgCheck.rows.Load())
		}
		wantCarried := int64(0)
		if threads > 1 {
			wantCarried = 5000
		}
		if c, w := kgCheck.carried.Load(), kgCheck.wrong.Load(); c != wantCarried || w != 0 {
			t.Fatalf("threads %d: %d rows carried key groups (want %d), %d of them wrong", threads, c, wantCarried, w)
		}
	}
}

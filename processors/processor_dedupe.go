package processors

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
)

const (
	dedupeKey     = "key"
	dedupeTTL     = "ttl"
	dedupeRefresh = "refresh_on_duplicate"
)

func dedupeSpec() component.Spec {
	return component.Spec{
		Name:     "dedupe",
		Stateful: true,
		Summary: "Drops rows whose key was already seen within a TTL (processing time), keeping the first; " +
			"the keys seen are keyed state, so they survive restarts from a checkpoint.",
		Fields: []component.Field{
			{Name: dedupeKey, Type: component.TypeExpr, Required: true,
				Description: "Key: a column name (read directly) or an expression, stringified. A null key fails its row."},
			{Name: dedupeTTL, Type: component.TypeDuration, Required: true,
				Description: "How long a key is remembered after the row that passed (must be positive)."},
			{Name: dedupeRefresh, Type: component.TypeBool, Default: false, Advanced: true,
				Description: "A dropped duplicate restarts its key's TTL too, so a key passes again only after ttl without any row of it."},
		},
		Example: "pipeline:\n  processors:\n    - type: json_to_arrow\n    - type: dedupe\n      key: id\n      ttl: 10m\n",
	}
}

func init() {
	component.RegisterProcessor(dedupeSpec(), newDedupe)
}

var _ component.Keyed = (*dedupe)(nil)

// dedupe passes a row when no row of its key passed within the TTL (or, with
// refresh_on_duplicate, when no row of its key was seen within it); the
// other rows are dropped. State: one value state of the keys seen, with the
// TTL as its state TTL, so expired keys are cleaned up by the backend.
type dedupe struct {
	key     *groupKey
	refresh bool
	log     *slog.Logger

	ctx   *state.KeyedContext
	owned kv.Backend
	seen  *state.ValueState[bool]

	dropped int64
	fails   rowFailures
	keep    []int32
}

func newDedupe(conf *component.Config, res component.Resources) (component.Processor, error) {
	p := &dedupe{refresh: conf.Bool(dedupeRefresh), log: res.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if p.key, err = newGroupKey(conf.String(dedupeKey)); err != nil {
		return nil, conf.Errorf(dedupeKey, "%v", err)
	}
	ttl := conf.Duration(dedupeTTL)
	if ttl <= 0 {
		return nil, conf.Errorf(dedupeTTL, "must be positive (how long a key is remembered)")
	}
	backend, owned, err := stateBackend(res)
	if err != nil {
		return nil, err
	}
	p.owned = owned
	if p.ctx, err = state.NewKeyedContext(backend); err == nil {
		p.seen, err = state.NewValueState[bool](p.ctx, "dedupe/seen", state.WithTTL(state.TTLConfig{TTL: ttl}))
	}
	if err != nil {
		p.closeOwned()
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	return p, nil
}

func (p *dedupe) closeOwned() {
	if p.owned != nil {
		_ = p.owned.Close()
		p.owned = nil
	}
}

func (p *dedupe) Close(context.Context) error {
	if p.dropped > 0 {
		p.log.Debug("dedupe dropped duplicates", "rows", p.dropped)
	}
	p.closeOwned()
	return nil
}

// Keys implements component.Keyed.
func (p *dedupe) Keys(b *message.Batch, fn func(row int, key []byte)) error {
	return keysOf(p.key, b, fn)
}

func (p *dedupe) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	if err := p.key.bind(b); err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	p.fails.reset()
	p.keep = p.keep[:0]
	n := b.NumRows()
	for i := 0; i < n; i++ {
		key, err := p.key.key(b, i)
		if err != nil {
			p.fails.add(i, "dedupe: key: "+err.Error())
			continue
		}
		if err := setCurrentKey(p.ctx, b, i, key); err != nil {
			p.fails.add(i, "dedupe: "+err.Error())
			continue
		}
		_, dup, err := p.seen.Value()
		if err != nil {
			return nil, fmt.Errorf("dedupe: %w", err)
		}
		if dup {
			p.dropped++
			if !p.refresh {
				continue
			}
		} else {
			p.keep = append(p.keep, int32(i))
		}
		if err := p.seen.Update(true); err != nil {
			return nil, fmt.Errorf("dedupe: %w", err)
		}
	}
	if err := p.ctx.Flush(); err != nil {
		return nil, fmt.Errorf("dedupe: %w", err)
	}
	bad, err := p.fails.errorBatch(b)
	if err != nil {
		return nil, err
	}
	var good *message.Batch
	if len(p.keep) > 0 {
		if good, err = message.Take(b, p.keep); err != nil {
			return nil, err
		}
	}
	return results(good, bad), nil
}

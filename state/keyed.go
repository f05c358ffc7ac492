package state

import (
	"fmt"
	"reflect"
	"time"

	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

// KeyedContext is an operator's access to its keyed state: it holds the
// current key (SetCurrentKey) and hands out typed state handles by name
// (NewValueState, NewMapState, ...) that read and write the value of the
// current key. Like the backend underneath, a KeyedContext and its handles
// belong to one goroutine.
type KeyedContext struct {
	b   Backend
	mem *memory.Backend // one of mem and kvb is set
	kvb kv.KV
	cfg kv.Config

	key   []byte // current key (a copy)
	kg    int    // its key group, -1 before the first SetCurrentKey
	gi    int    // kg - cfg.KeyGroups.Start
	seq   uint64 // bumped by every SetCurrentKey; handles cache per seq
	start int

	states map[string]stateInfo
}

type stateInfo struct {
	kind string
	typ  reflect.Type
	ttl  TTLConfig
}

// NewKeyedContext returns a keyed context over b, which must be a backend
// of this module (memory or Pebble).
func NewKeyedContext(b Backend) (*KeyedContext, error) {
	c := &KeyedContext{b: b, kg: -1, states: make(map[string]stateInfo)}
	switch x := b.(type) {
	case *memory.Backend:
		c.mem = x
	case kv.KV:
		c.kvb = x
	default:
		return nil, fmt.Errorf("state: keyed context: %w: unsupported backend %T", kv.ErrInvalid, b)
	}
	c.cfg = b.Config()
	c.start = c.cfg.KeyGroups.Start
	return c, nil
}

// Backend returns the backend the context works on.
func (c *KeyedContext) Backend() Backend { return c.b }

// SetCurrentKey makes key the current key: state handles read and write
// its values until the next call. The key group is computed here, once. A
// key whose group the backend does not hold fails with ErrKeyGroupRange
// (the keyed exchange sent it to the wrong worker).
func (c *KeyedContext) SetCurrentKey(key []byte) error {
	return c.SetCurrentKeyInGroup(key, kv.KeyGroupOf(key, c.cfg.MaxKeyGroups))
}

// SetCurrentKeyInGroup is SetCurrentKey for a caller that already knows
// the key's group (the keyed exchange computed it); kg must be
// KeyGroupOf(key, maxKeyGroups).
func (c *KeyedContext) SetCurrentKeyInGroup(key []byte, kg int) error {
	if !c.cfg.KeyGroups.Contains(kg) {
		c.kg = -1
		return kv.NewError("set key", string(key), fmt.Errorf("key group %d: %w: context holds %v", kg, kv.ErrKeyGroupRange, c.cfg.KeyGroups))
	}
	c.key = append(c.key[:0], key...)
	c.kg = kg
	c.gi = kg - c.start
	c.seq++
	return nil
}

// CurrentKey returns the current key (valid until the next SetCurrentKey).
func (c *KeyedContext) CurrentKey() []byte { return c.key }

// KeyGroup returns the current key's group, or -1 if no key is set.
func (c *KeyedContext) KeyGroup() int { return c.kg }

// KeyGroups returns the key groups the context holds.
func (c *KeyedContext) KeyGroups() KeyGroupRange { return c.cfg.KeyGroups }

// Flush commits buffered writes (Pebble buffers the writes of an input
// batch in one write batch; memory has nothing to do). Call it once per
// input batch.
func (c *KeyedContext) Flush() error { return c.b.Flush() }

func (c *KeyedContext) now() int64 { return kv.NowMillis(c.cfg.Clock) }

var errNoKey = fmt.Errorf("%w: no current key (SetCurrentKey)", kv.ErrInvalid)

// ready reports why state cannot be accessed now: no current key, or a
// closed memory backend (Pebble reports that itself).
func (c *KeyedContext) ready(op, name string) error {
	if c.kg < 0 {
		return kv.NewError(op, name, errNoKey)
	}
	if c.mem != nil && c.mem.Closed() {
		return kv.NewError(op, name, kv.ErrClosed)
	}
	return nil
}

// check validates a state registration: registering a name again needs
// the same kind, type and TTL.
func (c *KeyedContext) check(name, kind string, typ reflect.Type, ttl TTLConfig) error {
	if err := kv.ValidateName(name); err != nil {
		return kv.NewError("register", name, err)
	}
	want := stateInfo{kind: kind, typ: typ, ttl: ttl}
	if got, ok := c.states[name]; ok && got != want {
		return kv.NewError("register", name, fmt.Errorf("%w: state %q is a %s of %s, not a %s of %s",
			kv.ErrTypeMismatch, name, got.kind, got.typ, kind, typ))
	}
	return nil
}

// register records a state name's kind and type (after check).
func (c *KeyedContext) register(name, kind string, typ reflect.Type, ttl TTLConfig) {
	c.states[name] = stateInfo{kind: kind, typ: typ, ttl: ttl}
}

// TTLConfig is a state's time to live: entries expire TTL after they were
// last written (processing time), or last read too with UpdateOnRead.
type TTLConfig struct {
	TTL          time.Duration
	UpdateOnRead bool
}

func (t TTLConfig) millis() int64 {
	if t.TTL <= 0 {
		return 0
	}
	return max(t.TTL.Milliseconds(), 1)
}

// StateOption configures a state handle.
type StateOption func(*stateOptions)

type stateOptions struct {
	ttl TTLConfig
}

// WithTTL gives the state's entries a time to live.
func WithTTL(cfg TTLConfig) StateOption { return func(o *stateOptions) { o.ttl = cfg } }

func applyOptions(opts []StateOption) stateOptions {
	var o stateOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

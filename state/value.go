package state

import (
	"reflect"

	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

// cell is the shared implementation of the single-value states (value,
// list, reducing, aggregating): one value of type T per key.
type cell[T any] struct {
	ctx          *KeyedContext
	name         string
	ttl          int64 // ms; 0: none
	updateOnRead bool

	// Memory backend: the typed table, and the cell last read for the
	// current key, so an update after a read is a store into it.
	mem      *memory.Table[T]
	hint     *memory.Cell[T]
	hintSeq  uint64
	hintMods uint64

	// Pebble backend: scratch buffers.
	enc kv.Encoder
	buf []byte
	dec T
}

func newCell[T any](c *KeyedContext, name, kind string, ops memory.Ops[T], opts []StateOption) (*cell[T], error) {
	o := applyOptions(opts)
	if err := c.check(name, kind, reflect.TypeFor[T](), o.ttl); err != nil {
		return nil, err
	}
	s := &cell[T]{ctx: c, name: name, ttl: o.ttl.millis(), updateOnRead: o.ttl.UpdateOnRead}
	if c.mem != nil {
		t, err := memory.TableOf(c.mem, name, ops)
		if err != nil {
			return nil, err
		}
		t.SetTTL(s.ttl)
		s.mem = t
	}
	c.register(name, kind, reflect.TypeFor[T](), o.ttl)
	return s, nil
}

func (s *cell[T]) get() (T, bool, error) {
	var zero T
	c := s.ctx
	if err := c.ready("get", s.name); err != nil {
		return zero, false, err
	}
	if s.mem != nil {
		cl := s.mem.Get(c.gi, c.key)
		s.hint, s.hintSeq, s.hintMods = cl, c.seq, s.mem.Mods()
		if cl == nil {
			return zero, false, nil
		}
		if s.updateOnRead && s.ttl > 0 {
			now := c.now()
			s.hint = s.mem.Store(c.gi, c.key, cl.V, now+s.ttl, cl, s.hintMods, now)
			s.hintMods = s.mem.Mods()
		}
		return cl.V, true, nil
	}
	b, exp, ok, err := c.kvb.GetEntry(s.buf[:0], c.kg, s.name, c.key, nil)
	s.buf = b
	if err != nil || !ok {
		return zero, false, err
	}
	// Decode into a field: a local would escape to the heap.
	s.dec = zero
	if err := kv.Unmarshal(b, &s.dec); err != nil {
		return zero, false, kv.NewError("get", string(c.key), err)
	}
	v := s.dec
	s.dec = zero
	if s.updateOnRead && s.ttl > 0 && exp != 0 {
		if err := c.kvb.SetEntry(c.kg, s.name, c.key, nil, b, c.now()+s.ttl); err != nil {
			return zero, false, err
		}
	}
	return v, true, nil
}

func (s *cell[T]) put(v T) error {
	c := s.ctx
	if err := c.ready("put", s.name); err != nil {
		return err
	}
	var exp, now int64
	if s.ttl > 0 {
		now = c.now()
		exp = now + s.ttl
	}
	if s.mem != nil {
		var hint *memory.Cell[T]
		if s.hintSeq == c.seq {
			hint = s.hint
		}
		s.hint = s.mem.Store(c.gi, c.key, v, exp, hint, s.hintMods, now)
		s.hintSeq, s.hintMods = c.seq, s.mem.Mods()
		return nil
	}
	b, err := s.enc.Marshal(v)
	if err != nil {
		return kv.NewError("put", string(c.key), err)
	}
	return c.kvb.SetEntry(c.kg, s.name, c.key, nil, b, exp)
}

func (s *cell[T]) clear() error {
	c := s.ctx
	if err := c.ready("clear", s.name); err != nil {
		return err
	}
	if s.mem != nil {
		s.mem.Delete(c.gi, c.key)
		s.hint = nil
		return nil
	}
	return c.kvb.DeleteEntry(c.kg, s.name, c.key, nil)
}

// each calls fn with every key of the state (in the context's key groups)
// and its value, until fn returns false. The key is a copy.
func (s *cell[T]) each(fn func(key []byte, v T) bool) error {
	c := s.ctx
	if s.mem != nil {
		for gi := range s.mem.Groups() {
			stop := false
			s.mem.Range(gi, func(k string, cl *memory.Cell[T]) bool {
				if !fn([]byte(k), cl.V) {
					stop = true
				}
				return !stop
			})
			if stop {
				return nil
			}
		}
		return nil
	}
	type kvPair struct {
		key []byte
		v   T
	}
	for kg := c.cfg.KeyGroups.Start; kg < c.cfg.KeyGroups.End; kg++ {
		// Collect a key group first: fn may write, and Scan's fn may not.
		var pairs []kvPair
		err := c.kvb.Scan(kg, s.name, nil, func(key, _, value []byte, _ int64) error {
			var v T
			if err := kv.Unmarshal(value, &v); err != nil {
				return err
			}
			pairs = append(pairs, kvPair{append([]byte(nil), key...), v})
			return nil
		})
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if !fn(p.key, p.v) {
				return nil
			}
		}
	}
	return nil
}

// ValueState holds one value of type T per key (Flink's ValueState).
type ValueState[T any] struct{ c *cell[T] }

// NewValueState returns the value state called name. Values are kept as
// they are given (memory) or encoded (Pebble): do not change a value after
// Update, nor one returned by Value.
func NewValueState[T any](c *KeyedContext, name string, opts ...StateOption) (*ValueState[T], error) {
	cl, err := newCell(c, name, "value state", newValueOps[T](), opts)
	if err != nil {
		return nil, err
	}
	return &ValueState[T]{cl}, nil
}

// Value returns the current key's value; ok is false if there is none (or
// it expired).
func (s *ValueState[T]) Value() (v T, ok bool, err error) { return s.c.get() }

// Update sets the current key's value (and restarts its TTL).
func (s *ValueState[T]) Update(v T) error { return s.c.put(v) }

// Clear deletes the current key's value.
func (s *ValueState[T]) Clear() error { return s.c.clear() }

// Range calls fn with every key that has a value (in the context's key
// groups), and the value, until fn returns false. fn may change state
// (after SetCurrentKey); Range goes on over the keys as they were.
func (s *ValueState[T]) Range(fn func(key []byte, v T) bool) error { return s.c.each(fn) }

package state

import (
	"reflect"

	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

// MapState holds a map from K to V per key (Flink's MapState). Each map
// entry is its own row (Pebble) or Go map entry (memory), with its own TTL:
// large maps are fine. Iteration order is unspecified.
type MapState[K comparable, V any] struct {
	ctx          *KeyedContext
	name         string
	ttl          int64
	updateOnRead bool

	mem *memory.Table[map[K]mapItem[V]]
	ops mapOps[K, V]

	enc kv.Encoder
	buf []byte
}

// NewMapState returns the map state called name. Map keys are encoded with
// the state codec for Pebble, so K should encode deterministically (no
// floats that are -0, no NaN).
func NewMapState[K comparable, V any](c *KeyedContext, name string, opts ...StateOption) (*MapState[K, V], error) {
	o := applyOptions(opts)
	if err := c.check(name, "map state", reflect.TypeFor[map[K]V](), o.ttl); err != nil {
		return nil, err
	}
	s := &MapState[K, V]{ctx: c, name: name, ttl: o.ttl.millis(), updateOnRead: o.ttl.UpdateOnRead, ops: newMapOps[K, V]()}
	if c.mem != nil {
		t, err := memory.TableOf(c.mem, name, memory.Ops[map[K]mapItem[V]](s.ops))
		if err != nil {
			return nil, err
		}
		t.SetTTL(s.ttl)
		s.mem = t
	}
	c.register(name, "map state", reflect.TypeFor[map[K]V](), o.ttl)
	return s, nil
}

func (s *MapState[K, V]) check(op string) error {
	return s.ctx.ready(op, s.name)
}

func (s *MapState[K, V]) expiry() (exp, now int64) {
	if s.ttl > 0 {
		now = s.ctx.now()
		exp = now + s.ttl
	}
	return exp, now
}

func live(exp, now int64) bool { return exp == 0 || exp > now }

// Get returns the value of k in the current key's map.
func (s *MapState[K, V]) Get(k K) (V, bool, error) {
	var zero V
	if err := s.check("get"); err != nil {
		return zero, false, err
	}
	c := s.ctx
	if s.mem != nil {
		var it mapItem[V]
		ok := false
		if cl := s.mem.Peek(c.gi, c.key); cl != nil {
			it, ok = cl.V[k]
			ok = ok && (it.exp == 0 || live(it.exp, c.now()))
		}
		s.mem.Backend().CountRead(ok)
		if !ok {
			return zero, false, nil
		}
		if s.updateOnRead && s.ttl > 0 {
			if err := s.Put(k, it.v); err != nil {
				return zero, false, err
			}
		}
		return it.v, true, nil
	}
	uk, err := kv.Marshal(k)
	if err != nil {
		return zero, false, kv.NewError("get", string(c.key), err)
	}
	b, exp, ok, err := c.kvb.GetEntry(s.buf[:0], c.kg, s.name, c.key, uk)
	s.buf = b
	if err != nil || !ok {
		return zero, false, err
	}
	var v V
	if err := kv.Unmarshal(b, &v); err != nil {
		return zero, false, kv.NewError("get", string(c.key), err)
	}
	if s.updateOnRead && s.ttl > 0 && exp != 0 {
		if err := c.kvb.SetEntry(c.kg, s.name, c.key, uk, b, c.now()+s.ttl); err != nil {
			return zero, false, err
		}
	}
	return v, true, nil
}

// Contains reports whether the current key's map has k.
func (s *MapState[K, V]) Contains(k K) (bool, error) {
	_, ok, err := s.Get(k)
	return ok, err
}

// Put sets k to v in the current key's map.
func (s *MapState[K, V]) Put(k K, v V) error {
	if err := s.check("put"); err != nil {
		return err
	}
	c := s.ctx
	exp, now := s.expiry()
	if t := s.mem; t != nil {
		cl, _ := t.Writable(c.gi, c.key)
		if cl.V == nil {
			cl.V = make(map[K]mapItem[V])
		}
		var keys, bytes int64
		old, existed := cl.V[k]
		if existed {
			if s.ops.vsize != nil {
				bytes = s.ops.itemSize(k, v) - s.ops.itemSize(k, old.v)
			}
		} else {
			keys, bytes = 1, s.ops.itemSize(k, v)
		}
		cl.V[k] = mapItem[V]{v: v, exp: exp}
		t.Changed(c.gi, c.key, cl, keys, bytes, 0)
		if now != 0 {
			s.expireSome(cl, now)
		}
		return nil
	}
	uk, err := kv.Marshal(k)
	if err != nil {
		return kv.NewError("put", string(c.key), err)
	}
	b, err := s.enc.Marshal(v)
	if err != nil {
		return kv.NewError("put", string(c.key), err)
	}
	return c.kvb.SetEntry(c.kg, s.name, c.key, uk, b, exp)
}

// expireSome drops up to two expired entries of the (writable) map: the
// incremental cleanup of map entries. Go map iteration starts at a random
// place, so this samples.
func (s *MapState[K, V]) expireSome(cl *memory.Cell[map[K]mapItem[V]], now int64) {
	n := 0
	for k, it := range cl.V {
		if n == 4 {
			break
		}
		n++
		if it.exp != 0 && it.exp <= now {
			delete(cl.V, k)
			s.mem.Changed(s.ctx.gi, s.ctx.key, cl, -1, -s.ops.itemSize(k, it.v), 0)
			s.mem.Backend().CountExpired(1)
		}
	}
}

// Remove deletes k from the current key's map.
func (s *MapState[K, V]) Remove(k K) error {
	if err := s.check("remove"); err != nil {
		return err
	}
	c := s.ctx
	if t := s.mem; t != nil {
		cl := t.Peek(c.gi, c.key)
		if cl == nil {
			return nil
		}
		if _, ok := cl.V[k]; !ok {
			return nil
		}
		if len(cl.V) == 1 {
			t.Delete(c.gi, c.key)
			return nil
		}
		cl, _ = t.Writable(c.gi, c.key)
		it := cl.V[k]
		delete(cl.V, k)
		t.Changed(c.gi, c.key, cl, -1, -s.ops.itemSize(k, it.v), cl.Exp())
		return nil
	}
	uk, err := kv.Marshal(k)
	if err != nil {
		return kv.NewError("remove", string(c.key), err)
	}
	return c.kvb.DeleteEntry(c.kg, s.name, c.key, uk)
}

// Range calls fn with every entry of the current key's map until fn
// returns false. fn must not change the map state.
func (s *MapState[K, V]) Range(fn func(k K, v V) bool) error {
	if err := s.check("range"); err != nil {
		return err
	}
	c := s.ctx
	if s.mem != nil {
		cl := s.mem.Peek(c.gi, c.key)
		if cl == nil {
			return nil
		}
		now := c.now()
		for k, it := range cl.V {
			if !live(it.exp, now) {
				continue
			}
			if !fn(k, it.v) {
				return nil
			}
		}
		return nil
	}
	stop := errStopRange
	err := c.kvb.Scan(c.kg, s.name, c.key, func(_, uk, value []byte, _ int64) error {
		var k K
		var v V
		if err := kv.Unmarshal(uk, &k); err != nil {
			return err
		}
		if err := kv.Unmarshal(value, &v); err != nil {
			return err
		}
		if !fn(k, v) {
			return stop
		}
		return nil
	})
	if err != nil && !isStop(err) {
		return err
	}
	return nil
}

// RangeAll calls fn with every entry of every key's map (in the context's
// key groups), until fn returns false: what an operator flushing all its
// state at the end of its input needs. The key is a copy; fn may change
// state (after SetCurrentKey), as each key group is read before fn runs.
func (s *MapState[K, V]) RangeAll(fn func(key []byte, k K, v V) bool) error {
	c := s.ctx
	type row struct {
		key []byte
		k   K
		v   V
	}
	for kg := c.cfg.KeyGroups.Start; kg < c.cfg.KeyGroups.End; kg++ {
		var rows []row
		if s.mem != nil {
			now := c.now()
			s.mem.Range(kg-c.start, func(key string, cl *memory.Cell[map[K]mapItem[V]]) bool {
				kb := []byte(key)
				for k, it := range cl.V {
					if live(it.exp, now) {
						rows = append(rows, row{kb, k, it.v})
					}
				}
				return true
			})
		} else {
			err := c.kvb.Scan(kg, s.name, nil, func(key, uk, value []byte, _ int64) error {
				var r row
				if err := kv.Unmarshal(uk, &r.k); err != nil {
					return err
				}
				if err := kv.Unmarshal(value, &r.v); err != nil {
					return err
				}
				r.key = append([]byte(nil), key...)
				rows = append(rows, r)
				return nil
			})
			if err != nil {
				return err
			}
		}
		for _, r := range rows {
			if !fn(r.key, r.k, r.v) {
				return nil
			}
		}
	}
	return nil
}

// Len returns the number of entries in the current key's map.
func (s *MapState[K, V]) Len() (int, error) {
	n := 0
	err := s.Range(func(K, V) bool { n++; return true })
	return n, err
}

// IsEmpty reports whether the current key's map has no entries.
func (s *MapState[K, V]) IsEmpty() (bool, error) {
	empty := true
	err := s.Range(func(K, V) bool { empty = false; return false })
	return empty, err
}

// Clear deletes the current key's whole map.
func (s *MapState[K, V]) Clear() error {
	if err := s.check("clear"); err != nil {
		return err
	}
	c := s.ctx
	if s.mem != nil {
		s.mem.Delete(c.gi, c.key)
		return nil
	}
	return c.kvb.DeletePrefix(c.kg, s.name, c.key)
}

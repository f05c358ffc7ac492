package state

import (
	"slices"
)

// ListState holds a list of T per key (Flink's ListState). The list is one
// value: the memory backend appends in place, Pebble rewrites the encoded
// list on every Add, so keep Pebble lists short.
type ListState[T any] struct{ c *cell[[]T] }

// NewListState returns the list state called name.
func NewListState[T any](c *KeyedContext, name string, opts ...StateOption) (*ListState[T], error) {
	ops := newValueOps[[]T]()
	ops.clone = slices.Clone[[]T]
	cl, err := newCell(c, name, "list state", ops, opts)
	if err != nil {
		return nil, err
	}
	return &ListState[T]{cl}, nil
}

// Get returns the current key's list (nil if none). The slice is shared
// with the state (memory): read it, do not change it; appending to it is
// safe (its capacity is clipped).
func (s *ListState[T]) Get() ([]T, error) {
	v, _, err := s.c.get()
	return slices.Clip(v), err
}

// Add appends v to the current key's list.
func (s *ListState[T]) Add(v T) error { return s.AddAll([]T{v}) }

// AddAll appends vs to the current key's list.
func (s *ListState[T]) AddAll(vs []T) error {
	c := s.c.ctx
	if err := c.ready("add", s.c.name); err != nil {
		return err
	}
	if len(vs) == 0 {
		return nil
	}
	if t := s.c.mem; t != nil {
		cl, created := t.Writable(c.gi, c.key)
		before := t.ValueSize(cl.V)
		cl.V = append(cl.V, vs...)
		var keys, exp, now int64
		if created {
			keys = 1
		}
		if s.c.ttl > 0 {
			now = c.now()
			exp = now + s.c.ttl
		}
		t.Changed(c.gi, c.key, cl, keys, t.ValueSize(cl.V)-before, exp)
		s.c.hint = nil
		if now != 0 {
			t.ExpireSome(now, 2)
		}
		return nil
	}
	cur, _, err := s.c.get()
	if err != nil {
		return err
	}
	return s.c.put(append(cur, vs...))
}

// Update replaces the current key's list with a copy of vs (nil or empty:
// deletes it).
func (s *ListState[T]) Update(vs []T) error {
	if len(vs) == 0 {
		return s.c.clear()
	}
	return s.c.put(slices.Clone(vs))
}

// Clear deletes the current key's list.
func (s *ListState[T]) Clear() error { return s.c.clear() }

// Range calls fn with every key that has a list, until fn returns false.
func (s *ListState[T]) Range(fn func(key []byte, v []T) bool) error {
	return s.c.each(func(key []byte, v []T) bool { return fn(key, slices.Clip(v)) })
}

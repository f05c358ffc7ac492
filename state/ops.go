package state

import (
	"bytes"
	"fmt"
	"maps"
	"unsafe"

	"github.com/weir-stream/weir/state/kv"
)

// memory.Ops for each kind of state: how the memory backend encodes a
// value for a snapshot and decodes it back on restore.

// valueOps is for plain values (value, reducing, aggregating and list
// state): one Put per key.
type valueOps[T any] struct {
	size  func(T) int64 // nil: no heap beyond the value itself
	clone func(T) T     // nil: values are never changed in place
}

func newValueOps[T any]() valueOps[T] { return valueOps[T]{size: sizerFor[T]()} }

func (o valueOps[T]) Encode(enc *kv.Encoder, name string, key []byte, v T, exp, _ int64, _ bool, emit func(kv.Entry) error) error {
	b, err := enc.Marshal(v)
	if err != nil {
		return fmt.Errorf("state %q: %w", name, err)
	}
	return emit(kv.Entry{Kind: kv.EntryPut, State: name, Key: key, Value: b, ExpiresAt: exp})
}

func (o valueOps[T]) Apply(cur T, present bool, curExp int64, e kv.Entry) (T, int64, bool, error) {
	if e.UserKey != nil {
		return cur, curExp, present, fmt.Errorf("%w: map entry restored into a value state", kv.ErrTypeMismatch)
	}
	var v T
	if err := kv.Unmarshal(e.Value, &v); err != nil {
		return cur, curExp, present, err
	}
	return v, e.ExpiresAt, true, nil
}

func (o valueOps[T]) Clone(v T) T {
	if o.clone != nil {
		return o.clone(v)
	}
	return v
}

func (o valueOps[T]) Count(T) int { return 1 }

func (o valueOps[T]) Size(v T) int64 {
	if o.size == nil {
		return 0
	}
	return o.size(v)
}

func (o valueOps[T]) Expire(v T, _ int64) (T, int) { return v, 0 }
func (o valueOps[T]) Expiring(T, int64) bool       { return false }

// anyOps is for the guide's stores: values of any type, or RawValue bytes
// restored and not decoded yet.
type anyOps struct{}

func (anyOps) Encode(enc *kv.Encoder, name string, key []byte, v any, exp, _ int64, _ bool, emit func(kv.Entry) error) error {
	var b []byte
	if raw, ok := v.(kv.RawValue); ok {
		b = raw
	} else {
		var err error
		if b, err = enc.Marshal(v); err != nil {
			return fmt.Errorf("state %q key %q: %w", name, key, err)
		}
	}
	return emit(kv.Entry{Kind: kv.EntryPut, State: name, Key: key, Value: b, ExpiresAt: exp})
}

func (anyOps) Apply(cur any, present bool, curExp int64, e kv.Entry) (any, int64, bool, error) {
	if e.UserKey != nil {
		return cur, curExp, present, fmt.Errorf("%w: map entry restored into a store", kv.ErrTypeMismatch)
	}
	return kv.RawValue(bytes.Clone(e.Value)), e.ExpiresAt, true, nil
}

func (anyOps) Clone(v any) any                  { return v }
func (anyOps) Count(any) int                    { return 1 }
func (anyOps) Size(v any) int64                 { return sizeOfAny(v) }
func (anyOps) Expire(v any, _ int64) (any, int) { return v, 0 }
func (anyOps) Expiring(any, int64) bool         { return false }

// mapItem is one map-state entry with its own expiry.
type mapItem[V any] struct {
	v   V
	exp int64
}

// mapOps is for map state: one Put per map entry, the user key encoded.
type mapOps[K comparable, V any] struct {
	ksize func(K) int64
	vsize func(V) int64
	slot  int64 // estimated bytes of one Go map slot
}

func newMapOps[K comparable, V any]() mapOps[K, V] {
	var k K
	var it mapItem[V]
	return mapOps[K, V]{ksize: sizerFor[K](), vsize: sizerFor[V](), slot: int64(unsafe.Sizeof(k)+unsafe.Sizeof(it)) + 8}
}

func (o mapOps[K, V]) Encode(enc *kv.Encoder, name string, key []byte, m map[K]mapItem[V], _, now int64, delta bool, emit func(kv.Entry) error) error {
	if delta {
		if err := emit(kv.Entry{Kind: kv.EntryDelete, State: name, Key: key}); err != nil {
			return err
		}
	}
	for k, it := range m {
		if it.exp != 0 && it.exp <= now {
			continue
		}
		kb, err := kv.Marshal(k)
		if err != nil {
			return fmt.Errorf("state %q: map key: %w", name, err)
		}
		vb, err := enc.Marshal(it.v)
		if err != nil {
			return fmt.Errorf("state %q: %w", name, err)
		}
		if err := emit(kv.Entry{Kind: kv.EntryPut, State: name, Key: key, UserKey: kb, Value: vb, ExpiresAt: it.exp}); err != nil {
			return err
		}
	}
	return nil
}

func (o mapOps[K, V]) Apply(cur map[K]mapItem[V], present bool, _ int64, e kv.Entry) (map[K]mapItem[V], int64, bool, error) {
	if e.UserKey == nil {
		return cur, 0, present, fmt.Errorf("%w: plain value restored into a map state", kv.ErrTypeMismatch)
	}
	var k K
	if err := kv.Unmarshal(e.UserKey, &k); err != nil {
		return cur, 0, present, err
	}
	if !present || cur == nil {
		cur = make(map[K]mapItem[V])
	}
	if e.Kind == kv.EntryDelete {
		delete(cur, k)
		return cur, 0, len(cur) > 0, nil
	}
	var v V
	if err := kv.Unmarshal(e.Value, &v); err != nil {
		return cur, 0, present, err
	}
	cur[k] = mapItem[V]{v: v, exp: e.ExpiresAt}
	return cur, 0, true, nil
}

func (o mapOps[K, V]) Clone(m map[K]mapItem[V]) map[K]mapItem[V] { return maps.Clone(m) }
func (o mapOps[K, V]) Count(m map[K]mapItem[V]) int              { return len(m) }

func (o mapOps[K, V]) Size(m map[K]mapItem[V]) int64 {
	n := int64(len(m)) * o.slot
	if o.ksize == nil && o.vsize == nil {
		return n
	}
	seen := 0
	var sum int64
	for k, it := range m {
		if seen == sampleElems {
			break
		}
		if o.ksize != nil {
			sum += o.ksize(k)
		}
		if o.vsize != nil {
			sum += o.vsize(it.v)
		}
		seen++
	}
	if seen > 0 {
		n += sum * int64(len(m)) / int64(seen)
	}
	return n
}

func (o mapOps[K, V]) itemSize(k K, v V) int64 {
	n := o.slot
	if o.ksize != nil {
		n += o.ksize(k)
	}
	if o.vsize != nil {
		n += o.vsize(v)
	}
	return n
}

func (o mapOps[K, V]) Expiring(m map[K]mapItem[V], now int64) bool {
	for _, it := range m {
		if it.exp != 0 && it.exp <= now {
			return true
		}
	}
	return false
}

func (o mapOps[K, V]) Expire(m map[K]mapItem[V], now int64) (map[K]mapItem[V], int) {
	n := 0
	for k, it := range m {
		if it.exp != 0 && it.exp <= now {
			delete(m, k)
			n++
		}
	}
	return m, n
}

package memory

import (
	"bytes"
	"maps"

	"github.com/weir-stream/weir/state/kv"
)

// rawCell holds restored rows of a state that has not been registered with
// a type yet: a plain value, or map entries by encoded user key.
type rawCell struct {
	val   []byte
	items map[string]rawItem
}

type rawItem struct {
	val []byte
	exp int64
}

// rawOps are the Ops of raw tables: rows are kept and written back as
// restored.
type rawOps struct{}

func (rawOps) Encode(_ *kv.Encoder, name string, key []byte, v *rawCell, exp, now int64, delta bool, emit func(kv.Entry) error) error {
	if v.items == nil {
		return emit(kv.Entry{Kind: kv.EntryPut, State: name, Key: key, Value: v.val, ExpiresAt: exp})
	}
	if delta {
		if err := emit(kv.Entry{Kind: kv.EntryDelete, State: name, Key: key}); err != nil {
			return err
		}
	}
	for uk, it := range v.items {
		if it.exp != 0 && it.exp <= now {
			continue
		}
		if err := emit(kv.Entry{Kind: kv.EntryPut, State: name, Key: key, UserKey: []byte(uk), Value: it.val, ExpiresAt: it.exp}); err != nil {
			return err
		}
	}
	return nil
}

func (rawOps) Apply(cur *rawCell, present bool, curExp int64, e kv.Entry) (*rawCell, int64, bool, error) {
	if e.UserKey == nil {
		// A plain value (Deletes of whole keys do not reach Apply).
		return &rawCell{val: bytes.Clone(e.Value)}, e.ExpiresAt, true, nil
	}
	if !present || cur.items == nil {
		cur = &rawCell{items: make(map[string]rawItem)}
	}
	if e.Kind == kv.EntryDelete {
		delete(cur.items, string(e.UserKey))
	} else {
		cur.items[string(e.UserKey)] = rawItem{val: bytes.Clone(e.Value), exp: e.ExpiresAt}
	}
	return cur, 0, len(cur.items) > 0, nil
}

func (rawOps) Clone(v *rawCell) *rawCell {
	if v == nil {
		return nil
	}
	return &rawCell{val: v.val, items: maps.Clone(v.items)}
}

func (rawOps) Count(v *rawCell) int {
	if v == nil {
		return 0
	}
	if v.items != nil {
		return len(v.items)
	}
	return 1
}

func (rawOps) Size(v *rawCell) int64 {
	if v == nil {
		return 0
	}
	n := int64(len(v.val)) + 32
	for k, it := range v.items {
		n += int64(len(k)+len(it.val)) + 48
	}
	return n
}

func (rawOps) Expiring(v *rawCell, now int64) bool {
	if v == nil {
		return false
	}
	for _, it := range v.items {
		if it.exp != 0 && it.exp <= now {
			return true
		}
	}
	return false
}

func (rawOps) Expire(v *rawCell, now int64) (*rawCell, int) {
	n := 0
	for k, it := range v.items {
		if it.exp != 0 && it.exp <= now {
			delete(v.items, k)
			n++
		}
	}
	return v, n
}

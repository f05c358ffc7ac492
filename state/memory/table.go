package memory

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"unsafe"

	"github.com/weir-stream/weir/state/kv"
)

// Cell holds one key's value in a Table. V may be read by the owner at any
// time; it may be changed in place only through Table.Store or a cell
// returned by Table.Writable.
type Cell[T any] struct {
	V   T
	exp int64  // absolute expiry, Unix ms; 0: never
	ver uint32 // epoch of the last write
	qb  uint32 // expiry bucket the cell is queued in; 0: not queued (owner only)
}

// Exp returns the cell's expiry time (Unix ms, 0: never).
func (c *Cell[T]) Exp() int64 { return c.exp }

// Ops tells a Table how to encode, restore, copy and measure its values.
// Package state provides one per kind of state.
type Ops[T any] interface {
	// Encode calls emit with the entries that stand for v under key (one
	// Put for a plain value, one per map entry for a map). In a delta a
	// value made of several rows first emits a Delete of the whole key.
	// Parts expired at now are left out.
	Encode(enc *kv.Encoder, name string, key []byte, v T, exp, now int64, delta bool, emit func(kv.Entry) error) error
	// Apply applies a restored Put or Delete to the current value (present
	// tells whether there is one; a present value is exclusively owned and
	// may be changed in place) and returns the new value, its expiry, and
	// whether a value remains.
	Apply(cur T, present bool, curExp int64, e kv.Entry) (v T, exp int64, keep bool, err error)
	// Clone copies what of v is changed in place (a map state's map),
	// before a cell shared with a snapshot is changed.
	Clone(v T) T
	// Count returns the number of entries v stands for.
	Count(v T) int
	// Size estimates the heap bytes v holds beyond the cell itself.
	Size(v T) int64
	// Expire removes parts of v expired at now (map entries), in place; v
	// is exclusively owned. It returns v and how many were removed.
	Expire(v T, now int64) (T, int)
	// Expiring reports whether v has parts with an expiry of their own
	// that have expired at now.
	Expiring(v T, now int64) bool
}

// Table is one named state: a map per key group from key to cell.
type Table[T any] struct {
	b      *Backend
	name   string
	ops    Ops[T]
	groups []group[T]
	q      expiryQueue
	mods   uint64 // counts deletions; a hint is valid while it is unchanged

	fixed     bool  // T holds no pointers: Size is constant
	cellBytes int64 // estimated bytes per entry besides key and value
	ttl       int64 // TTL of the state in ms, if it has one (bucket sizing)
}

type group[T any] struct {
	m       map[string]*Cell[T]
	owned   uint32 // epoch in which m became exclusively the live map's
	lastMod uint32 // epoch of the last change
	cleared uint32 // epoch of the last clear of the whole group
	dels    []delSeg
	keys    int64 // entries (Ops.Count) in the group
	bytes   int64 // estimated bytes in the group
}

// delSeg holds the keys deleted in one epoch.
type delSeg struct {
	epoch uint32
	keys  map[string]struct{}
}

// TableOf returns the table called name holding values of type T, creating
// it. If the name holds restored values that were not decoded yet, they are
// decoded into T now. A name that holds another type fails with
// kv.ErrTypeMismatch.
func TableOf[T any](b *Backend, name string, ops Ops[T]) (*Table[T], error) {
	if b.closed {
		return nil, kv.NewError("register", name, kv.ErrClosed)
	}
	if err := kv.ValidateName(name); err != nil {
		return nil, kv.NewError("register", name, err)
	}
	if existing, ok := b.tables[name]; ok {
		if t, ok := existing.(*Table[T]); ok {
			return t, nil
		}
		raw, ok := existing.(*Table[*rawCell])
		if !ok {
			return nil, kv.NewError("register", name, fmt.Errorf("%w: state %q holds %s values, not %s",
				kv.ErrTypeMismatch, name, existing.(interface{ valueType() reflect.Type }).valueType(), reflect.TypeFor[T]()))
		}
		t, err := convertRaw(raw, ops)
		if err != nil {
			return nil, kv.NewError("register", name, err)
		}
		b.tables[name] = t
		return t, nil
	}
	t := newTable(b, name, ops)
	b.tables[name] = t
	return t, nil
}

func newTable[T any](b *Backend, name string, ops Ops[T]) *Table[T] {
	t := &Table[T]{b: b, name: name, ops: ops, groups: make([]group[T], b.n)}
	for i := range t.groups {
		t.groups[i].owned = b.epoch
	}
	vt := reflect.TypeFor[T]()
	t.fixed = !HasPointers(vt)
	t.cellBytes = int64(unsafe.Sizeof(Cell[T]{})) + entryOverhead
	return t
}

// entryOverhead estimates the bytes per entry besides the cell, the key
// bytes and the value's own heap: the map slot (string header and pointer,
// with load factor) and allocation rounding.
const entryOverhead = 56

// HasPointers reports whether values of type t hold pointers (strings,
// slices, maps, ... anywhere inside): without them a value's size is its
// inline size.
func HasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return t.Len() > 0 && HasPointers(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if HasPointers(t.Field(i).Type) {
				return true
			}
		}
		return false
	}
	return true
}

func (t *Table[T]) tableName() string       { return t.name }
func (t *Table[T]) valueType() reflect.Type { return reflect.TypeFor[T]() }
func (t *Table[T]) entries() int64          { return sumKeys(t.groups) }
func sumKeys[T any](gs []group[T]) (n int64) {
	for i := range gs {
		n += gs[i].keys
	}
	return n
}

// Name returns the state name.
func (t *Table[T]) Name() string { return t.name }

// Backend returns the table's backend.
func (t *Table[T]) Backend() *Backend { return t.b }

// SetTTL tells the table the TTL its writes use (for sizing the expiry
// queue's time buckets). It has no other effect.
func (t *Table[T]) SetTTL(ttlMillis int64) { t.ttl = ttlMillis }

// Mods changes whenever a cell is deleted; a cell pointer obtained before is
// only known to be in the table while Mods is unchanged.
func (t *Table[T]) Mods() uint64 { return t.mods }

// GroupIndex returns the index of key group kg in the table, or an error
// wrapping kv.ErrKeyGroupRange.
func (t *Table[T]) GroupIndex(kg int) (int, error) { return t.b.groupIndex(kg) }

func (t *Table[T]) size(key string, v T) int64 {
	s := int64(len(key)) + t.cellBytes
	if !t.fixed {
		s += t.ops.Size(v)
	}
	return s
}

// ValueSize returns the estimated heap bytes of v (see Ops.Size; 0 for
// values without pointers).
func (t *Table[T]) ValueSize(v T) int64 {
	if t.fixed {
		return 0
	}
	return t.ops.Size(v)
}

func (t *Table[T]) account(g *group[T], keys, bytes int64) {
	g.keys += keys
	g.bytes += bytes
	if keys != 0 {
		t.b.keys.Add(keys)
	}
	if bytes != 0 {
		t.b.bytes.Add(bytes)
	}
}

// Get returns the live cell of key in group gi (see GroupIndex), or nil if
// there is none or it has expired. It counts a hit or a miss on the
// owner's counters (published at Flush), so only the owner goroutine may
// call it; concurrent readers use GetShared.
func (t *Table[T]) Get(gi int, key []byte) *Cell[T] {
	c := t.groups[gi].m[string(key)]
	if c == nil || (c.exp != 0 && c.exp <= t.b.now()) {
		t.b.ownMisses++
		return nil
	}
	t.b.ownHits++
	return c
}

// GetShared is Get for readers that may run concurrently with each other
// (not with writes): it counts with atomics.
func (t *Table[T]) GetShared(gi int, key []byte) *Cell[T] {
	c := t.groups[gi].m[string(key)]
	if c == nil || (c.exp != 0 && c.exp <= t.b.now()) {
		t.b.misses.Add(1)
		return nil
	}
	t.b.hits.Add(1)
	return c
}

// Peek is Get without counting, and it returns expired cells too.
func (t *Table[T]) Peek(gi int, key []byte) *Cell[T] {
	return t.groups[gi].m[string(key)]
}

// Store sets the value of key (exp: absolute Unix ms, 0: never). If hint is
// the cell Get or Peek returned for this key and Mods has not changed since,
// Store may update it in place without a lookup. now is the current time if
// the caller read it (writes with a TTL do), else 0; it drives incremental
// expiry cleanup.
func (t *Table[T]) Store(gi int, key []byte, v T, exp int64, hint *Cell[T], hintMods uint64, now int64) *Cell[T] {
	c := hint
	if c == nil || hintMods != t.mods {
		c = t.groups[gi].m[string(key)]
	}
	if c != nil && c.ver == t.b.epoch {
		if !t.fixed {
			t.account(&t.groups[gi], 0, t.ops.Size(v)-t.ops.Size(c.V))
		}
		c.V = v
		c.exp = exp
		if exp != 0 && c.qb == 0 {
			c.qb = t.q.push(t.ttl, gi, string(key), exp)
		}
	} else {
		c = t.storeSlow(gi, key, v, exp)
	}
	if now != 0 && t.q.due(now) {
		t.expireSome(now, 2)
	}
	return c
}

// storeSlow replaces (copy-on-write) or inserts the cell of key.
func (t *Table[T]) storeSlow(gi int, key []byte, v T, exp int64) *Cell[T] {
	g := &t.groups[gi]
	t.own(g)
	old := g.m[string(key)]
	nc := &Cell[T]{V: v, exp: exp, ver: t.b.epoch}
	ks := string(key)
	if old != nil {
		if old.exp != 0 && old.exp <= t.b.now() {
			t.b.expired.Add(1) // replacing an expired cell
		}
		nc.qb = old.qb
		t.account(g, int64(t.ops.Count(v)-t.ops.Count(old.V)), t.size(ks, v)-t.size(ks, old.V))
	} else {
		t.account(g, int64(t.ops.Count(v)), t.size(ks, v))
	}
	g.m[ks] = nc
	if exp != 0 && nc.qb == 0 {
		nc.qb = t.q.push(t.ttl, gi, ks, exp)
	}
	return nc
}

// Writable returns the cell of key ready to be changed in place (copied
// from a cell shared with a snapshot with Ops.Clone if needed), creating an
// empty one with the zero value if there is none or it expired (created
// reports that). The caller must then call Changed with the entry-count
// and size differences it made.
func (t *Table[T]) Writable(gi int, key []byte) (c *Cell[T], created bool) {
	g := &t.groups[gi]
	old := g.m[string(key)]
	if old != nil && old.ver == t.b.epoch && !(old.exp != 0 && old.exp <= t.b.now()) {
		g.lastMod = t.b.epoch
		return old, false
	}
	t.own(g)
	if old != nil && !(old.exp != 0 && old.exp <= t.b.now()) {
		nc := &Cell[T]{V: t.ops.Clone(old.V), exp: old.exp, ver: t.b.epoch, qb: old.qb}
		g.m[string(key)] = nc
		return nc, false
	}
	if old != nil {
		t.removeCell(g, string(key), old, true)
	}
	ks := string(key)
	nc := &Cell[T]{ver: t.b.epoch}
	g.m[ks] = nc
	t.account(g, 0, t.size(ks, nc.V))
	return nc, true
}

// Changed records that the caller changed a cell from Writable: the entry
// count and estimated bytes moved by keys and bytes; exp is the cell's new
// expiry.
func (t *Table[T]) Changed(gi int, key []byte, c *Cell[T], keys, bytes int64, exp int64) {
	t.account(&t.groups[gi], keys, bytes)
	c.exp = exp
	if exp != 0 && c.qb == 0 {
		c.qb = t.q.push(t.ttl, gi, string(key), exp)
	}
}

// Delete removes key; it reports whether there was a live value.
func (t *Table[T]) Delete(gi int, key []byte) bool {
	g := &t.groups[gi]
	c := g.m[string(key)]
	if c == nil {
		return false
	}
	t.own(g)
	live := !(c.exp != 0 && c.exp <= t.b.now())
	t.removeCell(g, string(key), c, !live)
	t.recordDel(g, string(key))
	return live
}

// removeCell deletes a cell from its (owned) group map.
func (t *Table[T]) removeCell(g *group[T], key string, c *Cell[T], expired bool) {
	delete(g.m, key)
	t.account(g, -int64(t.ops.Count(c.V)), -t.size(key, c.V))
	t.mods++
	if expired {
		t.b.expired.Add(1)
	}
}

func (t *Table[T]) recordDel(g *group[T], key string) {
	e := t.b.epoch
	if n := len(g.dels); n > 0 && g.dels[n-1].epoch == e {
		g.dels[n-1].keys[key] = struct{}{}
		return
	}
	// Drop segments the confirmed base already covers; build a new slice,
	// as a snapshot may hold the old one.
	var keep []delSeg
	for _, s := range g.dels {
		if s.epoch > t.b.baseEpoch {
			keep = append(keep, s)
		}
	}
	g.dels = append(keep, delSeg{epoch: e, keys: map[string]struct{}{key: {}}})
}

// own makes g.m exclusively the live map (cloning it if a snapshot holds
// it) and marks the group changed in this epoch.
func (t *Table[T]) own(g *group[T]) {
	e := t.b.epoch
	if g.owned != e {
		g.m = maps.Clone(g.m)
		g.owned = e
	}
	if g.m == nil {
		g.m = make(map[string]*Cell[T])
	}
	g.lastMod = e
}

// keepOwned marks the group maps owned in epoch from as owned in epoch to
// (the epoch moved on without a snapshot freezing them).
func (t *Table[T]) keepOwned(from, to uint32) {
	for i := range t.groups {
		if t.groups[i].owned == from {
			t.groups[i].owned = to
		}
	}
}

// ClearGroup deletes every key of group gi.
func (t *Table[T]) ClearGroup(gi int) {
	g := &t.groups[gi]
	t.account(g, -g.keys, -g.bytes)
	g.m = nil
	g.owned = t.b.epoch
	g.lastMod = t.b.epoch
	g.cleared = t.b.epoch
	g.dels = nil
	t.mods++
}

// Clear deletes every key of the table.
func (t *Table[T]) Clear() {
	for gi := range t.groups {
		if t.groups[gi].m != nil || t.groups[gi].keys != 0 {
			t.ClearGroup(gi)
		}
	}
}

// Range calls fn with every live cell of group gi until fn returns false.
// fn may write to the table; keys it adds may or may not be visited.
func (t *Table[T]) Range(gi int, fn func(key string, c *Cell[T]) bool) {
	now := t.b.now()
	for k, c := range t.groups[gi].m {
		if c.exp != 0 && c.exp <= now {
			continue
		}
		if !fn(k, c) {
			return
		}
	}
}

// Groups returns the number of key groups of the table.
func (t *Table[T]) Groups() int { return len(t.groups) }

// resetGroup empties group gi without recording a change (restore).
func (t *Table[T]) resetGroup(gi int) {
	g := &t.groups[gi]
	t.account(g, -g.keys, -g.bytes)
	*g = group[T]{owned: t.b.epoch}
	t.mods++
}

// apply applies a restored entry to group gi.
func (t *Table[T]) apply(gi int, e kv.Entry) error {
	g := &t.groups[gi]
	t.own(g)
	old := g.m[string(e.Key)]
	if old != nil && old.exp != 0 && old.exp <= t.b.now() {
		t.removeCell(g, string(e.Key), old, true)
		old = nil
	}
	if e.Kind == kv.EntryDelete && e.UserKey == nil {
		if old != nil {
			t.removeCell(g, string(e.Key), old, false)
		}
		return nil
	}
	var cur T
	var curExp int64
	if old != nil {
		cur, curExp = old.V, old.exp
		if old.ver != t.b.epoch {
			cur = t.ops.Clone(cur)
		}
	}
	oldCount, oldSize := 0, int64(0)
	if old != nil {
		oldCount, oldSize = t.ops.Count(old.V), t.size(string(e.Key), old.V)
	}
	v, exp, keep, err := t.ops.Apply(cur, old != nil, curExp, e)
	if err != nil {
		return fmt.Errorf("state %q: %w", t.name, err)
	}
	ks := string(e.Key)
	if !keep {
		if old != nil {
			delete(g.m, ks)
			t.account(g, -int64(oldCount), -oldSize)
			t.mods++
		}
		return nil
	}
	c := old
	if c == nil || c.ver != t.b.epoch {
		c = &Cell[T]{ver: t.b.epoch}
		if old != nil {
			c.qb = old.qb
		}
		g.m[ks] = c
	}
	c.V, c.exp = v, exp
	t.account(g, int64(t.ops.Count(v)-oldCount), t.size(ks, v)-oldSize)
	if exp != 0 && c.qb == 0 {
		c.qb = t.q.push(t.ttl, gi, ks, exp)
	}
	return nil
}

// cleanup removes every expired cell and expired map entry.
func (t *Table[T]) cleanup(ctx context.Context, now int64) (int, error) {
	removed := 0
	for gi := range t.groups {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		g := &t.groups[gi]
		// Find the first expired cell before taking ownership: cleaning an
		// already clean group should not clone its map.
		dirty := false
		for _, c := range g.m {
			if (c.exp != 0 && c.exp <= now) || t.ops.Expiring(c.V, now) {
				dirty = true
				break
			}
		}
		if !dirty {
			continue
		}
		t.own(g)
		for k, c := range g.m {
			if c.exp != 0 && c.exp <= now {
				t.removeCell(g, k, c, true)
				if c.ver > t.b.baseEpoch {
					t.recordDel(g, k)
				}
				removed++
				continue
			}
			if !t.ops.Expiring(c.V, now) {
				continue
			}
			wc := c
			if c.ver != t.b.epoch {
				wc = &Cell[T]{V: t.ops.Clone(c.V), exp: c.exp, ver: t.b.epoch, qb: c.qb}
				g.m[k] = wc
			}
			oldSize := t.size(k, wc.V)
			v, n := t.ops.Expire(wc.V, now)
			wc.V = v
			removed += n
			t.b.expired.Add(int64(n))
			t.account(g, -int64(n), t.size(k, v)-oldSize)
			if t.ops.Count(v) == 0 {
				delete(g.m, k)
				t.account(g, 0, -t.size(k, v))
				t.mods++
				t.recordDel(g, k)
			}
		}
	}
	return removed, nil
}

// expireSome processes up to budget items of due expiry buckets.
func (t *Table[T]) expireSome(now int64, budget int) {
	for budget > 0 {
		it, rb, ok := t.q.pop(now)
		if !ok {
			return
		}
		budget--
		g := &t.groups[it.gi]
		c := g.m[it.key]
		if c == nil || c.qb != rb {
			continue // stale item: deleted, or queued elsewhere
		}
		switch {
		case c.exp == 0:
			c.qb = 0
		case c.exp <= now:
			t.own(g)
			t.removeCell(g, it.key, c, true)
			if c.ver > t.b.baseEpoch {
				t.recordDel(g, it.key)
			}
		default: // refreshed since it was queued
			c.qb = t.q.push(t.ttl, int(it.gi), it.key, c.exp)
		}
	}
}

// ExpireSome runs incremental expiry cleanup: up to budget queued cells are
// examined (only if some are due at now).
func (t *Table[T]) ExpireSome(now int64, budget int) {
	if t.q.due(now) {
		t.expireSome(now, budget)
	}
}

// freeze captures the table's maps for a snapshot.
func (t *Table[T]) freeze() frozenTable {
	f := &frozen[T]{name: t.name, ops: t.ops, groups: make([]frozenGroup[T], len(t.groups))}
	for i := range t.groups {
		g := &t.groups[i]
		f.groups[i] = frozenGroup[T]{m: g.m, lastMod: g.lastMod, cleared: g.cleared, dels: g.dels}
	}
	return f
}

// convertRaw builds a typed table from a raw table of restored values.
func convertRaw[T any](raw *Table[*rawCell], ops Ops[T]) (*Table[T], error) {
	b := raw.b
	t := newTable(b, raw.name, ops)
	t.ttl = raw.ttl
	now := b.now()
	var enc kv.Encoder
	for gi := range raw.groups {
		rg := &raw.groups[gi]
		g := &t.groups[gi]
		g.lastMod, g.cleared, g.dels = rg.lastMod, rg.cleared, rg.dels
		for k, rc := range rg.m {
			var v T
			var exp int64
			present := false
			err := rawOps{}.Encode(&enc, raw.name, []byte(k), rc.V, rc.exp, now, false, func(e kv.Entry) error {
				var err error
				var keep bool
				v, exp, keep, err = ops.Apply(v, present, exp, e)
				present = keep
				return err
			})
			if err != nil {
				return nil, fmt.Errorf("state %q: decode restored value: %w", raw.name, err)
			}
			if !present {
				continue
			}
			if g.m == nil {
				g.m = make(map[string]*Cell[T], len(rg.m))
			}
			c := &Cell[T]{V: v, exp: exp, ver: rc.ver}
			g.m[k] = c
			t.account(g, int64(ops.Count(v)), t.size(k, v))
			if exp != 0 {
				c.qb = t.q.push(t.ttl, gi, k, exp)
			}
		}
		raw.account(rg, -rg.keys, -rg.bytes)
	}
	raw.mods++
	return t, nil
}

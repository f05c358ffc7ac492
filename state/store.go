package state

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

// Store is the guide's StateHelper: a string-keyed store of values of any
// type the codec supports. Typed access is through the package functions
// PutTyped and GetTyped (Go methods cannot be generic).
//
// Stores are safe for concurrent use. Writes are applied under a lock that
// readers share, so a reader sees a batch committed entirely or not at all.
type Store interface {
	// Get returns the value of key. A value that was put in this process
	// comes back as it was put (memory) — do not change it afterwards; a
	// value read from Pebble or restored from a snapshot is decoded into
	// generic Go types (see package kv), unless read with GetTyped.
	Get(key string) (value any, ok bool, err error)
	// Put sets key to value (with the store's default TTL, if any).
	Put(key string, value any) error
	// PutWithTTL sets key to value, expiring ttl (> 0) from now.
	PutWithTTL(key string, value any, ttl time.Duration) error
	// Remove deletes key (a missing key is not an error).
	Remove(key string) error
	// Clear deletes every key of the store.
	Clear() error
	// BatchPut stages key = value in the store's open batch, opening one
	// if needed. Staged writes are invisible until CommitBatch.
	BatchPut(key string, value any) error
	// BatchRemove stages the removal of key.
	BatchRemove(key string) error
	// CommitBatch applies the open batch atomically: readers see all of it
	// or none of it. Without an open batch it does nothing.
	CommitBatch() error
	// AbortBatch drops the open batch.
	AbortBatch() error
	// Stats returns the statistics of the backend the store lives in.
	Stats() StateStats
}

// rawGetter is implemented by this package's stores so that GetTyped can
// decode encoded values straight into the wanted type.
type rawGetter interface {
	getRaw(key string) (obj any, raw []byte, ok bool, err error)
}

// PutTyped sets key to value: the guide's put_typed.
func PutTyped[V any](s Store, key string, value V) error { return s.Put(key, value) }

// GetTyped returns the value of key as a V: the guide's get_typed. A value
// of another type is converted the way the codec would convert it after a
// restart (an int64 reads as a uint64 if it fits, a struct as another
// struct with the same field names); if that fails the error wraps
// ErrTypeMismatch. The memory backend and Pebble convert alike.
func GetTyped[V any](s Store, key string) (V, bool, error) {
	var zero V
	var obj any
	var raw []byte
	var ok bool
	var err error
	if rg, isRaw := s.(rawGetter); isRaw {
		obj, raw, ok, err = rg.getRaw(key)
	} else {
		obj, ok, err = s.Get(key)
	}
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := convert[V](obj, raw)
	if err != nil {
		return zero, false, kv.NewError("get", key, err)
	}
	return v, true, nil
}

// Decode converts a value returned by Store.Get into a V, as GetTyped
// does.
func Decode[V any](value any) (V, error) { return convert[V](value, nil) }

func convert[V any](obj any, raw []byte) (V, error) {
	var v V
	if r, ok := obj.(kv.RawValue); ok && raw == nil {
		raw = r
	}
	if raw != nil {
		err := kv.Unmarshal(raw, &v)
		return v, err
	}
	if x, ok := obj.(V); ok {
		return x, nil
	}
	if obj == nil {
		return v, nil // a stored nil reads as the zero value
	}
	b, err := kv.Marshal(obj)
	if err != nil {
		return v, fmt.Errorf("%w: %T cannot be read as %T: %v", kv.ErrTypeMismatch, obj, v, err)
	}
	if err := kv.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%w: %T cannot be read as %T", kv.ErrTypeMismatch, obj, v)
	}
	return v, nil
}

// DefaultStateName is the state name of the guide's stores.
const DefaultStateName = "default"

// storeCore is what the stores over one backend share: the backend, the
// lock, the open-batch count.
type storeCore struct {
	mu     sync.RWMutex // writers: every write and Snapshot; readers: reads
	b      Backend
	mem    *memory.Backend
	kvb    kv.KV
	table  *memory.Table[any] // memory: the stores' table
	name   string
	cfg    kv.Config
	ttl    int64 // default TTL, ms
	closed bool  // guarded by mu

	active atomic.Int64 // open batches
}

func newStoreCore(b Backend, name string, defaultTTL time.Duration) (*storeCore, error) {
	if err := kv.ValidateName(name); err != nil {
		return nil, kv.NewError("store", name, err)
	}
	c := &storeCore{b: b, name: name, cfg: b.Config(), ttl: TTLConfig{TTL: defaultTTL}.millis()}
	switch x := b.(type) {
	case *memory.Backend:
		c.mem = x
		t, err := memory.TableOf[any](x, name, anyOps{})
		if err != nil {
			return nil, err
		}
		t.SetTTL(c.ttl)
		c.table = t
	case kv.KV:
		c.kvb = x
	default:
		return nil, fmt.Errorf("state: store: %w: unsupported backend %T", kv.ErrInvalid, b)
	}
	return c, nil
}

func (c *storeCore) now() int64 { return kv.NowMillis(c.cfg.Clock) }

// store is a Store over a storeCore: one key group, or every key group
// with keys placed by hash.
type store struct {
	core *storeCore
	kg   int   // the key group, or -1: KeyGroupOf(key)
	err  error // set for an invalid partition: every operation fails

	bmu   sync.Mutex // guards the batch
	open  bool
	batch []batchOp
}

type batchOp struct {
	key    string
	val    any    // memory
	enc    []byte // Pebble
	ttl    int64  // ms; 0: the store's default
	remove bool
}

// strBytes views a string as bytes without copying; the backends only read
// lookup keys (and copy what they keep).
func strBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (s *store) group(key string) (kg, gi int, err error) {
	if s.err != nil {
		return 0, 0, s.err
	}
	kg = s.kg
	if kg < 0 {
		kg = kv.KeyGroupOf(strBytes(key), s.core.cfg.MaxKeyGroups)
	}
	if !s.core.cfg.KeyGroups.Contains(kg) {
		return 0, 0, fmt.Errorf("key group %d: %w: backend holds %v", kg, kv.ErrKeyGroupRange, s.core.cfg.KeyGroups)
	}
	return kg, kg - s.core.cfg.KeyGroups.Start, nil
}

func (s *store) Get(key string) (any, bool, error) {
	obj, raw, ok, err := s.getRaw(key)
	if err != nil || !ok {
		return nil, false, err
	}
	if raw != nil {
		var v any
		if err := kv.Unmarshal(raw, &v); err != nil {
			return nil, false, kv.NewError("get", key, err)
		}
		return v, true, nil
	}
	return obj, true, nil
}

func (s *store) getRaw(key string) (obj any, raw []byte, ok bool, err error) {
	c := s.core
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return nil, nil, false, kv.NewError("get", key, kv.ErrClosed)
	}
	kg, gi, err := s.group(key)
	if err != nil {
		return nil, nil, false, kv.NewError("get", key, err)
	}
	if c.table != nil {
		cl := c.table.GetShared(gi, strBytes(key))
		if cl == nil {
			return nil, nil, false, nil
		}
		if r, isRaw := cl.V.(kv.RawValue); isRaw {
			return nil, r, true, nil
		}
		return cl.V, nil, true, nil
	}
	b, _, ok, err := c.kvb.GetEntry(nil, kg, c.name, strBytes(key), nil)
	if err != nil {
		return nil, nil, false, err
	}
	return nil, b, ok, nil
}

// prepare validates a write outside the lock: the memory backend checks
// that the value's type encodes, Pebble encodes it.
func (s *store) prepare(op *batchOp) error {
	if op.remove || op.enc != nil {
		return nil // nothing to check, or already encoded (staged)
	}
	if s.core.table != nil {
		if err := kv.CheckEncodable(op.val); err != nil {
			return kv.NewError("put", op.key, err)
		}
		return nil
	}
	b, err := kv.Marshal(op.val)
	if err != nil {
		return kv.NewError("put", op.key, err)
	}
	op.enc, op.val = b, nil
	return nil
}

// write applies ops under the write lock, all or nothing.
func (s *store) write(opName string, ops ...batchOp) error {
	for i := range ops {
		if err := s.prepare(&ops[i]); err != nil {
			return err
		}
	}
	c := s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return kv.NewError(opName, "", kv.ErrClosed)
	}
	for _, op := range ops {
		if _, _, err := s.group(op.key); err != nil {
			return kv.NewError(opName, op.key, err)
		}
	}
	now := c.now()
	for _, op := range ops {
		if err := s.apply(op, now); err != nil {
			if c.kvb != nil {
				_ = c.kvb.Discard()
			}
			return err
		}
	}
	if c.kvb != nil {
		if err := c.kvb.Flush(); err != nil {
			_ = c.kvb.Discard()
			return err
		}
	}
	return nil
}

func (s *store) apply(op batchOp, now int64) error {
	c := s.core
	kg, gi, _ := s.group(op.key)
	ttl := op.ttl
	if ttl == 0 {
		ttl = c.ttl
	}
	var exp, tnow int64
	if ttl > 0 {
		exp, tnow = now+ttl, now
	}
	k := strBytes(op.key)
	if c.table != nil {
		if op.remove {
			c.table.Delete(gi, k)
		} else {
			c.table.Store(gi, k, op.val, exp, nil, 0, tnow)
		}
		return nil
	}
	if op.remove {
		return c.kvb.DeleteEntry(kg, c.name, k, nil)
	}
	return c.kvb.SetEntry(kg, c.name, k, nil, op.enc, exp)
}

func (s *store) Put(key string, value any) error {
	return s.write("put", batchOp{key: key, val: value})
}

func (s *store) PutWithTTL(key string, value any, ttl time.Duration) error {
	if ttl <= 0 {
		return kv.NewError("put", key, fmt.Errorf("%w: ttl %v must be positive", kv.ErrInvalid, ttl))
	}
	return s.write("put", batchOp{key: key, val: value, ttl: TTLConfig{TTL: ttl}.millis()})
}

func (s *store) Remove(key string) error {
	return s.write("remove", batchOp{key: key, remove: true})
}

func (s *store) Clear() error {
	c := s.core
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return kv.NewError("clear", "", kv.ErrClosed)
	}
	if s.err != nil {
		return kv.NewError("clear", "", s.err)
	}
	rng := c.cfg.KeyGroups
	if s.kg >= 0 {
		rng = KeyGroupRange{Start: s.kg, End: s.kg + 1}
	}
	if c.table != nil {
		if s.kg < 0 {
			c.table.Clear()
		} else {
			c.table.ClearGroup(s.kg - c.cfg.KeyGroups.Start)
		}
		return nil
	}
	for kg := rng.Start; kg < rng.End; kg++ {
		if err := c.kvb.DeletePrefix(kg, c.name, nil); err != nil {
			_ = c.kvb.Discard()
			return err
		}
	}
	return c.kvb.Flush()
}

func (s *store) stage(op batchOp) error {
	if err := s.prepare(&op); err != nil {
		return err
	}
	if _, _, err := s.group(op.key); err != nil {
		return kv.NewError("batch", op.key, err)
	}
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if !s.open {
		s.open = true
		s.core.active.Add(1)
	}
	s.batch = append(s.batch, op)
	return nil
}

func (s *store) BatchPut(key string, value any) error {
	return s.stage(batchOp{key: key, val: value})
}

func (s *store) BatchRemove(key string) error {
	return s.stage(batchOp{key: key, remove: true})
}

// take closes the open batch and returns its writes.
func (s *store) take() ([]batchOp, bool) {
	s.bmu.Lock()
	defer s.bmu.Unlock()
	if !s.open {
		return nil, false
	}
	ops := s.batch
	s.batch, s.open = nil, false
	s.core.active.Add(-1)
	return ops, true
}

func (s *store) CommitBatch() error {
	ops, ok := s.take()
	if !ok || len(ops) == 0 {
		return nil
	}
	// Values were prepared when staged; write prepares only what is not.
	return s.write("commit", ops...)
}

func (s *store) AbortBatch() error {
	s.take()
	return nil
}

func (s *store) Stats() StateStats {
	st := s.core.b.Stats()
	st.ActiveTransactions = s.core.active.Load()
	return st
}

// NewStore returns a Store over backend b, holding its values under state
// name name, each key in the key group of its hash (b must hold all key
// groups its keys fall in). The store has its own lock: b must not be used
// by anything else concurrently. Only WithDefaultTTL applies (b has its
// clock).
func NewStore(b Backend, name string, opts ...StoreOption) (Store, error) {
	var o storeOptions
	for _, f := range opts {
		f(&o)
	}
	core, err := newStoreCore(b, name, o.ttl)
	if err != nil {
		return nil, err
	}
	return &store{core: core, kg: -1}, nil
}

// StoreOption configures NewMemoryState and NewStore.
type StoreOption func(*storeOptions)

type storeOptions struct {
	clock Clock
	ttl   time.Duration
}

// WithClock makes the store measure TTLs with c (tests use a ManualClock).
func WithClock(c Clock) StoreOption { return func(o *storeOptions) { o.clock = c } }

// WithDefaultTTL gives every Put without an explicit TTL this one.
func WithDefaultTTL(ttl time.Duration) StoreOption { return func(o *storeOptions) { o.ttl = ttl } }

// MemoryState is the guide's SimpleMemoryState: a standalone in-memory
// Store. It is safe for concurrent use.
type MemoryState struct {
	store
}

var _ Store = (*MemoryState)(nil)

// NewMemoryState returns an empty in-memory store.
func NewMemoryState(opts ...StoreOption) *MemoryState {
	var o storeOptions
	for _, f := range opts {
		f(&o)
	}
	b, err := memory.New(kv.Config{MaxKeyGroups: 1, Clock: o.clock})
	if err != nil {
		panic(err) // cannot happen: the configuration is fixed
	}
	core, err := newStoreCore(b, DefaultStateName, o.ttl)
	if err != nil {
		panic(err)
	}
	return &MemoryState{store: store{core: core, kg: 0}}
}

// CleanupExpiredState removes expired entries and returns how many.
func (m *MemoryState) CleanupExpiredState() int {
	m.core.mu.Lock()
	defer m.core.mu.Unlock()
	if m.core.closed {
		return 0
	}
	n, _ := m.core.b.CleanupExpired(context.Background())
	return n
}

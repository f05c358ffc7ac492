// Package memory is weir's in-memory state backend: keyed state held as Go
// objects in Go maps, with no encoding on the hot path, and snapshots that
// cost microseconds to take.
//
// # Layout
//
// Each state name is a Table[T] of cells (*Cell[T]: the value, its expiry and
// its version), one Go map per key group, keyed by the key as a string. The
// typed tables are created by package state (TableOf), which knows T; values
// restored from a snapshot for a state nobody has asked for yet wait in a raw
// table (CBOR bytes) and are decoded when the state is first registered.
//
// # Snapshots: copy-on-write by epoch
//
// The backend counts epochs; Snapshot freezes epoch N (it keeps a reference
// to every key group's map) and starts epoch N+1, which costs one pointer
// copy per (state, key group). Afterwards:
//   - a key group's map is cloned (shallowly: cell pointers) before its first
//     structural change in the new epoch, so the snapshot's map never
//     changes;
//   - a cell is changed in place only if it was written in the current epoch
//     (Cell.ver == epoch); otherwise a new cell replaces it, so the cells a
//     snapshot sees never change either.
//
// A snapshot can therefore be read from another goroutine, without locks,
// while the owner goes on writing. The first write to each key group after a
// snapshot pays for one map clone; steady-state updates of a key already
// written in the epoch are an in-place store.
//
// # Changes since the last confirmed snapshot
//
// A cell's version is the epoch of its last write, so the changed cells are
// those newer than the base epoch; deletions are remembered per epoch until a
// later snapshot is confirmed; a clear of a whole key group is one marker.
// Entries removed because they expired are recorded as deletions only if
// they changed since the base (the base holds them with their expiry, and a
// restore drops them again).
//
// # TTL
//
// Expiry is an absolute processing time in Unix milliseconds (0: never).
// An expired cell is never returned. Cells with an expiry are queued in time
// buckets (at most one live queue item per cell); writes with a TTL examine
// a couple of due items each (incremental cleanup), and CleanupExpired
// scans everything.
//
// # Concurrency
//
// As every kv.Backend: one owner goroutine; Stats and snapshots from
// anywhere. Table.Get with a nil hint only reads, so the guide's stores may
// call it from several goroutines under a read lock.
package memory

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/weir-stream/weir/state/kv"
)

// Backend is the in-memory backend. Create it with New.
type Backend struct {
	cfg   kv.Config
	start int // cfg.KeyGroups.Start
	n     int // cfg.KeyGroups.Len()

	// Owner-goroutine fields.
	epoch     uint32 // current epoch; writes stamp cells with it
	lastSeq   uint64 // seq of the last snapshot (== the epoch it froze)
	confirmed uint64 // reported Base: last confirmed snapshot since the last restore, or 0
	baseEpoch uint32 // cells with ver > baseEpoch are changes
	tables    map[string]table
	closed    bool
	// Reads counted on the owner goroutine, published to hits and misses
	// at Flush and Snapshot: an atomic add per read would cost more than
	// the read itself.
	ownHits, ownMisses int64

	// Counters, readable from any goroutine.
	keys, bytes, hits, misses, expired atomic.Int64
}

var _ kv.Backend = (*Backend)(nil)

// New returns an empty memory backend.
func New(cfg kv.Config) (*Backend, error) {
	if err := cfg.EnsureDefaults(); err != nil {
		return nil, err
	}
	return &Backend{
		cfg:    cfg,
		start:  cfg.KeyGroups.Start,
		n:      cfg.KeyGroups.Len(),
		epoch:  1,
		tables: make(map[string]table),
	}, nil
}

// table is what the backend needs of a Table[T] of any T.
type table interface {
	tableName() string
	freeze() frozenTable
	resetGroup(gi int)
	apply(gi int, e kv.Entry) error
	cleanup(ctx context.Context, now int64) (int, error)
	entries() int64
	keepOwned(from, to uint32)
}

// Config returns the backend's configuration.
func (b *Backend) Config() kv.Config { return b.cfg }

// Epoch returns the current epoch (for tests and package state).
func (b *Backend) Epoch() uint32 { return b.epoch }

func (b *Backend) now() int64 { return kv.NowMillis(b.cfg.Clock) }

// groupIndex returns the index of key group kg, or an error.
func (b *Backend) groupIndex(kg int) (int, error) {
	if kg < b.start || kg >= b.start+b.n {
		return 0, fmt.Errorf("key group %d: %w: backend holds %v", kg, kv.ErrKeyGroupRange, b.cfg.KeyGroups)
	}
	return kg - b.start, nil
}

// Snapshot freezes the state; see the package documentation.
func (b *Backend) Snapshot() (kv.Snapshot, error) {
	if b.closed {
		return nil, kv.NewError("snapshot", "", kv.ErrClosed)
	}
	b.publishReads()
	s := &snapshot{
		seq:       uint64(b.epoch),
		base:      b.confirmed,
		baseEpoch: b.baseEpoch,
		time:      b.now(),
		rng:       b.cfg.KeyGroups,
		maxKG:     b.cfg.MaxKeyGroups,
		start:     b.start,
	}
	names := make([]string, 0, len(b.tables))
	for name := range b.tables {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		s.tables = append(s.tables, b.tables[name].freeze())
	}
	b.lastSeq = s.seq
	b.epoch++
	return s, nil
}

// ConfirmSnapshot makes seq the base of later snapshots' changes.
func (b *Backend) ConfirmSnapshot(seq uint64) {
	if seq <= b.confirmed || seq > b.lastSeq || uint32(seq) <= b.baseEpoch {
		return
	}
	b.confirmed = seq
	b.baseEpoch = uint32(seq)
}

// Restore applies an entry file; see kv.Backend.
func (b *Backend) Restore(r io.Reader) error {
	if b.closed {
		return kv.NewError("restore", "", kv.ErrClosed)
	}
	if err := kv.ApplyFile(r, b.cfg, b.now(), applier{b}); err != nil {
		return kv.NewError("restore", "", err)
	}
	// The restored state is the new base: cells written so far (version
	// <= epoch) are not changes; later writes are.
	b.baseEpoch = b.epoch
	b.confirmed = 0
	b.epoch++
	// No snapshot shares the maps this epoch owned: they stay owned, or
	// the next file of a key group's chain would copy the whole group.
	for _, t := range b.tables {
		t.keepOwned(b.epoch-1, b.epoch)
	}
	return nil
}

type applier struct{ b *Backend }

func (a applier) ResetKeyGroup(kg int) error {
	gi, err := a.b.groupIndex(kg)
	if err != nil {
		return err
	}
	for _, t := range a.b.tables {
		t.resetGroup(gi)
	}
	return nil
}

func (a applier) ApplyEntry(kg int, e kv.Entry) error {
	gi, err := a.b.groupIndex(kg)
	if err != nil {
		return err
	}
	t, ok := a.b.tables[e.State]
	if e.Kind == kv.EntryClear {
		if ok {
			t.resetGroup(gi)
		}
		return nil
	}
	if !ok {
		if e.Kind == kv.EntryDelete {
			return nil
		}
		rt := newTable[*rawCell](a.b, e.State, rawOps{})
		a.b.tables[e.State] = rt
		t = rt
	}
	return t.apply(gi, e)
}

// CleanupExpired removes every expired entry.
func (b *Backend) CleanupExpired(ctx context.Context) (int, error) {
	if b.closed {
		return 0, kv.NewError("cleanup", "", kv.ErrClosed)
	}
	now := b.now()
	total := 0
	for _, t := range b.tables {
		n, err := t.cleanup(ctx, now)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// CountRead counts a read that found a live value (hit) or not (miss),
// for state kinds that look values up themselves.
func (b *Backend) CountRead(hit bool) {
	if hit {
		b.ownHits++
	} else {
		b.ownMisses++
	}
}

// publishReads moves the owner's read counts to the shared counters.
func (b *Backend) publishReads() {
	if b.ownHits != 0 {
		b.hits.Add(b.ownHits)
		b.ownHits = 0
	}
	if b.ownMisses != 0 {
		b.misses.Add(b.ownMisses)
		b.ownMisses = 0
	}
}

// CountExpired counts n entries removed because they expired, for state
// kinds that expire parts of values themselves.
func (b *Backend) CountExpired(n int64) { b.expired.Add(n) }

// Flush publishes the read counters (Stats); writes are visible at once.
func (b *Backend) Flush() error {
	b.publishReads()
	return nil
}

// Stats returns the counters. Hits and misses are those published by the
// owner's last Flush or Snapshot (the engine flushes once per batch).
func (b *Backend) Stats() kv.Stats {
	return kv.Stats{
		Keys:       b.keys.Load(),
		TotalBytes: b.bytes.Load(),
		Hits:       b.hits.Load(),
		Misses:     b.misses.Load(),
		Expired:    b.expired.Load(),
	}
}

// Close drops the state. Snapshots taken before stay readable.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.tables = nil
	b.keys.Store(0)
	b.bytes.Store(0)
	return nil
}

// Closed reports whether Close was called.
func (b *Backend) Closed() bool { return b.closed }

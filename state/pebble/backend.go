// Package pebble is weir's on-disk state backend, on
// github.com/cockroachdb/pebble/v2: state larger than memory, read through a
// bounded block cache.
//
// Values are stored encoded (CBOR, see package kv) with their expiry; the
// key layout is described in keys.go. The working directory is scratch
// space: durability comes from checkpoints, so the write-ahead log is off by
// default and, after a crash, the state is restored from the latest
// checkpoint into an empty directory rather than reopened.
//
// Writes are buffered in an indexed Pebble batch (reads see them) and
// committed by Flush, which an operator calls once per input batch, by
// Snapshot, or when the batch grows past Options.MaxBatchBytes.
//
// Snapshots are Pebble snapshots: taking one commits the write batch and
// pins the current sequence number, which is cheap; key groups are read
// from it in the background. The keys changed since the last confirmed
// snapshot are tracked in memory (a set per key group) so that snapshots
// can report their changes; Checkpoint offers Pebble's own hard-linked
// checkpoint for SST-level incremental checkpoints.
//
// Stats: deletes look the row up and are exact; a write is exact when the
// row was just read (the usual read-modify-write of a state handle) or with
// Options.ExactStats (a lookup before every write, which halves the rate of
// blind writes); otherwise a write counts as a new row. CleanupExpired
// recounts exactly.
//
// Concurrency: as every kv.Backend, plus concurrent reads when no write is
// buffered (see kv.KV).
package pebble

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	pebbledb "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/weir-stream/weir/state/kv"
)

// Options configure a Pebble backend. The zero value of each field means
// its default.
type Options struct {
	kv.Config
	// CacheSize is the block cache size in bytes (default 64 MiB). The cache
	// bounds the memory used for reading; state beyond it stays on disk.
	CacheSize int64
	// MemTableSize is Pebble's memtable size in bytes (default 16 MiB).
	MemTableSize uint64
	// MaxBatchBytes commits buffered writes once they exceed this many
	// bytes (default 8 MiB).
	MaxBatchBytes int
	// WAL turns Pebble's write-ahead log on (default off: the state is
	// recovered from checkpoints, not from the working directory).
	WAL bool
	// Logger receives Pebble's log (info as debug). Default: discarded.
	Logger *slog.Logger
	// ExactStats looks every written row up first, so that Stats.Keys and
	// TotalBytes stay exact under blind overwrites (default off; see the
	// package documentation).
	ExactStats bool
}

// EnsureDefaults fills in defaults and validates o.
func (o *Options) EnsureDefaults() error {
	if err := o.Config.EnsureDefaults(); err != nil {
		return err
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 64 << 20
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = 16 << 20
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 8 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Backend is the Pebble backend. Create it with Open.
type Backend struct {
	opts Options
	dir  string
	db   *pebbledb.DB

	// Owner-goroutine fields.
	batch   *pebbledb.Batch // buffered writes; nil or empty when none
	closed  bool
	lastSeq uint64 // seq of the last snapshot
	conf    uint64 // reported Base: last confirmed seq since the last restore
	cur     map[int]*dirtyGroup
	// restoring is set while Restore applies a file: its rows are the
	// base, so they are not marked as changes.
	restoring bool
	segs      []dirtySeg // frozen change sets not yet covered by a confirmed snapshot
	sweep     sweeper

	snapMu sync.Mutex
	snaps  map[*snapshot]struct{}

	keyPool sync.Pool // *[]byte scratch for building keys

	lastMu sync.Mutex // guards last: readers may run concurrently
	last   lastRead

	keys, bytes, hits, misses, expired atomic.Int64
}

var _ kv.KV = (*Backend)(nil)

// dirtyGroup is the set of rows changed in one key group: exact row keys
// (false) and key prefixes whose rows were all deleted (true), plus the
// state names cleared.
type dirtyGroup struct {
	keys    map[string]bool
	cleared map[string]struct{}
}

// lastRead remembers the last row read, so that the write that usually
// follows knows whether it replaces a row.
type lastRead struct {
	valid bool
	key   []byte
	found bool
	size  int // len(key)+len(stored value) when found
}

type dirtySeg struct {
	seq    uint64
	groups map[int]*dirtyGroup
}

// Open opens (or creates) the state in dir. An existing state must have
// been created with the same number of key groups.
func Open(dir string, opts Options) (*Backend, error) {
	if err := opts.EnsureDefaults(); err != nil {
		return nil, err
	}
	cache := pebbledb.NewCache(opts.CacheSize)
	defer cache.Unref()
	po := &pebbledb.Options{
		Cache:        cache,
		MemTableSize: opts.MemTableSize,
		DisableWAL:   !opts.WAL,
		Logger:       slogLogger{opts.Logger},
	}
	// Bloom filters: state reads are point lookups, many of absent keys.
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebbledb.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("state/pebble: open %s: %w", dir, err)
	}
	b := &Backend{opts: opts, dir: dir, db: db, cur: make(map[int]*dirtyGroup), snaps: make(map[*snapshot]struct{})}
	b.keyPool.New = func() any { s := make([]byte, 0, 128); return &s }
	if err := b.checkMeta(); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := b.recount(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return b, nil
}

func (b *Backend) checkMeta() error {
	v, closer, err := b.db.Get(metaMaxKeyGroups)
	if errors.Is(err, pebbledb.ErrNotFound) {
		val := binary.AppendUvarint(nil, uint64(b.opts.MaxKeyGroups))
		if err := b.db.Set(metaMaxKeyGroups, val, pebbledb.NoSync); err != nil {
			return fmt.Errorf("state/pebble: write metadata: %w", err)
		}
		if err := b.db.Flush(); err != nil { // durable without a WAL
			return fmt.Errorf("state/pebble: write metadata: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("state/pebble: read metadata: %w", err)
	}
	n, _ := binary.Uvarint(v)
	_ = closer.Close()
	if int(n) != b.opts.MaxKeyGroups {
		return fmt.Errorf("state/pebble: %s: %w: state has %d key groups, configured %d", b.dir, kv.ErrKeyGroupRange, n, b.opts.MaxKeyGroups)
	}
	return nil
}

// recount counts the rows of an existing state (Stats are exact).
func (b *Backend) recount() error {
	lo := appendGroupPrefix(nil, b.opts.KeyGroups.Start)
	hi := appendGroupPrefix(nil, b.opts.KeyGroups.End)
	it, err := b.db.NewIter(&pebbledb.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("state/pebble: count rows: %w", err)
	}
	var n, size int64
	for it.First(); it.Valid(); it.Next() {
		n++
		size += int64(len(it.Key()) + len(it.Value()))
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("state/pebble: count rows: %w", err)
	}
	b.keys.Store(n)
	b.bytes.Store(size)
	return nil
}

// Config returns the backend's configuration.
func (b *Backend) Config() kv.Config { return b.opts.Config }

// DB returns the Pebble database (for checkpoint code and tests).
func (b *Backend) DB() *pebbledb.DB { return b.db }

func (b *Backend) now() int64 { return kv.NowMillis(b.opts.Clock) }

func (b *Backend) getKeyBuf() *[]byte { return b.keyPool.Get().(*[]byte) }
func (b *Backend) putKeyBuf(p *[]byte) {
	if cap(*p) <= 64<<10 {
		*p = (*p)[:0]
		b.keyPool.Put(p)
	}
}

func (b *Backend) check(op string, kg int) error {
	if b.closed {
		return kv.NewError(op, "", kv.ErrClosed)
	}
	if !b.opts.KeyGroups.Contains(kg) {
		return kv.NewError(op, "", fmt.Errorf("key group %d: %w: backend holds %v", kg, kv.ErrKeyGroupRange, b.opts.KeyGroups))
	}
	return nil
}

func (b *Backend) pending() bool { return b.batch != nil && !b.batch.Empty() }

// read looks key up, through the write batch when writes are buffered. fn
// gets the stored value (expiry and CBOR), valid during the call.
func (b *Backend) read(key []byte, fn func(stored []byte) error) (bool, error) {
	var (
		v      []byte
		closer io.Closer
		err    error
	)
	if b.pending() {
		v, closer, err = b.batch.Get(key)
	} else {
		v, closer, err = b.db.Get(key)
	}
	if errors.Is(err, pebbledb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closer.Close()
	return true, fn(v)
}

// GetEntry implements kv.KV.
func (b *Backend) GetEntry(dst []byte, kg int, name string, key, userKey []byte) ([]byte, int64, bool, error) {
	if err := b.check("get", kg); err != nil {
		return dst, 0, false, err
	}
	kb := b.getKeyBuf()
	defer b.putKeyBuf(kb)
	k := appendRowKey(*kb, kg, name, key, userKey)
	*kb = k
	var exp int64
	out := dst
	size := 0
	found, err := b.read(k, func(v []byte) error {
		e, val, err := splitValue(v)
		if err != nil {
			return err
		}
		exp = e
		out = append(dst, val...)
		size = len(k) + len(v)
		return nil
	})
	if err != nil {
		return dst, 0, false, kv.NewError("get", string(key), err)
	}
	b.lastMu.Lock()
	b.last = lastRead{valid: true, key: append(b.last.key[:0], k...), found: found, size: size}
	b.lastMu.Unlock()
	if !found || (exp != 0 && exp <= b.now()) {
		b.misses.Add(1)
		return dst, 0, false, nil
	}
	b.hits.Add(1)
	return out, exp, true, nil
}

// prev returns whether row k exists and its stored size: from the last
// read if it was of k, else by a lookup if lookup is set; else it assumes
// a new row.
func (b *Backend) prev(k []byte, lookup bool) (bool, int, error) {
	b.lastMu.Lock()
	if b.last.valid && bytes.Equal(b.last.key, k) {
		found, size := b.last.found, b.last.size
		b.last.valid = false // the write changes the row
		b.lastMu.Unlock()
		return found, size, nil
	}
	b.lastMu.Unlock()
	if !lookup {
		return false, 0, nil
	}
	size := 0
	found, err := b.read(k, func(v []byte) error {
		size = len(k) + len(v)
		return nil
	})
	return found, size, err
}

// SetEntry implements kv.KV.
func (b *Backend) SetEntry(kg int, name string, key, userKey, value []byte, exp int64) error {
	return b.setEntry(kg, name, key, userKey, value, exp, b.opts.ExactStats)
}

// setEntry writes a row; lookup makes Stats exact (see prev).
func (b *Backend) setEntry(kg int, name string, key, userKey, value []byte, exp int64, lookup bool) error {
	if err := b.check("put", kg); err != nil {
		return err
	}
	kb := b.getKeyBuf()
	defer b.putKeyBuf(kb)
	k := appendRowKey(*kb, kg, name, key, userKey)
	*kb = k
	found, oldSize, err := b.prev(k, lookup)
	if err != nil {
		return kv.NewError("put", string(key), err)
	}
	vb := b.getKeyBuf()
	defer b.putKeyBuf(vb)
	v := appendValue(*vb, exp, value)
	*vb = v
	wb := b.writeBatch()
	if err := wb.Set(k, v, nil); err != nil {
		return kv.NewError("put", string(key), err)
	}
	if !found {
		b.keys.Add(1)
	}
	b.bytes.Add(int64(len(k)+len(v)) - int64(oldSize))
	b.markDirty(kg, k, false)
	if exp != 0 {
		b.sweep.active = true
	}
	return b.afterWrite()
}

// DeleteEntry implements kv.KV.
func (b *Backend) DeleteEntry(kg int, name string, key, userKey []byte) error {
	if err := b.check("remove", kg); err != nil {
		return err
	}
	kb := b.getKeyBuf()
	defer b.putKeyBuf(kb)
	k := appendRowKey(*kb, kg, name, key, userKey)
	*kb = k
	found, oldSize, err := b.prev(k, true)
	if err != nil {
		return kv.NewError("remove", string(key), err)
	}
	if !found {
		return nil
	}
	if err := b.writeBatch().Delete(k, nil); err != nil {
		return kv.NewError("remove", string(key), err)
	}
	b.keys.Add(-1)
	b.bytes.Add(-int64(oldSize))
	b.markDirty(kg, k, false)
	return b.afterWrite()
}

// DeletePrefix implements kv.KV.
func (b *Backend) DeletePrefix(kg int, name string, key []byte) error {
	if err := b.check("clear", kg); err != nil {
		return err
	}
	var p []byte
	if key == nil {
		p = appendStatePrefix(nil, kg, name)
	} else {
		p = appendKeyPrefix(nil, kg, name, key)
	}
	end := prefixEnd(p)
	// Count what goes (Stats are exact), then drop the range.
	var n, size int64
	err := b.iterate(p, end, func(k, v []byte) error {
		n++
		size += int64(len(k) + len(v))
		return nil
	})
	if err != nil {
		return kv.NewError("clear", string(key), err)
	}
	if n == 0 {
		return nil
	}
	if err := b.writeBatch().DeleteRange(p, end, nil); err != nil {
		return kv.NewError("clear", string(key), err)
	}
	b.forget()
	b.keys.Add(-n)
	b.bytes.Add(-size)
	if key == nil {
		b.markCleared(kg, name)
	} else {
		b.markDirty(kg, p, true)
	}
	return b.afterWrite()
}

// iterate calls fn for every stored row in [lo, hi), seeing buffered writes.
func (b *Backend) iterate(lo, hi []byte, fn func(k, v []byte) error) error {
	opts := &pebbledb.IterOptions{LowerBound: lo, UpperBound: hi}
	var it *pebbledb.Iterator
	var err error
	if b.pending() {
		it, err = b.batch.NewIter(opts)
	} else {
		it, err = b.db.NewIter(opts)
	}
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

// Scan implements kv.KV.
func (b *Backend) Scan(kg int, name string, key []byte, fn func(key, userKey, value []byte, exp int64) error) error {
	if err := b.check("scan", kg); err != nil {
		return err
	}
	var p []byte
	if key == nil {
		p = appendStatePrefix(nil, kg, name)
	} else {
		p = appendKeyPrefix(nil, kg, name, key)
	}
	now := b.now()
	err := b.iterate(p, prefixEnd(p), func(k, v []byte) error {
		r, err := parseKey(k)
		if err != nil {
			return err
		}
		exp, val, err := splitValue(v)
		if err != nil {
			return err
		}
		if exp != 0 && exp <= now {
			return nil
		}
		return fn(r.key, r.userKey, val, exp)
	})
	if err != nil {
		return kv.NewError("scan", string(key), err)
	}
	return nil
}

// forget drops the remembered read (after range deletes).
func (b *Backend) forget() {
	b.lastMu.Lock()
	b.last.valid = false
	b.lastMu.Unlock()
}

func (b *Backend) writeBatch() *pebbledb.Batch {
	if b.batch == nil {
		b.batch = b.db.NewIndexedBatch()
	}
	return b.batch
}

func (b *Backend) afterWrite() error {
	if b.sweep.active {
		b.sweep.writes++
		if b.sweep.writes >= sweepEvery {
			b.sweep.writes = 0
			if err := b.sweepSome(sweepRows); err != nil {
				return err
			}
		}
	}
	if b.batch.Len() >= b.opts.MaxBatchBytes {
		return b.Flush()
	}
	return nil
}

func (b *Backend) dirtyGroup(kg int) *dirtyGroup {
	g := b.cur[kg]
	if g == nil {
		g = &dirtyGroup{keys: make(map[string]bool)}
		b.cur[kg] = g
	}
	return g
}

func (b *Backend) markDirty(kg int, k []byte, prefix bool) {
	if b.restoring {
		return // restored rows are the base, not changes
	}
	g := b.dirtyGroup(kg)
	if old, ok := g.keys[string(k)]; ok && (old || !prefix) {
		return
	}
	g.keys[string(k)] = prefix
}

func (b *Backend) markCleared(kg int, name string) {
	if b.restoring {
		return
	}
	g := b.dirtyGroup(kg)
	if g.cleared == nil {
		g.cleared = make(map[string]struct{})
	}
	g.cleared[name] = struct{}{}
}

// Flush commits the buffered writes.
func (b *Backend) Flush() error {
	if b.closed {
		return kv.NewError("flush", "", kv.ErrClosed)
	}
	if !b.pending() {
		return nil
	}
	if err := b.batch.Commit(pebbledb.NoSync); err != nil {
		return kv.NewError("flush", "", err)
	}
	b.batch.Reset()
	return nil
}

// Discard drops the buffered writes (and recounts the rows, as Stats
// counted them).
func (b *Backend) Discard() error {
	if b.closed {
		return kv.NewError("discard", "", kv.ErrClosed)
	}
	if b.batch != nil {
		b.batch.Reset()
	}
	b.forget()
	return b.recount()
}

// Checkpoint flushes (memtables included) and writes a Pebble checkpoint of the working state to
// dir (which must not exist): hard links to the live SSTs, so two
// checkpoints share unchanged files. It is the basis of SST-level
// incremental checkpoints.
func (b *Backend) Checkpoint(dir string) error {
	if err := b.Flush(); err != nil {
		return err
	}
	if !b.opts.WAL {
		// Without a WAL, committed writes live only in the memtable.
		if err := b.db.Flush(); err != nil {
			return fmt.Errorf("state/pebble: checkpoint to %s: flush: %w", dir, err)
		}
	}
	if err := b.db.Checkpoint(dir, pebbledb.WithFlushedWAL()); err != nil {
		return fmt.Errorf("state/pebble: checkpoint to %s: %w", dir, err)
	}
	return nil
}

// Snapshot commits buffered writes and takes a Pebble snapshot.
func (b *Backend) Snapshot() (kv.Snapshot, error) {
	if err := b.Flush(); err != nil {
		return nil, err
	}
	b.lastSeq++
	seq := b.lastSeq
	if len(b.cur) > 0 {
		b.segs = append(b.segs, dirtySeg{seq: seq, groups: b.cur})
		b.cur = make(map[int]*dirtyGroup)
	}
	s := &snapshot{
		b:     b,
		snap:  b.db.NewSnapshot(),
		seq:   seq,
		base:  b.conf,
		time:  b.now(),
		rng:   b.opts.KeyGroups,
		maxKG: b.opts.MaxKeyGroups,
		segs:  append([]dirtySeg(nil), b.segs...),
	}
	b.snapMu.Lock()
	b.snaps[s] = struct{}{}
	b.snapMu.Unlock()
	return s, nil
}

// ConfirmSnapshot makes seq the base of later snapshots' changes.
func (b *Backend) ConfirmSnapshot(seq uint64) {
	if seq <= b.conf || seq > b.lastSeq {
		return
	}
	b.conf = seq
	var keep []dirtySeg
	for _, s := range b.segs {
		if s.seq > seq {
			keep = append(keep, s)
		}
	}
	b.segs = keep
}

// Restore applies an entry file; see kv.Backend.
func (b *Backend) Restore(r io.Reader) error {
	if b.closed {
		return kv.NewError("restore", "", kv.ErrClosed)
	}
	a := &applier{b: b}
	b.restoring = true
	err := kv.ApplyFile(r, b.opts.Config, b.now(), a)
	b.restoring = false
	if err != nil {
		return kv.NewError("restore", "", err)
	}
	if err := b.Flush(); err != nil {
		return err
	}
	// Restored rows are the base, not changes.
	for _, kg := range a.groups {
		delete(b.cur, kg)
	}
	var keep []dirtySeg
	for _, s := range b.segs {
		gs := make(map[int]*dirtyGroup, len(s.groups))
		for kg, g := range s.groups {
			gs[kg] = g
		}
		for _, kg := range a.groups {
			delete(gs, kg)
		}
		if len(gs) > 0 {
			keep = append(keep, dirtySeg{seq: s.seq, groups: gs})
		}
	}
	b.segs = keep
	b.conf = 0
	return nil
}

type applier struct {
	b      *Backend
	groups []int
	full   bool // the key group was reset: every Put is a new row
}

func (a *applier) ResetKeyGroup(kg int) error {
	a.full = true
	if err := a.b.deleteRange(appendGroupPrefix(nil, kg), appendGroupPrefix(nil, kg+1)); err != nil {
		return err
	}
	return nil
}

func (a *applier) ApplyEntry(kg int, e kv.Entry) error {
	if len(a.groups) == 0 || a.groups[len(a.groups)-1] != kg {
		a.groups = append(a.groups, kg)
	}
	var err error
	switch e.Kind {
	case kv.EntryPut:
		err = a.b.setEntry(kg, e.State, e.Key, e.UserKey, e.Value, e.ExpiresAt, !a.full)
	case kv.EntryDelete:
		if e.UserKey == nil {
			err = a.b.DeletePrefix(kg, e.State, e.Key)
		} else {
			err = a.b.DeleteEntry(kg, e.State, e.Key, e.UserKey)
		}
	case kv.EntryClear:
		err = a.b.DeletePrefix(kg, e.State, nil)
	}
	return err
}

// deleteRange deletes [lo, hi) keeping Stats exact.
func (b *Backend) deleteRange(lo, hi []byte) error {
	var n, size int64
	if err := b.iterate(lo, hi, func(k, v []byte) error {
		n++
		size += int64(len(k) + len(v))
		return nil
	}); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := b.writeBatch().DeleteRange(lo, hi, nil); err != nil {
		return err
	}
	b.forget()
	b.keys.Add(-n)
	b.bytes.Add(-size)
	return b.afterWrite()
}

// Stats returns the counters.
func (b *Backend) Stats() kv.Stats {
	return kv.Stats{
		Keys:       b.keys.Load(),
		TotalBytes: b.bytes.Load(),
		Hits:       b.hits.Load(),
		Misses:     b.misses.Load(),
		Expired:    b.expired.Load(),
	}
}

// Close commits buffered writes, flushes them to disk and closes the
// database. Snapshots not released yet are released (and fail with
// ErrClosed afterwards).
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	ferr := b.Flush()
	b.closed = true
	b.snapMu.Lock()
	snaps := b.snaps
	b.snaps = nil
	b.snapMu.Unlock()
	for s := range snaps {
		s.close()
	}
	if b.batch != nil {
		_ = b.batch.Close()
		b.batch = nil
	}
	if ferr == nil && !b.opts.WAL {
		// Without a WAL the memtable would be lost: a clean Close keeps
		// the state for a reopen.
		ferr = b.db.Flush()
	}
	err := b.db.Close()
	if err != nil {
		return fmt.Errorf("state/pebble: close: %w", err)
	}
	return ferr
}

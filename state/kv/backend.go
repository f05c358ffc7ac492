package kv

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Config is what every backend is built with.
type Config struct {
	// MaxKeyGroups is the number of key groups of the state (default
	// DefaultMaxKeyGroups). It is recorded in every snapshot file and must
	// not change for the life of the state.
	MaxKeyGroups int
	// KeyGroups is the range of key groups this backend holds (default: all).
	KeyGroups KeyGroupRange
	// Clock tells processing time for TTLs (default SystemClock).
	Clock Clock
}

// EnsureDefaults fills in zero fields with their defaults and validates c.
func (c *Config) EnsureDefaults() error {
	if c.MaxKeyGroups == 0 {
		c.MaxKeyGroups = DefaultMaxKeyGroups
	}
	if c.MaxKeyGroups < 1 || c.MaxKeyGroups > MaxKeyGroupsLimit {
		return fmt.Errorf("state: max key groups %d: %w: must be in [1, %d]", c.MaxKeyGroups, ErrInvalid, MaxKeyGroupsLimit)
	}
	if c.KeyGroups == (KeyGroupRange{}) {
		c.KeyGroups = FullRange(c.MaxKeyGroups)
	}
	if c.KeyGroups.Start < 0 || c.KeyGroups.End > c.MaxKeyGroups || c.KeyGroups.Len() < 1 {
		return fmt.Errorf("state: key groups %v: %w: must be a non-empty part of [0, %d)", c.KeyGroups, ErrKeyGroupRange, c.MaxKeyGroups)
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	return nil
}

// ValidateName checks a state name: not empty, no NUL byte (the Pebble key
// layout ends names with one), at most 255 bytes.
func ValidateName(name string) error {
	if name == "" || len(name) > 255 || strings.IndexByte(name, 0) >= 0 {
		return fmt.Errorf("state name %q: %w: must be 1-255 bytes without NUL", name, ErrInvalid)
	}
	return nil
}

// Stats are a backend's counters. The guide's StateStats.
type Stats struct {
	// Keys is the number of entries stored (a map state counts one per map
	// key), including expired entries that have not been cleaned up yet.
	Keys int64
	// TotalBytes is the approximate size of the state: the estimated heap
	// bytes for the memory backend, keys plus encoded values for Pebble.
	TotalBytes int64
	// Hits and Misses count reads that found a live value or did not. The
	// memory backend publishes them at Flush and Snapshot (the owner's
	// reads in between are counted without atomics).
	Hits, Misses int64
	// Expired counts entries removed because their TTL ran out.
	Expired int64
	// ActiveTransactions counts open batches (BatchPut without
	// CommitBatch or AbortBatch); backends report 0, stores and the
	// manager fill it in.
	ActiveTransactions int64
}

// Backend holds the keyed state of one operator instance (or of a Manager):
// values addressed by (key group, state name, key[, user key]), each with an
// optional absolute expiry time.
//
// Concurrency: a backend has one owner goroutine that performs every call,
// except that Stats may be called from any goroutine, and a Snapshot, once
// taken, may be read from any goroutine while the owner goes on writing.
// (The guide's stores add a lock on top, see package state.)
//
// The state API (package state) reaches a backend's values through the
// memory backend's typed tables or through the KV interface.
type Backend interface {
	// Config returns the backend's configuration, defaults filled in.
	Config() Config
	// Snapshot takes a consistent, frozen view of the whole state: later
	// writes are not in it. It is the synchronous part of a checkpoint and
	// is cheap (copy-on-write in memory, a Pebble snapshot on disk); the
	// view is written out from the Snapshot in the background.
	Snapshot() (Snapshot, error)
	// ConfirmSnapshot tells the backend that snapshot seq is durable (its
	// checkpoint completed), so later snapshots may report their changes
	// relative to it. Confirming an older or unknown seq is a no-op.
	ConfirmSnapshot(seq uint64)
	// Restore applies an entry file (see EntryWriter) to the key group it
	// names: a full file replaces the key group's state, a delta applies on
	// top. Entries already expired are dropped; the others keep their
	// absolute expiry, so TTLs go on counting across a restore. Restored
	// entries are not reported as changes by the next snapshot. Restore is
	// meant for a backend being recovered, before it takes snapshots.
	Restore(r io.Reader) error
	// CleanupExpired removes every expired entry and returns how many.
	CleanupExpired(ctx context.Context) (int, error)
	// Flush makes buffered writes visible to snapshots and durable in the
	// working store (Pebble commits its write batch; memory has nothing to
	// do). Snapshot flushes first.
	Flush() error
	// Stats returns the counters. Safe to call from any goroutine.
	Stats() Stats
	// Close releases the backend. Every Snapshot should be released first;
	// one that is not fails with ErrClosed afterwards.
	Close() error
}

// Snapshot is a frozen view of a backend's state, taken by Backend.Snapshot.
// Its methods may be called from any goroutine (one at a time per
// snapshot), while the backend's owner keeps writing.
type Snapshot interface {
	// Seq is the snapshot's sequence number (1, 2, ... per backend).
	Seq() uint64
	// Base is the sequence number of the confirmed snapshot that Changes
	// are relative to, or 0: relative to the restored (or empty) state.
	Base() uint64
	// Time is the processing time (Unix ms) of the snapshot: entries
	// expired at that time are not in it.
	Time() int64
	// KeyGroups is the range of key groups in the snapshot.
	KeyGroups() KeyGroupRange
	// MaxKeyGroups is the number of key groups of the state.
	MaxKeyGroups() int
	// Changed reports whether key group kg has changes since Base.
	Changed(kg int) bool
	// Entries calls fn with every live entry of key group kg (all Puts).
	// The entry's slices are valid during the call only. Entries and
	// Changes may run concurrently for different key groups (the
	// checkpoint coordinator encodes key groups in parallel).
	Entries(kg int, fn func(Entry) error) error
	// Changes calls fn with the changes of key group kg since Base, in the
	// order they must be applied: Clears, then Deletes, then Puts.
	Changes(kg int, fn func(Entry) error) error
	// Release frees the view. The snapshot must not be used afterwards.
	Release()
}

// WriteKeyGroup writes the full state of key group kg in s to w as an entry
// file (FileFull).
func WriteKeyGroup(w io.Writer, s Snapshot, kg int) error {
	return writeFile(w, s, kg, FileFull)
}

// WriteChanges writes the changes of key group kg since s.Base() to w as an
// entry file (FileDelta).
func WriteChanges(w io.Writer, s Snapshot, kg int) error {
	return writeFile(w, s, kg, FileDelta)
}

func writeFile(w io.Writer, s Snapshot, kg int, kind FileKind) error {
	if !s.KeyGroups().Contains(kg) {
		return fmt.Errorf("state: write key group %d: %w: snapshot holds %v", kg, ErrKeyGroupRange, s.KeyGroups())
	}
	h := FileHeader{Kind: kind, MaxKeyGroups: s.MaxKeyGroups(), KeyGroup: kg, Seq: s.Seq(), Time: s.Time()}
	if kind == FileDelta {
		h.Base = s.Base()
	}
	ew, err := NewEntryWriter(w, h)
	if err != nil {
		return err
	}
	if kind == FileFull {
		err = s.Entries(kg, ew.Write)
	} else {
		err = s.Changes(kg, ew.Write)
	}
	if err != nil {
		return fmt.Errorf("state: write key group %d: %w", kg, err)
	}
	return ew.Close()
}

// Applier is what a backend implements to restore entries; ApplyFile
// drives it.
type Applier interface {
	// ResetKeyGroup deletes everything in key group kg (before a full file).
	ResetKeyGroup(kg int) error
	// ApplyEntry applies one entry to key group kg.
	ApplyEntry(kg int, e Entry) error
}

// ApplyFile reads the entry file in r and applies it to a through the
// Applier methods, after checking that its key groups match cfg. A Put that
// has expired (as of now, Unix ms) is applied as a Delete of its row: in a
// delta it may replace an older, unexpired value.
func ApplyFile(r io.Reader, cfg Config, now int64, a Applier) error {
	er, err := NewEntryReader(r)
	if err != nil {
		return err
	}
	h := er.Header()
	if h.MaxKeyGroups != cfg.MaxKeyGroups {
		return fmt.Errorf("state: restore: %w: file has %d key groups, state has %d", ErrKeyGroupRange, h.MaxKeyGroups, cfg.MaxKeyGroups)
	}
	if !cfg.KeyGroups.Contains(h.KeyGroup) {
		return fmt.Errorf("state: restore key group %d: %w: backend holds %v", h.KeyGroup, ErrKeyGroupRange, cfg.KeyGroups)
	}
	if h.Kind == FileFull {
		if err := a.ResetKeyGroup(h.KeyGroup); err != nil {
			return err
		}
	}
	for {
		e, err := er.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if e.Kind == EntryPut && e.ExpiresAt != 0 && e.ExpiresAt <= now {
			if h.Kind == FileFull {
				continue
			}
			e = Entry{Kind: EntryDelete, State: e.State, Key: e.Key, UserKey: e.UserKey}
		}
		if e.Kind != EntryClear {
			if err := ValidateName(e.State); err != nil {
				return fmt.Errorf("state: restore: %w: %v", ErrCorrupt, err)
			}
		}
		if err := a.ApplyEntry(h.KeyGroup, e); err != nil {
			return err
		}
	}
}

// KV is implemented by backends that store encoded values (Pebble). Values
// are CBOR bytes; expiry is kept beside them. Reads may run concurrently
// with each other when no write is running and no write is buffered (the
// guide's stores flush after every write under their lock); everything
// else is for the owner goroutine.
type KV interface {
	Backend
	// GetEntry appends the value of (kg, name, key, userKey) to dst and
	// returns it with its expiry. ok is false if there is none, or it has
	// expired.
	GetEntry(dst []byte, kg int, name string, key, userKey []byte) (value []byte, exp int64, ok bool, err error)
	// SetEntry stores a value (exp: absolute Unix ms, 0 = never).
	SetEntry(kg int, name string, key, userKey, value []byte, exp int64) error
	// DeleteEntry deletes one value or map entry.
	DeleteEntry(kg int, name string, key, userKey []byte) error
	// DeletePrefix deletes the value and every map entry of key, or with a
	// nil key everything of state name in key group kg.
	DeletePrefix(kg int, name string, key []byte) error
	// Scan calls fn for every live value or map entry of key (with a nil
	// key: of every key of state name in kg), in key order. The slices are
	// valid during the call only. fn must not write to the backend.
	Scan(kg int, name string, key []byte, fn func(key, userKey, value []byte, exp int64) error) error
	// Discard drops the writes buffered since the last Flush.
	Discard() error
}

package pebble

import (
	"errors"
	"slices"
	"sync"

	pebbledb "github.com/cockroachdb/pebble/v2"

	"github.com/weir-stream/weir/state/kv"
)

// snapshot is a Pebble snapshot plus the change sets since the base.
type snapshot struct {
	b    *Backend
	mu   sync.Mutex // guards snap against Close
	snap *pebbledb.Snapshot

	seq, base uint64
	time      int64
	rng       kv.KeyGroupRange
	maxKG     int
	segs      []dirtySeg
}

func (s *snapshot) Seq() uint64                 { return s.seq }
func (s *snapshot) Base() uint64                { return s.base }
func (s *snapshot) Time() int64                 { return s.time }
func (s *snapshot) KeyGroups() kv.KeyGroupRange { return s.rng }
func (s *snapshot) MaxKeyGroups() int           { return s.maxKG }

// close releases the Pebble snapshot (Release, or the backend's Close).
func (s *snapshot) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap != nil {
		_ = s.snap.Close()
		s.snap = nil
	}
}

func (s *snapshot) Release() {
	s.b.snapMu.Lock()
	if s.b.snaps != nil {
		delete(s.b.snaps, s)
	}
	s.b.snapMu.Unlock()
	s.close()
}

func (s *snapshot) Changed(kg int) bool {
	for _, seg := range s.segs {
		if g := seg.groups[kg]; g != nil && (len(g.keys) > 0 || len(g.cleared) > 0) {
			return true
		}
	}
	return false
}

// scan calls fn with every live row in [lo, hi) of the snapshot.
func (s *snapshot) scan(lo, hi []byte, fn func(r row, exp int64, val []byte) error) error {
	it, err := s.snap.NewIter(&pebbledb.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return err
		}
		exp, val, err := splitValue(v)
		if err != nil {
			_ = it.Close()
			return err
		}
		if exp != 0 && exp <= s.time {
			continue
		}
		r, err := parseKey(it.Key())
		if err != nil {
			_ = it.Close()
			return err
		}
		if err := fn(r, exp, val); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close()
}

func putEntry(r row, exp int64, val []byte) kv.Entry {
	return kv.Entry{Kind: kv.EntryPut, State: r.name, Key: r.key, UserKey: r.userKey, Value: val, ExpiresAt: exp}
}

func (s *snapshot) Entries(kg int, fn func(kv.Entry) error) error {
	if !s.rng.Contains(kg) {
		return kv.ErrKeyGroupRange
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil {
		return kv.ErrClosed
	}
	return s.scan(appendGroupPrefix(nil, kg), appendGroupPrefix(nil, kg+1), func(r row, exp int64, val []byte) error {
		return fn(putEntry(r, exp, val))
	})
}

func (s *snapshot) Changes(kg int, fn func(kv.Entry) error) error {
	if !s.rng.Contains(kg) {
		return kv.ErrKeyGroupRange
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil {
		return kv.ErrClosed
	}
	cleared := map[string]struct{}{}
	rows := map[string]bool{}
	for _, seg := range s.segs {
		g := seg.groups[kg]
		if g == nil {
			continue
		}
		for name := range g.cleared {
			cleared[name] = struct{}{}
		}
		for k, prefix := range g.keys {
			rows[k] = rows[k] || prefix
		}
	}
	names := make([]string, 0, len(cleared))
	for name := range cleared {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := fn(kv.Entry{Kind: kv.EntryClear, State: name}); err != nil {
			return err
		}
	}
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	// Whole keys deleted: a Delete, then what the key holds now.
	for _, k := range keys {
		if !rows[k] {
			continue
		}
		r, err := parseKey([]byte(k))
		if err != nil {
			return err
		}
		if err := fn(kv.Entry{Kind: kv.EntryDelete, State: r.name, Key: r.key}); err != nil {
			return err
		}
		p := []byte(k)
		if err := s.scan(p, prefixEnd(p), func(r row, exp int64, val []byte) error {
			return fn(putEntry(r, exp, val))
		}); err != nil {
			return err
		}
	}
	// Single rows: their current value, or a Delete.
	for _, k := range keys {
		if rows[k] {
			continue
		}
		r, err := parseKey([]byte(k))
		if err != nil {
			return err
		}
		v, closer, err := s.snap.Get([]byte(k))
		if errors.Is(err, pebbledb.ErrNotFound) {
			if err := fn(kv.Entry{Kind: kv.EntryDelete, State: r.name, Key: r.key, UserKey: r.userKey}); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		exp, val, err := splitValue(v)
		if err != nil {
			_ = closer.Close()
			return err
		}
		if exp != 0 && exp <= s.time {
			err = fn(kv.Entry{Kind: kv.EntryDelete, State: r.name, Key: r.key, UserKey: r.userKey})
		} else {
			err = fn(putEntry(r, exp, val))
		}
		_ = closer.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

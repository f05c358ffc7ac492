package memory

import (
	"unsafe"

	"github.com/weir-stream/weir/state/kv"
)

// snapshot is a frozen view: the maps (and deletion records) of every table
// and key group as they were when it was taken. Nothing it references is
// changed afterwards, so it needs no lock.
type snapshot struct {
	seq, base uint64
	baseEpoch uint32
	time      int64
	rng       kv.KeyGroupRange
	maxKG     int
	start     int
	tables    []frozenTable // sorted by name
}

type frozenTable interface {
	changed(gi int, baseEpoch uint32) bool
	entries(gi int, now int64, enc *kv.Encoder, fn func(kv.Entry) error) error
	changes(gi int, baseEpoch uint32, now int64, enc *kv.Encoder, fn func(kv.Entry) error) error
}

type frozen[T any] struct {
	name   string
	ops    Ops[T]
	groups []frozenGroup[T]
}

type frozenGroup[T any] struct {
	m                map[string]*Cell[T]
	lastMod, cleared uint32
	dels             []delSeg
}

func (s *snapshot) Seq() uint64                 { return s.seq }
func (s *snapshot) Base() uint64                { return s.base }
func (s *snapshot) Time() int64                 { return s.time }
func (s *snapshot) KeyGroups() kv.KeyGroupRange { return s.rng }
func (s *snapshot) MaxKeyGroups() int           { return s.maxKG }
func (s *snapshot) Release()                    { s.tables = nil }

func (s *snapshot) Changed(kg int) bool {
	if !s.rng.Contains(kg) {
		return false
	}
	for _, t := range s.tables {
		if t.changed(kg-s.start, s.baseEpoch) {
			return true
		}
	}
	return false
}

func (s *snapshot) Entries(kg int, fn func(kv.Entry) error) error {
	if !s.rng.Contains(kg) {
		return kv.ErrKeyGroupRange
	}
	var enc kv.Encoder
	for _, t := range s.tables {
		if err := t.entries(kg-s.start, s.time, &enc, fn); err != nil {
			return err
		}
	}
	return nil
}

func (s *snapshot) Changes(kg int, fn func(kv.Entry) error) error {
	if !s.rng.Contains(kg) {
		return kv.ErrKeyGroupRange
	}
	var enc kv.Encoder
	for _, t := range s.tables {
		if err := t.changes(kg-s.start, s.baseEpoch, s.time, &enc, fn); err != nil {
			return err
		}
	}
	return nil
}

// keyBytes returns the bytes of a map key without copying; entries are
// read-only and valid during the callback only.
func keyBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func (f *frozen[T]) changed(gi int, baseEpoch uint32) bool {
	return f.groups[gi].lastMod > baseEpoch
}

func (f *frozen[T]) entries(gi int, now int64, enc *kv.Encoder, fn func(kv.Entry) error) error {
	for k, c := range f.groups[gi].m {
		if c.exp != 0 && c.exp <= now {
			continue
		}
		if err := f.ops.Encode(enc, f.name, keyBytes(k), c.V, c.exp, now, false, fn); err != nil {
			return err
		}
	}
	return nil
}

func (f *frozen[T]) changes(gi int, baseEpoch uint32, now int64, enc *kv.Encoder, fn func(kv.Entry) error) error {
	g := &f.groups[gi]
	if g.lastMod <= baseEpoch {
		return nil
	}
	if g.cleared > baseEpoch {
		if err := fn(kv.Entry{Kind: kv.EntryClear, State: f.name}); err != nil {
			return err
		}
	}
	live := func(k string) bool {
		c := g.m[k]
		return c != nil && !(c.exp != 0 && c.exp <= now)
	}
	var seen map[string]struct{}
	if len(g.dels) > 1 {
		seen = make(map[string]struct{})
	}
	for _, seg := range g.dels {
		if seg.epoch <= baseEpoch {
			continue
		}
		for k := range seg.keys {
			if live(k) {
				continue
			}
			if seen != nil {
				if _, ok := seen[k]; ok {
					continue
				}
				seen[k] = struct{}{}
			}
			if err := fn(kv.Entry{Kind: kv.EntryDelete, State: f.name, Key: keyBytes(k)}); err != nil {
				return err
			}
		}
	}
	for k, c := range g.m {
		if c.ver <= baseEpoch {
			continue
		}
		if c.exp != 0 && c.exp <= now {
			// Changed, then expired: the base may hold an older value.
			if seen != nil {
				if _, ok := seen[k]; ok {
					continue
				}
			}
			if err := fn(kv.Entry{Kind: kv.EntryDelete, State: f.name, Key: keyBytes(k)}); err != nil {
				return err
			}
			continue
		}
		if err := f.ops.Encode(enc, f.name, keyBytes(k), c.V, c.exp, now, true, fn); err != nil {
			return err
		}
	}
	return nil
}

package state

import (
	"io"

	"github.com/weir-stream/weir/state/kv"
)

// The contract between this package and the backends lives in package kv
// (so that the backends need not import this package, and this package can
// build them); these are its names in the state API.

type (
	// Backend holds the keyed state of one operator instance; see kv.Backend.
	Backend = kv.Backend
	// Snapshot is a frozen view of a backend's state; see kv.Snapshot.
	Snapshot = kv.Snapshot
	// Entry is one unit of state in a snapshot file; see kv.Entry.
	Entry = kv.Entry
	// EntryKind says what an Entry does.
	EntryKind = kv.EntryKind
	// FileHeader is the header of an entry file.
	FileHeader = kv.FileHeader
	// FileKind says whether an entry file is full or a delta.
	FileKind = kv.FileKind
	// EntryWriter writes an entry file.
	EntryWriter = kv.EntryWriter
	// EntryReader reads an entry file.
	EntryReader = kv.EntryReader
	// KeyGroupRange is a half-open range of key groups [Start, End).
	KeyGroupRange = kv.KeyGroupRange
	// Clock tells processing time for TTLs.
	Clock = kv.Clock
	// SystemClock is the wall clock.
	SystemClock = kv.SystemClock
	// ManualClock is a Clock for tests.
	ManualClock = kv.ManualClock
	// StateError describes a failed state operation.
	StateError = kv.StateError
	// StateStats are the guide's state statistics.
	StateStats = kv.Stats
	// RawValue is a restored value not decoded into a Go type yet.
	RawValue = kv.RawValue
)

// Entry and file kinds.
const (
	EntryPut    = kv.EntryPut
	EntryDelete = kv.EntryDelete
	EntryClear  = kv.EntryClear
	FileFull    = kv.FileFull
	FileDelta   = kv.FileDelta
)

// DefaultMaxKeyGroups is the number of key groups when none is configured.
const DefaultMaxKeyGroups = kv.DefaultMaxKeyGroups

// Sentinel errors; see kv.
var (
	ErrTypeMismatch  = kv.ErrTypeMismatch
	ErrClosed        = kv.ErrClosed
	ErrBatchOpen     = kv.ErrBatchOpen
	ErrCorrupt       = kv.ErrCorrupt
	ErrKeyGroupRange = kv.ErrKeyGroupRange
	ErrInvalid       = kv.ErrInvalid
)

// KeyGroupOf returns murmur3(key) % maxKeyGroups.
func KeyGroupOf(key []byte, maxKeyGroups int) int { return kv.KeyGroupOf(key, maxKeyGroups) }

// RangeForWorker returns the key groups worker index of workers owns.
func RangeForWorker(maxKeyGroups, workers, index int) KeyGroupRange {
	return kv.RangeForWorker(maxKeyGroups, workers, index)
}

// WorkerForKeyGroup returns the worker that owns key group kg.
func WorkerForKeyGroup(maxKeyGroups, workers, kg int) int {
	return kv.WorkerForKeyGroup(maxKeyGroups, workers, kg)
}

// NewManualClock returns a ManualClock; see kv.NewManualClock.
var NewManualClock = kv.NewManualClock

// Marshal encodes v with the state codec (CBOR; see package kv).
func Marshal(v any) ([]byte, error) { return kv.Marshal(v) }

// Unmarshal decodes CBOR data into the value v points to.
func Unmarshal(data []byte, v any) error { return kv.Unmarshal(data, v) }

// EncodeEntries writes a complete entry file.
func EncodeEntries(w io.Writer, h FileHeader, entries []Entry) error {
	return kv.EncodeEntries(w, h, entries)
}

// DecodeEntries reads a complete entry file, verifying its checksums.
func DecodeEntries(r io.Reader) (FileHeader, []Entry, error) { return kv.DecodeEntries(r) }

// WriteKeyGroup writes the full state of key group kg of snapshot s as an
// entry file.
func WriteKeyGroup(w io.Writer, s Snapshot, kg int) error { return kv.WriteKeyGroup(w, s, kg) }

// WriteChanges writes the changes of key group kg of s since s.Base() as a
// delta entry file.
func WriteChanges(w io.Writer, s Snapshot, kg int) error { return kv.WriteChanges(w, s, kg) }

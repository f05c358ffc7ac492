// Package kv is the contract between weir's state API (package state) and
// its storage backends (packages memory and pebble): what a backend is
// (Backend, and KV for backends of encoded rows), its snapshots (Snapshot,
// changes since a confirmed base), the backend-neutral snapshot file format
// (Entry, EntryWriter, EntryReader: framed, versioned, CRC-32C per frame,
// with a trailer so that torn files are detected), key groups (KeyGroupOf,
// RangeForWorker), processing-time clocks, the CBOR codec, and the errors
// (StateError and its sentinels).
//
// It exists so that the backends need not import package state, which
// builds them; package state re-exports these names, and users should use
// them from there.
//
// Invariants every backend keeps:
//   - a value is addressed by (key group, state name, key[, user key]) and
//     carries an absolute expiry (Unix ms, 0: never); an expired value is
//     never returned and never written to a snapshot;
//   - a Snapshot is immutable once taken and may be read from any
//     goroutine; the owner goroutine keeps writing meanwhile;
//   - Snapshot.Changes, applied to the state of the snapshot named by Base
//     (or to the restored state when Base is 0), gives the snapshot's
//     state; Base only advances through ConfirmSnapshot;
//   - the number of key groups is fixed for the life of the state and
//     written in every file; a file of another count is refused.
package kv

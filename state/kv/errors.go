package kv

import (
	"errors"
	"strconv"
)

// Sentinel causes of state errors. Test for them with errors.Is; every error
// that the state packages return for one of these reasons wraps the sentinel.
var (
	// ErrTypeMismatch: a stored value cannot be converted into the requested
	// Go type, or a state name was registered again with another type or
	// kind.
	ErrTypeMismatch = errors.New("type mismatch")
	// ErrClosed: the store, backend or manager has been closed.
	ErrClosed = errors.New("state closed")
	// ErrBatchOpen: the operation is not allowed while a batch is open
	// (BatchPut without CommitBatch or AbortBatch).
	ErrBatchOpen = errors.New("batch open")
	// ErrCorrupt: stored or restored data failed a checksum, a format check
	// or decoding.
	ErrCorrupt = errors.New("corrupt state data")
	// ErrKeyGroupRange: a key group is outside the range the backend owns,
	// or a file was written with another number of key groups.
	ErrKeyGroupRange = errors.New("key group out of range")
	// ErrInvalid: an argument is invalid (empty or malformed state name,
	// non-positive TTL, unencodable value).
	ErrInvalid = errors.New("invalid argument")
)

// StateError describes a failed state operation: which operation, on which
// key (empty when the operation has no single key) and why. Err wraps one of
// the sentinel errors above, or an I/O or codec error.
type StateError struct {
	Op  string // "get", "put", "remove", "clear", "commit", "restore", ...
	Key string // the key, if the operation has one
	Err error
}

func (e *StateError) Error() string {
	s := "state: " + e.Op
	if e.Key != "" {
		s += " " + strconv.Quote(e.Key)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *StateError) Unwrap() error { return e.Err }

// NewError returns a *StateError for op on key caused by err.
func NewError(op, key string, err error) error { return &StateError{Op: op, Key: key, Err: err} }

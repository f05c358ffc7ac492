// Package storage is where checkpoints become durable: one small interface,
// Storage, over named immutable objects, with two implementations — Local (a
// directory on disk, the default) and S3 (any S3-compatible object store,
// through aws-sdk-go-v2) — and a conformance suite (package storagetest) that
// runs the same tests against both.
//
// Invariants every implementation keeps:
//   - A Put is atomic: a reader (Get, Stat, List) sees the previous object or
//     the whole new one, never a part of it, and a failed Put leaves the name
//     as it was. Locally the bytes go to a temp file in the target directory
//     that is fsynced, renamed over the name, and the directory is fsynced; on
//     S3 an object is one PutObject, which S3 makes visible whole.
//   - An object, once Put returns nil, is durable (survives a crash of this
//     process or of the machine, as far as the disk or the store promise).
//   - Names are portable: slash-separated relative paths (see ValidateName),
//     the same under a local directory and an S3 prefix.
//   - Errors say what failed where (operation and file:// or s3:// location),
//     are ErrNotFound when the object is absent, and tell a transient failure
//     (retry later: throttling, timeouts, an unreachable store) from a
//     permanent one (bad name, access denied, missing bucket) via IsTransient.
//
// The checkpoint coordinator is the only writer of a checkpoint root; the
// storage itself does not lock. Writers of the same name race, and the last
// rename (or PUT) wins, whole.
package storage

import (
	"context"
	"errors"
	"io"
	"time"
)

// Storage is a flat namespace of named objects. All methods are safe for
// concurrent use, block until done or until ctx ends, and return an *Error
// (see IsTransient and ErrNotFound) on failure.
type Storage interface {
	// Put stores the size bytes read from r under name, replacing any object
	// of that name, atomically (see the package doc). size is the exact
	// length of r's content, or -1 when unknown; a reader that gives fewer or
	// more bytes than a known size fails the Put and stores nothing. Put reads
	// r to its end (or to the first error) and does not close it. Put returns
	// only once the object is durable.
	Put(ctx context.Context, name string, r io.Reader, size int64) error

	// Get opens the object name for reading. It returns an error wrapping
	// ErrNotFound when there is no such object. The caller must Close the
	// reader; reading stops with an error if ctx ends first (S3) — a caller
	// that needs the bytes after ctx ends must read them before.
	Get(ctx context.Context, name string) (io.ReadCloser, error)

	// Stat returns the size and modification time of the object name, or an
	// error wrapping ErrNotFound when there is none.
	Stat(ctx context.Context, name string) (ObjectInfo, error)

	// List returns every object whose name starts with prefix (a plain string
	// prefix: "a/b" matches "a/b/c" and "a/bc"; "" matches everything), sorted
	// by name (byte order). An object being Put concurrently is listed only
	// once it is complete. No match is an empty list, not an error.
	List(ctx context.Context, prefix string) ([]ObjectInfo, error)

	// Delete removes the object name. Deleting an object that does not exist
	// is not an error (Delete is idempotent, so a retried cleanup is safe).
	Delete(ctx context.Context, name string) error

	// String describes the location for logs and errors: "file:///abs/dir"
	// or "s3://bucket/prefix".
	String() string

	// Close releases what the Storage holds (idle connections). Calls made
	// after Close may fail.
	Close() error
}

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Name    string // as given to Put
	Size    int64  // bytes
	ModTime time.Time
}

// BatchDeleter is implemented by a Storage that can delete many objects in
// fewer round trips (S3 DeleteObjects). Use DeleteMany rather than calling it.
type BatchDeleter interface {
	// DeleteMany deletes every named object; missing ones are not an error.
	DeleteMany(ctx context.Context, names []string) error
}

// DeleteMany deletes the named objects through s's BatchDeleter when it has
// one, else one Delete at a time. It stops at the first error.
func DeleteMany(ctx context.Context, s Storage, names []string) error {
	if bd, ok := s.(BatchDeleter); ok {
		return bd.DeleteMany(ctx, names)
	}
	for _, n := range names {
		if err := s.Delete(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// Sentinel errors. Test with errors.Is; every error a Storage returns is an
// *Error that wraps the cause.
var (
	// ErrNotFound: the named object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidName: the name or prefix breaks the rules of ValidateName.
	ErrInvalidName = errors.New("invalid object name")
	// ErrTransient matches (errors.Is) every error that may succeed when
	// retried later without any change: throttling, timeouts, an unreachable
	// or failing store, a full disk. It is never the cause itself.
	ErrTransient = errors.New("transient storage failure")
)

// Error is the error of one failed storage operation.
type Error struct {
	Op       string // put | get | stat | list | delete | ...
	Location string // file:///dir/name or s3://bucket/key (a prefix for list)
	// Transient reports that the operation may succeed if retried later.
	Transient bool
	Err       error // the cause
}

func (e *Error) Error() string {
	return "storage: " + e.Op + " " + e.Location + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrTransient) true for transient errors.
func (e *Error) Is(target error) bool {
	return target == ErrTransient && e.Transient
}

// IsTransient reports whether err (or an error it wraps) is a storage failure
// that may go away when retried later: the caller should retry or fail just
// this attempt (e.g. one checkpoint) rather than give up for good.
func IsTransient(err error) bool { return errors.Is(err, ErrTransient) }

// IsNotFound reports whether err says that the object does not exist.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

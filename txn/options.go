package txn

import (
	"fmt"
	"log/slog"
	"time"
)

// SyncMode says when an appended entry is made durable (fsynced) and so
// when Append returns.
type SyncMode string

// Sync modes.
const (
	// SyncPerEntry fsyncs every entry on its own before Append returns:
	// the safest and slowest mode (concurrent Appends wait for each other).
	SyncPerEntry SyncMode = "per_entry"
	// SyncGroupCommit (the default) makes concurrent Appends share one
	// fsync; Append still returns only once its entry is durable.
	SyncGroupCommit SyncMode = "group_commit"
	// SyncPeriodic fsyncs every SyncInterval; Append returns as soon as the
	// entry is written to the operating system. A process crash loses
	// nothing, but an operating-system crash or power loss loses the entries
	// appended during the last SyncInterval (plus the time of one fsync),
	// although their Appends returned.
	SyncPeriodic SyncMode = "periodic"
)

// Options configure a Log. The zero value is valid: every field has a
// default, written in its comment.
type Options struct {
	// SyncMode is when entries are fsynced. Default SyncGroupCommit.
	SyncMode SyncMode
	// SyncInterval is the period of the fsync in SyncPeriodic mode.
	// Default 50ms.
	SyncInterval time.Duration
	// GroupCommitMaxDelay is how long, in SyncGroupCommit mode, the log may
	// hold an fsync back to let more concurrent Appends join it. It only
	// waits while fewer entries are queued than the previous fsync covered
	// (so a single sequential writer never waits). Default 2ms; a negative
	// value disables the wait.
	GroupCommitMaxDelay time.Duration
	// SegmentBytes is the size after which the log starts a new segment
	// file. Truncate deletes whole segments, so this is also the grain of
	// disk space reclaimed. Default 64 MiB.
	SegmentBytes int64
	// Logger receives warnings (a torn tail cut off at Open). Default: none.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultSyncInterval        = 50 * time.Millisecond
	DefaultGroupCommitMaxDelay = 2 * time.Millisecond
	DefaultSegmentBytes        = 64 << 20
)

// EnsureDefaults fills the zero fields of o with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.SyncMode == "" {
		o.SyncMode = SyncGroupCommit
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.GroupCommitMaxDelay == 0 {
		o.GroupCommitMaxDelay = DefaultGroupCommitMaxDelay
	}
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// validate rejects settings that cannot work; call it after EnsureDefaults.
func (o *Options) validate() error {
	switch o.SyncMode {
	case SyncPerEntry, SyncGroupCommit, SyncPeriodic:
	default:
		return fmt.Errorf("unknown sync mode %q (want %s, %s or %s)", o.SyncMode, SyncPerEntry, SyncGroupCommit, SyncPeriodic)
	}
	if o.SyncInterval < 0 {
		return fmt.Errorf("sync interval %v must be positive", o.SyncInterval)
	}
	if o.SegmentBytes < segmentHeaderSize {
		return fmt.Errorf("segment size %d is smaller than a segment header", o.SegmentBytes)
	}
	return nil
}

// Package txn is weir's transaction log: a write-ahead log of input batches
// on local disk. It makes inputs that cannot replay (an HTTP server, stdin)
// replayable: such an input appends every batch it accepts and acknowledges
// the sender only once Append has returned; the entry's LSN (log sequence
// number) is the input's position in checkpoints; after a crash the input
// replays the log after the restored checkpoint's LSN with ReadFrom; and
// Truncate deletes the segments that no retained checkpoint needs any more.
//
// Invariants:
//   - LSNs start at 1 and are consecutive. An acknowledged LSN is never
//     reused, also across Close and Open: Truncate never deletes the last
//     segment, whose name carries the LSN it started at. (The LSN of a torn
//     entry, which was never acknowledged, is given to the next entry.)
//   - When Append returns nil its entry, and every entry with a lower LSN,
//     is durable (SyncPerEntry, SyncGroupCommit) or written to the operating
//     system (SyncPeriodic: see there for what a machine crash loses).
//   - Entries are only ever written at the end of the last segment, and a
//     segment is fsynced before the next one is created, so only the last
//     segment can have a torn tail. Open cuts it off: from the first entry of
//     the last segment whose frame, checksum or LSN is wrong to the end of
//     the file (such entries were never acknowledged — unless the disk
//     corrupted acknowledged data, which no log can tell apart from a torn
//     write). Corruption anywhere else is an error wrapping ErrCorrupt: a
//     bad segment header from Open, a bad entry from ReadFrom.
//   - After a write or fsync error every later Append fails (after a failed
//     fsync the kernel may have dropped the written pages, so retrying on
//     the same file is unsafe): Close the Log and Open it again, which cuts
//     whatever was torn.
//   - One process uses a directory at a time; the Log does not lock it.
//
// Concurrency: every method is safe for concurrent use. Log.mu is the only
// lock; writes happen under it, while the fsync of the group-commit and
// periodic modes runs outside it so that Appends keep writing meanwhile.
package txn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors a caller may need to tell apart (test with errors.Is).
var (
	// ErrClosed is returned by every method after Close.
	ErrClosed = errors.New("txn: log closed")
	// ErrCorrupt reports data the log wrote that does not read back.
	ErrCorrupt = errors.New("txn: log corrupt")
	// ErrTruncated is returned by ReadFrom when entries it should replay
	// were deleted by Truncate.
	ErrTruncated = errors.New("txn: entries truncated")
)

// Log is a write-ahead log in one directory of segment files.
type Log struct {
	dir  string
	opts Options
	log  *slog.Logger
	lock *os.File // holds the directory's lock until Close

	mu         sync.Mutex    // guards the fields below
	f          *os.File      // the last segment, open for appending; nil after a failed rotation
	size       int64         // bytes in f
	segs       []segment     // oldest first; the last one is f's
	nextLSN    uint64        // LSN of the next entry
	writtenLSN uint64        // last LSN written to f
	syncedLSN  uint64        // last LSN known durable
	synced     chan struct{} // closed and replaced when syncedLSN advances or err is set
	err        error         // sticky write or fsync error
	closed     bool

	kick chan struct{} // group commit: wakes the syncer (capacity 1)
	stop chan struct{} // closed by Close
	wg   sync.WaitGroup

	syncs      atomic.Uint64 // fsyncs of entries, for tests
	beforeSync func()        // test hook: called before each fsync of entries
}

// encPool holds the buffers Append encodes entries into.
var encPool = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

const maxPooledBuffer = 1 << 20

// Open opens the log in dir, creating the directory and the first segment
// if needed, and cuts a torn tail off the last segment. The log continues
// after the last valid entry.
func Open(dir string, opts Options) (*Log, error) {
	return open(dir, opts, nil)
}

func open(dir string, opts Options, beforeSync func()) (*Log, error) {
	opts.EnsureDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("txn: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("txn: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("txn: %w", err)
	}
	ok := false
	defer func() {
		if !ok && lock != nil {
			_ = lock.Close()
		}
	}()
	segs, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("txn: %w", err)
	}
	l := &Log{
		dir:        dir,
		lock:       lock,
		opts:       opts,
		log:        opts.Logger,
		synced:     make(chan struct{}),
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		beforeSync: beforeSync,
	}
	if len(segs) == 0 {
		f, err := createSegment(dir, 1)
		if err != nil {
			return nil, fmt.Errorf("txn: create first segment: %w", err)
		}
		l.f, l.size, l.nextLSN = f, segmentHeaderSize, 1
		l.segs = []segment{{base: 1, path: segmentPath(dir, 1)}}
	} else {
		for _, s := range segs[:len(segs)-1] {
			if err := checkSegmentHeader(s); err != nil {
				return nil, err
			}
		}
		if err := l.openLast(segs[len(segs)-1]); err != nil {
			return nil, err
		}
		l.segs = segs
	}
	l.writtenLSN = l.nextLSN - 1
	l.syncedLSN = l.writtenLSN
	switch opts.SyncMode {
	case SyncGroupCommit:
		l.wg.Add(1)
		go l.groupCommitLoop()
	case SyncPeriodic:
		l.wg.Add(1)
		go l.periodicLoop()
	}
	ok = true
	return l, nil
}

func checkSegmentHeader(s segment) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("txn: %w", err)
	}
	defer f.Close()
	return checkHeader(f, s)
}

// openLast opens the last segment for appending, after cutting off a torn
// or corrupt tail, and sets l.f, l.size and l.nextLSN.
func (l *Log) openLast(s segment) error {
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("txn: %w", err)
	}
	fail := func(err error) error {
		f.Close()
		return fmt.Errorf("txn: %s: %w", s.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return fail(err)
	}
	if st.Size() < segmentHeaderSize {
		// A crash while the segment was created: createSegment fsyncs
		// the header before any entry is written, so it holds nothing.
		l.log.Warn("txn: rewriting the torn header of the last segment", "segment", s.path, "size", st.Size())
		if err := f.Truncate(0); err != nil {
			return fail(err)
		}
		if _, err := f.Write(segmentHeader(s.base)); err != nil {
			return fail(err)
		}
		if err := f.Sync(); err != nil {
			return fail(err)
		}
		l.f, l.size, l.nextLSN = f, segmentHeaderSize, s.base
		return nil
	}
	if err := checkHeader(f, s); err != nil {
		f.Close()
		return err
	}
	er := newEntryReader(f, segmentHeaderSize, st.Size(), s.base)
	for {
		_, _, err := er.read()
		if err == nil {
			continue
		}
		if err == io.EOF {
			break
		}
		var ie *invalidEntryError
		if !errors.As(err, &ie) {
			return fail(err)
		}
		l.log.Warn("txn: cutting off the torn tail of the last segment", "segment", s.path,
			"offset", er.off, "bytes", st.Size()-er.off, "reason", ie.reason, "next_lsn", er.next)
		if err := f.Truncate(er.off); err != nil {
			return fail(fmt.Errorf("cut torn tail: %w", err))
		}
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("cut torn tail: %w", err))
		}
		break
	}
	l.f, l.size, l.nextLSN = f, er.off, er.next
	return nil
}

// Append writes one entry holding payloads and returns its LSN once the
// entry is durable as the sync mode promises (see SyncMode). Concurrent
// Appends get increasing LSNs in the order they are written.
//
// When ctx ends while Append waits for the group commit's fsync, Append
// returns ctx's error, but the entry is written and may still become
// durable (and be replayed); the caller must treat it as not acknowledged.
func (l *Log) Append(ctx context.Context, payloads [][]byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	bp := encPool.Get().(*[]byte)
	e, partial, err := encodeEntry((*bp)[:0], payloads)
	var lsn uint64
	if err == nil {
		lsn, err = l.write(e, partial)
	}
	if cap(e) <= maxPooledBuffer {
		*bp = e[:0]
		encPool.Put(bp)
	}
	if err == ErrClosed {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("txn: append: %w", err)
	}
	if l.opts.SyncMode == SyncGroupCommit {
		if err := l.waitSynced(ctx, lsn); err != nil {
			return 0, fmt.Errorf("txn: append LSN %d: %w", lsn, err)
		}
	}
	return lsn, nil
}

// write writes an encoded entry at the end of the log (fsyncing it in
// SyncPerEntry mode) and returns its LSN.
func (l *Log) write(e []byte, partial uint32) (uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	if l.err != nil {
		return 0, l.err
	}
	if l.size >= l.opts.SegmentBytes && l.size > segmentHeaderSize {
		if err := l.rotateLocked(); err != nil {
			l.failLocked(err)
			return 0, err
		}
	}
	lsn := l.nextLSN
	sealEntry(e, lsn, partial)
	n, err := l.f.Write(e)
	l.size += int64(n)
	if err != nil {
		err = fmt.Errorf("write %s: %w", l.f.Name(), err)
		l.failLocked(err)
		return 0, err
	}
	l.nextLSN++
	l.writtenLSN = lsn
	switch l.opts.SyncMode {
	case SyncPerEntry:
		if l.beforeSync != nil {
			l.beforeSync()
		}
		l.syncs.Add(1)
		if err := l.f.Sync(); err != nil {
			err = fmt.Errorf("fsync %s: %w", l.f.Name(), err)
			l.failLocked(err)
			return 0, err
		}
		l.advanceLocked(lsn)
	case SyncGroupCommit:
		select {
		case l.kick <- struct{}{}:
		default: // the syncer is already woken
		}
	}
	return lsn, nil
}

// rotateLocked makes everything written durable, closes the last segment
// and starts a new one at nextLSN.
func (l *Log) rotateLocked() error {
	name := l.f.Name()
	l.syncs.Add(1)
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	l.advanceLocked(l.writtenLSN)
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	f, err := createSegment(l.dir, l.nextLSN)
	if err != nil {
		return fmt.Errorf("create segment: %w", err)
	}
	l.f, l.size = f, segmentHeaderSize
	l.segs = append(l.segs, segment{base: l.nextLSN, path: f.Name()})
	return nil
}

// advanceLocked records that entries up to lsn are durable and wakes the
// Appends waiting for them.
func (l *Log) advanceLocked(lsn uint64) {
	if lsn > l.syncedLSN {
		l.syncedLSN = lsn
		close(l.synced)
		l.synced = make(chan struct{})
	}
}

// failLocked makes err sticky and wakes the Appends waiting for an fsync.
func (l *Log) failLocked(err error) {
	if l.err == nil {
		l.err = fmt.Errorf("log failed (close and reopen it): %w", err)
		close(l.synced)
		l.synced = make(chan struct{})
	}
}

// waitSynced waits until the entry lsn is durable.
func (l *Log) waitSynced(ctx context.Context, lsn uint64) error {
	for {
		l.mu.Lock()
		if l.syncedLSN >= lsn {
			l.mu.Unlock()
			return nil
		}
		if l.err != nil {
			err := l.err
			l.mu.Unlock()
			return err
		}
		ch := l.synced
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for fsync: %w", ctx.Err())
		}
	}
}

// groupCommitLoop is the syncer of SyncGroupCommit: each time an Append
// wakes it, it fsyncs everything written so far, so the Appends that wrote
// meanwhile share one fsync.
func (l *Log) groupCommitLoop() {
	defer l.wg.Done()
	var last uint64 // entries the previous fsync covered
	for {
		select {
		case <-l.kick:
		case <-l.stop:
			return
		}
		if d := l.opts.GroupCommitMaxDelay; d > 0 && last > 1 {
			l.gather(d, last)
		}
		last = l.syncOnce()
	}
}

// gather waits up to d until want entries wait for an fsync: as many as the
// previous fsync covered, which are likely coming back with their next
// Append.
func (l *Log) gather(d time.Duration, want uint64) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		l.mu.Lock()
		n := l.writtenLSN - l.syncedLSN
		l.mu.Unlock()
		if n >= want {
			return
		}
		select {
		case <-l.kick:
		case <-timer.C:
			return
		case <-l.stop:
			return
		}
	}
}

// periodicLoop is the syncer of SyncPeriodic.
func (l *Log) periodicLoop() {
	defer l.wg.Done()
	t := time.NewTicker(l.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.syncOnce()
		case <-l.stop:
			return
		}
	}
}

// syncOnce fsyncs what is written (outside l.mu) and returns how many
// entries that made durable.
func (l *Log) syncOnce() uint64 {
	l.mu.Lock()
	if l.err != nil || l.writtenLSN <= l.syncedLSN {
		l.mu.Unlock()
		return 0
	}
	f, target, from := l.f, l.writtenLSN, l.syncedLSN
	l.mu.Unlock()

	if l.beforeSync != nil {
		l.beforeSync()
	}
	l.syncs.Add(1)
	err := f.Sync()

	l.mu.Lock()
	defer l.mu.Unlock()
	// os.ErrClosed: a rotation fsynced and closed f meanwhile, which made
	// everything up to target durable.
	if err != nil && !errors.Is(err, os.ErrClosed) {
		l.failLocked(fmt.Errorf("fsync %s: %w", f.Name(), err))
		return 0
	}
	l.advanceLocked(target)
	return target - from
}

// LastLSN returns the LSN of the last acknowledged entry (0 when the log
// is empty): durable, or in SyncPeriodic mode written.
func (l *Log) LastLSN() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ackedLocked()
}

func (l *Log) ackedLocked() uint64 {
	if l.opts.SyncMode == SyncPeriodic {
		return l.writtenLSN
	}
	return l.syncedLSN
}

// ReadFrom calls fn with every acknowledged entry whose LSN is greater than
// lsn, in LSN order, up to the last entry acknowledged when ReadFrom was
// called. The payloads are only valid during the call. An error from fn
// stops the replay and is returned as is. It returns an error wrapping
// ErrTruncated when entries after lsn were deleted by Truncate, and one
// wrapping ErrCorrupt when an entry does not read back.
func (l *Log) ReadFrom(lsn uint64, fn func(lsn uint64, payloads [][]byte) error) error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	segs := slices.Clone(l.segs)
	limit := l.ackedLocked()
	l.mu.Unlock()

	if lsn >= limit {
		return nil
	}
	from := lsn + 1
	if from < segs[0].base {
		return fmt.Errorf("%w: replay from LSN %d, but the oldest entry kept is %d", ErrTruncated, from, segs[0].base)
	}
	i := 0
	for i+1 < len(segs) && segs[i+1].base <= from {
		i++
	}
	for ; i < len(segs); i++ {
		next, err := readSegment(segs[i], from, limit, fn)
		if err != nil {
			return err
		}
		if next > limit {
			return nil
		}
		if i+1 < len(segs) && next != segs[i+1].base {
			return fmt.Errorf("%w: %s ends before LSN %d, but the next segment starts at %d", ErrCorrupt, segs[i].path, next, segs[i+1].base)
		}
	}
	return fmt.Errorf("%w: the log ends before LSN %d", ErrCorrupt, limit)
}

// readSegment calls fn with the entries of s whose LSN is in [from, limit]
// and returns the LSN after the last entry it read.
func readSegment(s segment, from, limit uint64, fn func(uint64, [][]byte) error) (uint64, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("%w: %s was deleted during the replay", ErrTruncated, s.path)
	}
	if err != nil {
		return 0, fmt.Errorf("txn: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("txn: %w", err)
	}
	if err := checkHeader(f, s); err != nil {
		return 0, err
	}
	er := newEntryReader(f, segmentHeaderSize, st.Size(), s.base)
	for er.next <= limit {
		lsn, payloads, err := er.read()
		if err == io.EOF {
			break
		}
		var ie *invalidEntryError
		if errors.As(err, &ie) {
			return 0, fmt.Errorf("%w: %s: %w", ErrCorrupt, s.path, err)
		}
		if err != nil {
			return 0, fmt.Errorf("txn: read %s: %w", s.path, err)
		}
		if lsn < from {
			continue
		}
		if err := fn(lsn, payloads); err != nil {
			return 0, err
		}
	}
	return er.next, nil
}

// Truncate deletes the segments whose entries all have LSNs below before
// (never the last segment). Call it with the LSN of the oldest retained
// checkpoint plus one: the entries that checkpoint still replays stay.
func (l *Log) Truncate(before uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	n := 0
	var err error
	for n+1 < len(l.segs) && l.segs[n+1].base <= before {
		if rerr := os.Remove(l.segs[n].path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("txn: truncate: %w", rerr)
			break
		}
		n++
	}
	if n == 0 {
		return err
	}
	l.segs = slices.Clone(l.segs[n:])
	if serr := syncDir(l.dir); err == nil && serr != nil {
		err = fmt.Errorf("txn: truncate: %w", serr)
	}
	return err
}

// Close makes everything written durable, stops the log's goroutine and
// closes the last segment. Appends waiting for an fsync are acknowledged
// (or failed) before Close returns.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		l.unlock()
		return fmt.Errorf("txn: close: %w", l.err)
	}
	var err error
	if l.err == nil && l.writtenLSN > l.syncedLSN {
		l.syncs.Add(1)
		if err = l.f.Sync(); err != nil {
			err = fmt.Errorf("txn: close: fsync %s: %w", l.f.Name(), err)
			l.failLocked(err)
		} else {
			l.advanceLocked(l.writtenLSN)
		}
	}
	if cerr := l.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("txn: close: %w", cerr)
	}
	l.f = nil
	l.unlock()
	return err
}

func (l *Log) unlock() {
	if l.lock != nil {
		_ = l.lock.Close()
		l.lock = nil
	}
}

package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/weir-stream/weir/component"
)

// This file is the exactly-once half of the kafka output: a pool of
// transactional producers driven by checkpoints through
// component.Committer. The protocol, and why it is safe, is in the package
// doc (kafka.go).

// txnPoolSize is the number of transactional producers. An epoch's slot is
// reused only once a later checkpoint has a manifest (see txnPool.freeLocked);
// with one checkpoint in flight, committed before the next one starts, that
// takes three: one pre-committed epoch waiting for its checkpoint, one
// being written, and the one committed last, which recovery may still
// re-commit until the next checkpoint completes.
const txnPoolSize = 3

// handleVersion is the format version of the handles PreCommit returns.
const handleVersion = 1

// recordOverhead bounds what a record adds to its key and value in a
// record batch (lengths, deltas, attributes, and the batch header).
const recordOverhead = 128

var (
	// ErrFenced is returned when a newer writer with the same
	// transactional_id (a restarted pipeline that recovered this output)
	// has taken over: this instance is a zombie and can neither write nor
	// commit any more.
	ErrFenced = errors.New("fenced by a newer writer with the same transactional_id")
	// ErrTransactionFailed is returned by Write and PreCommit after a
	// record of the open transaction failed (or a Write was cancelled
	// while its records were in flight): the epoch cannot be committed
	// without losing or duplicating records, so the stream must restart
	// from its last completed checkpoint. Retrying does not help.
	ErrTransactionFailed = errors.New("transaction failed; the stream must restart from its last checkpoint")
	// ErrTransactionLost is returned by Recover when the restored
	// checkpoint's transaction was aborted by the broker (typically
	// because transactional_timeout expired before recovery): its records
	// are lost, and recovery stops rather than continue silently.
	ErrTransactionLost = errors.New("the checkpoint's transaction was aborted by the broker; its records are lost")
)

// txnHandle is what PreCommit returns and the checkpoint manifest stores:
// enough to finish the epoch's transaction from another process, and the
// pool it came from, so that recovery can fence that pool even after
// transactional_id changed.
type txnHandle struct {
	Version int    `json:"v"`
	Base    string `json:"base"`
	Pool    int    `json:"pool"`
	// Empty: nothing was written in the epoch; there is nothing to commit.
	Empty           bool   `json:"empty,omitempty"`
	TransactionalID string `json:"transactional_id,omitempty"`
	ProducerID      int64  `json:"producer_id"`
	ProducerEpoch   int16  `json:"producer_epoch"`
	// StartedMs is when the transaction began (unix milliseconds), for
	// the timeout warning of recovery.
	StartedMs int64 `json:"started_ms,omitempty"`
}

func (h *txnHandle) String() string {
	return fmt.Sprintf("transactional id %s (producer id %d, epoch %d)", h.TransactionalID, h.ProducerID, h.ProducerEpoch)
}

// parseHandle parses a handle; nil data is no handle (nil, nil).
func parseHandle(data []byte) (*txnHandle, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var h txnHandle
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("kafka output: invalid transaction handle %q: %w", data, err)
	}
	if h.Version != handleVersion {
		return nil, fmt.Errorf("kafka output: transaction handle version %d, want %d", h.Version, handleVersion)
	}
	if !h.Empty && h.TransactionalID == "" {
		return nil, fmt.Errorf("kafka output: transaction handle %q names no transactional id", data)
	}
	return &h, nil
}

type slotState int

const (
	slotIdle         slotState = iota
	slotOpen                   // the current epoch's slot, written by the sink goroutine
	slotPreCommitted           // flushed at a barrier, waiting for Commit or Abort
	slotEnding                 // Commit or Abort in progress
)

// txnSlot is one transactional producer of the pool.
type txnSlot struct {
	tid string

	// Guarded by txnPool.mu (cl and cancel are also read without it by
	// the goroutine that owns the slot's state).
	cl     *kgo.Client
	cancel context.CancelFunc
	state  slotState
	id     uint64    // the checkpoint pre-committed (slotPreCommitted, slotEnding)
	handle txnHandle // of the pre-committed transaction
	// holds is the checkpoint whose manifest may name this slot's last
	// transaction (0: none): recovery may re-commit it until a later
	// checkpoint has a manifest, so no new transaction may start here
	// before that.
	holds uint64
	// reinit: replace the client (InitProducerID bumps the producer
	// epoch and aborts whatever the id had open) before the next
	// transaction.
	reinit bool
	// raw: kgo's transaction state of cl is not trustworthy any more (an
	// EndTransaction failed); the pre-committed transaction is finished
	// with a raw EndTxn from its handle.
	raw bool

	// Owned by whoever owns the slot's state: the sink goroutine while
	// slotOpen, Commit or Abort while slotEnding (state changes go
	// through txnPool.mu, which orders the accesses).
	inTxn    bool
	produced bool
	started  time.Time
}

// txnPool is the exactly-once state of a kafka output.
//
// Lock order: txnPool.mu is never held during I/O.
type txnPool struct {
	o       *output
	base    string
	timeout time.Duration
	slots   []*txnSlot

	mu       sync.Mutex
	started  bool // the producers are initialized (Recover or Connect)
	closed   bool
	failed   error               // the first failed write: the output cannot continue
	cur      *txnSlot            // the current epoch's slot; nil until its first Write
	pending  map[uint64]*txnSlot // pre-committed epochs by checkpoint id
	manifest uint64              // newest checkpoint known to have a manifest (restored or committed)
	restored uint64              // the checkpoint Recover committed
	barrier  uint64              // the last PreCommit's checkpoint
	// abortNext is an Abort of the open epoch, whose barrier has not
	// reached the output yet: its transaction is aborted at that PreCommit.
	abortNext uint64
	outcomes  map[uint64]bool // recent epochs: true committed, false aborted
	changed   chan struct{}   // closed and replaced when a slot may have become free
}

func newTxnPool(o *output, base string, timeout time.Duration) *txnPool {
	t := &txnPool{
		o: o, base: base, timeout: timeout,
		pending:  map[uint64]*txnSlot{},
		outcomes: map[uint64]bool{},
		changed:  make(chan struct{}),
	}
	for i := 0; i < txnPoolSize; i++ {
		t.slots = append(t.slots, &txnSlot{tid: fmt.Sprintf("%s-%d", base, i)})
	}
	return t
}

// signalLocked wakes writers waiting for a free slot.
func (t *txnPool) signalLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// setOutcomeLocked remembers how epoch id ended, for repeated Commits;
// only the last few are kept.
func (t *txnPool) setOutcomeLocked(id uint64, committed bool) {
	t.outcomes[id] = committed
	for old := range t.outcomes {
		if old+16 < id {
			delete(t.outcomes, old)
		}
	}
}

// newSlotClient creates the transactional producer of tid and initializes
// its producer id: InitProducerID bumps the epoch of tid, which aborts the
// transaction it had open and fences every older producer of tid.
func (t *txnPool) newSlotClient(ctx context.Context, tid string) (*kgo.Client, context.CancelFunc, error) {
	opts, err := t.o.producerOpts()
	if err != nil {
		return nil, nil, err
	}
	opts = append(opts, kgo.TransactionalID(tid), kgo.TransactionTimeout(t.timeout))
	cl, cancel, err := newClient(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka output: invalid client options: %w", err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		closeClient(ctx, cl, cancel)
		if errors.Is(err, kerr.InvalidTransactionTimeout) {
			return nil, nil, fmt.Errorf("kafka output: init transactional id %s at %s: transactional_timeout %v exceeds the brokers' transaction.max.timeout.ms: %w",
				tid, t.o.client.brokerList(), t.timeout, err)
		}
		return nil, nil, fmt.Errorf("kafka output: init transactional id %s at %s: %w", tid, t.o.client.brokerList(), err)
	}
	return cl, cancel, nil
}

// start initializes every producer of the pool, and the transactional ids
// of extra (an older pool): whatever they had open is aborted and their
// older instances are fenced.
func (t *txnPool) start(ctx context.Context, extra []string) error {
	type made struct {
		cl     *kgo.Client
		cancel context.CancelFunc
	}
	clients := make([]made, 0, len(t.slots))
	fail := func(err error) error {
		for _, m := range clients {
			closeClient(ctx, m.cl, m.cancel)
		}
		return err
	}
	for _, tid := range extra {
		cl, cancel, err := t.newSlotClient(ctx, tid)
		if err != nil {
			return fail(err)
		}
		closeClient(ctx, cl, cancel)
	}
	for _, s := range t.slots {
		cl, cancel, err := t.newSlotClient(ctx, s.tid)
		if err != nil {
			return fail(err)
		}
		clients = append(clients, made{cl, cancel})
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fail(fmt.Errorf("kafka output: %w", component.ErrNotConnected))
	}
	for i, s := range t.slots {
		s.cl, s.cancel = clients[i].cl, clients[i].cancel
	}
	t.started = true
	return nil
}

// connect starts the pool unless Recover did. A started pool is never
// started again: kgo reconnects by itself, and initializing a producer
// that holds a pre-committed transaction would abort it.
func (t *txnPool) connect(ctx context.Context) error {
	t.mu.Lock()
	started := t.started
	t.mu.Unlock()
	if started {
		return nil
	}
	return t.start(ctx, nil)
}

// freeLocked returns an idle slot on which a new transaction may start:
// none of the checkpoints that recovery might restore names its last
// transaction.
func (t *txnPool) freeLocked() *txnSlot {
	for _, s := range t.slots {
		if s.state == slotIdle && (s.holds == 0 || s.holds < t.manifest) {
			return s
		}
	}
	return nil
}

// current returns the slot of the current epoch and its client, with its
// transaction begun, picking a free slot at the first Write of an epoch
// (and waiting for one when none is free: a checkpoint must complete
// first).
func (t *txnPool) current(ctx context.Context) (*txnSlot, *kgo.Client, error) {
	t.mu.Lock()
	for t.cur == nil {
		if t.failed != nil {
			err := t.failed
			t.mu.Unlock()
			return nil, nil, err
		}
		if !t.started || t.closed {
			t.mu.Unlock()
			return nil, nil, fmt.Errorf("kafka output: %w", component.ErrNotConnected)
		}
		if s := t.freeLocked(); s != nil {
			s.state = slotOpen
			t.cur = s
			break
		}
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("kafka output: waiting for a checkpoint to complete before starting the next transaction: %w", ctx.Err())
		}
		t.mu.Lock()
	}
	s, cl := t.cur, t.cur.cl
	err := t.failed
	reinit := s.reinit || cl == nil
	t.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	if reinit {
		var err error
		if cl, err = t.replaceClient(ctx, s); err != nil {
			return nil, nil, err
		}
	}
	if !s.inTxn {
		if err := cl.BeginTransaction(); err != nil {
			return nil, nil, fmt.Errorf("kafka output: begin transaction on %s: %w", s.tid, err)
		}
		s.inTxn, s.produced = true, false
	}
	return s, cl, nil
}

// replaceClient gives s a new producer, which it returns: InitProducerID
// bumps its epoch (and aborts what the id had open). The caller owns s's
// state.
func (t *txnPool) replaceClient(ctx context.Context, s *txnSlot) (*kgo.Client, error) {
	cl, cancel, err := t.newSlotClient(ctx, s.tid)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		closeClient(ctx, cl, cancel)
		return nil, fmt.Errorf("kafka output: %w", component.ErrNotConnected)
	}
	old, oldCancel := s.cl, s.cancel
	s.cl, s.cancel = cl, cancel
	s.reinit, s.raw, s.inTxn, s.produced = false, false, false, false
	t.mu.Unlock()
	if old != nil {
		closeClient(ctx, old, oldCancel)
	}
	return cl, nil
}

// fail makes err the output's failure: later Writes and PreCommits return
// it. It returns err.
func (t *txnPool) fail(err error) error {
	t.mu.Lock()
	if t.failed == nil {
		t.failed = err
	}
	t.mu.Unlock()
	return err
}

// write adds recs to the current epoch's transaction.
func (t *txnPool) write(ctx context.Context, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	// A record kgo would refuse must not fail the transaction: the
	// batch is refused whole, before anything is produced.
	for i, r := range recs {
		if n := len(r.Key) + len(r.Value) + recordOverhead; n > int(t.o.batchMaxBytes) {
			return component.Permanent(fmt.Errorf("kafka output: topic %s: record %d is %d bytes with its overhead, more than batch_max_bytes (%d); "+
				"the batch is not written", t.o.topic, i, n, t.o.batchMaxBytes))
		}
	}
	s, cl, err := t.current(ctx)
	if err != nil {
		return err
	}
	if !s.produced {
		s.produced, s.started = true, time.Now() // the broker's timeout starts now
	}
	if err := t.o.produce(ctx, cl, recs); err != nil {
		// Some records may be in the transaction: writing the batch
		// again would duplicate them, dropping them would lose them.
		if isFenced(err) {
			return t.fail(fmt.Errorf("kafka output: transactional id %s: %w: %w", s.tid, ErrFenced, err))
		}
		return t.fail(fmt.Errorf("kafka output: %w: %w", ErrTransactionFailed, err))
	}
	return nil
}

func (t *txnPool) emptyHandle() []byte {
	data, _ := json.Marshal(txnHandle{Version: handleVersion, Base: t.base, Pool: len(t.slots), Empty: true})
	return data
}

// preCommit flushes the current epoch's transaction and hands it over to
// Commit: later Writes start a transaction on another slot.
func (t *txnPool) preCommit(ctx context.Context, id uint64) ([]byte, error) {
	t.mu.Lock()
	t.barrier = id
	s := t.cur
	var cl *kgo.Client
	if s != nil {
		cl = s.cl
	}
	abort := t.abortNext != 0 && t.abortNext <= id
	t.abortNext = 0
	failed := t.failed
	t.mu.Unlock()
	if failed != nil {
		return nil, fmt.Errorf("kafka output: pre-commit checkpoint %d: %w", id, failed)
	}
	if s == nil || !s.produced {
		// Nothing was written: the slot (and its transaction, begun
		// only on the client side) carries over to the next epoch.
		return t.emptyHandle(), nil
	}
	if abort {
		if err := t.abortOpen(ctx, s, cl); err != nil {
			return nil, fmt.Errorf("kafka output: checkpoint %d was aborted before its barrier arrived: %w", id, err)
		}
		return nil, fmt.Errorf("kafka output: checkpoint %d was aborted before its barrier arrived; its transaction is aborted", id)
	}
	// Every Write waited for its records; this waits for those of a
	// cancelled Write (which failed the output anyway).
	if err := cl.Flush(ctx); err != nil {
		return nil, t.fail(fmt.Errorf("kafka output: pre-commit checkpoint %d: flush %s: %w: %w", id, s.tid, ErrTransactionFailed, err))
	}
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		if isFenced(err) {
			err = fmt.Errorf("%w: %w", ErrFenced, err)
		}
		return nil, t.fail(fmt.Errorf("kafka output: pre-commit checkpoint %d: producer id of %s: %w", id, s.tid, err))
	}
	h := txnHandle{
		Version: handleVersion, Base: t.base, Pool: len(t.slots),
		TransactionalID: s.tid, ProducerID: pid, ProducerEpoch: epoch, StartedMs: s.started.UnixMilli(),
	}
	data, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("kafka output: pre-commit checkpoint %d: %w", id, err)
	}
	t.mu.Lock()
	s.state, s.id, s.handle = slotPreCommitted, id, h
	t.pending[id] = s
	t.cur = nil
	t.mu.Unlock()
	return data, nil
}

// abortOpen aborts the open transaction of the current slot s (owned by
// the caller, client cl) and frees s; its next use replaces the client.
func (t *txnPool) abortOpen(ctx context.Context, s *txnSlot, cl *kgo.Client) error {
	err := cl.AbortBufferedRecords(ctx)
	if err == nil {
		err = cl.EndTransaction(ctx, kgo.TryAbort)
	}
	t.mu.Lock()
	s.state, s.holds, s.reinit = slotIdle, 0, true
	s.inTxn, s.produced = false, false
	if t.cur == s {
		t.cur = nil
	}
	t.signalLocked()
	t.mu.Unlock()
	if err != nil {
		return fmt.Errorf("abort transaction of %s (the next use of the id aborts it): %w", s.tid, err)
	}
	return nil
}

// commit commits the transaction of checkpoint id.
func (t *txnPool) commit(ctx context.Context, id uint64, handle []byte) error {
	t.mu.Lock()
	if id > t.manifest {
		t.manifest = id
		t.signalLocked()
	}
	s := t.pending[id]
	if s == nil {
		committed, known := t.outcomes[id]
		restored := id != 0 && id == t.restored
		t.mu.Unlock()
		switch {
		case known && committed, restored:
			return nil
		case known:
			return fmt.Errorf("kafka output: commit checkpoint %d: its transaction was aborted", id)
		}
		// Not an epoch of this instance: finish it from its handle.
		h, err := parseHandle(handle)
		if err != nil || h == nil || h.Empty {
			return err
		}
		if err := t.endTxn(ctx, h, true, false); err != nil {
			return fmt.Errorf("kafka output: commit checkpoint %d: %w", id, err)
		}
		return nil
	}
	if s.state == slotEnding {
		t.mu.Unlock()
		return fmt.Errorf("kafka output: commit checkpoint %d: a commit or abort of it is already running", id)
	}
	s.state = slotEnding
	raw, cl := s.raw, s.cl
	t.mu.Unlock()

	var err error
	if raw || cl == nil {
		raw = true
		err = t.endTxn(ctx, &s.handle, true, false)
	} else if err = cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		// kgo's transaction state is spent: later attempts end the
		// transaction from its handle (a raw EndTxn is idempotent).
		raw = true
		err = classifyEnd(err, true)
	}
	if err != nil {
		t.mu.Lock()
		s.state, s.raw = slotPreCommitted, raw
		t.mu.Unlock()
		return fmt.Errorf("kafka output: commit checkpoint %d (%s): %w", id, s.handle.String(), err)
	}

	// Before KIP-890 (transaction.version 2) the producer epoch stays the
	// same across transactions; bump it before the slot's next
	// transaction, so that a recovery that re-commits this handle can
	// never commit a later transaction by mistake.
	reinit := raw
	if !raw {
		if _, epoch, err := cl.ProducerID(ctx); err != nil || epoch == s.handle.ProducerEpoch {
			reinit = true
		}
	}
	if reinit {
		if _, err := t.replaceClient(ctx, s); err != nil {
			t.o.log.Debug("kafka output: renewing a producer after its commit failed; retried at its next use", "transactional_id", s.tid, "error", err)
			reinit = true
		} else {
			reinit = false
		}
	}
	t.mu.Lock()
	s.state, s.holds, s.reinit, s.raw = slotIdle, id, reinit, false
	s.inTxn, s.produced = false, false
	delete(t.pending, id)
	t.setOutcomeLocked(id, true)
	t.signalLocked()
	t.mu.Unlock()
	return nil
}

// abort aborts the transaction of checkpoint id: a pre-committed one at
// once, the open one when its barrier arrives (PreCommit).
func (t *txnPool) abort(ctx context.Context, id uint64) error {
	t.mu.Lock()
	s := t.pending[id]
	if s == nil {
		if id > t.barrier && id > t.abortNext {
			t.abortNext = id
		}
		t.mu.Unlock()
		return nil
	}
	if s.state == slotEnding {
		t.mu.Unlock()
		return fmt.Errorf("kafka output: abort checkpoint %d: a commit or abort of it is already running", id)
	}
	s.state = slotEnding
	raw, cl := s.raw, s.cl
	t.mu.Unlock()

	var err error
	if raw || cl == nil {
		err = t.endTxn(ctx, &s.handle, false, false)
	} else {
		err = cl.EndTransaction(ctx, kgo.TryAbort)
	}
	// A new producer bumps the epoch: should the aborted transaction's
	// handle ever be re-committed, it cannot touch a later transaction;
	// and if the abort failed, InitProducerID aborts it.
	_, rerr := t.replaceClient(ctx, s)
	t.mu.Lock()
	s.state, s.holds, s.raw = slotIdle, 0, false
	s.reinit = rerr != nil
	s.inTxn, s.produced = false, false
	delete(t.pending, id)
	t.setOutcomeLocked(id, false)
	t.signalLocked()
	t.mu.Unlock()
	if err != nil && rerr != nil {
		return fmt.Errorf("kafka output: abort checkpoint %d (%s): %w", id, s.handle.String(), errors.Join(err, rerr))
	}
	return nil
}

// recover finishes what a previous run left: it commits the restored
// checkpoint's transaction from its handle, then starts the pool, whose
// InitProducerIDs abort every later transaction and fence the old
// instance.
func (t *txnPool) recover(ctx context.Context, id uint64, handle []byte) error {
	t.mu.Lock()
	started := t.started
	t.mu.Unlock()
	if started {
		return errors.New("kafka output: Recover must be called before Connect")
	}
	h, err := parseHandle(handle)
	if err != nil {
		return fmt.Errorf("recover checkpoint %d: %w", id, err)
	}
	if h != nil && !h.Empty {
		if err := t.endTxn(ctx, h, true, true); err != nil {
			return fmt.Errorf("kafka output: recover checkpoint %d: commit %s: %w", id, h.String(), err)
		}
		t.o.log.Info("kafka output: committed the restored checkpoint's transaction", "checkpoint", id,
			"transactional_id", h.TransactionalID, "producer_id", h.ProducerID, "producer_epoch", h.ProducerEpoch)
	}
	// The pool that wrote the handle, if transactional_id changed since.
	var extra []string
	if h != nil && (h.Base != t.base || h.Pool > len(t.slots)) {
		for i := 0; i < h.Pool; i++ {
			if tid := fmt.Sprintf("%s-%d", h.Base, i); t.slotOf(tid) == nil {
				extra = append(extra, tid)
			}
		}
	}
	if err := t.start(ctx, extra); err != nil {
		return fmt.Errorf("recover checkpoint %d: %w", id, err)
	}
	t.mu.Lock()
	if id > t.manifest {
		t.manifest = id
	}
	t.restored, t.barrier = id, id
	if h != nil && !h.Empty {
		if s := t.slotOf(h.TransactionalID); s != nil {
			s.holds = id
		}
	}
	t.mu.Unlock()
	return nil
}

func (t *txnPool) slotOf(tid string) *txnSlot {
	for _, s := range t.slots {
		if s.tid == tid {
			return s
		}
	}
	return nil
}

// close aborts the open transaction and closes every producer; a
// pre-committed transaction stays open for Commit or recovery.
func (t *txnPool) close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	cur := t.cur
	var cl *kgo.Client
	if cur != nil {
		cl = cur.cl
	}
	t.cur = nil
	t.signalLocked()
	t.mu.Unlock()

	var err error
	if cur != nil && cur.produced && cl != nil {
		if aerr := cl.AbortBufferedRecords(ctx); aerr != nil {
			err = aerr
		} else if aerr := cl.EndTransaction(ctx, kgo.TryAbort); aerr != nil {
			err = fmt.Errorf("kafka output: abort the open transaction of %s (the next start aborts it): %w", cur.tid, aerr)
		}
	}
	t.mu.Lock()
	type client struct {
		cl     *kgo.Client
		cancel context.CancelFunc
	}
	var clients []client
	for _, s := range t.slots {
		if s.cl != nil {
			clients = append(clients, client{s.cl, s.cancel})
			s.cl, s.cancel = nil, nil
		}
	}
	t.mu.Unlock()
	for _, c := range clients {
		closeClient(ctx, c.cl, c.cancel)
	}
	return err
}

// endTxn ends the transaction of h with a raw EndTxn request from a plain
// (non-transactional) client: this works from any process, and only
// touches that producer id and epoch. Repeating a commit (or an abort) that
// completed is a success.
//
// When the producer's epoch has moved past h's, the broker answers
// PRODUCER_FENCED (or INVALID_PRODUCER_EPOCH): h's transaction is over, but
// the answer does not say how it ended. In a running instance (recovering
// false) that means another instance took over: ErrFenced. At recovery
// (recovering true) the epoch moves past a transaction of a complete
// checkpoint only after that transaction was committed (by Commit, or by an
// earlier recovery, which then re-initialized the producers), or when the
// broker aborted it at its timeout: that case is caught when the broker
// still reports the abort (DescribeTransactions), and otherwise excluded by
// transactional_timeout (see CheckTransactionTimeout). So it is a success.
func (t *txnPool) endTxn(ctx context.Context, h *txnHandle, commit, recovering bool) error {
	cl, closeRaw, err := t.rawClient(ctx)
	if err != nil {
		return err
	}
	defer closeRaw()
	for attempt := 0; ; attempt++ {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID = h.TransactionalID
		req.ProducerID = h.ProducerID
		req.ProducerEpoch = h.ProducerEpoch
		req.Commit = commit
		resp, err := req.RequestWith(ctx, cl)
		if err == nil {
			err = kerr.ErrorForCode(resp.ErrorCode)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, kerr.InvalidTxnState):
			return classifyEnd(err, commit)
		case isFenced(err):
			if !recovering || !commit {
				return classifyEnd(err, commit)
			}
			return t.checkCompleted(ctx, cl, h, err)
		case errors.Is(err, kerr.InvalidProducerIDMapping):
			if !recovering {
				return fmt.Errorf("%w: %w", ErrFenced, err)
			}
			return fmt.Errorf("the broker no longer knows the producer (transactional.id.expiration.ms passed?), "+
				"so whether the checkpoint's records were committed cannot be told: %w", err)
		}
		if !retriable(err) || attempt >= 8 || ctx.Err() != nil {
			return err
		}
		select {
		case <-time.After(min(100*time.Millisecond<<attempt, 2*time.Second)):
		case <-ctx.Done():
			return err
		}
	}
}

// checkCompleted decides, at recovery, about a transaction whose producer
// epoch has moved on (see endTxn): an error if the broker reports it
// aborted, success otherwise.
func (t *txnPool) checkCompleted(ctx context.Context, cl *kgo.Client, h *txnHandle, fenced error) error {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{h.TransactionalID}
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.TransactionStates) == 1 {
		st := resp.TransactionStates[0]
		err = kerr.ErrorForCode(st.ErrorCode)
		if err == nil && st.ProducerID == h.ProducerID && (st.State == "PrepareAbort" || st.State == "CompleteAbort") {
			return fmt.Errorf("%w (transaction state %s after epoch %d; did transactional_timeout %v expire before the restart?): %w",
				ErrTransactionLost, st.State, h.ProducerEpoch, t.timeout, fenced)
		}
	}
	if err != nil {
		t.o.log.Warn("kafka output: cannot describe the restored checkpoint's transaction; assuming it was committed before the crash",
			"transactional_id", h.TransactionalID, "error", err)
	}
	if h.StartedMs > 0 {
		if age := time.Since(time.UnixMilli(h.StartedMs)); age > t.timeout {
			t.o.log.Warn("kafka output: the restored checkpoint's transaction is older than transactional_timeout; "+
				"if it was not committed before the crash, the broker has aborted it and its records are lost",
				"transactional_id", h.TransactionalID, "age", age.Round(time.Second), "transactional_timeout", t.timeout)
		}
	}
	return nil
}

// rawClient returns a plain client whose EndTxn requests use the version
// the transactional producers use: v5 (KIP-890, the broker bumps the epoch
// and recognises retries) only when the cluster's transaction.version is
// 2 or more, v4 otherwise, as kgo does.
func (t *txnPool) rawClient(ctx context.Context) (*kgo.Client, func(), error) {
	opts, err := t.o.client.opts(t.o.log)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka output: %w", err)
	}
	cl, cancel, err := newClient(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka output: invalid client options: %w", err)
	}
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(ctx, cl)
	if err != nil {
		closeClient(ctx, cl, cancel)
		return nil, nil, fmt.Errorf("kafka output: connect to brokers %s: %w", t.o.client.brokerList(), err)
	}
	for _, f := range resp.FinalizedFeatures {
		if f.Name == "transaction.version" && f.MaxVersionLevel >= 2 {
			return cl, func() { closeClient(ctx, cl, cancel) }, nil
		}
	}
	closeClient(ctx, cl, cancel)
	versions := kversion.Tip()
	versions.SetMaxKeyVersion(int16(kmsg.EndTxn), 4)
	cl, cancel, err = newClient(append(opts, kgo.MaxVersions(versions)))
	if err != nil {
		return nil, nil, fmt.Errorf("kafka output: invalid client options: %w", err)
	}
	return cl, func() { closeClient(ctx, cl, cancel) }, nil
}

// classifyEnd wraps the error of ending a transaction of this instance
// with the sentinel that says what happened to it.
func classifyEnd(err error, commit bool) error {
	switch {
	case isFenced(err):
		return fmt.Errorf("%w: %w", ErrFenced, err)
	case errors.Is(err, kerr.InvalidTxnState) && commit:
		// Someone else ended it: a newer instance's recovery (which
		// aborts what it does not restore), or the transaction timeout.
		return fmt.Errorf("%w (fenced by a newer instance, or transactional_timeout expired): %w", ErrTransactionLost, err)
	case errors.Is(err, kerr.InvalidTxnState):
		return fmt.Errorf("the transaction was committed, not aborted: %w", err)
	}
	return err
}

// isFenced reports whether err says that a newer producer of the same
// transactional id exists.
func isFenced(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch)
}

// retriable reports whether an EndTxn may succeed when sent again.
func retriable(err error) bool {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable || errors.Is(err, kerr.ConcurrentTransactions)
	}
	// Transport errors (kgo already retried them a few times).
	return !errors.Is(err, kgo.ErrClientClosed)
}

// PreCommit flushes the open transaction of the current epoch and returns
// its handle (transactional id, producer id, epoch; or an empty handle
// when nothing was written since the last barrier). Later Writes go to a
// transaction on another producer of the pool.
func (o *output) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	if o.txn == nil {
		return nil, nil
	}
	h, err := o.txn.preCommit(ctx, id)
	return h, fatalTxnError(err)
}

// Commit commits the transaction of checkpoint id. It may run
// concurrently with Write (the two use different producers), and may be
// repeated: a commit that completed is a success.
func (o *output) Commit(ctx context.Context, id uint64, handle []byte) error {
	if o.txn == nil {
		return nil
	}
	return fatalTxnError(o.txn.commit(ctx, id, handle))
}

// Abort aborts the transaction of checkpoint id (its checkpoint failed).
func (o *output) Abort(ctx context.Context, id uint64) error {
	if o.txn == nil {
		return nil
	}
	return o.txn.abort(ctx, id)
}

// Recover commits the transaction of the restored checkpoint id from its
// handle, then starts the producers, which aborts every later transaction
// of this output and fences an older instance still running. It must be
// called before Connect.
func (o *output) Recover(ctx context.Context, id uint64, handle []byte) error {
	if o.txn == nil {
		return nil
	}
	return o.txn.recover(ctx, id, handle)
}

var _ component.Committer = (*output)(nil)
var _ component.ExactlyOnce = (*output)(nil)

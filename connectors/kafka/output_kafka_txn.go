package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// txnPoolSize is the number of transactional producers a pool starts
// with. An epoch's slot is reused only once a later checkpoint has a
// manifest (see txnPool.freeLocked); while every checkpoint completes (one
// in flight, committed before the next one starts) that takes three: one
// pre-committed epoch waiting for its checkpoint, one being written, and
// the one committed last, which recovery may still re-commit until the
// next checkpoint completes. Failed checkpoints leave their epochs
// pre-committed, each holding its producer, so the pool grows (BASE-3,
// BASE-4, ...) rather than make a Write wait for a checkpoint that cannot
// complete before that Write returns.
const txnPoolSize = 3

// maxPendingTxns bounds the epochs pre-committed and not yet committed
// (checkpoints that failed in a row, and the one that will commit them): a
// PreCommit beyond it fails the stream with ErrCheckpointsFailing. The
// checkpoint coordinator stops the stream after tolerable_failed_checkpoints
// + 1 failures in a row, with at most that many epochs pending plus the
// next one, so this allows tolerable_failed_checkpoints up to
// maxPendingTxns - 2 (14).
const maxPendingTxns = 16

// maxPoolSize bounds the pool: maxPendingTxns pre-committed epochs, as
// many committed at the last checkpoint (held until a later checkpoint has
// a manifest), and the open epoch.
const maxPoolSize = 2*maxPendingTxns + 1

// handleVersion is the format version of the handles PreCommit returns.
const handleVersion = 2

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
	// ErrTransactionLost is returned by Commit and Recover when a
	// transaction of the checkpoint was aborted by the broker (typically
	// because transactional_timeout expired while checkpoints failed, or
	// before recovery): its records are lost, and the output stops rather
	// than continue silently.
	ErrTransactionLost = errors.New("a transaction of the checkpoint was aborted by the broker; its records are lost")
	// ErrCheckpointsFailing is returned by PreCommit (and Write) when
	// checkpoints have failed for so long that the epochs waiting for one
	// to complete cannot wait any longer: more than maxPendingTxns of them,
	// or the oldest transaction is about to reach transactional_timeout,
	// after which the broker aborts it. The stream must restart from its
	// last completed checkpoint (which aborts those epochs; their records
	// are read again from the source).
	ErrCheckpointsFailing = errors.New("checkpoints failed for too long; the stream must restart from its last checkpoint")
)

// txnHandle is what PreCommit returns and the checkpoint manifest stores:
// every transaction pre-committed and not yet committed when the
// checkpoint's barrier reached the output, oldest first (a failed
// checkpoint leaves its epoch to the next one that completes), with what
// is needed to finish each from another process; and the pool they came
// from, so that recovery can fence every transactional id that pool may
// have used, even after transactional_id changed.
type txnHandle struct {
	Version int      `json:"v"`
	Base    string   `json:"base"`
	Pool    int      `json:"pool"`
	Txns    []txnRef `json:"txns,omitempty"`
}

// txnRef is the transaction of one epoch.
type txnRef struct {
	// Checkpoint is the epoch: the checkpoint whose barrier ended it.
	Checkpoint      uint64 `json:"checkpoint"`
	TransactionalID string `json:"transactional_id"`
	ProducerID      int64  `json:"producer_id"`
	ProducerEpoch   int16  `json:"producer_epoch"`
	// StartedMs is when the transaction began (unix milliseconds): the
	// broker aborts it transactional_timeout later.
	StartedMs int64 `json:"started_ms,omitempty"`
}

func (r *txnRef) String() string {
	return fmt.Sprintf("transactional id %s (producer id %d, epoch %d)", r.TransactionalID, r.ProducerID, r.ProducerEpoch)
}

// age is how long ago the transaction began (0: unknown).
func (r *txnRef) age() time.Duration {
	if r.StartedMs <= 0 {
		return 0
	}
	return time.Since(time.UnixMilli(r.StartedMs))
}

// parseHandle parses the handle of checkpoint id; nil data is no handle
// (nil, nil).
func parseHandle(id uint64, data []byte) (*txnHandle, error) {
	if len(data) == 0 {
		return nil, nil
	}
	var h txnHandle
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("invalid transaction handle %q: %w", data, err)
	}
	if h.Version != handleVersion {
		return nil, fmt.Errorf("transaction handle version %d, want %d", h.Version, handleVersion)
	}
	if h.Pool < 0 || h.Pool > 1<<16 || h.Pool > 0 && h.Base == "" {
		return nil, fmt.Errorf("transaction handle %q: invalid pool", data)
	}
	tids := map[string]bool{}
	for i, r := range h.Txns {
		switch {
		case r.TransactionalID == "":
			return nil, fmt.Errorf("transaction handle %q names no transactional id", data)
		case tids[r.TransactionalID]:
			return nil, fmt.Errorf("transaction handle %q names transactional id %s twice", data, r.TransactionalID)
		case r.Checkpoint == 0 || r.Checkpoint > id || i > 0 && r.Checkpoint <= h.Txns[i-1].Checkpoint:
			return nil, fmt.Errorf("transaction handle %q of checkpoint %d: epochs out of order", data, id)
		}
		tids[r.TransactionalID] = true
	}
	return &h, nil
}

// txns returns the transactions of h (none for nil).
func (h *txnHandle) txns() []txnRef {
	if h == nil {
		return nil
	}
	return h.Txns
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
	cl     *kgo.Client // nil until the slot's first use
	cancel context.CancelFunc
	state  slotState
	handle txnRef // of the pre-committed transaction (slotPreCommitted, slotEnding)
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

	mu      sync.Mutex
	slots   []*txnSlot // BASE-0, BASE-1, ...: grows, never shrinks
	started bool       // the producers are initialized (Recover or Connect)
	closed  bool
	failed  error               // the first failed write: the output cannot continue
	cur     *txnSlot            // the current epoch's slot; nil until its first Write
	pending map[uint64]*txnSlot // pre-committed epochs by checkpoint id
	// manifest is the newest checkpoint known to have a manifest
	// (restored or committed).
	manifest uint64
	restored uint64 // the checkpoint Recover committed
	// restoredIDs are the transactional ids of the restored checkpoint's
	// transactions, which a slot added later must hold too.
	restoredIDs map[string]bool
	barrier     uint64 // the last PreCommit's checkpoint
	// abortNext is an Abort of the open epoch, whose barrier has not
	// reached the output yet: its transaction is aborted at that PreCommit.
	abortNext uint64
	outcomes  map[uint64]bool // recent epochs: true committed, false aborted
}

func newTxnPool(o *output, base string, timeout time.Duration) *txnPool {
	t := &txnPool{
		o: o, base: base, timeout: timeout,
		pending:  map[uint64]*txnSlot{},
		outcomes: map[uint64]bool{},
	}
	for i := 0; i < txnPoolSize; i++ {
		t.slots = append(t.slots, &txnSlot{tid: txnID(base, i)})
	}
	return t
}

// txnID is the transactional id of producer i of the pool of base.
func txnID(base string, i int) string { return fmt.Sprintf("%s-%d", base, i) }

// setOutcomeLocked remembers how epoch id ended, for repeated Commits;
// only recent epochs are kept.
func (t *txnPool) setOutcomeLocked(id uint64, committed bool) {
	t.outcomes[id] = committed
	for old := range t.outcomes {
		if old+4*maxPendingTxns < id {
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
// extra (an older or larger pool): whatever they had open is aborted and
// their older instances are fenced.
func (t *txnPool) start(ctx context.Context, extra []string) error {
	type made struct {
		cl     *kgo.Client
		cancel context.CancelFunc
	}
	t.mu.Lock()
	slots := slices.Clone(t.slots)
	t.mu.Unlock()
	clients := make([]made, 0, len(slots))
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
	for _, s := range slots {
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
	for i, s := range slots {
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

// freeLocked returns an idle slot on which a new transaction may start
// (none of the checkpoints that recovery might restore names its last
// transaction), adding one to the pool when none is: its producer is
// created at its first use. It fails only past maxPoolSize, which the
// bound on pending epochs (see preCommit) keeps out of reach.
func (t *txnPool) freeLocked() (*txnSlot, error) {
	for _, s := range t.slots {
		if s.state == slotIdle && (s.holds == 0 || s.holds < t.manifest) {
			return s, nil
		}
	}
	if len(t.slots) >= maxPoolSize {
		return nil, fmt.Errorf("kafka output: %w: all %d transactional producers hold a transaction that a checkpoint may still commit",
			ErrCheckpointsFailing, len(t.slots))
	}
	s := &txnSlot{tid: txnID(t.base, len(t.slots))}
	if t.restoredIDs[s.tid] {
		s.holds = t.restored
	}
	t.slots = append(t.slots, s)
	if s.holds != 0 {
		return t.freeLocked()
	}
	t.o.log.Info("kafka output: adding a transactional producer: the others hold transactions that a checkpoint may still commit",
		"transactional_id", s.tid, "pending_epochs", len(t.pending))
	return s, nil
}

// current returns the slot of the current epoch and its client, with its
// transaction begun, picking a free slot at the first Write of an epoch.
// It never waits for a checkpoint: the barrier that would complete one
// reaches the output only after this Write returns.
func (t *txnPool) current(ctx context.Context) (*txnSlot, *kgo.Client, error) {
	t.mu.Lock()
	if t.failed != nil {
		err := t.failed
		t.mu.Unlock()
		return nil, nil, err
	}
	if !t.started || t.closed {
		t.mu.Unlock()
		return nil, nil, fmt.Errorf("kafka output: %w", component.ErrNotConnected)
	}
	if t.cur == nil {
		s, err := t.freeLocked()
		if err != nil {
			t.mu.Unlock()
			return nil, nil, t.fail(err)
		}
		s.state = slotOpen
		t.cur = s
	}
	s, cl := t.cur, t.cur.cl
	reinit := s.reinit || cl == nil
	t.mu.Unlock()
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

// handleLocked returns the handle of every pre-committed epoch, oldest
// first.
func (t *txnPool) handleLocked() ([]byte, error) {
	h := txnHandle{Version: handleVersion, Base: t.base, Pool: len(t.slots)}
	for _, s := range t.pending {
		h.Txns = append(h.Txns, s.handle)
	}
	slices.SortFunc(h.Txns, func(a, b txnRef) int { return cmpUint64(a.Checkpoint, b.Checkpoint) })
	return json.Marshal(h)
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// expiryMargin is how long before transactional_timeout PreCommit stops
// handing over a transaction: the checkpoint still has to complete, and
// after a crash the pipeline to restart (restartTime), before the broker
// aborts it.
func (t *txnPool) expiryMargin() time.Duration { return min(restartTime, t.timeout/4) }

// checkPendingLocked refuses to pre-commit checkpoint id when the epochs
// its handle would name cannot all be committed: too many wait for a
// checkpoint to complete, or the oldest is about to reach
// transactional_timeout. Failing here, before the checkpoint has a
// manifest, makes the stream restart from the last complete checkpoint
// and read those epochs' records again; a manifest naming a transaction
// that the broker then aborts would lose them.
func (t *txnPool) checkPendingLocked(id uint64, cur *txnSlot) error {
	n := len(t.pending)
	var oldest *txnSlot
	for _, s := range t.pending {
		if oldest == nil || s.started.Before(oldest.started) {
			oldest = s
		}
	}
	if cur != nil {
		n++
		if oldest == nil || cur.started.Before(oldest.started) {
			oldest = cur
		}
	}
	if n > maxPendingTxns {
		return fmt.Errorf("kafka output: pre-commit checkpoint %d: %w: %d epochs would wait for a checkpoint to complete, at most %d may "+
			"(tolerable_failed_checkpoints must not exceed %d)", id, ErrCheckpointsFailing, n, maxPendingTxns, maxPendingTxns-2)
	}
	if oldest != nil {
		if age := time.Since(oldest.started); age > t.timeout-t.expiryMargin() {
			return fmt.Errorf("kafka output: pre-commit checkpoint %d: %w: the transaction on %s began %v ago, too close to transactional_timeout (%v) "+
				"for a checkpoint to commit it before the broker aborts it", id, ErrCheckpointsFailing, oldest.tid, age.Round(time.Millisecond), t.timeout)
		}
	}
	return nil
}

// preCommit flushes the current epoch's transaction and hands it over to
// Commit: later Writes start a transaction on another slot. The handle
// names every pre-committed epoch not yet committed.
func (t *txnPool) preCommit(ctx context.Context, id uint64) ([]byte, error) {
	t.mu.Lock()
	t.barrier = id
	s := t.cur
	var cl *kgo.Client
	if s != nil {
		cl = s.cl
	}
	written := s != nil && s.produced
	abort := t.abortNext != 0 && t.abortNext <= id
	t.abortNext = 0
	failed := t.failed
	t.mu.Unlock()
	if failed != nil {
		return nil, fmt.Errorf("kafka output: pre-commit checkpoint %d: %w", id, failed)
	}
	if written && abort {
		if err := t.abortOpen(ctx, s, cl); err != nil {
			return nil, fmt.Errorf("kafka output: checkpoint %d was aborted before its barrier arrived: %w", id, err)
		}
		return nil, fmt.Errorf("kafka output: checkpoint %d was aborted before its barrier arrived; its transaction is aborted", id)
	}
	t.mu.Lock()
	if !written {
		s = nil
	}
	err := t.checkPendingLocked(id, s)
	if err == nil && !written {
		// Nothing was written: the slot (and its transaction, begun
		// only on the client side) carries over to the next epoch.
		data, err := t.handleLocked()
		t.mu.Unlock()
		return data, err
	}
	t.mu.Unlock()
	if err != nil {
		return nil, t.fail(err)
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
	t.mu.Lock()
	s.state = slotPreCommitted
	s.handle = txnRef{Checkpoint: id, TransactionalID: s.tid, ProducerID: pid, ProducerEpoch: epoch, StartedMs: s.started.UnixMilli()}
	t.pending[id] = s
	t.cur = nil
	// The next epoch's producer joins the pool now, so that the pool this
	// handle names covers it: a recovery from this checkpoint fences it.
	_, err = t.freeLocked()
	var data []byte
	if err == nil {
		data, err = t.handleLocked()
	}
	t.mu.Unlock()
	if err != nil {
		return nil, t.fail(fmt.Errorf("kafka output: pre-commit checkpoint %d: %w", id, err))
	}
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
	t.mu.Unlock()
	if err != nil {
		return fmt.Errorf("abort transaction of %s (the next use of the id aborts it): %w", s.tid, err)
	}
	return nil
}

// commit commits every epoch up to checkpoint id that is pre-committed
// and not yet committed, oldest first, and stops at the first that fails:
// this instance's on their producers, and the others the handle names (a
// handle of another process) with a raw EndTxn. An epoch committed before
// is skipped, so a repeated Commit is a success.
func (t *txnPool) commit(ctx context.Context, id uint64, handle []byte) error {
	h, err := parseHandle(id, handle)
	if err != nil {
		return fmt.Errorf("kafka output: commit checkpoint %d: %w", id, err)
	}
	type step struct {
		ref  txnRef
		slot *txnSlot // nil: not an epoch of this instance
	}
	var steps []step
	t.mu.Lock()
	if id > t.manifest {
		t.manifest = id
	}
	if committed, known := t.outcomes[id]; known && !committed {
		t.mu.Unlock()
		return fmt.Errorf("kafka output: commit checkpoint %d: its transaction was aborted", id)
	}
	for cid, s := range t.pending {
		if cid <= id {
			steps = append(steps, step{s.handle, s})
		}
	}
	for _, r := range h.txns() {
		if s := t.pending[r.Checkpoint]; s != nil && s.handle == r {
			continue // in steps already
		}
		if _, known := t.outcomes[r.Checkpoint]; known || r.Checkpoint <= t.restored {
			// Finished here: committed, or discarded by Abort (an
			// Abort of id itself was refused above); or committed by
			// Recover.
			continue
		}
		steps = append(steps, step{ref: r})
	}
	t.mu.Unlock()
	slices.SortFunc(steps, func(a, b step) int { return cmpUint64(a.ref.Checkpoint, b.ref.Checkpoint) })
	for _, st := range steps {
		if st.slot != nil {
			err = t.commitSlot(ctx, st.slot, st.ref.Checkpoint, id)
		} else if err = t.endTxn(ctx, &st.ref, true, false); err == nil {
			t.mu.Lock()
			t.setOutcomeLocked(st.ref.Checkpoint, true)
			t.mu.Unlock()
		}
		if err != nil {
			return fmt.Errorf("kafka output: commit checkpoint %d: epoch %d (%s): %w", id, st.ref.Checkpoint, st.ref.String(), t.expired(err, &st.ref))
		}
	}
	return nil
}

// expired explains the error of committing r when r began more than
// transactional_timeout ago: the broker aborted it, and the answer
// (fenced, or invalid state) means ErrTransactionLost.
func (t *txnPool) expired(err error, r *txnRef) error {
	age := r.age()
	if age <= t.timeout || !errors.Is(err, ErrFenced) && !errors.Is(err, ErrTransactionLost) {
		return err
	}
	lost := ""
	if !errors.Is(err, ErrTransactionLost) {
		lost = ErrTransactionLost.Error() + ": "
	}
	return &expiredError{fmt.Sprintf("%sthe transaction began %v ago, more than transactional_timeout (%v), so the broker aborted it "+
		"(checkpoints failed, or the restart took, longer than that)", lost, age.Round(time.Second), t.timeout), err}
}

// expiredError is an error about a transaction the broker aborted at its
// timeout: it is ErrTransactionLost, whatever the broker answered.
type expiredError struct {
	msg string
	err error
}

func (e *expiredError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *expiredError) Unwrap() []error {
	return []error{ErrTransactionLost, e.err}
}

// commitSlot commits the pre-committed epoch cid on its slot s, for
// Commit(id). A slot whose epoch was committed meanwhile (a concurrent
// Commit) is a success.
func (t *txnPool) commitSlot(ctx context.Context, s *txnSlot, cid, id uint64) error {
	t.mu.Lock()
	if t.pending[cid] != s {
		committed, known := t.outcomes[cid]
		t.mu.Unlock()
		if known && !committed {
			return errors.New("its transaction was aborted")
		}
		return nil
	}
	if s.state == slotEnding {
		t.mu.Unlock()
		return errors.New("a commit or abort of it is already running")
	}
	s.state = slotEnding
	raw, cl, ref := s.raw, s.cl, s.handle
	t.mu.Unlock()

	var err error
	if raw || cl == nil {
		raw = true
		err = t.endTxn(ctx, &ref, true, false)
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
		return err
	}

	// Before KIP-890 (transaction.version 2) the producer epoch stays the
	// same across transactions; bump it before the slot's next
	// transaction, so that a recovery that re-commits this handle can
	// never commit a later transaction by mistake.
	reinit := raw
	if !raw {
		if _, epoch, err := cl.ProducerID(ctx); err != nil || epoch == ref.ProducerEpoch {
			reinit = true
		}
	}
	if reinit {
		if _, err := t.replaceClient(ctx, s); err != nil {
			t.o.log.Debug("kafka output: renewing a producer after its commit failed; retried at its next use", "transactional_id", s.tid, "error", err)
		} else {
			reinit = false
		}
	}
	t.mu.Lock()
	// The manifest of checkpoint id names this transaction: recovery
	// may re-commit it until a later checkpoint has a manifest.
	s.state, s.holds, s.reinit, s.raw = slotIdle, id, reinit, false
	s.inTxn, s.produced = false, false
	delete(t.pending, cid)
	t.setOutcomeLocked(cid, true)
	t.mu.Unlock()
	return nil
}

// abort discards the epochs up to checkpoint id: the pre-committed ones
// at once, the open one when its barrier arrives (PreCommit).
func (t *txnPool) abort(ctx context.Context, id uint64) error {
	t.mu.Lock()
	if id > t.barrier && id > t.abortNext {
		t.abortNext = id
	}
	var ids []uint64
	for cid := range t.pending {
		if cid <= id {
			ids = append(ids, cid)
		}
	}
	t.mu.Unlock()
	slices.Sort(ids)
	var errs []error
	for _, cid := range ids {
		if err := t.abortSlot(ctx, cid); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// abortSlot aborts the pre-committed epoch cid.
func (t *txnPool) abortSlot(ctx context.Context, cid uint64) error {
	t.mu.Lock()
	s := t.pending[cid]
	if s == nil {
		t.mu.Unlock()
		return nil
	}
	if s.state == slotEnding {
		t.mu.Unlock()
		return fmt.Errorf("kafka output: abort checkpoint %d: a commit or abort of it is already running", cid)
	}
	s.state = slotEnding
	raw, cl, ref := s.raw, s.cl, s.handle
	t.mu.Unlock()

	var err error
	if raw || cl == nil {
		err = t.endTxn(ctx, &ref, false, false)
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
	delete(t.pending, cid)
	t.setOutcomeLocked(cid, false)
	t.mu.Unlock()
	if err != nil && rerr != nil {
		return fmt.Errorf("kafka output: abort checkpoint %d (%s): %w", cid, ref.String(), errors.Join(err, rerr))
	}
	return nil
}

// recover finishes what a previous run left: it commits the restored
// checkpoint's transactions from its handle, oldest first, then starts
// the pool, whose InitProducerIDs abort every later transaction and fence
// the old instance — on the pool's ids, on those of the pool the handle
// names, and on those that pool grew to after the checkpoint (ids above
// it that the broker knows).
func (t *txnPool) recover(ctx context.Context, id uint64, handle []byte) error {
	t.mu.Lock()
	started := t.started
	t.mu.Unlock()
	if started {
		return errors.New("kafka output: Recover must be called before Connect")
	}
	h, err := parseHandle(id, handle)
	if err != nil {
		return fmt.Errorf("kafka output: recover checkpoint %d: %w", id, err)
	}
	cl, closeRaw, err := t.rawClient(ctx)
	if err != nil {
		return fmt.Errorf("kafka output: recover checkpoint %d: %w", id, err)
	}
	defer closeRaw()
	for _, r := range h.txns() {
		if err := t.endTxnWith(ctx, cl, &r, true, true); err != nil {
			return fmt.Errorf("kafka output: recover checkpoint %d: commit epoch %d (%s): %w", id, r.Checkpoint, r.String(), t.expired(err, &r))
		}
		t.o.log.Info("kafka output: committed a transaction of the restored checkpoint", "checkpoint", id, "epoch", r.Checkpoint,
			"transactional_id", r.TransactionalID, "producer_id", r.ProducerID, "producer_epoch", r.ProducerEpoch)
	}
	if err := t.start(ctx, t.fenceList(ctx, cl, h)); err != nil {
		return fmt.Errorf("kafka output: recover checkpoint %d: %w", id, err)
	}
	t.mu.Lock()
	if id > t.manifest {
		t.manifest = id
	}
	t.restored, t.barrier = id, id
	t.restoredIDs = map[string]bool{}
	for _, r := range h.txns() {
		t.restoredIDs[r.TransactionalID] = true
		if s := t.slotOf(r.TransactionalID); s != nil {
			s.holds = id
		}
	}
	t.mu.Unlock()
	return nil
}

// fenceList returns the transactional ids other than the pool's own on
// which a previous run may have left a transaction open: those of the
// pool the handle h names (when transactional_id changed, or that pool had
// grown), and those above it that the broker knows (a pool grows while
// checkpoints fail, after the last one that completed). cl is a plain
// client.
func (t *txnPool) fenceList(ctx context.Context, cl *kgo.Client, h *txnHandle) []string {
	t.mu.Lock()
	seen := map[string]bool{}
	for _, s := range t.slots {
		seen[s.tid] = true
	}
	from := map[string]int{t.base: len(t.slots)}
	t.mu.Unlock()
	var ids []string
	if h != nil && h.Base != "" {
		for i := 0; i < h.Pool; i++ {
			if tid := txnID(h.Base, i); !seen[tid] {
				seen[tid] = true
				ids = append(ids, tid)
			}
		}
		from[h.Base] = max(from[h.Base], h.Pool)
	}
	var probe []string
	for base, i := range from {
		for ; i < maxPoolSize; i++ {
			if tid := txnID(base, i); !seen[tid] {
				probe = append(probe, tid)
			}
		}
	}
	if len(probe) == 0 {
		return ids
	}
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = probe
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.o.log.Warn("kafka output: cannot list the transactional ids an earlier run may have added to its pool; "+
			"a transaction left open on one of them delays read_committed readers until transactional_timeout",
			"error", err)
		return ids
	}
	var denied error
	for _, st := range resp.TransactionStates {
		switch err := kerr.ErrorForCode(st.ErrorCode); {
		case err == nil:
			ids = append(ids, st.TransactionalID)
		case errors.Is(err, kerr.TransactionalIDNotFound):
		case denied == nil:
			denied = fmt.Errorf("%s: %w", st.TransactionalID, err)
		}
	}
	if denied != nil {
		t.o.log.Warn("kafka output: cannot describe a transactional id an earlier run may have added to its pool; "+
			"a transaction left open on it delays read_committed readers until transactional_timeout", "error", denied)
	}
	slices.Sort(ids)
	return ids
}

func (t *txnPool) slotOf(tid string) *txnSlot {
	for _, s := range t.slots {
		if s.tid == tid {
			return s
		}
	}
	return nil
}

// close aborts the open transaction and closes every producer; the
// pre-committed transactions stay open for Commit or recovery.
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

// endTxn ends the transaction r with endTxnWith from a new plain client.
func (t *txnPool) endTxn(ctx context.Context, r *txnRef, commit, recovering bool) error {
	cl, closeRaw, err := t.rawClient(ctx)
	if err != nil {
		return err
	}
	defer closeRaw()
	return t.endTxnWith(ctx, cl, r, commit, recovering)
}

// endTxnWith ends the transaction r with a raw EndTxn request from the
// plain (non-transactional) client cl: this works from any process, and
// only touches that producer id and epoch. Repeating a commit (or an
// abort) that completed is a success.
//
// When the producer's epoch has moved past r's, the broker answers
// PRODUCER_FENCED (or INVALID_PRODUCER_EPOCH): r's transaction is over, but
// the answer does not say how it ended. In a running instance (recovering
// false) that means another instance took over: ErrFenced. At recovery
// (recovering true) the epoch moves past a transaction of a complete
// checkpoint only after that transaction was committed (by Commit, or by an
// earlier recovery, which then re-initialized the producers), or when the
// broker aborted it at its timeout: that case is caught when the broker
// still reports the abort (DescribeTransactions), and otherwise excluded by
// transactional_timeout (see CheckTransactionTimeout and preCommit). So it
// is a success.
func (t *txnPool) endTxnWith(ctx context.Context, cl *kgo.Client, r *txnRef, commit, recovering bool) error {
	for attempt := 0; ; attempt++ {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID = r.TransactionalID
		req.ProducerID = r.ProducerID
		req.ProducerEpoch = r.ProducerEpoch
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
			return t.checkCompleted(ctx, cl, r, err)
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
// epoch has moved on (see endTxnWith): an error if the broker reports it
// aborted, success otherwise.
func (t *txnPool) checkCompleted(ctx context.Context, cl *kgo.Client, r *txnRef, fenced error) error {
	req := kmsg.NewPtrDescribeTransactionsRequest()
	req.TransactionalIDs = []string{r.TransactionalID}
	resp, err := req.RequestWith(ctx, cl)
	if err == nil && len(resp.TransactionStates) == 1 {
		st := resp.TransactionStates[0]
		err = kerr.ErrorForCode(st.ErrorCode)
		if err == nil && st.ProducerID == r.ProducerID && (st.State == "PrepareAbort" || st.State == "CompleteAbort") {
			return fmt.Errorf("%w (transaction state %s after epoch %d; did transactional_timeout %v expire before the restart?): %w",
				ErrTransactionLost, st.State, r.ProducerEpoch, t.timeout, fenced)
		}
	}
	if err != nil {
		t.o.log.Warn("kafka output: cannot describe a transaction of the restored checkpoint; assuming it was committed before the crash",
			"transactional_id", r.TransactionalID, "error", err)
	}
	if age := r.age(); age > t.timeout {
		t.o.log.Warn("kafka output: a transaction of the restored checkpoint is older than transactional_timeout; "+
			"if it was not committed before the crash, the broker has aborted it and its records are lost",
			"transactional_id", r.TransactionalID, "age", age.Round(time.Second), "transactional_timeout", t.timeout)
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
// the handle of every epoch pre-committed and not yet committed, this one
// included, oldest first (transactional id, producer id and epoch of
// each). Later Writes go to a transaction on another producer of the pool.
// It fails with component.ErrFatal (ErrCheckpointsFailing) when those
// epochs cannot wait for another checkpoint (see checkPendingLocked).
func (o *output) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	if o.txn == nil {
		return nil, nil
	}
	h, err := o.txn.preCommit(ctx, id)
	return h, fatalTxnError(err)
}

// Commit commits the transactions of every pre-committed epoch up to
// checkpoint id, oldest first (those of earlier checkpoints that failed
// too). It may run concurrently with Write (the two use different
// producers), and may be repeated: a commit that completed is a success.
// A transaction the broker aborted (transactional_timeout expired while
// checkpoints failed) fails it with component.ErrFatal
// (ErrTransactionLost).
func (o *output) Commit(ctx context.Context, id uint64, handle []byte) error {
	if o.txn == nil {
		return nil
	}
	return fatalTxnError(o.txn.commit(ctx, id, handle))
}

// Abort aborts the transactions of the epochs up to checkpoint id: those
// pre-committed at once, the open one at its barrier. The engine does not
// call it (a failed checkpoint's epoch is committed by the next one).
func (o *output) Abort(ctx context.Context, id uint64) error {
	if o.txn == nil {
		return nil
	}
	return o.txn.abort(ctx, id)
}

// Recover commits the transactions of the restored checkpoint id from its
// handle, oldest first, then starts the producers, which aborts every
// later transaction of this output and fences an older instance still
// running (on every transactional id its pool may have used). It must be
// called before Connect.
func (o *output) Recover(ctx context.Context, id uint64, handle []byte) error {
	if o.txn == nil {
		return nil
	}
	return o.txn.recover(ctx, id, handle)
}

var _ component.Committer = (*output)(nil)
var _ component.ExactlyOnce = (*output)(nil)

package state

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-stream/weir/checkpoint"
	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state/kv"
)

// A Manager's checkpoints use the stream coordinator's manifest format and
// layout (package checkpoint), under CheckpointConfig.Prefix:
//
//	<prefix>/manifests/chk-00000000000000000042.json  written last; names every file
//	<prefix>/shared/<sha256>.full|.delta               immutable, shared by checkpoints
//
// The manifest holds one operator, ManagerOperator, with a chain of files
// per key group that is not empty: a full file (kv.WriteKeyGroup), then
// deltas (kv.WriteChanges) relative to the checkpoint before. A checkpoint
// writes files only for the key groups that changed since the last one it
// completed; a chain starts again with a full file every FullEvery files,
// or when its deltas outgrow MaxDeltaRatio of its full file. A checkpoint
// exists once its manifest is stored; only then is its snapshot confirmed
// to the backend, so a failed checkpoint loses nothing and the next one is
// relative to the last that completed.
//
// The prefix belongs to one manager at a time: retention deletes every
// shared file under it that no retained manifest names.

// ManagerOperator is the operator name under which a Manager's key groups
// are recorded in its checkpoint manifests.
const ManagerOperator = "manager"

// ErrNoUsableCheckpoint is returned by RecoverFromLatestCheckpoint when
// checkpoints exist but none of them verifies.
var ErrNoUsableCheckpoint = checkpoint.ErrNoUsableCheckpoint

// CheckpointConfig configures a Manager's checkpoints. Zero fields get the
// defaults named.
type CheckpointConfig struct {
	// Storage is where checkpoints are written: storage.NewLocal(dir) or
	// storage.NewS3(ctx, cfg). The caller owns it (the Manager does not
	// close it). Without one, CreateCheckpoint and
	// RecoverFromLatestCheckpoint fail with ErrInvalid.
	Storage storage.Storage
	// Prefix is the slash-separated path under the storage root that holds
	// the checkpoints (the guide's s3_config.prefix; default "": the root).
	// It must not be shared with another manager or stream.
	Prefix string
	// Retained is how many completed checkpoints are kept (the guide's
	// retained_checkpoints; default 3).
	Retained int
	// FullEvery starts a key group's chain again with a full file after
	// this many files (default 10).
	FullEvery int
	// MaxDeltaRatio starts a chain again when its deltas' bytes exceed this
	// fraction of its full file (default 0.5).
	MaxDeltaRatio float64
	// Uploads is how many files are written to the storage at once
	// (default 8).
	Uploads int
}

// ensureDefaults fills in defaults, validates c and returns the root of
// the checkpoints in the storage ("" or ending in a slash).
func (c *CheckpointConfig) ensureDefaults() (string, error) {
	if c.Retained < 0 || c.FullEvery < 0 || c.MaxDeltaRatio < 0 || c.Uploads < 0 {
		return "", fmt.Errorf("state: manager checkpoints: %w: Retained, FullEvery, MaxDeltaRatio and Uploads must not be negative", kv.ErrInvalid)
	}
	if c.Retained == 0 {
		c.Retained = 3
	}
	if c.FullEvery == 0 {
		c.FullEvery = 10
	}
	if c.MaxDeltaRatio == 0 {
		c.MaxDeltaRatio = 0.5
	}
	if c.Uploads == 0 {
		c.Uploads = 8
	}
	root := strings.Trim(c.Prefix, "/")
	if root == "" {
		return "", nil
	}
	if err := storage.ValidateName(root); err != nil {
		return "", fmt.Errorf("state: manager checkpoints: prefix: %w: %v", kv.ErrInvalid, err)
	}
	return root + "/", nil
}

// checkpointer is a Manager's checkpoint bookkeeping.
type checkpointer struct {
	mu sync.Mutex
	// guarded by mu:
	loaded   bool                         // the stored manifests have been listed
	used     bool                         // a checkpoint was created or recovered: no recovery any more
	nextID   uint64                       // id of the next checkpoint
	retained []*checkpoint.Manifest       // oldest first
	chains   map[int][]checkpoint.FileRef // per key group, as of the last completed or recovered checkpoint
	// based is set when the backend reports changes relative to chains:
	// its snapshots' Base is baseSeq.
	based   bool
	baseSeq uint64

	// Two-phase-commit participants (twophase.go), guarded by mu too:
	participants []participant   // registration order
	uncommitted  []pendingCommit // commits of completed checkpoints that failed
	// broken is set once a checkpoint failed after pre-committing the
	// participants, or their recovery failed: no checkpoint may complete
	// any more (it wraps ErrRecoveryRequired).
	broken error
}

func (m *Manager) checkpointStorage(op string) (storage.Storage, error) {
	if s := m.cfg.Checkpoints.Storage; s != nil {
		return s, nil
	}
	return nil, kv.NewError(op, "", fmt.Errorf("%w: no checkpoint storage configured (ManagerConfig.Checkpoints.Storage)", kv.ErrInvalid))
}

// CreateCheckpoint writes a checkpoint of the whole state and returns its
// id (the guide's create_checkpoint). Ids grow by one from the newest
// checkpoint stored under the prefix.
//
// The state is frozen between two batches (see ProcessBatch) in about the
// time of a map copy-on-write or a Pebble snapshot; the files are then
// written while writes go on. A key group's file is a delta of the changes
// since the last checkpoint this manager completed (or recovered), or a
// full file when its chain is due to start again; unchanged key groups
// keep their files. The manifest is written last, after every file; then
// the snapshot is confirmed to the backend, and manifests that fell out of
// the Retained newest (and any other left behind, such as a corrupt one
// recovery skipped) are deleted with every shared file that no retained
// manifest names. A failed cleanup is logged, not returned.
//
// Checkpoints are serialized: a call waits for the one in progress. On
// error no manifest was stored (unless the storage failed after storing
// it), the next checkpoint is relative to the last completed one, and
// files written for the failed one are deleted by a later cleanup. Do not
// call it from a Processor run by ProcessBatch: it would wait for that
// batch to end.
//
// With checkpoint participants (RegisterParticipant, TwoPhaseCommitOutput)
// the checkpoint is also a two-phase commit: each participant is
// pre-committed right after the snapshot, still between batches, and its
// handle is stored in the manifest's Sinks under the participant's name;
// once the manifest is stored each is committed. A commit that fails is
// returned with the id of the (complete) checkpoint and retried before the
// next checkpoint starts, which fails while it still does (recovery
// commits it too). A checkpoint that fails after the pre-commit aborts the
// participants' epoch (unless the manifest may have been stored: then
// recovery decides), and every later CreateCheckpoint of this manager
// fails with ErrRecoveryRequired: the state holds changes whose output was
// discarded, so it must be recovered into a new manager and replayed.
func (m *Manager) CreateCheckpoint(ctx context.Context) (uint64, error) {
	store, err := m.checkpointStorage("checkpoint")
	if err != nil {
		return 0, err
	}
	m.ck.mu.Lock()
	defer m.ck.mu.Unlock()
	if err := m.loadCheckpoints(ctx, store); err != nil {
		return 0, err
	}
	if m.ck.broken != nil {
		return 0, fmt.Errorf("state: checkpoint: %w", m.ck.broken)
	}
	if err := m.retryCommits(ctx); err != nil {
		return 0, err
	}
	t0 := time.Now()
	id := m.ck.nextID
	m.ck.nextID++ // also when it fails: its manifest may be stored after all
	m.gate.Lock()
	snap, err := m.Snapshot()
	if err != nil {
		m.gate.Unlock()
		return 0, fmt.Errorf("state: checkpoint %d: %w", id, err)
	}
	// Pre-commit at the same cut as the snapshot: no batch runs between.
	handles, err := m.preCommitParticipants(ctx, id)
	m.gate.Unlock()
	if err != nil {
		snap.Release()
		m.abortParticipants(ctx, id, err)
		return 0, fmt.Errorf("state: checkpoint %d: %w", id, err)
	}
	seq := snap.Seq()
	man, err := m.writeCheckpoint(ctx, store, id, snap, handles, t0)
	snap.Release()
	if err != nil {
		if len(m.ck.participants) > 0 {
			var mp *manifestPutError
			if errors.As(err, &mp) {
				m.ck.broken = fmt.Errorf("%w: checkpoint %d failed while its manifest was written (%v): whether it completed is decided by recovery",
					ErrRecoveryRequired, id, err)
			} else {
				m.abortParticipants(ctx, id, err)
			}
		}
		return 0, fmt.Errorf("state: checkpoint %d: %w", id, err)
	}
	m.ConfirmSnapshot(seq)
	m.ck.used = true
	m.ck.chains = chainsOf(man.Operator(ManagerOperator))
	m.ck.based, m.ck.baseSeq = true, seq
	m.ck.retained = append(m.ck.retained, man)
	if n := len(m.ck.retained) - m.cfg.Checkpoints.Retained; n > 0 {
		m.ck.retained = slices.Clone(m.ck.retained[n:])
	}
	m.cfg.Logger.Info("state checkpoint completed", "checkpoint", id, "duration", time.Since(t0).Round(time.Millisecond),
		"bytes_written", man.IncrementalBytes, "bytes_total", man.FullBytes)
	commitErr := m.commitParticipants(ctx, id, handles)
	m.cleanup(ctx, store, id)
	return id, commitErr
}

// writeCheckpoint writes the files of snap that the last checkpoint does
// not hold, then the manifest, which records the participants' handles.
// A failure to store the manifest is a *manifestPutError: the manifest may
// be stored all the same.
func (m *Manager) writeCheckpoint(ctx context.Context, store storage.Storage, id uint64, snap Snapshot, handles map[string][]byte, t0 time.Time) (*checkpoint.Manifest, error) {
	cc := m.cfg.Checkpoints
	// Deltas need the backend's changes to be relative to the last
	// checkpoint's chains; otherwise every key group with entries gets a
	// full file.
	based := m.ck.based && snap.Base() == m.ck.baseSeq
	known := map[string]bool{}
	for _, r := range m.ck.retained {
		for _, f := range r.Files() {
			known[f.Name] = true
		}
	}
	man := &checkpoint.Manifest{
		FormatVersion: checkpoint.FormatVersion, Pipeline: strings.TrimSuffix(m.root, "/"), ID: id,
		CreatedAt: time.Now().UTC(), MaxKeyGroups: m.cfg.MaxKeyGroups, Backend: string(m.backendKind()),
		Sinks: handles,
	}
	op := checkpoint.OperatorState{Name: ManagerOperator, KeyGroups: []checkpoint.KeyGroupState{}}
	up := newUploader(ctx, store, cc.Uploads)
	for kg := range m.cfg.MaxKeyGroups {
		var prev []checkpoint.FileRef
		full := true
		if based {
			prev = m.ck.chains[kg]
			if !snap.Changed(kg) {
				if len(prev) > 0 {
					op.KeyGroups = append(op.KeyGroups, checkpoint.KeyGroupState{KeyGroup: kg, Files: prev})
				}
				continue
			}
			full = needsFull(prev, cc)
		}
		if full {
			// An empty key group needs no file: recovery empties every key
			// group the manifest does not name.
			has, err := hasEntries(snap, kg)
			if err != nil {
				up.wait()
				return nil, fmt.Errorf("key group %d: %w", kg, err)
			}
			if !has {
				continue
			}
		}
		ref, data, err := encodeKeyGroup(snap, kg, full)
		if err != nil {
			up.wait()
			return nil, fmt.Errorf("key group %d: %w", kg, err)
		}
		chain := []checkpoint.FileRef{ref}
		if !full {
			chain = append(slices.Clone(prev), ref)
		}
		op.KeyGroups = append(op.KeyGroups, checkpoint.KeyGroupState{KeyGroup: kg, Files: chain})
		if known[ref.Name] {
			continue
		}
		known[ref.Name] = true
		man.IncrementalBytes += ref.Size
		if !up.put(m.root+ref.Name, data) {
			break // an upload failed: wait reports it
		}
	}
	if err := up.wait(); err != nil {
		return nil, err
	}
	for _, kg := range op.KeyGroups {
		for _, f := range kg.Files {
			man.FullBytes += f.Size
		}
	}
	man.Operators = []checkpoint.OperatorState{op}
	man.DurationMs = time.Since(t0).Milliseconds()
	data, err := man.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	if err := store.Put(ctx, m.root+checkpoint.ManifestName(id), bytes.NewReader(data), int64(len(data))); err != nil {
		return nil, &manifestPutError{err}
	}
	return man, nil
}

// manifestPutError reports that storing a manifest failed, which may
// still have stored it.
type manifestPutError struct{ err error }

func (e *manifestPutError) Error() string { return "write manifest: " + e.err.Error() }
func (e *manifestPutError) Unwrap() error { return e.err }

func (m *Manager) backendKind() BackendKind {
	if m.cfg.Backend == "" {
		return BackendMemory
	}
	return m.cfg.Backend
}

// needsFull reports whether a key group's next file starts a new chain
// (the coordinator's rule).
func needsFull(chain []checkpoint.FileRef, cc CheckpointConfig) bool {
	if len(chain) == 0 || len(chain) >= cc.FullEvery {
		return true
	}
	var deltas int64
	for _, f := range chain[1:] {
		deltas += f.Size
	}
	return float64(deltas) > cc.MaxDeltaRatio*float64(chain[0].Size)
}

var errHasEntry = errors.New("key group has an entry")

// hasEntries reports whether key group kg of s holds a live entry.
func hasEntries(s Snapshot, kg int) (bool, error) {
	err := s.Entries(kg, func(Entry) error { return errHasEntry })
	if errors.Is(err, errHasEntry) {
		return true, nil
	}
	return false, err
}

// encodeKeyGroup writes key group kg of s as a full or delta file and
// names it by its content, as the coordinator does.
func encodeKeyGroup(s Snapshot, kg int, full bool) (checkpoint.FileRef, []byte, error) {
	var buf bytes.Buffer
	kind := "delta"
	var err error
	if full {
		kind = "full"
		err = kv.WriteKeyGroup(&buf, s, kg)
	} else {
		err = kv.WriteChanges(&buf, s, kg)
	}
	if err != nil {
		return checkpoint.FileRef{}, nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	h := hex.EncodeToString(sum[:])
	ref := checkpoint.FileRef{Name: "shared/" + h + "." + kind, Size: int64(buf.Len()), SHA256: h, Kind: kind}
	return ref, buf.Bytes(), nil
}

// uploader writes files to a storage, up to n at a time, in goroutines
// that wait returns after.
type uploader struct {
	ctx    context.Context
	cancel context.CancelFunc
	store  storage.Storage
	sem    chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error // guarded by mu: the first failure
}

func newUploader(ctx context.Context, store storage.Storage, n int) *uploader {
	ctx, cancel := context.WithCancel(ctx)
	return &uploader{ctx: ctx, cancel: cancel, store: store, sem: make(chan struct{}, n)}
}

// put starts writing data under name once fewer than n writes are in
// flight. It returns false, without writing, once a write has failed or
// the context has ended.
func (u *uploader) put(name string, data []byte) bool {
	select {
	case u.sem <- struct{}{}:
	case <-u.ctx.Done():
		u.fail(fmt.Errorf("write %s: %w", name, context.Cause(u.ctx)))
		return false
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer func() { <-u.sem }()
		if err := u.store.Put(u.ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
			u.fail(fmt.Errorf("write %s: %w", name, err))
		}
	}()
	return true
}

func (u *uploader) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
		u.cancel()
	}
}

// wait waits for every write and returns the first failure.
func (u *uploader) wait() error {
	u.wg.Wait()
	u.cancel()
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// chainsOf returns the chains of op by key group.
func chainsOf(op *checkpoint.OperatorState) map[int][]checkpoint.FileRef {
	out := map[int][]checkpoint.FileRef{}
	if op == nil {
		return out
	}
	for _, kg := range op.KeyGroups {
		out[kg.KeyGroup] = kg.Files
	}
	return out
}

// cleanup deletes every manifest but the retained ones and newer (a newer
// one can only be another writer's), then every shared file that no
// retained manifest names. Failures are logged: the checkpoint is complete.
func (m *Manager) cleanup(ctx context.Context, store storage.Storage, newest uint64) {
	keepID := map[uint64]bool{}
	keep := map[string]bool{}
	for _, r := range m.ck.retained {
		keepID[r.ID] = true
		for _, f := range r.Files() {
			keep[m.root+f.Name] = true
		}
	}
	ids, err := m.manifestIDs(ctx, store)
	if err != nil {
		m.cfg.Logger.Warn("deleting old state checkpoints failed", "error", err)
		return
	}
	var del []string
	for _, id := range ids {
		if id < newest && !keepID[id] {
			del = append(del, m.root+checkpoint.ManifestName(id))
		}
	}
	objs, err := store.List(ctx, m.root+"shared/")
	if err != nil {
		m.cfg.Logger.Warn("deleting old state checkpoints failed", "error", err)
		return
	}
	for _, o := range objs {
		if !keep[o.Name] {
			del = append(del, o.Name)
		}
	}
	if len(del) == 0 {
		return
	}
	// Manifests first: a file is never deleted while a manifest that is
	// still stored names it.
	if err := storage.DeleteMany(ctx, store, del); err != nil {
		m.cfg.Logger.Warn("deleting old state checkpoints failed", "error", err)
	}
}

// loadCheckpoints learns the next id and the retained checkpoints from the
// storage, once, for a manager that has not recovered.
func (m *Manager) loadCheckpoints(ctx context.Context, store storage.Storage) error {
	if m.ck.loaded {
		return nil
	}
	ids, err := m.manifestIDs(ctx, store)
	if err != nil {
		return err
	}
	m.ck.nextID = 1
	if len(ids) > 0 {
		m.ck.nextID = ids[0] + 1
	}
	var valid []*checkpoint.Manifest // newest first
	for _, id := range ids {
		if len(valid) == m.cfg.Checkpoints.Retained {
			break
		}
		man, err := m.loadManifest(ctx, store, id)
		if err != nil {
			if fallbackable(err) {
				continue
			}
			return fmt.Errorf("state: checkpoint %d: %w", id, err)
		}
		valid = append(valid, man)
	}
	slices.Reverse(valid)
	m.ck.retained = valid
	m.ck.loaded = true
	return nil
}

// manifestIDs lists the ids of the stored manifests, newest first.
func (m *Manager) manifestIDs(ctx context.Context, store storage.Storage) ([]uint64, error) {
	prefix := m.root + "manifests/chk-"
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("state: list checkpoints: %w", err)
	}
	var ids []uint64
	for _, o := range objs {
		s, ok := strings.CutSuffix(strings.TrimPrefix(o.Name, prefix), ".json")
		if !ok {
			continue
		}
		if id, err := strconv.ParseUint(s, 10, 64); err == nil && o.Name == m.root+checkpoint.ManifestName(id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	return ids, nil
}

func (m *Manager) loadManifest(ctx context.Context, store storage.Storage, id uint64) (*checkpoint.Manifest, error) {
	data, err := readObject(ctx, store, m.root+checkpoint.ManifestName(id))
	if err != nil {
		return nil, err
	}
	man, err := checkpoint.DecodeManifest(data)
	if err != nil {
		return nil, err
	}
	if man.ID != id {
		return nil, fmt.Errorf("%w: manifest %s holds checkpoint %d", checkpoint.ErrCorrupt, checkpoint.ManifestName(id), man.ID)
	}
	return man, nil
}

func readObject(ctx context.Context, store storage.Storage, name string) ([]byte, error) {
	r, err := store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return data, nil
}

// fallbackable reports whether err means that a checkpoint is damaged (so
// recovery may use the one before), rather than that it cannot be read
// now (an unreachable storage, a cancelled context), which fails recovery:
// falling back then would silently lose state.
func fallbackable(err error) bool {
	return errors.Is(err, checkpoint.ErrCorrupt) || errors.Is(err, kv.ErrCorrupt) ||
		errors.Is(err, kv.ErrKeyGroupRange) || storage.IsNotFound(err)
}

// RecoverFromLatestCheckpoint replaces the state with the newest
// checkpoint under the prefix that verifies (the guide's
// recover_from_latest_checkpoint) and returns its id; ok is false when
// there is no checkpoint at all (the state is left as it is).
//
// A checkpoint verifies when its manifest's checksum and the SHA-256 of
// every file it names match and its files restore; one that does not is
// skipped with a warning in favour of the one before. If checkpoints
// exist but none verifies, the state is emptied and the error wraps
// ErrNoUsableCheckpoint. A storage that cannot be read (or ctx ending)
// fails recovery rather than fall back. A checkpoint with another number
// of key groups fails it too: MaxKeyGroups must not change for the life of
// the state. The backend kind may change: files are the same for both.
//
// Recovery is for a manager that has neither created nor recovered a
// checkpoint yet — call it right after NewManager; later it fails with
// ErrInvalid — and it fails with ErrBatchOpen while a store has an open
// batch. It replaces the whole state: key groups the checkpoint does not
// hold are emptied, so writes made since NewManager, and whatever a
// Pebble directory held from an earlier run, are gone. Expiry times are
// absolute, so TTLs go on counting across recovery. Later checkpoints are
// incremental on top of the recovered one.
//
// Then every checkpoint participant (RegisterParticipant,
// TwoPhaseCommitOutput) is recovered: Recover(id, handle) with the
// checkpoint's id and the handle its manifest stores for the participant
// (nil if none), or Recover(0, nil) when there is no checkpoint; it
// commits that epoch again and aborts every later one. If a participant
// fails, the error is returned, and this manager cannot checkpoint (its
// CreateCheckpoint fails with ErrRecoveryRequired): recover into a new
// one. When no checkpoint verifies, participants are not recovered.
func (m *Manager) RecoverFromLatestCheckpoint(ctx context.Context) (id uint64, ok bool, err error) {
	store, err := m.checkpointStorage("recover")
	if err != nil {
		return 0, false, err
	}
	m.ck.mu.Lock()
	defer m.ck.mu.Unlock()
	if m.ck.used {
		return 0, false, kv.NewError("recover", "", fmt.Errorf("%w: the manager has already created or recovered a checkpoint; recover into a new manager", kv.ErrInvalid))
	}
	m.gate.Lock()
	defer m.gate.Unlock()
	if err := m.checkRestorable(); err != nil {
		return 0, false, err
	}
	t0 := time.Now()
	ids, err := m.manifestIDs(ctx, store)
	if err != nil {
		return 0, false, err
	}
	if len(ids) == 0 {
		m.ck.loaded, m.ck.nextID = true, 1
		if err := m.recoverParticipants(ctx, 0, nil); err != nil {
			return 0, false, err
		}
		return 0, false, nil
	}
	var chosen *checkpoint.Manifest
	var valid []*checkpoint.Manifest // chosen and older, newest first
	applied := false
	for _, mid := range ids {
		if len(valid) == m.cfg.Checkpoints.Retained {
			break
		}
		man, err := m.loadManifest(ctx, store, mid)
		if err != nil {
			if !fallbackable(err) {
				return 0, false, fmt.Errorf("state: recover checkpoint %d: %w", mid, err)
			}
			if chosen == nil {
				m.cfg.Logger.Warn("skipping state checkpoint: its manifest does not verify", "checkpoint", mid, "error", err)
			}
			continue
		}
		if chosen != nil {
			// An older checkpoint, retained as long as it matches.
			if man.MaxKeyGroups == m.cfg.MaxKeyGroups {
				valid = append(valid, man)
			}
			continue
		}
		if man.MaxKeyGroups != m.cfg.MaxKeyGroups {
			return 0, false, fmt.Errorf("state: recover checkpoint %d: %w: it has %d key groups, the manager %d; the number of key groups cannot change for the life of the state",
				mid, kv.ErrKeyGroupRange, man.MaxKeyGroups, m.cfg.MaxKeyGroups)
		}
		applied = true
		if err := m.recoverFrom(ctx, store, man); err != nil {
			if !fallbackable(err) {
				return 0, false, fmt.Errorf("state: recover checkpoint %d: %w", mid, err)
			}
			m.cfg.Logger.Warn("skipping state checkpoint: it does not verify; trying the one before", "checkpoint", mid, "error", err)
			continue
		}
		chosen = man
		valid = append(valid, man)
	}
	m.ck.loaded, m.ck.nextID = true, ids[0]+1
	if chosen == nil {
		if applied {
			// A checkpoint was partly applied: empty the state again.
			if err := m.applyChains(nil, nil); err != nil {
				return 0, false, fmt.Errorf("state: recover: reset: %w", err)
			}
		}
		return 0, false, fmt.Errorf("state: recover: %w: %d checkpoints in %s under %q, none verifies",
			ErrNoUsableCheckpoint, len(ids), store, m.root)
	}
	slices.Reverse(valid)
	m.ck.retained = valid
	m.ck.used = true
	m.ck.chains = chainsOf(chosen.Operator(ManagerOperator))
	m.ck.based, m.ck.baseSeq = true, 0 // after a restore, Base is 0 until a snapshot is confirmed
	if err := m.recoverParticipants(ctx, chosen.ID, chosen.Sinks); err != nil {
		return 0, false, err
	}
	m.cfg.Logger.Info("recovered state checkpoint", "checkpoint", chosen.ID, "created", chosen.CreatedAt.Format(time.RFC3339),
		"bytes", chosen.FullBytes, "duration", time.Since(t0).Round(time.Millisecond))
	return chosen.ID, true, nil
}

// checkRestorable fails when the state cannot be restored now.
func (m *Manager) checkRestorable() error {
	m.core.mu.RLock()
	defer m.core.mu.RUnlock()
	if m.core.closed {
		return kv.NewError("recover", "", kv.ErrClosed)
	}
	if m.core.active.Load() > 0 {
		return kv.NewError("recover", "", kv.ErrBatchOpen)
	}
	return nil
}

// recoverFrom verifies man's chains and files and restores them.
func (m *Manager) recoverFrom(ctx context.Context, store storage.Storage, man *checkpoint.Manifest) error {
	op := man.Operator(ManagerOperator)
	if op == nil {
		return fmt.Errorf("%w: the checkpoint holds no %q operator: it was not written by a state.Manager", checkpoint.ErrCorrupt, ManagerOperator)
	}
	chains := map[int][]checkpoint.FileRef{}
	for _, kg := range op.KeyGroups {
		if kg.KeyGroup < 0 || kg.KeyGroup >= m.cfg.MaxKeyGroups || chains[kg.KeyGroup] != nil || len(kg.Files) == 0 {
			return fmt.Errorf("%w: key group %d: invalid or repeated chain", checkpoint.ErrCorrupt, kg.KeyGroup)
		}
		for i, f := range kg.Files {
			want := "delta"
			if i == 0 {
				want = "full"
			}
			if f.Kind != want {
				return fmt.Errorf("%w: key group %d: file %d of its chain is %q, want %q", checkpoint.ErrCorrupt, kg.KeyGroup, i, f.Kind, want)
			}
		}
		chains[kg.KeyGroup] = kg.Files
	}
	files := map[string][]byte{}
	for _, f := range man.Files() {
		if _, ok := files[f.Name]; ok {
			continue
		}
		data, err := readObject(ctx, store, m.root+f.Name)
		if err != nil {
			return fmt.Errorf("file %s: %w", f.Name, err)
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			return fmt.Errorf("%w: file %s: %d bytes with sha256 %x, manifest says %d bytes with %s",
				checkpoint.ErrCorrupt, f.Name, len(data), sum, f.Size, f.SHA256)
		}
		files[f.Name] = data
	}
	return m.applyChains(chains, files)
}

// applyChains replaces the state of every key group with its chain, or
// empties it when it has none, under the write lock.
func (m *Manager) applyChains(chains map[int][]checkpoint.FileRef, files map[string][]byte) error {
	m.core.mu.Lock()
	defer m.core.mu.Unlock()
	if m.core.closed {
		return kv.NewError("recover", "", kv.ErrClosed)
	}
	if m.core.active.Load() > 0 {
		return kv.NewError("recover", "", kv.ErrBatchOpen)
	}
	var empty bytes.Buffer
	for kg := range m.cfg.MaxKeyGroups {
		chain := chains[kg]
		if len(chain) == 0 {
			empty.Reset()
			h := FileHeader{Kind: FileFull, MaxKeyGroups: m.cfg.MaxKeyGroups, KeyGroup: kg}
			if err := kv.EncodeEntries(&empty, h, nil); err != nil {
				return err
			}
			if err := m.core.b.Restore(&empty); err != nil {
				return fmt.Errorf("key group %d: empty: %w", kg, err)
			}
			continue
		}
		for _, f := range chain {
			if err := m.core.b.Restore(bytes.NewReader(files[f.Name])); err != nil {
				return fmt.Errorf("key group %d: file %s: %w", kg, f.Name, err)
			}
		}
	}
	return nil
}

// Processor is what ProcessBatch runs; every component.Processor is one.
type Processor interface {
	// Process returns zero or more batches for one input batch, reading
	// and writing the manager's stores.
	Process(ctx context.Context, b *message.Batch) ([]*message.Batch, error)
}

// ProcessorFunc adapts a function to Processor.
type ProcessorFunc func(ctx context.Context, b *message.Batch) ([]*message.Batch, error)

// Process calls f.
func (f ProcessorFunc) Process(ctx context.Context, b *message.Batch) ([]*message.Batch, error) {
	return f(ctx, b)
}

// ProcessBatch runs p on b against the manager's state and returns p's
// output (the guide's process_batch). p reaches the state through the
// manager's stores (State, PartitionedState).
//
// While p runs the batch counts as an active transaction in Stats, and no
// checkpoint snapshot is taken: a checkpoint holds every state change of a
// batch or none (ProcessBatch calls run concurrently with each other; a
// checkpoint waits for those running and holds new ones back for the
// moment its snapshot takes). A failing p's direct writes stay: for all or
// nothing, stage writes with BatchPut and CommitBatch them before
// returning (AbortBatch on failure); a store's batch is shared by all its
// users. The returned error wraps p's. Acknowledgements attached to b are
// the caller's: ProcessBatch does not move them. p must not call
// CreateCheckpoint, RecoverFromLatestCheckpoint or Close.
func (m *Manager) ProcessBatch(ctx context.Context, b *message.Batch, p Processor) ([]*message.Batch, error) {
	if p == nil {
		return nil, kv.NewError("process batch", "", fmt.Errorf("%w: nil processor", kv.ErrInvalid))
	}
	if err := ctx.Err(); err != nil {
		return nil, kv.NewError("process batch", "", err)
	}
	m.gate.RLock()
	defer m.gate.RUnlock()
	m.core.mu.RLock()
	closed := m.core.closed
	m.core.mu.RUnlock()
	if closed {
		return nil, kv.NewError("process batch", "", kv.ErrClosed)
	}
	m.core.active.Add(1)
	defer m.core.active.Add(-1)
	outs, err := p.Process(ctx, b)
	if err != nil {
		return nil, kv.NewError("process batch", "", err)
	}
	return outs, nil
}

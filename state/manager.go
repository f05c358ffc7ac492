package state

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/weir-stream/weir/state/kv"
)

// ManagerConfig configures a Manager (the guide's EnhancedStateConfig).
type ManagerConfig struct {
	// Backend is where working state lives: BackendMemory (default) or
	// BackendPebble; ParseBackendKind maps the guide's backend_type.
	Backend BackendKind
	// Dir is Pebble's working directory (required for Pebble; scratch
	// space: state is recovered from checkpoints).
	Dir string
	// MaxKeyGroups is the number of key groups (default 128). It must not
	// change for the life of the state.
	MaxKeyGroups int
	// BlockCacheSize is Pebble's block cache in bytes (default 64 MiB).
	BlockCacheSize int64
	// DefaultTTL is given to every Put without an explicit TTL (default
	// none).
	DefaultTTL time.Duration
	// Clock tells processing time for TTLs (default the wall clock).
	Clock Clock
	// Logger receives backend and checkpoint logs (default discarded).
	Logger *slog.Logger
	// Checkpoints says where CreateCheckpoint writes and
	// RecoverFromLatestCheckpoint reads (the guide's s3_config, prefix and
	// retained_checkpoints). Without a Storage the manager has no
	// checkpoints.
	Checkpoints CheckpointConfig
}

// Manager is the guide's EnhancedStateManager: it owns a backend holding
// every key group, hands out stores (PartitionedState, State), runs
// batches against them (ProcessBatch), and checkpoints them to a
// storage (CreateCheckpoint, RecoverFromLatestCheckpoint; see
// manager_checkpoint.go). It is safe for concurrent use.
//
// The lower-level hooks (Snapshot, ConfirmSnapshot, Restore) are what
// checkpoints are built from; a caller that uses CreateCheckpoint should
// not call them too: a snapshot confirmed behind the manager's back makes
// its next checkpoint a full one.
//
// Lock order: ck.mu (checkpoints, recovery, Close), then gate (ProcessBatch
// shares it, a checkpoint's snapshot and recovery take it alone), then
// core.mu (every state operation), then mu.
type Manager struct {
	cfg  ManagerConfig
	core *storeCore
	ck   checkpointer // its mu serializes CreateCheckpoint, recovery and Close
	root string       // the checkpoints' prefix in the storage, "" or ending in "/"

	// gate keeps checkpoints between batches: ProcessBatch holds it shared
	// while its processor runs, a checkpoint holds it alone while it takes
	// its snapshot, recovery while it restores.
	gate sync.RWMutex

	mu     sync.Mutex // guards stores
	stores map[int]*store
	all    *store
}

// NewManager builds a manager and its backend.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.MaxKeyGroups == 0 {
		cfg.MaxKeyGroups = DefaultMaxKeyGroups
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultTTL < 0 {
		return nil, fmt.Errorf("state: manager: %w: negative default TTL", kv.ErrInvalid)
	}
	root, err := cfg.Checkpoints.ensureDefaults()
	if err != nil {
		return nil, err
	}
	b, err := NewBackend(BackendConfig{
		Kind:         cfg.Backend,
		Dir:          cfg.Dir,
		MaxKeyGroups: cfg.MaxKeyGroups,
		CacheSize:    cfg.BlockCacheSize,
		Clock:        cfg.Clock,
		Logger:       cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	core, err := newStoreCore(b, DefaultStateName, cfg.DefaultTTL)
	if err != nil {
		_ = b.Close()
		return nil, err
	}
	m := &Manager{cfg: cfg, core: core, root: root, stores: make(map[int]*store)}
	m.all = &store{core: core, kg: -1}
	return m, nil
}

// Config returns the manager's configuration, defaults filled in.
func (m *Manager) Config() ManagerConfig { return m.cfg }

// MaxKeyGroups returns the number of key groups.
func (m *Manager) MaxKeyGroups() int { return m.cfg.MaxKeyGroups }

// State returns the store over every key group: each key lives in the key
// group of its hash.
func (m *Manager) State() Store { return m.all }

// PartitionedState returns the store of partition id, which is key group
// id (the guide's get_partitioned_state: partition = hash(key) %
// partitions, with partitions ≤ MaxKeyGroups). Every call for an id returns
// the same store, so its batch is shared. An id outside [0, MaxKeyGroups)
// gives a store whose operations fail with ErrKeyGroupRange.
func (m *Manager) PartitionedState(id int) Store {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.stores[id]; ok {
		return s
	}
	s := &store{core: m.core, kg: id}
	if id < 0 || id >= m.cfg.MaxKeyGroups {
		s.err = fmt.Errorf("partition %d: %w: want 0 to %d", id, kv.ErrKeyGroupRange, m.cfg.MaxKeyGroups-1)
	}
	m.stores[id] = s
	return s
}

// Stats returns the state statistics (the guide's get_state_stats).
func (m *Manager) Stats() StateStats {
	st := m.core.b.Stats()
	st.ActiveTransactions = m.core.active.Load()
	return st
}

// CleanupExpiredState removes every expired entry and returns how many.
func (m *Manager) CleanupExpiredState(ctx context.Context) (int, error) {
	m.core.mu.Lock()
	defer m.core.mu.Unlock()
	if m.core.closed {
		return 0, kv.NewError("cleanup", "", kv.ErrClosed)
	}
	n, err := m.core.b.CleanupExpired(ctx)
	if err != nil {
		return n, kv.NewError("cleanup", "", err)
	}
	return n, nil
}

// Backend returns the manager's backend. Use it only through the hooks
// below while stores are in use: the stores' lock does not cover it.
func (m *Manager) Backend() Backend { return m.core.b }

// Snapshot freezes the state for a checkpoint: the synchronous part, under
// the write lock (so no write or batch commit is half in it). Write the
// snapshot out with WriteKeyGroup / WriteChanges from any goroutine, then
// Release it; ConfirmSnapshot once the checkpoint is complete.
func (m *Manager) Snapshot() (Snapshot, error) {
	m.core.mu.Lock()
	defer m.core.mu.Unlock()
	if m.core.closed {
		return nil, kv.NewError("snapshot", "", kv.ErrClosed)
	}
	return m.core.b.Snapshot()
}

// ConfirmSnapshot records that snapshot seq is part of a completed
// checkpoint, so later snapshots report their changes relative to it.
func (m *Manager) ConfirmSnapshot(seq uint64) {
	m.core.mu.Lock()
	defer m.core.mu.Unlock()
	if !m.core.closed {
		m.core.b.ConfirmSnapshot(seq)
	}
}

// Restore applies one key group's entry file (full, or a delta on top).
// It fails with ErrBatchOpen while a store has an open batch: a batch
// staged against the state before the restore must not land on top of it.
func (m *Manager) Restore(r io.Reader) error {
	m.core.mu.Lock()
	defer m.core.mu.Unlock()
	if m.core.closed {
		return kv.NewError("restore", "", kv.ErrClosed)
	}
	if m.core.active.Load() > 0 {
		return kv.NewError("restore", "", kv.ErrBatchOpen)
	}
	return m.core.b.Restore(r)
}

// Close drops open batches and closes the backend; it waits for a
// checkpoint or recovery in progress. Stores fail with ErrClosed
// afterwards. Close does not close the checkpoint storage, which the
// caller owns.
func (m *Manager) Close() error {
	m.ck.mu.Lock()
	defer m.ck.mu.Unlock()
	m.core.mu.Lock()
	defer m.core.mu.Unlock()
	if m.core.closed {
		return nil
	}
	m.core.closed = true
	m.mu.Lock()
	for _, s := range m.stores {
		s.take()
	}
	m.mu.Unlock()
	m.all.take()
	return m.core.b.Close()
}

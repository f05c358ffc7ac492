package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/weir-stream/weir/checkpoint"
	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/engine"
	"github.com/weir-stream/weir/metrics"
	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/txn"
)

// stateSetup wires state backends and checkpoint coordinators into a
// pipeline, following the guide's backend_type:
//
//	Memory  memory state, checkpoints in state_dir
//	Hybrid  memory state, checkpoints in S3
//	S3      Pebble state (working copy in state_dir), checkpoints in S3
//	Pebble  Pebble state, checkpoints in state_dir
type stateSetup struct {
	cfg    config.State
	store  storage.Storage
	kind   state.BackendKind
	mu     sync.Mutex
	coords map[*engine.Stream]*checkpoint.Coordinator
}

// checkpointStore opens the checkpoint storage the state config names.
func checkpointStore(ctx context.Context, cfg config.State) (storage.Storage, error) {
	switch strings.ToLower(cfg.BackendType) {
	case "hybrid", "s3":
		if cfg.S3 == nil {
			return nil, errors.New("state.s3_config is required for backend_type " + cfg.BackendType)
		}
		return storage.NewS3(ctx, *cfg.S3)
	default:
		return storage.NewLocal(cfg.StateDir)
	}
}

// newStateSetup prepares the engine options for state; it returns nil
// options changes when state is disabled.
func newStateSetup(ctx context.Context, cfg config.State, opts *engine.Options) (*stateSetup, error) {
	kind, err := state.ParseBackendKind(cfg.BackendType)
	if err != nil {
		return nil, err
	}
	opts.MaxKeyGroups = cfg.MaxKeyGroups
	workDir := filepath.Join(cfg.StateDir, cfg.PipelineID, ".working")
	if kind == state.BackendPebble {
		// The working copy is rebuilt from the checkpoint at every start.
		if err := os.RemoveAll(workDir); err != nil {
			return nil, fmt.Errorf("state: clear working directory: %w", err)
		}
	}
	logger := opts.Logger
	opts.NewBackend = func(stream, op string, worker int, kc kv.Config) (kv.Backend, error) {
		return state.NewBackend(state.BackendConfig{
			Kind:         kind,
			Dir:          filepath.Join(workDir, stream, fmt.Sprintf("%s-%d", op, worker)),
			MaxKeyGroups: kc.MaxKeyGroups,
			KeyGroups:    kc.KeyGroups,
			Logger:       logger,
		})
	}
	if !cfg.Enabled {
		return nil, nil
	}
	opts.DataDir = filepath.Join(cfg.StateDir, cfg.PipelineID, ".data")
	opts.TxnLog = txn.Options{
		SyncMode:     txn.SyncMode(cfg.TransactionLogSync),
		SyncInterval: time.Duration(cfg.TransactionLogSyncMs) * time.Millisecond,
	}
	store, err := checkpointStore(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("state: checkpoint storage: %w", err)
	}
	s := &stateSetup{cfg: cfg, store: store, kind: kind, coords: map[*engine.Stream]*checkpoint.Coordinator{}}
	opts.OnBarrier = func(ctx context.Context, st *engine.Stream, b *engine.Barrier) {
		if c := s.coord(st); c != nil {
			c.OnBarrier(ctx, st, b)
		} else {
			b.Release()
		}
	}
	opts.FinalCheckpoint = func(st *engine.Stream) uint64 {
		if c := s.coord(st); c != nil {
			return c.FinalCheckpoint(st)
		}
		return 0
	}
	return s, nil
}

func (s *stateSetup) coord(st *engine.Stream) *checkpoint.Coordinator {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.coords[st]
}

// attach creates a coordinator per stream and restores each stream.
func (s *stateSetup) attach(ctx context.Context, p *engine.Pipeline, reg *metrics.Registry, log *slog.Logger, fromID uint64, fresh bool) error {
	for _, st := range p.Streams {
		c, err := checkpoint.New(s.coordinatorConfig(st.Name), s.store, st, reg, log, checkpoint.Hooks{})
		if err != nil {
			return err
		}
		if _, err := c.Restore(ctx, fromID, fresh); err != nil {
			return fmt.Errorf("stream %s: %w", st.Name, err)
		}
		s.mu.Lock()
		s.coords[st] = c
		s.mu.Unlock()
	}
	return nil
}

func (s *stateSetup) coordinatorConfig(stream string) checkpoint.Config {
	return checkpoint.Config{
		Pipeline:          s.cfg.PipelineID,
		Stream:            stream,
		Interval:          time.Duration(s.cfg.CheckpointIntervalMs) * time.Millisecond,
		Timeout:           time.Duration(s.cfg.CheckpointTimeoutMs) * time.Millisecond,
		MinPause:          time.Duration(s.cfg.MinPauseBetweenMs) * time.Millisecond,
		TolerableFailures: s.cfg.TolerableFailedCheckpoints,
		Retained:          s.cfg.RetainedCheckpoints,
		FullEvery:         s.cfg.FullCheckpointEvery,
		MaxKeyGroups:      s.cfg.MaxKeyGroups,
		Backend:           string(s.kind),
	}
}

// run runs every coordinator until ctx ends; the first fatal error is
// passed to fail.
func (s *stateSetup) run(ctx context.Context, wg *sync.WaitGroup, fail func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.coords {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(ctx); err != nil {
				fail(err)
			}
		}()
	}
}

// handleCreate serves POST /checkpoints: a checkpoint of every stream now.
func (s *stateSetup) handleCreate(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	coords := make(map[string]*checkpoint.Coordinator, len(s.coords))
	for st, c := range s.coords {
		coords[st.Name] = c
	}
	s.mu.Unlock()
	type res struct {
		Stream     string `json:"stream"`
		Checkpoint uint64 `json:"checkpoint,omitempty"`
		Error      string `json:"error,omitempty"`
	}
	var out []res
	status := http.StatusOK
	for name, c := range coords {
		id, err := c.CreateCheckpoint(r.Context())
		rr := res{Stream: name, Checkpoint: id}
		if err != nil {
			rr.Error = err.Error()
			status = http.StatusInternalServerError
		}
		out = append(out, rr)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(out)
}

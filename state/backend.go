package state

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
	"github.com/weir-stream/weir/state/pebble"
)

// BackendKind names where working state lives.
type BackendKind string

// Backend kinds.
const (
	// BackendMemory keeps state as Go objects in Go maps.
	BackendMemory BackendKind = "memory"
	// BackendPebble keeps state encoded in Pebble on local disk.
	BackendPebble BackendKind = "pebble"
)

// ParseBackendKind accepts weir's names (memory, pebble) and the guide's
// backend_type values: Memory and Hybrid keep working state in memory, S3
// and Pebble in Pebble (where the checkpoints go is the checkpoint
// configuration's business). Case does not matter.
func ParseBackendKind(s string) (BackendKind, error) {
	switch strings.ToLower(s) {
	case "", "memory", "hybrid":
		return BackendMemory, nil
	case "pebble", "s3":
		return BackendPebble, nil
	}
	return "", fmt.Errorf("state: backend %q: %w: want memory, hybrid, s3 or pebble", s, kv.ErrInvalid)
}

// BackendConfig configures NewBackend.
type BackendConfig struct {
	Kind BackendKind // default BackendMemory
	// Dir is Pebble's working directory (required for Pebble).
	Dir string
	// MaxKeyGroups is the number of key groups (default 128).
	MaxKeyGroups int
	// KeyGroups is the range the backend holds (default all).
	KeyGroups KeyGroupRange
	// CacheSize is Pebble's block cache in bytes (default 64 MiB).
	CacheSize int64
	// Clock tells processing time for TTLs (default the wall clock).
	Clock Clock
	// Logger receives backend logs (default discarded).
	Logger *slog.Logger
}

// NewBackend builds a backend.
func NewBackend(cfg BackendConfig) (Backend, error) {
	kc := kv.Config{MaxKeyGroups: cfg.MaxKeyGroups, KeyGroups: cfg.KeyGroups, Clock: cfg.Clock}
	switch cfg.Kind {
	case "", BackendMemory:
		return memory.New(kc)
	case BackendPebble:
		if cfg.Dir == "" {
			return nil, fmt.Errorf("state: pebble backend: %w: no directory", kv.ErrInvalid)
		}
		return pebble.Open(cfg.Dir, pebble.Options{Config: kc, CacheSize: cfg.CacheSize, Logger: cfg.Logger})
	}
	return nil, fmt.Errorf("state: backend kind %q: %w", cfg.Kind, kv.ErrInvalid)
}

package state_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-stream/weir/checkpoint"
	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
)

// ckEnv is a checkpoint storage in a temp dir and a way to open managers
// of one backend kind on it.
type ckEnv struct {
	t      *testing.T
	kind   state.BackendKind
	store  *storage.Local
	prefix string
	logs   *syncBuffer
}

func newCkEnv(t *testing.T, kind state.BackendKind) *ckEnv {
	t.Helper()
	store, err := storage.NewLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &ckEnv{t: t, kind: kind, store: store, prefix: "app/state", logs: &syncBuffer{}}
}

// open opens a manager; cfg's backend, directory, storage, prefix and
// logger are filled in when empty.
func (e *ckEnv) open(cfg state.ManagerConfig) *state.Manager {
	e.t.Helper()
	if cfg.Backend == "" {
		cfg.Backend = e.kind
	}
	if cfg.Backend == state.BackendPebble && cfg.Dir == "" {
		cfg.Dir = e.t.TempDir()
	}
	if cfg.MaxKeyGroups == 0 {
		cfg.MaxKeyGroups = 16
	}
	if cfg.Checkpoints.Storage == nil {
		cfg.Checkpoints.Storage = e.store
	}
	if cfg.Checkpoints.Prefix == "" {
		cfg.Checkpoints.Prefix = e.prefix
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(e.logs, nil))
	}
	m, err := state.NewManager(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = m.Close() })
	return m
}

func (e *ckEnv) manifest(id uint64) *checkpoint.Manifest {
	e.t.Helper()
	data := e.read(e.prefix + "/" + checkpoint.ManifestName(id))
	m, err := checkpoint.DecodeManifest(data)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *ckEnv) read(name string) []byte {
	e.t.Helper()
	r, err := e.store.Get(context.Background(), name)
	if err != nil {
		e.t.Fatal(err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		e.t.Fatal(err)
	}
	return data
}

func (e *ckEnv) list(prefix string) []string {
	e.t.Helper()
	objs, err := e.store.List(context.Background(), e.prefix+"/"+prefix)
	if err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, strings.TrimPrefix(o.Name, e.prefix+"/"))
	}
	return names
}

// corrupt flips a byte in the middle of an object.
func (e *ckEnv) corrupt(name string) {
	e.t.Helper()
	data := e.read(name)
	data[len(data)/2] ^= 0xff
	if err := e.store.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		e.t.Fatal(err)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type account struct {
	Owner   string `cbor:"owner"`
	Balance int64  `cbor:"balance"`
}

// model is the expected content of a manager's State store.
type model map[string]account

func (md model) put(t *testing.T, s state.Store, key string, v account) {
	t.Helper()
	if err := state.PutTyped(s, key, v); err != nil {
		t.Fatal(err)
	}
	md[key] = v
}

func (md model) remove(t *testing.T, s state.Store, key string) {
	t.Helper()
	if err := s.Remove(key); err != nil {
		t.Fatal(err)
	}
	delete(md, key)
}

// check asserts that m holds exactly md.
func (md model) check(t *testing.T, m *state.Manager) {
	t.Helper()
	for k, want := range md {
		got, ok, err := state.GetTyped[account](m.State(), k)
		if err != nil || !ok || got != want {
			t.Fatalf("%s = %+v %v %v, want %+v", k, got, ok, err, want)
		}
	}
	if n := m.Stats().Keys; n != int64(len(md)) {
		t.Fatalf("Keys = %d, want %d", n, len(md))
	}
}

func backendKinds() []state.BackendKind {
	return []state.BackendKind{state.BackendMemory, state.BackendPebble}
}

// TestManagerCheckpointRecover: checkpoint, more writes, an incremental
// checkpoint, recovery into a new manager, and an incremental checkpoint on
// top of the recovered state.
func TestManagerCheckpointRecover(t *testing.T) {
	ctx := context.Background()
	for _, kind := range backendKinds() {
		t.Run(string(kind), func(t *testing.T) {
			env := newCkEnv(t, kind)
			m := env.open(state.ManagerConfig{})
			md := model{}
			for i := range 500 {
				md.put(t, m.State(), fmt.Sprint("acct-", i), account{Owner: fmt.Sprint("owner-", i), Balance: int64(i)})
			}
			id, err := m.CreateCheckpoint(ctx)
			if err != nil || id != 1 {
				t.Fatalf("CreateCheckpoint = %d, %v", id, err)
			}
			md.put(t, m.State(), "acct-7", account{Owner: "new owner", Balance: -7})
			md.remove(t, m.State(), "acct-8")
			md.put(t, m.State(), "acct-new", account{Owner: "late", Balance: 1})
			// Staged writes are not state yet: not in the checkpoint.
			if err := m.State().BatchPut("staged", account{}); err != nil {
				t.Fatal(err)
			}
			if id, err = m.CreateCheckpoint(ctx); err != nil || id != 2 {
				t.Fatalf("second CreateCheckpoint = %d, %v", id, err)
			}
			_ = m.State().AbortBatch()

			m1, m2 := env.manifest(1), env.manifest(2)
			if m2.IncrementalBytes >= m1.IncrementalBytes/4 {
				t.Fatalf("second checkpoint wrote %d bytes, the first %d: not incremental", m2.IncrementalBytes, m1.IncrementalBytes)
			}
			deltas := 0
			for _, f := range m2.Files() {
				if f.Kind == "delta" {
					deltas++
				}
			}
			if deltas == 0 || deltas > 3 {
				t.Fatalf("second checkpoint has %d delta files, want 1 to 3 (one per changed key group)", deltas)
			}
			if m2.Backend != string(kind) || m2.MaxKeyGroups != 16 || m2.Operator(state.ManagerOperator) == nil {
				t.Fatalf("manifest: backend %q, %d key groups, operators %+v", m2.Backend, m2.MaxKeyGroups, m2.Operators)
			}

			r := env.open(state.ManagerConfig{})
			id, ok, err := r.RecoverFromLatestCheckpoint(ctx)
			if err != nil || !ok || id != 2 {
				t.Fatalf("Recover = %d, %v, %v", id, ok, err)
			}
			md.check(t, r)

			// Checkpoints after recovery are incremental on top of it.
			md.put(t, r.State(), "acct-1", account{Owner: "after recovery", Balance: 100})
			if id, err = r.CreateCheckpoint(ctx); err != nil || id != 3 {
				t.Fatalf("CreateCheckpoint after recovery = %d, %v", id, err)
			}
			if m3 := env.manifest(3); m3.IncrementalBytes >= m1.IncrementalBytes/4 {
				t.Fatalf("checkpoint after recovery wrote %d bytes: not incremental", m3.IncrementalBytes)
			}
			r2 := env.open(state.ManagerConfig{})
			if id, ok, err = r2.RecoverFromLatestCheckpoint(ctx); err != nil || !ok || id != 3 {
				t.Fatalf("second Recover = %d, %v, %v", id, ok, err)
			}
			md.check(t, r2)
		})
	}
}

// TestManagerRecoverFallsBack: a corrupt newest checkpoint (manifest or
// file) is skipped with a warning in favour of the one before.
func TestManagerRecoverFallsBack(t *testing.T) {
	ctx := context.Background()
	for _, kind := range backendKinds() {
		for _, what := range []string{"manifest", "file", "missing file"} {
			t.Run(string(kind)+"/"+what, func(t *testing.T) {
				env := newCkEnv(t, kind)
				m := env.open(state.ManagerConfig{})
				md := model{}
				for i := range 50 {
					md.put(t, m.State(), fmt.Sprint("k", i), account{Balance: int64(i)})
				}
				if _, err := m.CreateCheckpoint(ctx); err != nil {
					t.Fatal(err)
				}
				old := model{}
				for k, v := range md {
					old[k] = v
				}
				for i := range 50 {
					md.put(t, m.State(), fmt.Sprint("k", i), account{Balance: int64(-i)})
				}
				if _, err := m.CreateCheckpoint(ctx); err != nil {
					t.Fatal(err)
				}
				// A file of checkpoint 2 only (full files of checkpoint 1
				// start its chains).
				var only2 string
				in1 := map[string]bool{}
				for _, f := range env.manifest(1).Files() {
					in1[f.Name] = true
				}
				for _, f := range env.manifest(2).Files() {
					if !in1[f.Name] {
						only2 = env.prefix + "/" + f.Name
					}
				}
				switch what {
				case "manifest":
					env.corrupt(env.prefix + "/" + checkpoint.ManifestName(2))
				case "file":
					env.corrupt(only2)
				case "missing file":
					if err := env.store.Delete(ctx, only2); err != nil {
						t.Fatal(err)
					}
				}

				r := env.open(state.ManagerConfig{})
				id, ok, err := r.RecoverFromLatestCheckpoint(ctx)
				if err != nil || !ok || id != 1 {
					t.Fatalf("Recover = %d, %v, %v; want checkpoint 1", id, ok, err)
				}
				old.check(t, r)
				if !strings.Contains(env.logs.String(), "level=WARN") || !strings.Contains(env.logs.String(), "checkpoint=2") {
					t.Fatalf("no warning about checkpoint 2 logged:\n%s", env.logs)
				}
				// The next checkpoint does not reuse the corrupt one's id,
				// and cleanup deletes the corrupt one.
				if id, err := r.CreateCheckpoint(ctx); err != nil || id != 3 {
					t.Fatalf("CreateCheckpoint after fallback = %d, %v", id, err)
				}
				got := env.list("manifests/")
				want := []string{checkpoint.ManifestName(1), checkpoint.ManifestName(3)}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("manifests = %v, want %v", got, want)
				}
			})
		}
	}
}

func TestManagerRecoverNoneVerifies(t *testing.T) {
	ctx := context.Background()
	env := newCkEnv(t, state.BackendMemory)
	m := env.open(state.ManagerConfig{})
	_ = m.State().Put("k", 1)
	if _, err := m.CreateCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	env.corrupt(env.prefix + "/" + env.manifest(1).Files()[0].Name)
	r := env.open(state.ManagerConfig{})
	_ = r.State().Put("before", 1)
	_, ok, err := r.RecoverFromLatestCheckpoint(ctx)
	if !errors.Is(err, state.ErrNoUsableCheckpoint) || ok {
		t.Fatalf("Recover = %v, %v; want ErrNoUsableCheckpoint", ok, err)
	}
	if n := r.Stats().Keys; n != 0 {
		t.Fatalf("after a failed recovery Keys = %d, want 0", n)
	}
}

// TestManagerCheckpointTTL: expiry times are absolute, so a TTL keeps
// counting across recovery.
func TestManagerCheckpointTTL(t *testing.T) {
	ctx := context.Background()
	for _, kind := range backendKinds() {
		t.Run(string(kind), func(t *testing.T) {
			env := newCkEnv(t, kind)
			clock := state.NewManualClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
			m := env.open(state.ManagerConfig{Clock: clock})
			if err := m.State().PutWithTTL("temp", "scratch", time.Hour); err != nil {
				t.Fatal(err)
			}
			if err := m.State().Put("kept", "forever"); err != nil {
				t.Fatal(err)
			}
			clock.Advance(30 * time.Minute)
			if _, err := m.CreateCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			r := env.open(state.ManagerConfig{Clock: clock})
			if _, ok, err := r.RecoverFromLatestCheckpoint(ctx); err != nil || !ok {
				t.Fatalf("Recover = %v, %v", ok, err)
			}
			clock.Advance(29 * time.Minute)
			if v, ok, err := state.GetTyped[string](r.State(), "temp"); err != nil || !ok || v != "scratch" {
				t.Fatalf("after 59m temp = %q %v %v", v, ok, err)
			}
			clock.Advance(time.Minute)
			if _, ok, _ := r.State().Get("temp"); ok {
				t.Fatal("after 1h temp is still there: the TTL restarted at recovery")
			}
			if _, ok, _ := r.State().Get("kept"); !ok {
				t.Fatal("kept is gone")
			}
			// A recovery after the expiry drops the entry at once.
			r2 := env.open(state.ManagerConfig{Clock: clock})
			if _, ok, err := r2.RecoverFromLatestCheckpoint(ctx); err != nil || !ok {
				t.Fatalf("Recover = %v, %v", ok, err)
			}
			if n := r2.Stats().Keys; n != 1 {
				t.Fatalf("recovered after expiry: Keys = %d, want 1", n)
			}
		})
	}
}

// TestManagerCheckpointRetention: only Retained checkpoints are kept, with
// exactly the files they name; chains restart with a full file.
func TestManagerCheckpointRetention(t *testing.T) {
	ctx := context.Background()
	for _, kind := range backendKinds() {
		t.Run(string(kind), func(t *testing.T) {
			env := newCkEnv(t, kind)
			cfg := state.ManagerConfig{MaxKeyGroups: 4, Checkpoints: state.CheckpointConfig{Retained: 2, FullEvery: 3}}
			m := env.open(cfg)
			md := model{}
			for i := range 40 {
				md.put(t, m.State(), fmt.Sprint("k", i), account{Balance: int64(i)})
			}
			for round := range 7 {
				md.put(t, m.State(), fmt.Sprint("k", round), account{Balance: int64(1000 + round)})
				id, err := m.CreateCheckpoint(ctx)
				if err != nil || id != uint64(round+1) {
					t.Fatalf("round %d: CreateCheckpoint = %d, %v", round, id, err)
				}
			}
			if got, want := env.list("manifests/"), []string{checkpoint.ManifestName(6), checkpoint.ManifestName(7)}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("manifests = %v, want %v", got, want)
			}
			named := map[string]bool{}
			for _, id := range []uint64{6, 7} {
				man := env.manifest(id)
				for _, kg := range man.Operators[0].KeyGroups {
					if len(kg.Files) > 3 {
						t.Fatalf("checkpoint %d key group %d has a chain of %d files, FullEvery is 3", id, kg.KeyGroup, len(kg.Files))
					}
				}
				for _, f := range man.Files() {
					named[f.Name] = true
				}
			}
			shared := env.list("shared/")
			if len(shared) != len(named) {
				t.Fatalf("%d shared files stored, retained manifests name %d", len(shared), len(named))
			}
			for _, f := range shared {
				if !named[f] {
					t.Fatalf("shared file %s is not named by a retained manifest", f)
				}
			}
			r := env.open(cfg)
			if id, ok, err := r.RecoverFromLatestCheckpoint(ctx); err != nil || !ok || id != 7 {
				t.Fatalf("Recover = %d, %v, %v", id, ok, err)
			}
			md.check(t, r)
		})
	}
}

func TestManagerRecoverRules(t *testing.T) {
	ctx := context.Background()
	env := newCkEnv(t, state.BackendMemory)

	// No checkpoint yet: nothing to recover, the state is left alone.
	m := env.open(state.ManagerConfig{})
	_ = m.State().Put("k", 1)
	if id, ok, err := m.RecoverFromLatestCheckpoint(ctx); err != nil || ok || id != 0 {
		t.Fatalf("Recover with no checkpoint = %d, %v, %v", id, ok, err)
	}
	if _, ok, _ := m.State().Get("k"); !ok {
		t.Fatal("Recover with no checkpoint changed the state")
	}
	if _, err := m.CreateCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	// Not after a checkpoint of its own.
	if _, _, err := m.RecoverFromLatestCheckpoint(ctx); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("Recover after CreateCheckpoint = %v, want ErrInvalid", err)
	}

	// Recovery replaces the state: writes made before it are gone.
	r := env.open(state.ManagerConfig{})
	_ = r.State().Put("stale", 1)
	_ = r.PartitionedState(3).Put("stale", 1)
	if _, ok, err := r.RecoverFromLatestCheckpoint(ctx); err != nil || !ok {
		t.Fatalf("Recover = %v, %v", ok, err)
	}
	if _, ok, _ := r.State().Get("stale"); ok {
		t.Fatal("a write made before recovery survived it")
	}
	if n := r.Stats().Keys; n != 1 {
		t.Fatalf("Keys = %d, want 1", n)
	}

	// Not with a batch open.
	b := env.open(state.ManagerConfig{})
	_ = b.State().BatchPut("x", 1)
	if _, _, err := b.RecoverFromLatestCheckpoint(ctx); !errors.Is(err, state.ErrBatchOpen) {
		t.Fatalf("Recover with a batch open = %v, want ErrBatchOpen", err)
	}

	// Not with another number of key groups.
	k := env.open(state.ManagerConfig{MaxKeyGroups: 32})
	if _, _, err := k.RecoverFromLatestCheckpoint(ctx); !errors.Is(err, state.ErrKeyGroupRange) {
		t.Fatalf("Recover with other key groups = %v, want ErrKeyGroupRange", err)
	}

	// A memory checkpoint recovers into Pebble.
	p := env.open(state.ManagerConfig{Backend: state.BackendPebble})
	if id, ok, err := p.RecoverFromLatestCheckpoint(ctx); err != nil || !ok || id != 1 {
		t.Fatalf("Recover into Pebble = %d, %v, %v", id, ok, err)
	}
	if v, ok, err := state.GetTyped[int](p.State(), "k"); err != nil || !ok || v != 1 {
		t.Fatalf("k = %d %v %v", v, ok, err)
	}

	// Without a storage there are no checkpoints.
	n, err := state.NewManager(state.ManagerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if _, err := n.CreateCheckpoint(ctx); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("CreateCheckpoint without storage = %v", err)
	}
	if _, _, err := n.RecoverFromLatestCheckpoint(ctx); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("Recover without storage = %v", err)
	}
	for _, cc := range []state.CheckpointConfig{{Retained: -1}, {Storage: env.store, Prefix: "a/../b"}} {
		if _, err := state.NewManager(state.ManagerConfig{Checkpoints: cc}); !errors.Is(err, state.ErrInvalid) {
			t.Fatalf("NewManager(%+v) = %v, want ErrInvalid", cc, err)
		}
	}
}

// TestManagerPebbleDirFromEarlierRun: a Pebble directory that holds state
// from an earlier run is checkpointed whole by a manager that did not
// recover, and replaced by recovery.
func TestManagerPebbleDirFromEarlierRun(t *testing.T) {
	ctx := context.Background()
	env := newCkEnv(t, state.BackendPebble)
	dir := t.TempDir()
	old, err := state.NewManager(state.ManagerConfig{Backend: state.BackendPebble, Dir: dir, MaxKeyGroups: 16})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		_ = old.State().Put(fmt.Sprint("old", i), i)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	m := env.open(state.ManagerConfig{Dir: dir})
	_ = m.State().Put("new", 1)
	if _, err := m.CreateCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	r := env.open(state.ManagerConfig{})
	if _, ok, err := r.RecoverFromLatestCheckpoint(ctx); err != nil || !ok {
		t.Fatalf("Recover = %v, %v", ok, err)
	}
	if n := r.Stats().Keys; n != 21 {
		t.Fatalf("recovered Keys = %d, want 21 (the directory's 20 and 1 new)", n)
	}
	_ = m.Close()

	// Recovery into the directory replaces what it holds.
	other := newCkEnv(t, state.BackendMemory)
	w := other.open(state.ManagerConfig{})
	_ = w.State().Put("only", 1)
	if _, err := w.CreateCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	p := other.open(state.ManagerConfig{Backend: state.BackendPebble, Dir: dir})
	if _, ok, err := p.RecoverFromLatestCheckpoint(ctx); err != nil || !ok {
		t.Fatalf("Recover = %v, %v", ok, err)
	}
	if n := p.Stats().Keys; n != 1 {
		t.Fatalf("Keys after recovery into a used directory = %d, want 1", n)
	}
	// Its next checkpoint is incremental, and recovers to the same state.
	_ = p.State().Put("two", 2)
	if _, err := p.CreateCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	q := other.open(state.ManagerConfig{})
	if _, ok, err := q.RecoverFromLatestCheckpoint(ctx); err != nil || !ok {
		t.Fatalf("Recover = %v, %v", ok, err)
	}
	if n := q.Stats().Keys; n != 2 {
		t.Fatalf("Keys = %d, want 2", n)
	}
}

// TestManagerCheckpointStorageFailure: a checkpoint whose upload fails
// leaves no manifest, and the next one still holds every change.
func TestManagerCheckpointStorageFailure(t *testing.T) {
	ctx := context.Background()
	env := newCkEnv(t, state.BackendMemory)
	fs := &failingStorage{Storage: env.store}
	m := env.open(state.ManagerConfig{Checkpoints: state.CheckpointConfig{Storage: fs}})
	md := model{}
	for i := range 30 {
		md.put(t, m.State(), fmt.Sprint("k", i), account{Balance: int64(i)})
	}
	if _, err := m.CreateCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	md.put(t, m.State(), "k1", account{Balance: 100})
	fs.fail.Store(true)
	if _, err := m.CreateCheckpoint(ctx); err == nil {
		t.Fatal("CreateCheckpoint with a failing storage succeeded")
	}
	fs.fail.Store(false)
	md.put(t, m.State(), "k2", account{Balance: 200})
	id, err := m.CreateCheckpoint(ctx)
	if err != nil || id != 3 {
		t.Fatalf("CreateCheckpoint = %d, %v", id, err)
	}
	if got := env.list("manifests/"); len(got) != 2 {
		t.Fatalf("manifests = %v, want those of 1 and 3", got)
	}
	r := env.open(state.ManagerConfig{})
	if id, ok, err := r.RecoverFromLatestCheckpoint(ctx); err != nil || !ok || id != 3 {
		t.Fatalf("Recover = %d, %v, %v", id, ok, err)
	}
	md.check(t, r)

	// A storage that cannot be read fails recovery rather than fall back.
	fs.fail.Store(true)
	x := env.open(state.ManagerConfig{Checkpoints: state.CheckpointConfig{Storage: fs}})
	if _, _, err := x.RecoverFromLatestCheckpoint(ctx); err == nil || errors.Is(err, state.ErrNoUsableCheckpoint) {
		t.Fatalf("Recover from a failing storage = %v", err)
	}
}

// failingStorage fails every operation with a transient error while fail
// is set.
type failingStorage struct {
	storage.Storage
	fail atomic.Bool
}

func (f *failingStorage) err(op, name string) error {
	if !f.fail.Load() {
		return nil
	}
	return &storage.Error{Op: op, Location: name, Transient: true, Err: errors.New("injected failure")}
}

func (f *failingStorage) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := f.err("put", name); err != nil {
		return err
	}
	return f.Storage.Put(ctx, name, r, size)
}

func (f *failingStorage) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := f.err("get", name); err != nil {
		return nil, err
	}
	return f.Storage.Get(ctx, name)
}

func (f *failingStorage) List(ctx context.Context, prefix string) ([]storage.ObjectInfo, error) {
	if err := f.err("list", prefix); err != nil {
		return nil, err
	}
	return f.Storage.List(ctx, prefix)
}

// TestManagerProcessBatch: a batch counts as an active transaction while
// it runs, and a checkpoint holds all of a batch's changes or none.
func TestManagerProcessBatch(t *testing.T) {
	ctx := context.Background()
	for _, kind := range backendKinds() {
		t.Run(string(kind), func(t *testing.T) {
			env := newCkEnv(t, kind)
			m := env.open(state.ManagerConfig{})
			counter := state.ProcessorFunc(func(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
				vals := b.Values()
				for i := range vals.Len() {
					w := vals.String(i)
					n, _, err := state.GetTyped[int](m.State(), w)
					if err != nil {
						return nil, err
					}
					if err := m.State().Put(w, n+1); err != nil {
						return nil, err
					}
				}
				return []*message.Batch{b}, nil
			})
			outs, err := m.ProcessBatch(ctx, message.FromStrings("to", "be", "or", "not", "to", "be"), counter)
			if err != nil || len(outs) != 1 || outs[0].NumRows() != 6 {
				t.Fatalf("ProcessBatch = %v, %v", outs, err)
			}
			if n, _, _ := state.GetTyped[int](m.State(), "to"); n != 2 {
				t.Fatalf("to = %d", n)
			}

			// A checkpoint started while a batch runs waits for its end.
			started, release := make(chan struct{}), make(chan struct{})
			var active int64
			slow := state.ProcessorFunc(func(context.Context, *message.Batch) ([]*message.Batch, error) {
				active = m.Stats().ActiveTransactions
				if err := m.State().Put("a", 1); err != nil {
					return nil, err
				}
				close(started)
				<-release
				return nil, m.State().Put("b", 1)
			})
			done := make(chan error, 1)
			go func() {
				_, err := m.ProcessBatch(ctx, message.FromStrings("x"), slow)
				done <- err
			}()
			<-started
			ck := make(chan error, 1)
			go func() {
				_, err := m.CreateCheckpoint(ctx)
				ck <- err
			}()
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if err := <-ck; err != nil {
				t.Fatal(err)
			}
			if active != 1 {
				t.Fatalf("ActiveTransactions while a batch runs = %d, want 1", active)
			}
			if n := m.Stats().ActiveTransactions; n != 0 {
				t.Fatalf("ActiveTransactions after = %d", n)
			}
			r := env.open(state.ManagerConfig{})
			if _, ok, err := r.RecoverFromLatestCheckpoint(ctx); err != nil || !ok {
				t.Fatalf("Recover = %v, %v", ok, err)
			}
			_, okA, _ := r.State().Get("a")
			_, okB, _ := r.State().Get("b")
			if !okA || !okB {
				t.Fatalf("checkpoint holds a=%v b=%v: part of a batch", okA, okB)
			}

			// Errors are wrapped; nil processors and closed managers fail.
			boom := errors.New("boom")
			_, err = m.ProcessBatch(ctx, message.FromStrings("x"), state.ProcessorFunc(func(context.Context, *message.Batch) ([]*message.Batch, error) {
				return nil, boom
			}))
			if !errors.Is(err, boom) {
				t.Fatalf("ProcessBatch error = %v", err)
			}
			if _, err := m.ProcessBatch(ctx, message.FromStrings("x"), nil); !errors.Is(err, state.ErrInvalid) {
				t.Fatalf("nil processor: %v", err)
			}
			_ = m.Close()
			if _, err := m.ProcessBatch(ctx, message.FromStrings("x"), counter); !errors.Is(err, state.ErrClosed) {
				t.Fatalf("after Close: %v", err)
			}
		})
	}
}

// TestManagerCheckpointConcurrentWrites checkpoints while writers run:
// every checkpoint recovers to a state the writers produced.
func TestManagerCheckpointConcurrentWrites(t *testing.T) {
	ctx := context.Background()
	for _, kind := range backendKinds() {
		t.Run(string(kind), func(t *testing.T) {
			env := newCkEnv(t, kind)
			m := env.open(state.ManagerConfig{MaxKeyGroups: 8})
			const keys = 32
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := 1; ; round++ {
					select {
					case <-stop:
						return
					default:
					}
					for i := range keys {
						_ = m.State().BatchPut(fmt.Sprint("k", i), round)
					}
					if err := m.State().CommitBatch(); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			var last uint64
			for range 5 {
				id, err := m.CreateCheckpoint(ctx)
				if err != nil {
					t.Fatal(err)
				}
				last = id
			}
			close(stop)
			wg.Wait()
			r := env.open(state.ManagerConfig{MaxKeyGroups: 8})
			if id, ok, err := r.RecoverFromLatestCheckpoint(ctx); err != nil || !ok || id != last {
				t.Fatalf("Recover = %d, %v, %v", id, ok, err)
			}
			v0, _, _ := state.GetTyped[int](r.State(), "k0")
			for i := range keys {
				if v, ok, _ := state.GetTyped[int](r.State(), fmt.Sprint("k", i)); !ok || v != v0 {
					t.Fatalf("k%d = %d %v, k0 = %d: the checkpoint holds part of a batch", i, v, ok, v0)
				}
			}
		})
	}
}

// The checkpoint files are where the layout says.
func TestManagerCheckpointLayout(t *testing.T) {
	env := newCkEnv(t, state.BackendMemory)
	m := env.open(state.ManagerConfig{Checkpoints: state.CheckpointConfig{Prefix: "/app/state/"}})
	_ = m.State().Put("k", 1)
	if _, err := m.CreateCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	var names []string
	err := filepath.WalkDir(env.store.Dir(), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(env.store.Dir(), p)
			names = append(names, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "app/state/"+checkpoint.ManifestName(1) || !strings.HasPrefix(names[1], "app/state/shared/") || !strings.HasSuffix(names[1], ".full") {
		t.Fatalf("stored %v", names)
	}
}

// TestManagerCheckpointWithoutRecovery: a manager that did not recover
// continues the ids under the prefix with full files, and a snapshot
// confirmed behind the manager's back makes the next checkpoint full
// rather than wrong.
func TestManagerCheckpointWithoutRecovery(t *testing.T) {
	ctx := context.Background()
	for _, kind := range backendKinds() {
		t.Run(string(kind), func(t *testing.T) {
			env := newCkEnv(t, kind)
			a := env.open(state.ManagerConfig{})
			_ = a.State().Put("a", 1)
			for range 2 {
				if _, err := a.CreateCheckpoint(ctx); err != nil {
					t.Fatal(err)
				}
			}
			b := env.open(state.ManagerConfig{})
			md := model{}
			for i := range 20 {
				md.put(t, b.State(), fmt.Sprint("k", i), account{Balance: int64(i)})
			}
			if id, err := b.CreateCheckpoint(ctx); err != nil || id != 3 {
				t.Fatalf("CreateCheckpoint = %d, %v", id, err)
			}
			for _, f := range env.manifest(3).Files() {
				if f.Kind != "full" {
					t.Fatalf("first checkpoint of a manager has a %s file", f.Kind)
				}
			}
			// Behind the manager's back: a delta relative to this snapshot
			// would miss k1.
			md.put(t, b.State(), "k1", account{Balance: 100})
			snap, err := b.Snapshot()
			if err != nil {
				t.Fatal(err)
			}
			seq := snap.Seq()
			snap.Release()
			b.ConfirmSnapshot(seq)
			if _, err := b.CreateCheckpoint(ctx); err != nil {
				t.Fatal(err)
			}
			r := env.open(state.ManagerConfig{})
			if id, ok, err := r.RecoverFromLatestCheckpoint(ctx); err != nil || !ok || id != 4 {
				t.Fatalf("Recover = %d, %v, %v", id, ok, err)
			}
			md.check(t, r)
		})
	}
}

package checkpoint

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/weir-stream/weir/component"
)

// ErrNoUsableCheckpoint is returned by Restore when checkpoints exist but
// none of them verifies.
var ErrNoUsableCheckpoint = errors.New("no usable checkpoint")

// List returns the manifests of the stream, newest first. Manifests that
// do not verify are returned in bad with the reason.
func (c *Coordinator) List(ctx context.Context) (good []*Manifest, bad map[uint64]error, err error) {
	ids, err := c.manifestIDs(ctx)
	if err != nil {
		return nil, nil, err
	}
	bad = map[uint64]error{}
	for _, id := range ids {
		m, err := c.loadManifest(ctx, id)
		if err != nil {
			bad[id] = err
			continue
		}
		good = append(good, m)
	}
	return good, bad, nil
}

// manifestIDs lists the ids of stored manifests, newest first.
func (c *Coordinator) manifestIDs(ctx context.Context) ([]uint64, error) {
	objs, err := c.store.List(ctx, c.root+"manifests/")
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list manifests in %s: %w", c.store, err)
	}
	var ids []uint64
	for _, o := range objs {
		if id, ok := parseManifestName(o.Name); ok {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] > ids[j] })
	return ids, nil
}

func (c *Coordinator) loadManifest(ctx context.Context, id uint64) (*Manifest, error) {
	data, err := c.get(ctx, c.root+ManifestName(id))
	if err != nil {
		return nil, err
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return nil, err
	}
	if m.ID != id {
		return nil, fmt.Errorf("%w: manifest %s holds checkpoint %d", ErrCorrupt, ManifestName(id), m.ID)
	}
	return m, nil
}

func (c *Coordinator) get(ctx context.Context, name string) ([]byte, error) {
	r, err := c.store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// fetch reads and verifies every file of m.
func (c *Coordinator) fetch(ctx context.Context, m *Manifest) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, f := range m.Files() {
		if _, ok := files[f.Name]; ok {
			continue
		}
		data, err := c.get(ctx, c.root+f.Name)
		if err != nil {
			return nil, fmt.Errorf("file %s: %w", f.Name, err)
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			return nil, fmt.Errorf("%w: file %s: %d bytes with sha256 %x, manifest says %d bytes with %s",
				ErrCorrupt, f.Name, len(data), sum, f.Size, f.SHA256)
		}
		files[f.Name] = data
	}
	return files, nil
}

// Restore loads checkpoint id (0: the newest that verifies) into the
// stream's state backends and rewinds its input to the checkpoint's
// position. It must run before the stream runs. It returns the restored
// manifest, or nil when there is no checkpoint (or fresh is set: the
// stream starts empty, old checkpoints are kept until retention removes
// them). A checkpoint whose manifest or files do not verify is skipped with
// a warning in favour of the one before; if checkpoints exist but none
// verifies, Restore fails with ErrNoUsableCheckpoint rather than start
// with empty state.
func (c *Coordinator) Restore(ctx context.Context, id uint64, fresh bool) (*Manifest, error) {
	t0 := time.Now()
	if cl, ok := c.store.(interface {
		CleanTemp(context.Context, time.Duration) (int, error)
	}); ok {
		if _, err := cl.CleanTemp(ctx, 0); err != nil {
			c.log.Warn("removing temporary files of an earlier run failed", "error", err)
		}
	}
	ids, err := c.manifestIDs(ctx)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(ids) > 0 {
		c.nextID = ids[0] + 1
	}
	c.mu.Unlock()

	var valid []*Manifest // newest first
	var chosen *Manifest
	var files map[string][]byte
	for _, mid := range ids {
		if id != 0 && mid > id {
			// Newer than the one asked for: kept (with its files), not used.
			if m, err := c.loadManifest(ctx, mid); err == nil {
				valid = append(valid, m)
			}
			continue
		}
		m, err := c.loadManifest(ctx, mid)
		if err != nil {
			c.log.Warn("skipping checkpoint: its manifest does not verify", "checkpoint", mid, "error", err)
			if id == mid {
				return nil, fmt.Errorf("checkpoint %d: %w", id, err)
			}
			continue
		}
		if m.MaxKeyGroups != c.cfg.MaxKeyGroups {
			return nil, fmt.Errorf("checkpoint %d has %d key groups but state.max_key_groups is %d: the number of key groups cannot change for the life of the state (use --fresh to start over)",
				mid, m.MaxKeyGroups, c.cfg.MaxKeyGroups)
		}
		if chosen == nil && !fresh {
			f, err := c.fetch(ctx, m)
			if err != nil {
				c.log.Warn("skipping checkpoint: its files do not verify; trying the one before", "checkpoint", mid, "error", err)
				if id == mid {
					return nil, fmt.Errorf("checkpoint %d: %w", id, err)
				}
				continue
			}
			chosen, files = m, f
		}
		valid = append(valid, m)
	}
	if id != 0 && chosen == nil && !fresh {
		return nil, fmt.Errorf("checkpoint %d: not found in %s", id, c.store)
	}
	// Keep the newest valid manifests (their files stay referenced); older
	// ones go, as retention would have removed them.
	if len(valid) > c.cfg.Retained {
		for _, old := range valid[c.cfg.Retained:] {
			if err := c.store.Delete(ctx, c.root+ManifestName(old.ID)); err != nil {
				c.log.Warn("deleting an old checkpoint manifest failed", "checkpoint", old.ID, "error", err)
			}
		}
		valid = valid[:c.cfg.Retained]
	}
	retained := make([]*Manifest, 0, len(valid))
	for i := len(valid) - 1; i >= 0; i-- {
		retained = append(retained, valid[i])
	}
	c.mu.Lock()
	c.retained = retained
	c.mu.Unlock()

	if chosen == nil {
		if len(ids) > 0 && !fresh {
			return nil, fmt.Errorf("%w: %d checkpoints in %s, none verifies (use --fresh to start without state)", ErrNoUsableCheckpoint, len(ids), c.store)
		}
		if err := c.recoverSinks(ctx, nil); err != nil {
			return nil, err
		}
		if err := c.collectGarbage(ctx, retained); err != nil {
			c.log.Warn("deleting unreferenced checkpoint files failed", "error", err)
		}
		return nil, nil
	}
	if err := c.apply(chosen, files); err != nil {
		return nil, fmt.Errorf("checkpoint %d: restore: %w", chosen.ID, err)
	}
	if err := c.recoverSinks(ctx, chosen); err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.lastCompleted = chosen.ID
	c.chains = chainsOf(chosen)
	c.mu.Unlock()
	if err := c.collectGarbage(ctx, retained); err != nil {
		c.log.Warn("deleting unreferenced checkpoint files failed", "error", err)
	}
	c.m.Restore.Set(time.Since(t0).Seconds())
	c.m.LastCompleted.Set(float64(chosen.ID))
	c.log.Info("restored checkpoint", "checkpoint", chosen.ID, "created", chosen.CreatedAt.Format(time.RFC3339),
		"bytes", chosen.FullBytes, "duration", time.Since(t0).Round(time.Millisecond))
	return chosen, nil
}

// apply restores the state files into the stream's backends (each instance
// takes the key groups it owns now, whatever thread_num was before) and
// seeks the input.
func (c *Coordinator) apply(m *Manifest, files map[string][]byte) error {
	instances := c.stream.StatefulInstances()
	have := map[string]bool{}
	// Each instance has a backend of its own, and nothing runs yet: the
	// instances (thread_num workers of each stateful processor) restore in
	// parallel, each its key groups in order.
	errs := make([]error, len(instances))
	var wg sync.WaitGroup
	for i, inst := range instances {
		have[inst.Operator] = true
		op := m.Operator(inst.Operator)
		if op == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, kg := range op.KeyGroups {
				if !inst.KeyGroups.Contains(kg.KeyGroup) {
					continue
				}
				for _, f := range kg.Files {
					if err := inst.Backend.Restore(bytes.NewReader(files[f.Name])); err != nil {
						errs[i] = fmt.Errorf("%s key group %d file %s: %w", inst.Operator, kg.KeyGroup, f.Name, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, op := range m.Operators {
		if !have[op.Name] {
			c.log.Warn("the checkpoint holds state of a processor this config no longer has; it is dropped", "operator", op.Name)
		}
	}
	if m.Position == nil {
		return nil
	}
	in := c.stream.Input()
	r, ok := in.(component.Replayable)
	if !ok {
		c.log.Warn("the input cannot rewind to the checkpoint's position: records read after the checkpoint are not replayed", "input", fmt.Sprintf("%T", in))
		return nil
	}
	if err := r.Seek(m.Position); err != nil {
		return fmt.Errorf("seek input: %w", err)
	}
	c.stream.ResumeFrom(m.Position)
	return nil
}

// Delete removes checkpoint id's manifest and every file that no other
// manifest references.
func (c *Coordinator) Delete(ctx context.Context, id uint64) error {
	if _, err := c.store.Stat(ctx, c.root+ManifestName(id)); err != nil {
		return fmt.Errorf("checkpoint %d: %w", id, err)
	}
	if err := c.store.Delete(ctx, c.root+ManifestName(id)); err != nil {
		return fmt.Errorf("checkpoint %d: delete manifest: %w", id, err)
	}
	good, _, err := c.List(ctx)
	if err != nil {
		return err
	}
	return c.collectGarbage(ctx, good)
}

// recoverSinks finishes what the two-phase-commit outputs left pending:
// the restored checkpoint's epoch is committed (again: commits are
// idempotent), anything later is aborted.
func (c *Coordinator) recoverSinks(ctx context.Context, m *Manifest) error {
	if c.stream == nil {
		return nil
	}
	for label, out := range c.stream.Committers() {
		var id uint64
		var handle []byte
		if m != nil {
			id, handle = m.ID, m.Sinks[label]
		}
		if err := out.Recover(ctx, id, handle); err != nil {
			return fmt.Errorf("recover output %s (checkpoint %d): %w", label, id, err)
		}
		if m != nil {
			c.log.Info("output recovered: the restored checkpoint's records are committed, later ones aborted", "output", label, "checkpoint", id)
		}
	}
	return nil
}

// Command ckptbench measures checkpoints of keyed state: it fills a state
// backend (memory or Pebble) with int64 counts through the state API, then
// checkpoints it the way weir's checkpoint coordinator does and restores it
// into a fresh backend, and prints the figures as one JSON object.
//
//	ckptbench -backend memory -keys 1000000 -dir /tmp/x
//
// What it does, step by step (one worker owning all 128 key groups):
//
//  1. Load: keys 0..N-1 (8-byte big-endian, as the state package's
//     benchmarks) get a count through state.NewKeyedContext and a
//     ValueState[int64], flushed every 1000 writes (one input batch).
//  2. Snapshot 1 and a full checkpoint: every key group's full entry file
//     (kv.WriteKeyGroup), written 8 at a time like the coordinator, named by
//     SHA-256 under shared/, then the manifest (checkpoint.Manifest), into a
//     checkpoint/storage.Local directory — and into S3 too when
//     WEIR_S3_ENDPOINT (and WEIR_S3_ACCESS_KEY, WEIR_S3_SECRET_KEY,
//     WEIR_S3_BUCKET) are set, as scripts/minio.sh exports them. The
//     snapshot is confirmed once the manifest is stored.
//  3. Churn: -snapshots-1 times, -churn of the keys (distinct, random,
//     seeded) get +1 (read, then write, as an aggregate does), then
//     Backend.Snapshot() is timed (the synchronous stall) and a checkpoint
//     is written with the coordinator's rules: a key group that changed
//     gets a delta (kv.WriteChanges) unless its chain has FullEvery (10)
//     files or its deltas outgrow MaxDeltaRatio (0.5) of its full file,
//     then a new full file; unchanged key groups keep their chain.
//  4. Restore: the backend is closed (a restarting process holds no other
//     state; at 10 M keys a live 1 GB backend made the memory restore
//     several times slower through GC), then the last checkpoint (when
//     -snapshots is a multiple of 10, its chains are the longest, a full
//     file and 9 deltas: restore_chain) is read back from each storage —
//     manifest, every file, SHA-256 checked — and applied with
//     Backend.Restore to a fresh backend whose ValueState is registered
//     first; the restored counts are checked against the expected ones.
//
// The churn writes are split in two halves to show where the memory
// backend's copy-on-write cost goes: the first write to a key group after a
// snapshot clones its map, so the first half after a snapshot is slower
// than the second (cow_penalty_ms).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/weir-stream/weir/checkpoint"
	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/config"
	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
)

// The coordinator's defaults (checkpoint.Config): full_checkpoint_every,
// the delta ratio that starts a new chain, and parallel uploads.
const (
	fullEvery     = 10
	maxDeltaRatio = 0.5
	uploads       = 8
	maxKeyGroups  = kv.DefaultMaxKeyGroups
	opName        = "count"
	flushEvery    = 1000
)

// Result is what ckptbench prints. Durations are in seconds unless the
// name says ms; sizes in bytes.
type Result struct {
	Backend   string  `json:"backend"`
	Keys      int     `json:"keys"`
	KeyBytes  int     `json:"key_bytes"`
	Churn     float64 `json:"churn"`
	Snapshots int     `json:"snapshots"`

	LoadSecs float64 `json:"load_s"`
	// Bytes per key: HeapPerKey is the Go heap growth after GC (memory
	// backend only); EstPerKey is Stats().TotalBytes / keys (the memory
	// backend's estimate; Pebble: keys plus encoded values).
	HeapPerKey float64 `json:"heap_bytes_per_key"`
	EstPerKey  float64 `json:"stats_bytes_per_key"`

	FullBytes int64 `json:"full_bytes"`
	// IncrBytes is the median of the bytes written by the checkpoints that
	// wrote only deltas; IncrRatio = IncrBytes / FullBytes.
	IncrBytes int64   `json:"incr_bytes"`
	IncrRatio float64 `json:"incr_ratio"`
	// AvgRatio is the mean bytes written per checkpoint after the first
	// (the periodic full files included) over FullBytes.
	AvgRatio float64 `json:"avg_written_ratio"`

	StallP50Ms float64 `json:"stall_p50_ms"`
	StallP99Ms float64 `json:"stall_p99_ms"`
	StallMaxMs float64 `json:"stall_max_ms"`
	// CowP50Ms / CowP99Ms: how much longer the first half of the churn
	// writes after a snapshot took than the second half.
	CowP50Ms float64 `json:"cow_penalty_p50_ms"`
	CowP99Ms float64 `json:"cow_penalty_p99_ms"`
	// ChurnWriteP50Ms is the median time of one interval's churn writes.
	ChurnWriteP50Ms float64 `json:"churn_write_p50_ms"`

	FullCkptSecs   float64 `json:"full_ckpt_local_s"`
	IncrCkptSecs   float64 `json:"incr_ckpt_local_s"`
	RestoreSecs    float64 `json:"restore_local_s"`
	FullCkptS3Secs float64 `json:"full_ckpt_s3_s,omitempty"`
	IncrCkptS3Secs float64 `json:"incr_ckpt_s3_s,omitempty"`
	RestoreS3Secs  float64 `json:"restore_s3_s,omitempty"`
	RestoreFiles   int     `json:"restore_files"`
	RestoreBytes   int64   `json:"restore_bytes"`
	// RestoreChain is the longest chain (files of one key group) of the
	// restored checkpoint: FullEvery when -snapshots is a multiple of it.
	RestoreChain int    `json:"restore_chain"`
	S3           string `json:"s3"` // the S3 endpoint, or why there was none
	// PeakHeapMB is the largest live heap measured (after a GC): after the
	// load. (Forced GCs cost seconds at 10 M keys: there are no others.)
	PeakHeapMB      float64 `json:"peak_heap_mb"`
	CheckpointCount int     `json:"checkpoints"`
	// TotalSecs is the time of the whole run; Phases splits it (load,
	// heap, snapshots with their checkpoints, restore and check per
	// storage), to budget the benchmark suite.
	TotalSecs float64            `json:"total_s"`
	Phases    map[string]float64 `json:"phases_s"`
}

func main() {
	backend := flag.String("backend", "memory", "memory | pebble")
	keys := flag.Int("keys", 1_000_000, "number of keys")
	churn := flag.Float64("churn", 0.01, "fraction of keys changed between snapshots")
	snapshots := flag.Int("snapshots", 50, fmt.Sprintf("snapshots taken (the first is the full one); a multiple of %d "+
		"makes the restored (last) checkpoint's chains the longest, a full file and %d deltas; 20 is the least that "+
		"also has a periodic full checkpoint (the 11th)", fullEvery, fullEvery-1))
	dir := flag.String("dir", "", "scratch directory (default: a new temp dir, removed at the end)")
	seed := flag.Uint64("seed", 42, "random seed")
	noS3 := flag.Bool("no-s3", false, "skip S3 even when WEIR_S3_ENDPOINT is set")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
	flag.Parse()
	if *snapshots < 2 || *keys < 1 || *churn <= 0 || *churn > 1 {
		fail("need -snapshots >= 2, -keys >= 1, 0 < -churn <= 1")
	}
	scratch := *dir
	if scratch == "" {
		d, err := os.MkdirTemp("", "weir-ckptbench-")
		must(err)
		scratch = d
		defer os.RemoveAll(d)
	}
	kind, err := state.ParseBackendKind(*backend)
	must(err)
	ctx := context.Background()

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		must(err)
		must(pprof.StartCPUProfile(f))
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	res, err := run(ctx, kind, *keys, *churn, *snapshots, scratch, *seed, *noS3)
	must(err)
	out, err := json.Marshal(res)
	must(err)
	fmt.Println(string(out))
}

// target is one checkpoint storage with the coordinator's bookkeeping.
type target struct {
	name  string
	store storage.Storage
	root  string
	// chains is the file chain of every key group as of the last
	// checkpoint; known the files already stored.
	chains map[int][]checkpoint.FileRef
	known  map[string]bool
	last   *checkpoint.Manifest

	// Durations (snapshot stall plus writing) of the checkpoints that
	// wrote some full file, and of those that wrote deltas only.
	fullSecs, incrSecs []float64
	lastFull           bool
}

func newTarget(name string, store storage.Storage) *target {
	return &target{name: name, store: store, root: "bench/stream-0/", chains: map[int][]checkpoint.FileRef{}, known: map[string]bool{}}
}

func run(ctx context.Context, kind state.BackendKind, n int, churn float64, snapshots int, scratch string, seed uint64, noS3 bool) (*Result, error) {
	start := time.Now()
	res := &Result{Backend: string(kind), Keys: n, KeyBytes: 8, Churn: churn, Snapshots: snapshots, Phases: map[string]float64{}}
	phase := start
	done := func(name string) {
		res.Phases[name] += time.Since(phase).Seconds()
		phase = time.Now()
	}

	local, err := storage.NewLocal(filepath.Join(scratch, "checkpoints"))
	if err != nil {
		return nil, err
	}
	targets := []*target{newTarget("local", local)}
	var s3t *target
	switch {
	case noS3:
		res.S3 = "skipped (-no-s3)"
	case os.Getenv("WEIR_S3_ENDPOINT") == "":
		res.S3 = "skipped: WEIR_S3_ENDPOINT is unset (bench/run.sh starts MinIO through scripts/minio.sh when it can)"
	default:
		s3, err := openS3(ctx)
		if err != nil {
			return nil, err
		}
		defer cleanS3(s3)
		s3t = newTarget("s3", s3)
		targets = append(targets, s3t)
		res.S3 = os.Getenv("WEIR_S3_ENDPOINT")
	}

	// Everything the benchmark itself holds is allocated before the heap
	// is measured: the expected counts and the churn permutation.
	want := make([]int64, n)
	perm := make([]int32, n)
	for i := range perm {
		perm[i] = int32(i)
	}
	rng := mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var peak uint64
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
		return ms.HeapAlloc
	}
	heap0 := heap()
	done("setup")

	b, err := state.NewBackend(state.BackendConfig{Kind: kind, Dir: filepath.Join(scratch, "work"), MaxKeyGroups: maxKeyGroups})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	kc, err := state.NewKeyedContext(b)
	if err != nil {
		return nil, err
	}
	counts, err := state.NewValueState[int64](kc, opName)
	if err != nil {
		return nil, err
	}
	var key [8]byte
	set := func(i int) error {
		binary.BigEndian.PutUint64(key[:], uint64(i))
		return kc.SetCurrentKey(key[:])
	}

	// 1. Load.
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if err := set(i); err != nil {
			return nil, err
		}
		want[i] = int64(i%1000) + 1
		if err := counts.Update(want[i]); err != nil {
			return nil, err
		}
		if (i+1)%flushEvery == 0 {
			if err := kc.Flush(); err != nil {
				return nil, err
			}
		}
	}
	if err := kc.Flush(); err != nil {
		return nil, err
	}
	res.LoadSecs = time.Since(t0).Seconds()
	done("load")
	if kind == state.BackendMemory {
		res.HeapPerKey = float64(heap()-heap0) / float64(n)
	}
	res.EstPerKey = float64(b.Stats().TotalBytes) / float64(n)
	done("heap")

	// 2 and 3. Snapshots and checkpoints.
	var stalls, cow, writes []float64
	var incr []int64
	var written int64
	perRound := max(1, int(float64(n)*churn))
	for id := uint64(1); id <= uint64(snapshots); id++ {
		if id > 1 {
			// Churn: a partial Fisher-Yates shuffle picks distinct keys.
			var halves [2]float64
			for h := 0; h < 2; h++ {
				lo, hi := h*perRound/2, (h+1)*perRound/2
				t := time.Now()
				for j := lo; j < hi; j++ {
					k := j + rng.IntN(n-j)
					perm[j], perm[k] = perm[k], perm[j]
					i := int(perm[j])
					if err := set(i); err != nil {
						return nil, err
					}
					v, _, err := counts.Value()
					if err != nil {
						return nil, err
					}
					if err := counts.Update(v + 1); err != nil {
						return nil, err
					}
					want[i] = v + 1
					if (j-lo+1)%flushEvery == 0 {
						if err := kc.Flush(); err != nil {
							return nil, err
						}
					}
				}
				if err := kc.Flush(); err != nil {
					return nil, err
				}
				halves[h] = time.Since(t).Seconds()
			}
			cow = append(cow, max(0, halves[0]-halves[1])*1e3)
			writes = append(writes, (halves[0]+halves[1])*1e3)
		}
		t := time.Now()
		snap, err := b.Snapshot()
		if err != nil {
			return nil, err
		}
		stall := time.Since(t)
		stalls = append(stalls, stall.Seconds()*1e3)
		var wrote int64
		for _, tg := range targets {
			w, err := tg.checkpoint(ctx, snap, id, string(kind), stall)
			if err != nil {
				snap.Release()
				return nil, fmt.Errorf("checkpoint %d to %s: %w", id, tg.name, err)
			}
			if tg == targets[0] {
				wrote = w
			}
		}
		b.ConfirmSnapshot(snap.Seq())
		snap.Release()
		if id == 1 {
			res.FullBytes = wrote
		} else {
			written += wrote
			if !targets[0].lastFull {
				incr = append(incr, wrote)
			}
		}
	}
	res.CheckpointCount = snapshots
	res.StallP50Ms, res.StallP99Ms, res.StallMaxMs = pct(stalls, 50), pct(stalls, 99), slices.Max(stalls)
	res.CowP50Ms, res.CowP99Ms = pct(cow, 50), pct(cow, 99)
	res.ChurnWriteP50Ms = pct(writes, 50)
	if len(incr) > 0 {
		res.IncrBytes = medianInt(incr)
		res.IncrRatio = float64(res.IncrBytes) / float64(res.FullBytes)
	}
	res.AvgRatio = float64(written) / float64(snapshots-1) / float64(res.FullBytes)
	res.FullCkptSecs, res.IncrCkptSecs = median(targets[0].fullSecs), median(targets[0].incrSecs)
	if s3t != nil {
		res.FullCkptS3Secs, res.IncrCkptS3Secs = median(s3t.fullSecs), median(s3t.incrSecs)
	}

	// A process that restores holds no other state: close the backend
	// (the memory backend drops its maps) before restoring.
	if err := b.Close(); err != nil {
		return nil, err
	}
	heap()
	done("snapshots")

	// 4. Restore the last checkpoint into a fresh backend.
	for i, tg := range targets {
		secs, files, size, err := restore(ctx, tg, kind, filepath.Join(scratch, fmt.Sprintf("restore-%d", i)), want)
		done("restore_" + tg.name + "_and_check")
		if err != nil {
			return nil, fmt.Errorf("restore from %s: %w", tg.name, err)
		}
		if tg == s3t {
			res.RestoreS3Secs = secs
		} else {
			res.RestoreSecs = secs
		}
		res.RestoreFiles, res.RestoreBytes = files, size
		for _, op := range tg.last.Operators {
			for _, kg := range op.KeyGroups {
				res.RestoreChain = max(res.RestoreChain, len(kg.Files))
			}
		}
	}
	res.PeakHeapMB = float64(peak) / (1 << 20)
	res.TotalSecs = time.Since(start).Seconds()
	return res, nil
}

// checkpoint writes snap as checkpoint id with the coordinator's rules and
// returns the bytes it wrote. Its duration is stall (the time Snapshot
// took) plus the writing: the coordinator's starts at the trigger, and the
// time a barrier takes to travel is not part of this benchmark.
func (tg *target) checkpoint(ctx context.Context, snap kv.Snapshot, id uint64, backend string, stall time.Duration) (int64, error) {
	started := time.Now().Add(-stall)
	m := &checkpoint.Manifest{
		FormatVersion: checkpoint.FormatVersion, Pipeline: "bench", Stream: "stream-0", ID: id,
		CreatedAt: time.Now().UTC(), MaxKeyGroups: maxKeyGroups, Backend: backend,
	}
	type job struct {
		kg   int
		full bool
	}
	next := map[int][]checkpoint.FileRef{}
	var jobs []job
	anyFull := false
	rng := snap.KeyGroups()
	for kg := rng.Start; kg < rng.End; kg++ {
		chain := tg.chains[kg]
		if !snap.Changed(kg) {
			if len(chain) > 0 {
				next[kg] = chain
			}
			continue
		}
		full := needsFull(chain)
		anyFull = anyFull || full
		jobs = append(jobs, job{kg: kg, full: full})
	}
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, uploads)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ref, wrote, err := tg.writeFile(ctx, snap, j.kg, j.full)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("key group %d: %w", j.kg, err)
				}
				return
			}
			if wrote {
				m.IncrementalBytes += ref.Size
			}
			if j.full {
				next[j.kg] = []checkpoint.FileRef{ref}
			} else {
				next[j.kg] = append(append([]checkpoint.FileRef(nil), tg.chains[j.kg]...), ref)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return 0, firstErr
	}
	op := checkpoint.OperatorState{Name: opName}
	kgs := make([]int, 0, len(next))
	for kg := range next {
		kgs = append(kgs, kg)
	}
	sort.Ints(kgs)
	for _, kg := range kgs {
		op.KeyGroups = append(op.KeyGroups, checkpoint.KeyGroupState{KeyGroup: kg, Files: next[kg]})
		for _, f := range next[kg] {
			m.FullBytes += f.Size
		}
	}
	m.Operators = []checkpoint.OperatorState{op}
	m.DurationMs = time.Since(started).Milliseconds()
	data, err := m.Encode()
	if err != nil {
		return 0, err
	}
	if err := tg.store.Put(ctx, tg.root+checkpoint.ManifestName(id), bytes.NewReader(data), int64(len(data))); err != nil {
		return 0, fmt.Errorf("write manifest: %w", err)
	}
	secs := time.Since(started).Seconds()
	if anyFull {
		tg.fullSecs = append(tg.fullSecs, secs)
	} else {
		tg.incrSecs = append(tg.incrSecs, secs)
	}
	tg.lastFull = anyFull
	tg.chains = next
	for _, f := range m.Files() {
		tg.known[f.Name] = true
	}
	tg.last = m
	return m.IncrementalBytes, nil
}

// needsFull is the coordinator's rule for starting a key group's chain
// again with a full file.
func needsFull(chain []checkpoint.FileRef) bool {
	if len(chain) == 0 || len(chain) >= fullEvery {
		return true
	}
	var deltas int64
	for _, f := range chain[1:] {
		deltas += f.Size
	}
	return float64(deltas) > maxDeltaRatio*float64(chain[0].Size)
}

// writeFile encodes one key group's full state or changes, names it by its
// SHA-256 and stores it unless a stored checkpoint already holds it.
func (tg *target) writeFile(ctx context.Context, snap kv.Snapshot, kg int, full bool) (checkpoint.FileRef, bool, error) {
	var buf bytes.Buffer
	var err error
	kind := "delta"
	if full {
		kind = "full"
		err = kv.WriteKeyGroup(&buf, snap, kg)
	} else {
		err = kv.WriteChanges(&buf, snap, kg)
	}
	if err != nil {
		return checkpoint.FileRef{}, false, err
	}
	sum := sha256.Sum256(buf.Bytes())
	name := "shared/" + hex.EncodeToString(sum[:]) + "." + kind
	ref := checkpoint.FileRef{Name: name, Size: int64(buf.Len()), SHA256: hex.EncodeToString(sum[:]), Kind: kind}
	if tg.known[name] {
		return ref, false, nil
	}
	if err := tg.store.Put(ctx, tg.root+name, bytes.NewReader(buf.Bytes()), int64(buf.Len())); err != nil {
		return checkpoint.FileRef{}, false, err
	}
	return ref, true, nil
}

// restore reads the target's last checkpoint back as the coordinator's
// Restore does (manifest, then every file, checksums verified) and applies
// it to a fresh backend, then checks every count against want.
func restore(ctx context.Context, tg *target, kind state.BackendKind, dir string, want []int64) (secs float64, files int, size int64, err error) {
	t0 := time.Now()
	b, err := state.NewBackend(state.BackendConfig{Kind: kind, Dir: dir, MaxKeyGroups: maxKeyGroups})
	if err != nil {
		return 0, 0, 0, err
	}
	defer b.Close()
	kc, err := state.NewKeyedContext(b)
	if err != nil {
		return 0, 0, 0, err
	}
	counts, err := state.NewValueState[int64](kc, opName)
	if err != nil {
		return 0, 0, 0, err
	}
	data, err := get(ctx, tg.store, tg.root+checkpoint.ManifestName(tg.last.ID))
	if err != nil {
		return 0, 0, 0, err
	}
	m, err := checkpoint.DecodeManifest(data)
	if err != nil {
		return 0, 0, 0, err
	}
	contents := map[string][]byte{}
	for _, f := range m.Files() {
		if _, ok := contents[f.Name]; ok {
			continue
		}
		d, err := get(ctx, tg.store, tg.root+f.Name)
		if err != nil {
			return 0, 0, 0, err
		}
		sum := sha256.Sum256(d)
		if int64(len(d)) != f.Size || hex.EncodeToString(sum[:]) != f.SHA256 {
			return 0, 0, 0, fmt.Errorf("file %s does not match its manifest entry", f.Name)
		}
		contents[f.Name] = d
		files++
		size += f.Size
	}
	for _, op := range m.Operators {
		for _, kg := range op.KeyGroups {
			for _, f := range kg.Files {
				if err := b.Restore(bytes.NewReader(contents[f.Name])); err != nil {
					return 0, 0, 0, fmt.Errorf("key group %d file %s: %w", kg.KeyGroup, f.Name, err)
				}
			}
		}
	}
	secs = time.Since(t0).Seconds()

	// Check the restored state (not timed).
	seen := 0
	var bad error
	err = counts.Range(func(key []byte, v int64) bool {
		i := binary.BigEndian.Uint64(key)
		if len(key) != 8 || i >= uint64(len(want)) || want[i] != v {
			bad = fmt.Errorf("restored key %x = %d, want %d", key, v, want[min(i, uint64(len(want)-1))])
			return false
		}
		seen++
		return true
	})
	if err == nil {
		err = bad
	}
	if err == nil && seen != len(want) {
		err = fmt.Errorf("restored %d keys, want %d", seen, len(want))
	}
	if err != nil {
		return 0, 0, 0, err
	}
	return secs, files, size, nil
}

func get(ctx context.Context, s storage.Storage, name string) ([]byte, error) {
	r, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// openS3 opens the S3 server of the environment under a fresh prefix.
func openS3(ctx context.Context) (*storage.S3, error) {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	bucket := os.Getenv("WEIR_S3_BUCKET")
	if bucket == "" {
		bucket = "weir-test"
	}
	region := os.Getenv("WEIR_S3_REGION")
	if region == "" {
		region = "us-east-1"
	}
	s, err := storage.NewS3(ctx, config.S3Config{
		Bucket: bucket, Region: region, Prefix: "bench/ckpt-" + hex.EncodeToString(rnd[:]),
		Endpoint: os.Getenv("WEIR_S3_ENDPOINT"), ForcePathStyle: true,
		AccessKeyID: os.Getenv("WEIR_S3_ACCESS_KEY"), SecretAccessKey: os.Getenv("WEIR_S3_SECRET_KEY"),
	})
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := s.EnsureBucket(cctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// cleanS3 deletes what the benchmark stored and closes the storage.
func cleanS3(s *storage.S3) {
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	objs, err := s.List(ctx, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, "ckptbench: clean up S3:", err)
		return
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.Name
	}
	if err := storage.DeleteMany(ctx, s, names); err != nil {
		fmt.Fprintln(os.Stderr, "ckptbench: clean up S3:", err)
	}
}

// pct returns the p-th percentile of xs by nearest rank.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func median(xs []float64) float64 { return pct(xs, 50) }

func medianInt(xs []int64) int64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "ckptbench: "+format+"\n", args...)
	os.Exit(1)
}

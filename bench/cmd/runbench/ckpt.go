package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// ckptConfig is one ckptbench configuration.
type ckptConfig struct {
	label     string
	backend   string // ckptbench -backend
	name      string // the backend as the report names it
	keys      int
	snapshots int
	// targets: the targets are stated for this configuration
	// (memory, 1 M keys); the others report the same figures.
	targets bool
}

// ckptRuns are the results of the runs of one configuration.
type ckptRuns struct {
	cfg     ckptConfig
	results []map[string]any
	rss     []float64
}

// ckptFullEvery is ckptbench's full_checkpoint_every: the longest chain
// of a key group has this many files.
const ckptFullEvery = 10

// num returns a numeric field's figure over the runs (absent: zero).
func (c *ckptRuns) num(field string) figure {
	var xs []float64
	for _, r := range c.results {
		if v, ok := r[field].(float64); ok {
			xs = append(xs, v)
		}
	}
	return stat(xs)
}

func (c *ckptRuns) has(field string) bool {
	_, ok := c.results[0][field]
	return ok
}

// Snapshots per ckptbench run. Each is a multiple of the coordinator's
// full_checkpoint_every (10), so that the last checkpoint, the one
// restored, has the longest chains: a full file and 9 deltas per key group.
// At 10 M keys a run of 50 takes minutes (every interval changes 100 k
// keys, every tenth checkpoint is a full one of 217 MB, and Pebble's load
// alone takes about 40 s), so the default suite takes 10 there, the least
// that restores the longest chain (but without a periodic full checkpoint);
// -big takes 50 there too.
const (
	ckptSnapshots      = 50
	ckptSnapshotsLarge = 10
	ckptLargeKeys      = 10_000_000
)

// ckptConfigs are the configurations of the checkpoint section: 100 k, 1 M
// and 10 M keys in the memory and Pebble backends.
func ckptConfigs() []ckptConfig {
	var cfgs []ckptConfig
	for _, b := range []struct{ backend, name string }{{"memory", "memory"}, {"pebble", "Pebble"}} {
		for _, keys := range []int{100_000, 1_000_000, ckptLargeKeys} {
			c := ckptConfig{label: b.name + ", " + keysLabel(keys) + " keys", backend: b.backend, name: b.name,
				keys: keys, snapshots: ckptSnapshots, targets: b.backend == "memory" && keys == 1_000_000}
			if keys >= ckptLargeKeys && !*big {
				c.snapshots = ckptSnapshotsLarge
			}
			cfgs = append(cfgs, c)
		}
	}
	return cfgs
}

// checkpoints runs bench/cmd/ckptbench for the memory and Pebble backends
// at 100 k, 1 M and 10 M keys.
func (r *runner) checkpoints() {
	cfgs := ckptConfigs()
	all := make([]*ckptRuns, len(cfgs))
	for i, c := range cfgs {
		all[i] = &ckptRuns{cfg: c}
	}
	for i := 0; i < *runs; i++ {
		for _, c := range all {
			dir, err := os.MkdirTemp(r.tmp, "ckpt-")
			must(err)
			args := []string{"-backend", c.cfg.backend, "-keys", fmt.Sprint(c.cfg.keys), "-snapshots", fmt.Sprint(c.cfg.snapshots), "-dir", dir}
			out, rss := output(nil, r.bin("ckptbench"), args...)
			os.RemoveAll(dir)
			var res map[string]any
			if err := json.Unmarshal(out, &res); err != nil {
				fail("ckptbench output: %v: %s", err, out)
			}
			if chain, _ := res["restore_chain"].(float64); int(chain) != ckptFullEvery {
				fail("ckptbench %s: the restored checkpoint's longest chain has %v files, want %d (a full file and %d deltas)",
					c.cfg.label, res["restore_chain"], ckptFullEvery, ckptFullEvery-1)
			}
			c.results = append(c.results, res)
			c.rss = append(c.rss, rss)
		}
	}

	s3 := all[0].has("restore_s3_s")
	s3Note, _ := all[0].results[0]["s3"].(string)
	if !s3 {
		if n := os.Getenv("WEIR_BENCH_S3_NOTE"); n != "" {
			s3Note = "skipped: " + n
		}
	}

	w := &r.report
	large := fmt.Sprintf("%d at %s keys, the least that restores the longest chain, to keep `make bench` "+
		"short; `-big` takes 50 there too", ckptSnapshotsLarge, keysLabel(ckptLargeKeys))
	if *big {
		large = "also at " + keysLabel(ckptLargeKeys) + " keys: `-big`"
	}
	fmt.Fprintf(w, "## Checkpoints (int64 counts, 8-byte keys, 1 %% of keys changed between snapshots)\n\n")
	fmt.Fprintf(w, "`bench/cmd/ckptbench` fills one backend owning all 128 key groups through the state API "+
		"(`state.NewKeyedContext`, `ValueState[int64]`), then takes %d snapshots (%s) with 1 %% of the keys (distinct, random) "+
		"incremented before each, and writes every snapshot as a checkpoint exactly as the coordinator does "+
		"(`kv.WriteKeyGroup` / `kv.WriteChanges` per changed key group, 8 in parallel, SHA-256-named files under `shared/`, "+
		"then the manifest; a key group starts a new chain with a full file every 10 files or when its deltas pass 0.5 "+
		"of its full file) into `checkpoint/storage.Local` and, when an S3 server is configured, into `checkpoint/storage.S3`. "+
		"Then it closes its backend (a restarting process holds no other state) and restores the last checkpoint "+
		"(the longest chain: a full file and 9 deltas per key group, checked) into a fresh backend, verifying checksums, "+
		"and checks every restored count. Three state sizes: 100 k, 1 M and 10 M keys.\n\n", ckptSnapshots, large)
	fmt.Fprintf(w, "- S3: %s\n", s3Note)
	fmt.Fprintf(w, "- Synchronous stall = `Backend.Snapshot()` on the owner goroutine between write batches; p99 by nearest rank "+
		"over the snapshots of a run (so the largest of them).\n")
	fmt.Fprintf(w, "- Write pause after a snapshot = how much longer the first half of an interval's writes takes than the second: "+
		"the memory backend's copy-on-write clones a key group's map on its first write after a snapshot, so this is "+
		"where its snapshot cost really lands (on the owner, but after `Snapshot()` returns). Pebble has no such cost; "+
		"its figure is noise (memtable flushes, GC).\n")
	fmt.Fprintf(w, "- Checkpoint duration = stall + writing every file and the manifest (the files are written while "+
		"the stream goes on in weir; here nothing else runs meanwhile). Local writes fsync every file and the directory.\n")
	fmt.Fprintf(w, "- Bytes per key: memory = Go heap growth after GC while loading ÷ keys, and the backend's own "+
		"estimate `Stats().TotalBytes` ÷ keys; Pebble = `Stats().TotalBytes` ÷ keys (keys plus encoded values; "+
		"no heap figure: Pebble's memory is its cache and memtables).\n\n")

	fmt.Fprintf(w, "| figure |")
	for _, c := range all {
		fmt.Fprintf(w, " %s |", c.cfg.label)
	}
	fmt.Fprintf(w, "\n|---|")
	for range all {
		fmt.Fprintf(w, "---:|")
	}
	fmt.Fprintln(w)
	line := func(name string, cell func(c *ckptRuns) string) {
		fmt.Fprintf(w, "| %s |", name)
		for _, c := range all {
			fmt.Fprintf(w, " %s |", cell(c))
		}
		fmt.Fprintln(w)
	}
	f := func(field, verb string, scale float64) func(c *ckptRuns) string {
		return func(c *ckptRuns) string {
			if !c.has(field) {
				return "—"
			}
			v := c.num(field)
			if v.med == 0 && v.hi == 0 {
				return "—"
			}
			return figure{v.med * scale, v.lo * scale, v.hi * scale}.format(verb)
		}
	}
	line("snapshots per run", func(c *ckptRuns) string { return fmt.Sprint(c.cfg.snapshots) })
	line("run time of `ckptbench`, s", f("total_s", "%.0f", 1))
	line("load rate, k puts/s", func(c *ckptRuns) string {
		v := c.num("load_s")
		k := float64(c.cfg.keys) / 1e3
		return figure{k / v.med, k / v.hi, k / v.lo}.format("%.0f")
	})
	line("bytes per key, Go heap", f("heap_bytes_per_key", "%.0f", 1))
	line("bytes per key, `Stats().TotalBytes`", f("stats_bytes_per_key", "%.0f", 1))
	line("full checkpoint, MB", f("full_bytes", "%.2f", 1e-6))
	line("incremental checkpoint (deltas only), KB", f("incr_bytes", "%.0f", 1e-3))
	line("incremental ÷ full", f("incr_ratio", "%.2f %%", 100))
	line("mean bytes written per checkpoint ÷ full (periodic full files included)", func(c *ckptRuns) string {
		if c.cfg.snapshots <= ckptFullEvery {
			return "— (no periodic full)"
		}
		return f("avg_written_ratio", "%.1f %%", 100)(c)
	})
	line("synchronous stall p50, ms", f("stall_p50_ms", "%.3f", 1))
	line("synchronous stall p99, ms", f("stall_p99_ms", "%.3f", 1))
	line("write pause after a snapshot p50, ms", f("cow_penalty_p50_ms", "%.1f", 1))
	line("write pause after a snapshot p99, ms", f("cow_penalty_p99_ms", "%.1f", 1))
	line("one interval's writes (1 % of keys, read + update), ms", f("churn_write_p50_ms", "%.1f", 1))
	line("full checkpoint duration, local, s", f("full_ckpt_local_s", "%.3f", 1))
	line("incremental checkpoint duration, local, s", f("incr_ckpt_local_s", "%.3f", 1))
	line("full checkpoint duration, S3, s", f("full_ckpt_s3_s", "%.3f", 1))
	line("incremental checkpoint duration, S3, s", f("incr_ckpt_s3_s", "%.3f", 1))
	line("restored files (MB)", func(c *ckptRuns) string {
		return fmt.Sprintf("%.0f (%.1f)", c.num("restore_files").med, c.num("restore_bytes").med/1e6)
	})
	line("restore from local dir, s", f("restore_local_s", "%.2f", 1))
	line("restore from S3, s", f("restore_s3_s", "%.2f", 1))
	line("peak RSS of the benchmark process, MB", func(c *ckptRuns) string { return stat(c.rss).format("%.0f") })
	fmt.Fprintln(w)

	plotted.ckpts = nil
	for _, c := range all {
		plotted.ckpts = append(plotted.ckpts, ckptPoint{backend: c.cfg.name, keys: c.cfg.keys,
			full: c.num("full_bytes").med, incr: c.num("incr_bytes").med})
	}
	writePlot()
	if len(plotted.throughput) == 0 {
		embedPlot(w) // else the word count section shows it
	}

	// Summary: the targets are for the memory backend at 1 M
	// keys; Pebble and 10 M keys are shown against the same bars, in
	// parentheses.
	for _, c := range all {
		if c.cfg.keys < 1_000_000 {
			continue // in the table and the plot only
		}
		l := c.cfg.label
		limit := func(lim string) string {
			if c.cfg.targets {
				return lim
			}
			return "report (memory 1 M target " + lim + ")"
		}
		met := func(ok bool) string {
			if c.cfg.targets {
				return yesNo(ok)
			}
			if ok {
				return "(yes)"
			}
			return "(no)"
		}
		ratio := c.num("incr_ratio").med
		r.sum(l+": incremental ÷ full checkpoint bytes, 1 % churn",
			fmt.Sprintf("%.0f KB of %.1f MB", c.num("incr_bytes").med/1e3, c.num("full_bytes").med/1e6),
			limit("≤ 5 %"), fmt.Sprintf("%.2f %% (%.2f)", ratio*100, ratio/0.05), met(ratio <= 0.05))
		p99 := c.num("stall_p99_ms").med
		r.sum(l+": synchronous stall p99 (`Snapshot()`)", fmt.Sprintf("%.3f ms", p99), limit("≤ 20 ms"),
			fmt.Sprintf("%.3f", p99/20), met(p99 <= 20))
		cow := c.num("cow_penalty_p99_ms").med
		r.sum(l+": write pause after a snapshot p99 (memory: copy-on-write map clones; see Checkpoints)", fmt.Sprintf("%.1f ms", cow),
			"report (not part of the stall target)", "—", "—")
		rl := c.num("restore_local_s").med
		r.sum(l+": restore from local dir", fmt.Sprintf("%.2f s", rl), limit("≤ 2 s"), fmt.Sprintf("%.2f", rl/2), met(rl <= 2))
		if s3 {
			rs := c.num("restore_s3_s").med
			r.sum(l+": restore from MinIO (loopback)", fmt.Sprintf("%.2f s", rs), limit("≤ 5 s"), fmt.Sprintf("%.2f", rs/5), met(rs <= 5))
		} else {
			r.sum(l+": restore from MinIO (loopback)", "not measured", limit("≤ 5 s"), "—", strings.SplitN(s3Note, ":", 2)[0])
		}
		bpk := fmt.Sprintf("%.0f B (`Stats().TotalBytes`)", c.num("stats_bytes_per_key").med)
		if h := c.num("heap_bytes_per_key").med; h > 0 {
			bpk = fmt.Sprintf("%.0f B (Go heap; estimate %.0f B)", h, c.num("stats_bytes_per_key").med)
		}
		r.sum(l+": bytes per key of state", bpk, "report", "—", "—")
	}
}

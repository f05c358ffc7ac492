package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

// ckptConfig is one ckptbench configuration.
type ckptConfig struct {
	label   string
	backend string
	keys    int
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

// checkpoints runs bench/cmd/ckptbench for the memory and Pebble backends.
func (r *runner) checkpoints() {
	cfgs := []ckptConfig{
		{label: "memory, 1 M keys", backend: "memory", keys: 1_000_000, targets: true},
		{label: "Pebble, 1 M keys", backend: "pebble", keys: 1_000_000},
	}
	if *big {
		cfgs = append(cfgs, ckptConfig{label: "memory, 10 M keys", backend: "memory", keys: 10_000_000})
	}
	all := make([]*ckptRuns, len(cfgs))
	for i, c := range cfgs {
		all[i] = &ckptRuns{cfg: c}
	}
	for i := 0; i < *runs; i++ {
		for _, c := range all {
			dir, err := os.MkdirTemp(r.tmp, "ckpt-")
			must(err)
			out, rss := output(nil, r.bin("ckptbench"), "-backend", c.cfg.backend, "-keys", fmt.Sprint(c.cfg.keys), "-dir", dir)
			os.RemoveAll(dir)
			var res map[string]any
			if err := json.Unmarshal(out, &res); err != nil {
				fail("ckptbench output: %v: %s", err, out)
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
	fmt.Fprintf(w, "## Checkpoints (int64 counts, 8-byte keys, 1 %% of keys changed between snapshots)\n\n")
	fmt.Fprintf(w, "`bench/cmd/ckptbench` fills one backend owning all 128 key groups through the state API "+
		"(`state.NewKeyedContext`, `ValueState[int64]`), then takes 50 snapshots with 1 %% of the keys (distinct, random) "+
		"incremented before each, and writes every snapshot as a checkpoint exactly as the coordinator does "+
		"(`kv.WriteKeyGroup` / `kv.WriteChanges` per changed key group, 8 in parallel, SHA-256-named files under `shared/`, "+
		"then the manifest; a key group starts a new chain with a full file every 10 files or when its deltas pass 0.5 "+
		"of its full file) into `checkpoint/storage.Local` and, when an S3 server is configured, into `checkpoint/storage.S3`. "+
		"Then it restores the last checkpoint (the longest chain: a full file and 9 deltas per key group) into a fresh "+
		"backend, verifying checksums, and checks every restored count.\n\n")
	fmt.Fprintf(w, "- S3: %s\n", s3Note)
	fmt.Fprintf(w, "- Synchronous stall = `Backend.Snapshot()` on the owner goroutine between write batches; p99 by nearest rank "+
		"over the 50 snapshots of a run (so the largest of them).\n")
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
	line("mean bytes written per checkpoint ÷ full (periodic full files included)", f("avg_written_ratio", "%.1f %%", 100))
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

	// Summary: the targets are for the memory backend at 1 M
	// keys; Pebble and 10 M keys are shown against the same bars, in
	// parentheses.
	for _, c := range all {
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

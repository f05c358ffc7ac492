package state_test

import (
	"encoding/binary"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
	"github.com/weir-stream/weir/state/pebble"
)

// benchKeys returns the number of keys for a benchmark: def, or
// $WEIR_BENCH_KEYS.
func benchKeys(b *testing.B, def int) int {
	if s := os.Getenv("WEIR_BENCH_KEYS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return def
}

func keyBytes(i int) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], uint64(i))
	return k[:]
}

// BenchmarkMemoryValueStateGetPut is the keyed-state hot path: set the
// current key, read an int64, write it back incremented. One op is one
// get plus one put. Keys are visited round robin; with many keys the
// accesses miss the CPU caches, so the rate is given per state size
// ($WEIR_BENCH_KEYS: one size).
func BenchmarkMemoryValueStateGetPut(b *testing.B) {
	sizes := []int{1_000, 100_000, 1_000_000}
	if os.Getenv("WEIR_BENCH_KEYS") != "" {
		sizes = []int{benchKeys(b, 0)}
	}
	for _, n := range sizes {
		b.Run("keys="+strconv.Itoa(n), func(b *testing.B) { benchGetPut(b, n) })
	}
}

func benchGetPut(b *testing.B, n int) {
	mb, err := memory.New(kv.Config{})
	if err != nil {
		b.Fatal(err)
	}
	c, err := state.NewKeyedContext(mb)
	if err != nil {
		b.Fatal(err)
	}
	counts, err := state.NewValueState[int64](c, "count")
	if err != nil {
		b.Fatal(err)
	}
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = keyBytes(i)
		_ = c.SetCurrentKey(keys[i])
		_ = counts.Update(0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if err := c.SetCurrentKey(keys[i]); err != nil {
			b.Fatal(err)
		}
		v, _, _ := counts.Value()
		_ = counts.Update(v + 1)
		i++
		if i == n {
			i = 0
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkMemoryBytesPerKey reports the heap bytes per key of an int64
// count in the memory backend (8-byte keys).
func BenchmarkMemoryBytesPerKey(b *testing.B) {
	n := benchKeys(b, 1_000_000)
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		mb, _ := memory.New(kv.Config{})
		c, _ := state.NewKeyedContext(mb)
		counts, _ := state.NewValueState[int64](c, "count")
		for i := range n {
			_ = c.SetCurrentKey(keyBytes(i))
			_ = counts.Update(int64(i))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "bytes/key")
		b.ReportMetric(float64(mb.Stats().TotalBytes)/float64(n), "est-bytes/key")
		runtime.KeepAlive(counts)
	}
}

// BenchmarkPebbleBatchedPut writes int64 values through a ValueState on
// Pebble, flushing every 1000 writes (one input batch).
func BenchmarkPebbleBatchedPut(b *testing.B) {
	pb, err := pebble.Open(b.TempDir(), pebble.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer pb.Close()
	c, _ := state.NewKeyedContext(pb)
	counts, _ := state.NewValueState[int64](c, "count")
	n := benchKeys(b, 1_000_000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = c.SetCurrentKey(keyBytes(i % n))
		if err := counts.Update(int64(i)); err != nil {
			b.Fatal(err)
		}
		i++
		if i%1000 == 0 {
			if err := c.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	_ = c.Flush()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkPebbleRead reads random keys of a loaded Pebble state through a
// 64 MB block cache. $WEIR_BENCH_KEYS sets the state size (default 1 M
// keys; the figure is for 10 M).
func BenchmarkPebbleRead(b *testing.B) {
	n := benchKeys(b, 1_000_000)
	pb, err := pebble.Open(b.TempDir(), pebble.Options{CacheSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer pb.Close()
	c, _ := state.NewKeyedContext(pb)
	counts, _ := state.NewValueState[int64](c, "count")
	for i := range n {
		_ = c.SetCurrentKey(keyBytes(i))
		_ = counts.Update(int64(i))
		if i%10000 == 9999 {
			_ = c.Flush()
		}
	}
	_ = c.Flush()
	b.ReportAllocs()
	b.ResetTimer()
	x := uint64(1)
	for b.Loop() {
		x = x*6364136223846793005 + 1442695040888963407
		i := int((x >> 33) % uint64(n))
		_ = c.SetCurrentKey(keyBytes(i))
		v, ok, err := counts.Value()
		if err != nil || !ok || v != int64(i) {
			b.Fatalf("key %d: %v %v %v", i, v, ok, err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
}

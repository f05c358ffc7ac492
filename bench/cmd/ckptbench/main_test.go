package main

import (
	"context"
	"testing"

	"github.com/weir-stream/weir/state"
)

// A small run of each backend: the checkpoints it writes restore to the
// expected counts (run checks them) and deltas are a small part of a full
// checkpoint.
func TestRunSmall(t *testing.T) {
	for _, kind := range []state.BackendKind{state.BackendMemory, state.BackendPebble} {
		t.Run(string(kind), func(t *testing.T) {
			res, err := run(context.Background(), kind, 20_000, 0.01, 20, t.TempDir(), 1, true)
			if err != nil {
				t.Fatal(err)
			}
			if res.FullBytes == 0 || res.IncrBytes == 0 || res.IncrRatio > 0.05 {
				t.Fatalf("full %d bytes, incremental %d bytes (ratio %.3f)", res.FullBytes, res.IncrBytes, res.IncrRatio)
			}
			// Every key group has a chain of a full file and at most
			// fullEvery-1 deltas; after 20 snapshots (a periodic full
			// checkpoint at the 11th) the longest has all of them.
			if res.RestoreFiles < 128 || res.RestoreFiles > 128*fullEvery {
				t.Fatalf("restored %d files, want 128 to %d", res.RestoreFiles, 128*fullEvery)
			}
			if res.RestoreChain != fullEvery {
				t.Fatalf("longest restored chain %d files, want %d", res.RestoreChain, fullEvery)
			}
		})
	}
}

func TestPct(t *testing.T) {
	xs := make([]float64, 50)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	if p := pct(xs, 50); p != 25 {
		t.Fatalf("p50 = %v", p)
	}
	if p := pct(xs, 99); p != 50 {
		t.Fatalf("p99 = %v", p)
	}
}

package kv

import "testing"

func TestKeyGroupOf(t *testing.T) {
	// murmur3 x86 32-bit, seed 0: the hash Flink-style key groups use.
	if got := KeyGroupOf([]byte("hello"), 1<<30); got != 0x248bfa47%(1<<30) {
		t.Fatalf("KeyGroupOf(hello) = %#x", got)
	}
	counts := make([]int, 128)
	for i := range 128000 {
		counts[KeyGroupOf([]byte{byte(i), byte(i >> 8), byte(i >> 16)}, 128)]++
	}
	for kg, n := range counts {
		if n < 800 || n > 1200 {
			t.Fatalf("key group %d got %d of 128000 keys", kg, n)
		}
	}
}

func TestRangeForWorker(t *testing.T) {
	for _, maxKG := range []int{1, 7, 128, 1000} {
		for workers := 1; workers <= min(maxKG, 40); workers++ {
			next := 0
			for w := range workers {
				r := RangeForWorker(maxKG, workers, w)
				if r.Start != next || r.Len() < maxKG/workers || r.Len() > maxKG/workers+1 {
					t.Fatalf("RangeForWorker(%d, %d, %d) = %v", maxKG, workers, w, r)
				}
				for kg := r.Start; kg < r.End; kg++ {
					if got := WorkerForKeyGroup(maxKG, workers, kg); got != w {
						t.Fatalf("WorkerForKeyGroup(%d, %d, %d) = %d, want %d", maxKG, workers, kg, got, w)
					}
				}
				next = r.End
			}
			if next != maxKG {
				t.Fatalf("ranges of %d workers end at %d, want %d", workers, next, maxKG)
			}
		}
	}
	// Flink's figures: 128 key groups over 3 workers.
	if r := RangeForWorker(128, 3, 1); r != (KeyGroupRange{43, 86}) {
		t.Fatalf("RangeForWorker(128, 3, 1) = %v", r)
	}
}

func TestConfigDefaults(t *testing.T) {
	var c Config
	if err := c.EnsureDefaults(); err != nil || c.MaxKeyGroups != 128 || c.KeyGroups != (KeyGroupRange{0, 128}) || c.Clock == nil {
		t.Fatalf("%+v %v", c, err)
	}
	for _, bad := range []Config{
		{MaxKeyGroups: MaxKeyGroupsLimit + 1},
		{MaxKeyGroups: 8, KeyGroups: KeyGroupRange{4, 9}},
		{MaxKeyGroups: 8, KeyGroups: KeyGroupRange{5, 5}},
	} {
		if err := bad.EnsureDefaults(); err == nil {
			t.Fatalf("%+v accepted", bad)
		}
	}
}

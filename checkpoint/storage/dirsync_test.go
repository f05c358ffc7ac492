package storage

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDirSyncerCoversEveryCaller checks the group commit's promise: every
// caller returns only after an fsync that started after it arrived, and
// concurrent callers share fsyncs.
func TestDirSyncerCoversEveryCaller(t *testing.T) {
	s := newDirSyncer()
	var clock atomic.Int64 // logical time: arrivals and fsync starts/ends
	type span struct{ start, end int64 }
	var mu sync.Mutex
	var syncs []span
	s.sync = func(dir string) error {
		start := clock.Add(1)
		time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		end := clock.Add(1)
		mu.Lock()
		syncs = append(syncs, span{start, end})
		mu.Unlock()
		return nil
	}
	const callers = 400
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dir := []string{"a", "b"}[i%2]
			arrived := clock.Add(1)
			if err := s.syncAfter(dir); err != nil {
				t.Error(err)
			}
			returned := clock.Add(1)
			mu.Lock()
			defer mu.Unlock()
			for _, sp := range syncs {
				if sp.start > arrived && sp.end < returned {
					return
				}
			}
			t.Errorf("caller %d (arrived %d, returned %d): no fsync started after it arrived and ended before it returned", i, arrived, returned)
		}()
	}
	wg.Wait()
	if len(syncs) >= callers {
		t.Errorf("%d fsyncs for %d concurrent callers: none shared", len(syncs), callers)
	}
	if len(s.dirs) != 0 {
		t.Errorf("%d directories left in the syncer", len(s.dirs))
	}
	t.Logf("%d callers, %d fsyncs", callers, len(syncs))
}

// TestDirSyncerError: the callers of a failed fsync get its error.
func TestDirSyncerError(t *testing.T) {
	s := newDirSyncer()
	boom := errors.New("boom")
	s.sync = func(string) error { return boom }
	if err := s.syncAfter("d"); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

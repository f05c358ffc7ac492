package checkpoint_test

import (
	"context"
	"testing"
	"time"

	"github.com/weir-stream/weir/checkpoint"
	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/checkpoint/storage/storagetest"
)

// TestCheckpointsOnS3 runs checkpoint, crash and restore against the real
// S3 server that make test starts (MinIO).
func TestCheckpointsOnS3(t *testing.T) {
	env := storagetest.S3FromEnv(t)
	store := env.NewS3(t)
	const total, keys = 20000, 500
	in := &seqInput{total: total, batch: 100, keys: keys, pauseAt: 5000, paused: make(chan struct{}), release: make(chan struct{})}
	h := newHarness(t, store, in, 3, checkpoint.Config{})
	if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	wait := h.start(t, ctx)
	<-in.paused
	id, err := h.coord.CreateCheckpoint(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stop()
	close(in.release)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	in2 := &seqInput{total: total, batch: 100, keys: keys}
	h2 := newHarness(t, store, in2, 2, checkpoint.Config{})
	m, err := h2.coord.Restore(context.Background(), id, false)
	if err != nil || m == nil {
		t.Fatalf("Restore from S3 = %v, %v", m, err)
	}
	if err := h2.start(t, context.Background())(); err != nil {
		t.Fatal(err)
	}
	if got, want := h2.out.sorted(), expectedCounts(total, keys); !equal(got, want) {
		t.Fatal("counts after a restore from S3 differ from an uninterrupted run")
	}
}

// TestS3OutageFailsOnlyThatCheckpoint stops the S3 server while the stream
// runs: that checkpoint fails, the stream goes on, and the next checkpoint
// succeeds once S3 is back.
func TestS3OutageFailsOnlyThatCheckpoint(t *testing.T) {
	mio := storagetest.StartMinIO(t)
	store := mio.Env.NewS3(t, storage.WithRetryPolicy(storage.RetryPolicy{MaxAttempts: 2, BaseDelay: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}),
		storage.WithTimeouts(time.Second, 2*time.Second))
	in := &seqInput{total: 1 << 40, batch: 100, keys: 1000}
	h := newHarness(t, store, in, 2, checkpoint.Config{Timeout: 20 * time.Second, TolerableFailures: 3})
	if _, err := h.coord.Restore(context.Background(), 0, false); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	wait := h.start(t, ctx)
	if _, err := h.coord.CreateCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	mio.Stop(t)
	before, _, _ := h.stream.Progress()
	if _, err := h.coord.CreateCheckpoint(context.Background()); err == nil {
		t.Fatal("a checkpoint succeeded while S3 was down")
	}
	// The stream kept going meanwhile.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if now, _, _ := h.stream.Progress(); now > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stream stopped while S3 was down")
		}
		time.Sleep(5 * time.Millisecond)
	}
	mio.Start(t)
	id, err := h.coord.CreateCheckpoint(context.Background())
	if err != nil {
		t.Fatalf("the checkpoint after S3 came back failed: %v", err)
	}
	stop()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	good, _, err := h.coord.List(context.Background())
	if err != nil || len(good) == 0 || good[0].ID < id {
		t.Fatalf("manifests after the outage: %v %v", len(good), err)
	}
}

package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// brokerVersions are the clusters the exactly-once tests run against: the
// newest protocol (KIP-890: the broker bumps the producer epoch at every
// EndTxn) and Kafka 3.9, which keeps the epoch across transactions.
var brokerVersions = []struct {
	name string
	opts []kfake.Opt
}{
	{"kip890", nil},
	{"kafka3.9", []kfake.Opt{kfake.MaxVersions(kversion.V3_9_0())}},
}

func forEachBroker(t *testing.T, fn func(t *testing.T, addrs []string, c *kfake.Cluster)) {
	for _, v := range brokerVersions {
		t.Run(v.name, func(t *testing.T) {
			c := newCluster(t, v.opts...)
			fn(t, c.ListenAddrs(), c)
		})
	}
}

// newEOOutput builds an exactly-once kafka output writing to "out".
func newEOOutput(t testing.TB, addrs []string, vals map[string]any) *output {
	t.Helper()
	if vals == nil {
		vals = map[string]any{}
	}
	vals["exactly_once"] = true
	if _, ok := vals["transactional_id"]; !ok {
		vals["transactional_id"] = "weir-test"
	}
	o := newTestOutput(t, addrs, vals)
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o
}

// startEO recovers o (from id and handle) and connects it.
func startEO(t testing.TB, ctx context.Context, o *output, id uint64, handle []byte) {
	t.Helper()
	if err := o.Recover(ctx, id, handle); err != nil {
		t.Fatalf("recover %d: %v", id, err)
	}
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
}

// crash stops o the way a killed process does: its clients go away
// without ending any transaction.
func crash(o *output) {
	o.txn.mu.Lock()
	o.txn.cur = nil
	o.txn.mu.Unlock()
	_ = o.Close(context.Background())
}

func values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

func write(t testing.TB, ctx context.Context, o *output, vals ...string) {
	t.Helper()
	if err := o.Write(ctx, message.FromStrings(vals...)); err != nil {
		t.Fatalf("write %s...: %v", vals[0], err)
	}
}

func preCommit(t testing.TB, ctx context.Context, o *output, id uint64) []byte {
	t.Helper()
	h, err := o.PreCommit(ctx, id)
	if err != nil {
		t.Fatalf("pre-commit %d: %v", id, err)
	}
	return h
}

func commit(t testing.TB, ctx context.Context, o *output, id uint64, h []byte) {
	t.Helper()
	if err := o.Commit(ctx, id, h); err != nil {
		t.Fatalf("commit %d: %v", id, err)
	}
}

// visible returns, sorted, the values a read_committed consumer of topic
// sees now: every record below each partition's last stable offset that
// is not in an aborted transaction. It must be called when the records
// just below a partition's last stable offset are not all aborted (the
// consumer cannot tell it has read everything otherwise).
func visible(t testing.TB, addrs []string, topic string) []string {
	t.Helper()
	ctx := testCtx(t, 15*time.Second)
	plain, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	listed, err := kadm.NewClient(plain).ListCommittedOffsets(ctx, topic)
	plain.Close()
	if err != nil {
		t.Fatal(err)
	}
	ends := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("last stable offset of %s/%d: %v", topic, o.Partition, o.Err)
		}
		if o.Offset > 0 {
			ends[o.Partition] = o.Offset
			start[o.Partition] = kgo.NewOffset().At(0)
		}
	})
	if len(ends) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	next := map[int32]int64{}
	for done := false; !done; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed consumer of %s reached %v of %v", topic, next, ends)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] {
				return
			}
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
			if !r.Attrs.IsControl() {
				out = append(out, string(r.Value))
			}
		})
		done = true
		for p, end := range ends {
			if next[p] < end {
				done = false
			}
		}
	}
	slices.Sort(out)
	return out
}

func wantCommitted(t testing.TB, addrs []string, want ...[]string) {
	t.Helper()
	var all []string
	for _, w := range want {
		all = append(all, w...)
	}
	slices.Sort(all)
	if got := visible(t, addrs, "out"); !slices.Equal(got, all) {
		t.Fatalf("read_committed sees %d records %v,\nwant %d %v", len(got), abbrev(got), len(all), abbrev(all))
	}
}

func abbrev(s []string) []string {
	if len(s) > 12 {
		return append(slices.Clip(s[:12]), "...")
	}
	return s
}

func handleOf(t testing.TB, data []byte) txnHandle {
	t.Helper()
	var h txnHandle
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("handle %s: %v", data, err)
	}
	return h
}

// PreCommit makes nothing visible; Commit(N) makes exactly epoch N visible,
// not the records written after barrier N.
func TestExactlyOnceCommit(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		o := newEOOutput(t, addrs, nil)
		if !o.ExactlyOnce() {
			t.Fatal("ExactlyOnce() is false")
		}
		startEO(t, ctx, o, 0, nil)
		a, b := values("a", 30), values("b", 20)
		write(t, ctx, o, a[:10]...)
		write(t, ctx, o, a[10:]...)
		h1 := preCommit(t, ctx, o, 1)
		if h := handleOf(t, h1); h.Empty || h.TransactionalID != "weir-test-0" || h.ProducerID < 0 || h.Pool != txnPoolSize {
			t.Fatalf("handle 1: %s", h1)
		}
		wantCommitted(t, addrs)

		write(t, ctx, o, b...)
		h2 := preCommit(t, ctx, o, 2)
		if h := handleOf(t, h2); h.TransactionalID == handleOf(t, h1).TransactionalID {
			t.Fatalf("epochs 1 and 2 share transactional id %s", h.TransactionalID)
		}
		wantCommitted(t, addrs)
		commit(t, ctx, o, 1, h1)
		wantCommitted(t, addrs, a)
		commit(t, ctx, o, 1, h1) // idempotent
		commit(t, ctx, o, 2, h2)
		wantCommitted(t, addrs, a, b)
		commit(t, ctx, o, 2, h2)
		if err := o.Close(ctx); err != nil {
			t.Fatal(err)
		}
		wantCommitted(t, addrs, a, b)
	})
}

// Records written after PreCommit(N) while N waits for its checkpoint
// belong to N+1: Commit(N) does not commit them, Close aborts them.
func TestExactlyOnceLaterEpochNotCommitted(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		o := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o, 0, nil)
		a, b := values("a", 10), values("b", 10)
		write(t, ctx, o, a...)
		h1 := preCommit(t, ctx, o, 1)
		write(t, ctx, o, b...)
		commit(t, ctx, o, 1, h1)
		wantCommitted(t, addrs, a)
		if err := o.Close(ctx); err != nil {
			t.Fatal(err)
		}
		wantCommitted(t, addrs, a)
	})
}

// Abort discards a pre-committed epoch, and an open one when its barrier
// arrives; the epochs after it commit normally.
func TestExactlyOnceAbort(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		o := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o, 0, nil)
		a, b, c, d, e := values("a", 10), values("b", 10), values("c", 10), values("d", 10), values("e", 10)

		write(t, ctx, o, a...)
		h1 := preCommit(t, ctx, o, 1)
		write(t, ctx, o, b...)
		if err := o.Abort(ctx, 1); err != nil {
			t.Fatal(err)
		}
		h2 := preCommit(t, ctx, o, 2)
		commit(t, ctx, o, 2, h2)
		wantCommitted(t, addrs, b)
		if err := o.Commit(ctx, 1, h1); err == nil {
			t.Fatal("commit of an aborted epoch succeeded")
		}

		// Checkpoint 3 fails before its barrier reaches the output.
		write(t, ctx, o, c...)
		if err := o.Abort(ctx, 3); err != nil {
			t.Fatal(err)
		}
		write(t, ctx, o, d...)
		if _, err := o.PreCommit(ctx, 3); err == nil {
			t.Fatal("pre-commit of an aborted checkpoint succeeded")
		}
		write(t, ctx, o, e...)
		h4 := preCommit(t, ctx, o, 4)
		commit(t, ctx, o, 4, h4)
		wantCommitted(t, addrs, b, e)
	})
}

// An epoch without records has an empty handle, and its Commit and
// Recover do nothing.
func TestExactlyOnceEmptyEpochs(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		o := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o, 0, nil)
		h1 := preCommit(t, ctx, o, 1)
		if h := handleOf(t, h1); !h.Empty || h.TransactionalID != "" {
			t.Fatalf("handle of an empty epoch: %s", h1)
		}
		commit(t, ctx, o, 1, h1)
		a := values("a", 5)
		write(t, ctx, o, a...)
		h2 := preCommit(t, ctx, o, 2)
		commit(t, ctx, o, 2, h2)
		for id := uint64(3); id < 8; id++ { // more empty epochs than producers
			h := preCommit(t, ctx, o, id)
			if !handleOf(t, h).Empty {
				t.Fatalf("handle %d: %s", id, h)
			}
			commit(t, ctx, o, id, h)
		}
		h8 := preCommit(t, ctx, o, 8)
		crash(o)

		o2 := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o2, 8, h8)
		b := values("b", 5)
		write(t, ctx, o2, b...)
		h9 := preCommit(t, ctx, o2, 9)
		commit(t, ctx, o2, 9, h9)
		wantCommitted(t, addrs, a, b)
	})
}

// A crash after checkpoint N's manifest was written but before Commit(N):
// Recover in a new instance commits N from its handle and aborts the later
// open epoch; a crash after Commit(N) re-commits N idempotently.
func TestExactlyOnceRecover(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, c *kfake.Cluster) {
		for _, committedBefore := range []bool{false, true} {
			t.Run(fmt.Sprintf("committed=%v", committedBefore), func(t *testing.T) {
				ctx := testCtx(t, 60*time.Second)
				topic := fmt.Sprintf("out-%v", committedBefore)
				if err := c.CreateTopic(topic, 2, nil); err != nil {
					t.Fatal(err)
				}
				vals := func() map[string]any { return map[string]any{"topic": topic, "transactional_id": "tx-" + topic} }
				a, b, c := values("a", 10), values("b", 10), values("c", 10)
				old := newEOOutput(t, addrs, vals())
				startEO(t, ctx, old, 0, nil)
				write(t, ctx, old, a...)
				h1 := preCommit(t, ctx, old, 1)
				if committedBefore {
					commit(t, ctx, old, 1, h1)
				}
				write(t, ctx, old, b...) // epoch 2, never pre-committed
				crash(old)

				o := newEOOutput(t, addrs, vals())
				startEO(t, ctx, o, 1, h1)
				if got := visible(t, addrs, topic); !slices.Equal(got, a) {
					t.Fatalf("after recovery read_committed sees %v, want %v", abbrev(got), a)
				}
				commit(t, ctx, o, 1, h1) // the coordinator may commit the restored checkpoint again
				write(t, ctx, o, c...)
				h2 := preCommit(t, ctx, o, 2)
				commit(t, ctx, o, 2, h2)
				want := append(slices.Clone(a), c...)
				slices.Sort(want)
				if got := visible(t, addrs, topic); !slices.Equal(got, want) {
					t.Fatalf("read_committed sees %v, want %v", abbrev(got), abbrev(want))
				}
			})
		}
	})
}

// The pitfall of DESIGN §4: a later transaction must never run under the
// producer id and epoch of one that recovery may re-commit. Epoch 1 is
// committed, epoch 2 pre-committed but its checkpoint never completes,
// epoch 3 is open at the crash: recovery re-commits 1, and neither 2 nor 3
// may become visible. Then the same with a later checkpoint completed, so
// that the first producer is reused.
func TestExactlyOnceRecoverNeverCommitsLaterEpochs(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		a, b, c := values("a", 10), values("b", 10), values("c", 10)
		old := newEOOutput(t, addrs, nil)
		startEO(t, ctx, old, 0, nil)
		write(t, ctx, old, a...)
		h1 := preCommit(t, ctx, old, 1)
		commit(t, ctx, old, 1, h1)
		write(t, ctx, old, b...)
		h2 := preCommit(t, ctx, old, 2)
		write(t, ctx, old, c...)
		crash(old)
		o := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o, 1, h1)
		wantCommitted(t, addrs, a)
		if handleOf(t, h2).TransactionalID == handleOf(t, h1).TransactionalID {
			t.Fatalf("epochs 1 and 2 on one producer: %s %s", h1, h2)
		}

		// Checkpoints 2 and 3 complete, so epoch 4 reuses the producer of
		// epoch 2 — under a new epoch.
		d, e, f := values("d", 10), values("e", 10), values("f", 10)
		write(t, ctx, o, d...)
		h2 = preCommit(t, ctx, o, 2)
		commit(t, ctx, o, 2, h2)
		write(t, ctx, o, e...)
		h3 := preCommit(t, ctx, o, 3)
		commit(t, ctx, o, 3, h3)
		write(t, ctx, o, f...)
		h4 := preCommit(t, ctx, o, 4)
		p2, p4 := handleOf(t, h2), handleOf(t, h4)
		if p2.TransactionalID == p4.TransactionalID && p2.ProducerID == p4.ProducerID && p2.ProducerEpoch == p4.ProducerEpoch {
			t.Fatalf("epochs 2 and 4 under one producer id and epoch: %s %s", h2, h4)
		}
		crash(o)
		o2 := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o2, 3, h3) // checkpoint 4 never completed
		wantCommitted(t, addrs, a, d, e)
		if err := o2.Close(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// A pipeline restarted with the handle of an older complete checkpoint
// (the newest was lost): the old run committed it and reused its
// producer; recovery must not fail, nor commit the later transaction.
func TestExactlyOnceRecoverAfterEarlierRecovery(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		a, b := values("a", 10), values("b", 10)
		old := newEOOutput(t, addrs, nil)
		startEO(t, ctx, old, 0, nil)
		write(t, ctx, old, a...)
		h1 := preCommit(t, ctx, old, 1)
		crash(old)
		// The first restart recovers and crashes while writing epoch 2.
		first := newEOOutput(t, addrs, nil)
		startEO(t, ctx, first, 1, h1)
		write(t, ctx, first, b...)
		crash(first)
		// The second restart recovers the same checkpoint: the epoch of
		// its producer has moved on (the first restart committed it).
		second := newEOOutput(t, addrs, nil)
		startEO(t, ctx, second, 1, h1)
		wantCommitted(t, addrs, a)
	})
}

// Once a new instance recovered, the old one is a zombie: its Commit and
// its Writes fail with ErrFenced and nothing it writes becomes visible.
func TestExactlyOnceZombieFenced(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		a, b, c := values("a", 10), values("b", 10), values("c", 10)
		zombie := newEOOutput(t, addrs, nil)
		startEO(t, ctx, zombie, 0, nil)
		write(t, ctx, zombie, a...)
		h1 := preCommit(t, ctx, zombie, 1)
		write(t, ctx, zombie, b...)
		h2 := preCommit(t, ctx, zombie, 2)

		o := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o, 1, h1)
		// Recovery aborted epoch 2: the broker says fenced, or (KIP-890)
		// that the transaction was aborted.
		if err := zombie.Commit(ctx, 2, h2); !errors.Is(err, ErrFenced) && !errors.Is(err, ErrTransactionLost) {
			t.Fatalf("zombie commit: %v, want ErrFenced or ErrTransactionLost", err)
		}
		if err := zombie.Write(ctx, message.FromStrings(c...)); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie write: %v, want ErrFenced", err)
		}
		if err := zombie.Write(ctx, message.FromStrings(c...)); err == nil {
			t.Fatal("second zombie write succeeded")
		}
		if _, err := zombie.PreCommit(ctx, 3); err == nil {
			t.Fatal("zombie pre-commit succeeded")
		}
		_ = zombie.Close(ctx)
		wantCommitted(t, addrs, a)
	})
}

// A transaction that the broker aborted at its timeout before recovery
// could commit it is reported, not taken for committed.
func TestExactlyOnceRecoverTimedOut(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	ctx := testCtx(t, 60*time.Second)
	vals := func() map[string]any { return map[string]any{"transactional_timeout": time.Second} }
	old := newEOOutput(t, addrs, vals())
	startEO(t, ctx, old, 0, nil)
	write(t, ctx, old, values("a", 5)...)
	h1 := preCommit(t, ctx, old, 1)
	crash(old)
	// Wait for the broker to abort the transaction: the abort marker
	// unblocks read_committed readers.
	plain, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	adm := kadm.NewClient(plain)
	for {
		stable, err1 := adm.ListCommittedOffsets(ctx, "out")
		end, err2 := adm.ListEndOffsets(ctx, "out")
		if err := errors.Join(err1, err2, ctx.Err()); err != nil {
			t.Fatal(err)
		}
		same := true
		end.Each(func(o kadm.ListedOffset) {
			if s, _ := stable.Lookup("out", o.Partition); s.Offset != o.Offset {
				same = false
			}
		})
		if same {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	o := newEOOutput(t, addrs, vals())
	err = o.Recover(ctx, 1, h1)
	if !errors.Is(err, ErrTransactionLost) {
		t.Fatalf("recover a timed-out transaction: %v, want ErrTransactionLost", err)
	}
	wantCommitted(t, addrs)
}

// Commit(N) runs on the coordinator's goroutine while the sink writes
// epoch N+1; every record is committed exactly once.
func TestExactlyOnceConcurrentCommit(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		o := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o, 0, nil)
		type done struct {
			id     uint64
			handle []byte
		}
		const epochs, batches, rows = 12, 4, 25
		ch := make(chan done, 1)
		errc := make(chan error, 1)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			var first error
			for d := range ch {
				if err := o.Commit(ctx, d.id, d.handle); err != nil && first == nil {
					first = err
				}
			}
			errc <- first
		}()
		var want []string
		for id := uint64(1); id <= epochs; id++ {
			for j := 0; j < batches; j++ {
				vs := values(fmt.Sprintf("e%d-b%d-", id, j), rows)
				want = append(want, vs...)
				write(t, ctx, o, vs...)
			}
			ch <- done{id, preCommit(t, ctx, o, id)}
		}
		close(ch)
		wg.Wait()
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
		wantCommitted(t, addrs, want)
	})
}

// A record too large for a batch is refused with its batch before
// anything is produced, so the transaction stays good.
func TestExactlyOnceRecordTooLarge(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	ctx := testCtx(t, 30*time.Second)
	o := newEOOutput(t, addrs, map[string]any{"batch_max_bytes": int64(1024)})
	startEO(t, ctx, o, 0, nil)
	a := values("a", 5)
	write(t, ctx, o, a...)
	err := o.Write(ctx, message.FromStrings("small", strings.Repeat("x", 2000)))
	if !component.IsPermanent(err) {
		t.Fatalf("write of a record too large: %v, want a permanent error", err)
	}
	h1 := preCommit(t, ctx, o, 1)
	commit(t, ctx, o, 1, h1)
	wantCommitted(t, addrs, a)
}

// A record that fails inside a transaction fails the output for good: the
// epoch can neither be committed (records would be lost) nor written again
// (records would be duplicated).
func TestExactlyOnceFailedWriteIsSticky(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	ctx := testCtx(t, 30*time.Second)
	o := newEOOutput(t, addrs, map[string]any{"topic": "missing"})
	startEO(t, ctx, o, 0, nil)
	for i := 0; i < 2; i++ {
		err := o.Write(ctx, message.FromStrings("x"))
		if !errors.Is(err, ErrTransactionFailed) {
			t.Fatalf("write %d to a missing topic: %v, want ErrTransactionFailed", i, err)
		}
	}
	if _, err := o.PreCommit(ctx, 1); !errors.Is(err, ErrTransactionFailed) {
		t.Fatalf("pre-commit after a failed write: %v", err)
	}
}

func TestExactlyOnceConfig(t *testing.T) {
	conf := func(vals map[string]any) *component.Config {
		vals["brokers"] = []any{"x:9092"}
		vals["topic"] = "orders"
		return testConfig(component.KindOutput, outputSpec(), vals)
	}
	_, err := newOutput(conf(map[string]any{"exactly_once": true, "acks": "leader"}), component.Resources{})
	if err == nil || !strings.Contains(err.Error(), "streams[0].output.acks:") {
		t.Errorf("exactly_once with acks leader: %v", err)
	}
	o, err := newOutput(conf(map[string]any{"exactly_once": true}), component.Resources{Stream: "s1", Label: "output.kafka"})
	if err != nil {
		t.Fatal(err)
	}
	if got := o.(*output).txn.slots[1].tid; got != "weir-s1-orders-1" {
		t.Errorf("default transactional id %q", got)
	}
	eo, err := newOutput(conf(map[string]any{"exactly_once": true}), component.Resources{Stream: "s1", Label: "error_output.kafka"})
	if err != nil {
		t.Fatal(err)
	}
	if got := eo.(*output).txn.base; got != "weir-s1-orders-error" {
		t.Errorf("default transactional id of an error_output %q", got)
	}
	alo, err := newOutput(conf(map[string]any{}), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	if alo.(component.ExactlyOnce).ExactlyOnce() {
		t.Error("at-least-once output reports ExactlyOnce")
	}

	for _, c := range []struct {
		vals              map[string]any
		interval, timeout time.Duration
		wantErr           bool
		typ               string
	}{
		{map[string]any{"exactly_once": true}, time.Minute, 10 * time.Minute, false, "kafka"},
		{map[string]any{"exactly_once": true, "transactional_timeout": time.Minute}, time.Second, time.Minute, true, "kafka"},
		{map[string]any{"exactly_once": true, "transactional_timeout": 2 * time.Minute}, time.Second, 59 * time.Second, true, "kafka"},
		{map[string]any{"exactly_once": true, "transactional_timeout": 2 * time.Minute}, time.Second, 50 * time.Second, false, "kafka"},
		{map[string]any{"exactly_once": false, "transactional_timeout": time.Second}, time.Minute, time.Minute, false, "kafka"},
		{map[string]any{"exactly_once": true}, time.Hour, time.Hour, false, "file"},
	} {
		cfg := conf(c.vals)
		cfg.Type = c.typ
		err := CheckTransactionTimeout(cfg, c.interval, c.timeout)
		if (err != nil) != c.wantErr || err != nil && !strings.Contains(err.Error(), "streams[0].output.transactional_timeout:") {
			t.Errorf("%v, interval %v, timeout %v: %v", c.vals, c.interval, c.timeout, err)
		}
	}
}

// Recover must come before Connect: a started pool may hold a
// pre-committed transaction that initializing the producers would abort.
func TestExactlyOnceRecoverAfterConnect(t *testing.T) {
	c := newCluster(t)
	ctx := testCtx(t, 30*time.Second)
	o := newEOOutput(t, c.ListenAddrs(), nil)
	if err := o.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := o.Recover(ctx, 0, nil); err == nil {
		t.Fatal("Recover after Connect succeeded")
	}
}

// BenchmarkOutputExactlyOnce compares the write throughput of the output
// at-least-once and exactly-once, with a checkpoint every 20 writes (2 MB)
// and, the worst case, after every write (100 kB), committed on another
// goroutine as the coordinator does.
func BenchmarkOutputExactlyOnce(b *testing.B) {
	const rows, size = 1000, 100
	vals := make([][]byte, rows)
	for i := range vals {
		vals[i] = bytes.Repeat([]byte{byte('a' + i%26)}, size)
	}
	batch := message.FromValues(vals)
	for _, mode := range []struct {
		name          string
		perCheckpoint int // 0: at-least-once
	}{{"at-least-once", 0}, {"exactly-once", 20}, {"exactly-once-checkpoint-every-write", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			c := newCluster(b)
			addrs := c.ListenAddrs()
			ctx := context.Background()
			eo, perCheckpoint := mode.perCheckpoint > 0, mode.perCheckpoint
			out := newTestOutput(b, addrs, map[string]any{"exactly_once": eo, "transactional_id": "bench"})
			if eo {
				if err := out.Recover(ctx, 0, nil); err != nil {
					b.Fatal(err)
				}
			}
			if err := out.Connect(ctx); err != nil {
				b.Fatal(err)
			}
			type done struct {
				id     uint64
				handle []byte
			}
			ch := make(chan done, 1)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for d := range ch {
					if err := out.Commit(ctx, d.id, d.handle); err != nil {
						b.Error(err)
					}
				}
			}()
			b.SetBytes(rows * size)
			b.ReportAllocs()
			b.ResetTimer()
			id := uint64(0)
			for i := 0; i < b.N; i++ {
				if err := out.Write(ctx, batch); err != nil {
					b.Fatal(err)
				}
				if eo && (i+1)%perCheckpoint == 0 {
					id++
					h, err := out.PreCommit(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					ch <- done{id, h}
				}
			}
			if eo {
				id++
				h, err := out.PreCommit(ctx, id)
				if err != nil {
					b.Fatal(err)
				}
				ch <- done{id, h}
			}
			close(ch)
			wg.Wait()
			b.StopTimer()
			if err := out.Close(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}

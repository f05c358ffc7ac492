package kafka

import (
	"bytes"
	"context"
	"encoding/binary"
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
	out, _ := logOrder(t, addrs, topic)
	slices.Sort(out)
	return out
}

// logOrder is visible in the order of the log (of a topic with one
// partition), with the producer ids of the commit markers in that order.
func logOrder(t testing.TB, addrs []string, topic string) (vals []string, commits []int64) {
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
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
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
			switch {
			case !r.Attrs.IsControl():
				vals = append(vals, string(r.Value))
			case len(r.Key) >= 4 && binary.BigEndian.Uint16(r.Key[2:]) == 1: // version, type: 1 is commit
				commits = append(commits, r.ProducerID)
			}
		})
		done = true
		for p, end := range ends {
			if next[p] < end {
				done = false
			}
		}
	}
	return vals, commits
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

// lastTxn returns the newest transaction a handle names: that of its own
// epoch when that epoch has records.
func lastTxn(t testing.TB, data []byte) txnRef {
	t.Helper()
	h := handleOf(t, data)
	if len(h.Txns) == 0 {
		t.Fatalf("handle %s names no transaction", data)
	}
	return h.Txns[len(h.Txns)-1]
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
		if h := handleOf(t, h1); len(h.Txns) != 1 || h.Txns[0].TransactionalID != "weir-test-0" || h.Txns[0].Checkpoint != 1 ||
			h.Txns[0].ProducerID < 0 || h.Pool != txnPoolSize || h.Base != "weir-test" {
			t.Fatalf("handle 1: %s", h1)
		}
		wantCommitted(t, addrs)

		write(t, ctx, o, b...)
		h2 := preCommit(t, ctx, o, 2)
		if r := lastTxn(t, h2); r.Checkpoint != 2 || r.TransactionalID == lastTxn(t, h1).TransactionalID {
			t.Fatalf("epoch 2 is %+v, epoch 1 %+v", r, lastTxn(t, h1))
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
		if h := handleOf(t, h1); len(h.Txns) != 0 {
			t.Fatalf("handle of an empty epoch: %s", h1)
		}
		commit(t, ctx, o, 1, h1)
		a := values("a", 5)
		write(t, ctx, o, a...)
		h2 := preCommit(t, ctx, o, 2)
		commit(t, ctx, o, 2, h2)
		for id := uint64(3); id < 8; id++ { // more empty epochs than producers
			h := preCommit(t, ctx, o, id)
			if len(handleOf(t, h).Txns) != 0 {
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
		if lastTxn(t, h2).TransactionalID == lastTxn(t, h1).TransactionalID {
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
		p2, p4 := lastTxn(t, h2), lastTxn(t, h4)
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
	waitAborted(t, ctx, addrs, "out")
	o := newEOOutput(t, addrs, vals())
	err := o.Recover(ctx, 1, h1)
	if !errors.Is(err, ErrTransactionLost) {
		t.Fatalf("recover a timed-out transaction: %v, want ErrTransactionLost", err)
	}
	wantCommitted(t, addrs)
}

// waitAborted waits until no transaction is open on topic: the broker
// aborted (at their timeout) those left open.
func waitAborted(t testing.TB, ctx context.Context, addrs []string, topic string) {
	t.Helper()
	plain, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	adm := kadm.NewClient(plain)
	for {
		stable, err1 := adm.ListCommittedOffsets(ctx, topic)
		end, err2 := adm.ListEndOffsets(ctx, topic)
		if err := errors.Join(err1, err2, ctx.Err()); err != nil {
			t.Fatal(err)
		}
		same := true
		end.Each(func(o kadm.ListedOffset) {
			if s, _ := stable.Lookup(topic, o.Partition); s.Offset != o.Offset {
				same = false
			}
		})
		if same {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// poolSize is the number of transactional producers of o.
func poolSize(o *output) int {
	o.txn.mu.Lock()
	defer o.txn.mu.Unlock()
	return len(o.txn.slots)
}

// wantLog checks what a read_committed reader of topic (one partition)
// sees, in order, and that the transactions were committed in the order
// of the handles' epochs (oldest first).
func wantLog(t testing.TB, addrs []string, topic string, want []string, handles ...[]byte) {
	t.Helper()
	vals, commits := logOrder(t, addrs, topic)
	if !slices.Equal(vals, want) {
		t.Fatalf("read_committed reads %d records %v,\nwant %d %v", len(vals), abbrev(vals), len(want), abbrev(want))
	}
	var pids []int64
	for _, h := range handles {
		for _, r := range handleOf(t, h).Txns {
			pids = append(pids, r.ProducerID)
		}
	}
	if !slices.Equal(commits, pids) {
		t.Fatalf("commit markers of producers %v, want %v", commits, pids)
	}
}

// writeEpoch writes the n records of epoch id (one batch) and returns them.
func writeEpoch(t testing.TB, ctx context.Context, o *output, id uint64, n int) []string {
	t.Helper()
	vs := values(fmt.Sprintf("e%d-", id), n)
	write(t, ctx, o, vs...)
	return vs
}

// Checkpoints 1 and 2 fail after their barriers reached the output: the
// engine calls no Commit (nor Abort) for them. Their epochs stay
// pre-committed, every later handle names them, and Commit(3) makes epochs
// 1..3 visible, committed in order, exactly once. Repeated and late
// Commits are successes that change nothing.
func TestExactlyOnceFailedCheckpointsCommittedLater(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, c *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		if err := c.CreateTopic("one", 1, nil); err != nil {
			t.Fatal(err)
		}
		o := newEOOutput(t, addrs, map[string]any{"topic": "one"})
		startEO(t, ctx, o, 0, nil)
		var want []string
		handles := map[uint64][]byte{}
		for id := uint64(1); id <= 3; id++ {
			want = append(want, writeEpoch(t, ctx, o, id, 5)...)
			handles[id] = preCommit(t, ctx, o, id)
			h := handleOf(t, handles[id])
			if len(h.Txns) != int(id) || h.Txns[id-1].Checkpoint != id {
				t.Fatalf("handle %d: %s", id, handles[id])
			}
			if id > 1 && !slices.Equal(h.Txns[:id-1], handleOf(t, handles[id-1]).Txns) {
				t.Fatalf("handle %d: %s does not carry over handle %d: %s", id, handles[id], id-1, handles[id-1])
			}
			wantLog(t, addrs, "one", nil)
		}
		commit(t, ctx, o, 3, handles[3])
		wantLog(t, addrs, "one", want, handles[3])
		for _, id := range []uint64{3, 1, 2, 3} {
			commit(t, ctx, o, id, handles[id])
		}
		wantLog(t, addrs, "one", want, handles[3])

		want = append(want, writeEpoch(t, ctx, o, 4, 5)...)
		h4 := preCommit(t, ctx, o, 4)
		if r := handleOf(t, h4).Txns; len(r) != 1 || r[0].Checkpoint != 4 {
			t.Fatalf("handle 4 after checkpoint 3 committed: %s", h4)
		}
		commit(t, ctx, o, 4, h4)
		wantLog(t, addrs, "one", want, handles[3], h4)
	})
}

// A crash after PreCommit(3), checkpoints 1 and 2 having failed, with
// epoch 4 open: a new instance's Recover(3, handle 3) commits epochs 1..3
// in order and aborts epoch 4. Recovering again (another crash) and
// committing again change nothing.
func TestExactlyOnceRecoverFailedCheckpoints(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, c *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		if err := c.CreateTopic("one", 1, nil); err != nil {
			t.Fatal(err)
		}
		vals := func() map[string]any { return map[string]any{"topic": "one"} }
		old := newEOOutput(t, addrs, vals())
		startEO(t, ctx, old, 0, nil)
		var want []string
		var h3 []byte
		for id := uint64(1); id <= 3; id++ {
			want = append(want, writeEpoch(t, ctx, old, id, 5)...)
			h3 = preCommit(t, ctx, old, id)
		}
		writeEpoch(t, ctx, old, 4, 5)
		crash(old)

		o := newEOOutput(t, addrs, vals())
		startEO(t, ctx, o, 3, h3)
		wantLog(t, addrs, "one", want, h3)
		commit(t, ctx, o, 3, h3) // the coordinator may commit the restored checkpoint again
		crash(o)

		o2 := newEOOutput(t, addrs, vals())
		startEO(t, ctx, o2, 3, h3)
		commit(t, ctx, o2, 3, h3)
		wantLog(t, addrs, "one", want, h3)
		want = append(want, writeEpoch(t, ctx, o2, 5, 5)...)
		h4 := preCommit(t, ctx, o2, 4)
		commit(t, ctx, o2, 4, h4)
		wantLog(t, addrs, "one", want, h3, h4)
	})
}

// Six checkpoints fail in a row after their barriers reached the output.
// Every epoch holds its producer until a checkpoint completes, so the pool
// grows rather than make a Write wait (a deadlock: the barrier that
// completes a checkpoint reaches the output only after that Write); the
// next Commit makes all of them visible, and later epochs reuse the pool.
func TestExactlyOnceManyFailedCheckpoints(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		o := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o, 0, nil)
		var want []string
		var h []byte
		for id := uint64(1); id <= 7; id++ {
			want = append(want, writeEpoch(t, ctx, o, id, 10)...)
			h = preCommit(t, ctx, o, id)
		}
		if hh := handleOf(t, h); len(hh.Txns) != 7 || hh.Pool != poolSize(o) || hh.Pool < 8 {
			t.Fatalf("handle 7 (pool of %d): %s", poolSize(o), h)
		}
		wantCommitted(t, addrs)
		commit(t, ctx, o, 7, h)
		wantCommitted(t, addrs, want)

		id := uint64(8)
		epoch := func() {
			want = append(want, writeEpoch(t, ctx, o, id, 10)...)
			commit(t, ctx, o, id, preCommit(t, ctx, o, id))
			id++
		}
		epoch()
		grown := poolSize(o)
		for range 5 {
			epoch()
		}
		if n := poolSize(o); n != grown {
			t.Fatalf("the pool grew from %d to %d producers while every checkpoint completed", grown, n)
		}
		wantCommitted(t, addrs, want)
	})
}

// Checkpoint 1 completes, checkpoints 2..4 fail and the pool grows past
// the size handle 1 names, and the process crashes with epoch 5 open on a
// producer added after checkpoint 1. Recovery from checkpoint 1 aborts the
// transactions on the added producers too (read_committed readers would
// wait for their timeout otherwise).
func TestExactlyOnceRecoverFencesGrownPool(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, _ *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		old := newEOOutput(t, addrs, nil)
		startEO(t, ctx, old, 0, nil)
		a := writeEpoch(t, ctx, old, 1, 10)
		h1 := preCommit(t, ctx, old, 1)
		commit(t, ctx, old, 1, h1)
		for id := uint64(2); id <= 4; id++ {
			writeEpoch(t, ctx, old, id, 10)
			preCommit(t, ctx, old, id)
		}
		writeEpoch(t, ctx, old, 5, 10)
		if p, open := handleOf(t, h1).Pool, slices.Index(old.txn.slots, old.txn.cur); p != txnPoolSize || open < p {
			t.Fatalf("epoch 5 on producer %d of %d, handle 1: %s", open, poolSize(old), h1)
		}
		crash(old)

		o := newEOOutput(t, addrs, nil)
		startEO(t, ctx, o, 1, h1)
		b := writeEpoch(t, ctx, o, 2, 10)
		h2 := preCommit(t, ctx, o, 2)
		commit(t, ctx, o, 2, h2)
		wantCommitted(t, addrs, a, b)
	})
}

// More epochs than maxPendingTxns waiting for a checkpoint fail the
// stream (a fatal error) instead of growing the pool without bound; a
// recovery from the last handle still commits them all.
func TestExactlyOnceTooManyPendingEpochs(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	ctx := testCtx(t, 60*time.Second)
	o := newEOOutput(t, addrs, nil)
	startEO(t, ctx, o, 0, nil)
	var want []string
	var h []byte
	for id := uint64(1); id <= maxPendingTxns; id++ {
		want = append(want, writeEpoch(t, ctx, o, id, 2)...)
		h = preCommit(t, ctx, o, id)
	}
	write(t, ctx, o, "late")
	_, err := o.PreCommit(ctx, maxPendingTxns+1)
	if !errors.Is(err, ErrCheckpointsFailing) || !errors.Is(err, component.ErrFatal) {
		t.Fatalf("pre-commit of epoch %d: %v, want a fatal ErrCheckpointsFailing", maxPendingTxns+1, err)
	}
	if err := o.Write(ctx, message.FromStrings("later")); !errors.Is(err, component.ErrFatal) {
		t.Fatalf("write after the output failed: %v", err)
	}
	if n := poolSize(o); n > maxPoolSize {
		t.Fatalf("pool of %d producers, at most %d", n, maxPoolSize)
	}
	crash(o)
	o2 := newEOOutput(t, addrs, nil)
	startEO(t, ctx, o2, maxPendingTxns, h)
	wantCommitted(t, addrs, want)
}

// A failed checkpoint's transaction keeps ageing. PreCommit refuses to
// hand over one about to reach transactional_timeout, so that no manifest
// names it (the stream restarts from its last checkpoint); a Commit that
// comes after the broker aborted one reports it lost. Both are fatal.
func TestExactlyOncePendingTransactionExpires(t *testing.T) {
	forEachBroker(t, func(t *testing.T, addrs []string, c *kfake.Cluster) {
		ctx := testCtx(t, 60*time.Second)
		vals := func(topic string) map[string]any {
			if err := c.CreateTopic(topic, 1, nil); err != nil {
				t.Fatal(err)
			}
			return map[string]any{"topic": topic, "transactional_id": "tx-" + topic, "transactional_timeout": 2 * time.Second}
		}

		// Output pre: checkpoint 1 fails, and the broker aborts its
		// transaction before the barrier of checkpoint 2 arrives.
		pre := newEOOutput(t, addrs, vals("pre"))
		startEO(t, ctx, pre, 0, nil)
		writeEpoch(t, ctx, pre, 1, 5)
		preCommit(t, ctx, pre, 1)
		// Output late: checkpoint 1 fails, checkpoint 2 completes, but
		// the broker aborts the transactions before Commit(2).
		late := newEOOutput(t, addrs, vals("late"))
		startEO(t, ctx, late, 0, nil)
		writeEpoch(t, ctx, late, 1, 5)
		preCommit(t, ctx, late, 1)
		writeEpoch(t, ctx, late, 2, 5)
		h2 := preCommit(t, ctx, late, 2)
		waitAborted(t, ctx, addrs, "pre")
		waitAborted(t, ctx, addrs, "late")

		writeEpoch(t, ctx, pre, 2, 5)
		if _, err := pre.PreCommit(ctx, 2); !errors.Is(err, ErrCheckpointsFailing) || !errors.Is(err, component.ErrFatal) {
			t.Fatalf("pre-commit with an expired transaction pending: %v, want a fatal ErrCheckpointsFailing", err)
		}
		err := late.Commit(ctx, 2, h2)
		if !errors.Is(err, ErrTransactionLost) || !errors.Is(err, component.ErrFatal) {
			t.Fatalf("commit of expired transactions: %v, want a fatal ErrTransactionLost", err)
		}
		if !strings.Contains(err.Error(), "transactional_timeout") {
			t.Errorf("the error does not name the cause: %v", err)
		}
		if got := visible(t, addrs, "late"); len(got) != 0 {
			t.Fatalf("read_committed sees %v", abbrev(got))
		}
	})
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
		err := CheckTransactionTimeout(cfg, component.CheckpointSettings{Interval: c.interval, Timeout: c.timeout, TolerableFailures: 3})
		if (err != nil) != c.wantErr || err != nil && !strings.Contains(err.Error(), "streams[0].output.transactional_timeout:") {
			t.Errorf("%v, interval %v, timeout %v: %v", c.vals, c.interval, c.timeout, err)
		}
	}
}

// tolerable_failed_checkpoints above what the pending transactions allow
// is a config error.
func TestCheckTolerableFailures(t *testing.T) {
	cfg := component.NewConfig("test.yaml", "streams[0].output", 3, "kafka", map[string]any{"exactly_once": true}, nil)
	ok := component.CheckpointSettings{Interval: time.Second, Timeout: time.Second, TolerableFailures: maxPendingTxns - 2}
	if err := CheckTransactionTimeout(cfg, ok); err != nil {
		t.Fatalf("%d tolerable failures: %v", ok.TolerableFailures, err)
	}
	ok.TolerableFailures++
	err := CheckTransactionTimeout(cfg, ok)
	if err == nil || !strings.Contains(err.Error(), "tolerable_failed_checkpoints must be at most 14, got 15") {
		t.Fatalf("%d tolerable failures: %v", ok.TolerableFailures, err)
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

package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// produceSpread writes n records "k<i>"/"v<i>" round robin over the 3
// partitions of "in", starting at index from.
func produceSpread(t testing.TB, addrs []string, from, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		j := from + i
		recs[i] = &kgo.Record{Topic: "in", Partition: int32(j % 3), Key: fmt.Appendf(nil, "k%d", j), Value: fmt.Appendf(nil, "v%d", j)}
	}
	produce(t, addrs, recs...)
}

// produceP0 writes n records to partition 0 of "in".
func produceP0(t testing.TB, addrs []string, n int) {
	t.Helper()
	recs := make([]*kgo.Record, n)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: "in", Partition: 0, Value: fmt.Appendf(nil, "v%d", i)}
	}
	produce(t, addrs, recs...)
}

// committed returns the group's committed offset of in/0, or -1.
func committed(t testing.TB, addrs []string, group string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(testCtx(t, 10*time.Second), group)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := resp.Lookup("in", 0); ok && o.Err == nil {
		return o.At
	}
	return -1
}

func lastOffset(t testing.TB, b *message.Batch) int64 {
	rows := rowsOf(t, b)
	return rows[len(rows)-1].offset
}

func TestInputOutputRoundTrip(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	const n = 300
	produceSpread(t, addrs, 0, n)

	ctx := testCtx(t, 30*time.Second)
	in := newTestInput(t, addrs, map[string]any{"batch_size": int64(50)})
	out := newTestOutput(t, addrs, map[string]any{})
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	next := map[int32]int64{}
	for got := 0; got < n; {
		b, ack, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if b.NumRows() > 50 {
			t.Fatalf("batch of %d rows, batch_size 50", b.NumRows())
		}
		for _, r := range rowsOf(t, b) {
			if r.topic != "in" || r.offset != next[r.partition] {
				t.Fatalf("row %+v: want topic in, offset %d", r, next[r.partition])
			}
			next[r.partition]++
			if strings.TrimPrefix(r.key, "k") != strings.TrimPrefix(r.value, "v") {
				t.Fatalf("row %+v: key and value do not match", r)
			}
		}
		got += b.NumRows()
		if err := out.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	for p := int32(0); p < 3; p++ {
		if next[p] != n/3 {
			t.Fatalf("partition %d: read %d records, want %d", p, next[p], n/3)
		}
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(ctx); err != nil {
		t.Fatal(err)
	}

	seen := map[string]bool{}
	for _, r := range consume(t, addrs, "out", n) {
		if strings.TrimPrefix(string(r.Key), "k") != strings.TrimPrefix(string(r.Value), "v") {
			t.Fatalf("out record key %q value %q: __meta_key not used as the key", r.Key, r.Value)
		}
		if seen[string(r.Value)] {
			t.Fatalf("duplicate %q", r.Value)
		}
		seen[string(r.Value)] = true
	}
	if len(seen) != n {
		t.Fatalf("out has %d distinct records, want %d", len(seen), n)
	}
}

// Acknowledging batch 2 before batch 1 commits nothing; acknowledging
// batch 1 then commits both. A new member of the group resumes there, and
// Close commits what was acknowledged.
func TestInputGroupCommitsAckedPrefixInOrder(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	const n = 12
	produceP0(t, addrs, n)
	ctx := testCtx(t, 30*time.Second)
	vals := func() map[string]any {
		return map[string]any{"consumer_group": "g-order", "batch_size": int64(4), "commit_period": time.Hour}
	}

	in := newTestInput(t, addrs, vals())
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	bs, acks, rows := read(t, ctx, in, 2)
	for len(bs) < 2 { // read gives at least 2 rows; make sure they are 2 batches
		b, ack, err := in.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		bs, acks, rows = append(bs, b), append(acks, ack), append(rows, rowsOf(t, b)...)
	}
	if rows[0].offset != 0 {
		t.Fatalf("first offset %d, want 0", rows[0].offset)
	}
	end2 := lastOffset(t, bs[1]) + 1

	if err := acks[1](ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := in.commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, addrs, "g-order"); got != -1 {
		t.Fatalf("batch 2 acknowledged before batch 1: committed %d, want nothing", got)
	}
	if err := acks[0](ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := in.commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, addrs, "g-order"); got != end2 {
		t.Fatalf("both batches acknowledged: committed %d, want %d", got, end2)
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, addrs, "g-order"); got != end2 {
		t.Fatalf("after close: committed %d, want %d", got, end2)
	}

	// A new member resumes after the committed offset.
	in2 := newTestInput(t, addrs, vals())
	if err := in2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	_, acks2, rows2 := read(t, ctx, in2, int(n-end2))
	if rows2[0].offset != end2 {
		t.Fatalf("resumed at offset %d, want %d", rows2[0].offset, end2)
	}
	for _, ack := range acks2 {
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := in2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, addrs, "g-order"); got != n {
		t.Fatalf("close commits the acknowledged offsets: committed %d, want %d", got, n)
	}
}

func TestInputGroupAutoCommit(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	produceP0(t, addrs, 5)
	ctx := testCtx(t, 30*time.Second)
	in := newTestInput(t, addrs, map[string]any{"consumer_group": "g-auto", "commit_period": 100 * time.Millisecond})
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	_, acks, _ := read(t, ctx, in, 5)
	for _, ack := range acks {
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	for committed(t, addrs, "g-auto") != 5 {
		if ctx.Err() != nil {
			t.Fatal("acknowledged offsets were not committed within the deadline")
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not waiting for it
	}
}

// A nacked batch, and what was read after it, are read again.
func TestInputNackRedelivers(t *testing.T) {
	for _, tc := range []struct {
		group      string
		membership bool
	}{{"", true}, {"g-nack", true}, {"g-nack-self", false}} {
		group := tc.group
		t.Run(fmt.Sprintf("group=%s/membership=%v", group, tc.membership), func(t *testing.T) {
			c := newCluster(t)
			addrs := c.ListenAddrs()
			produceP0(t, addrs, 9)
			ctx := testCtx(t, 30*time.Second)
			in := newTestInput(t, addrs, map[string]any{"consumer_group": group, "group_membership": tc.membership,
				"batch_size": int64(3), "commit_period": time.Hour})
			if err := in.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			defer in.Close(ctx)

			bs, acks, _ := read(t, ctx, in, 1)
			first := rowsOf(t, bs[0])[0].offset
			end1 := lastOffset(t, bs[0]) + 1
			if err := acks[0](ctx, nil); err != nil {
				t.Fatal(err)
			}
			bs, acks, _ = read(t, ctx, in, 1)
			nacked := rowsOf(t, bs[0])[0].offset
			if nacked != end1 || first != 0 {
				t.Fatalf("batches start at %d and %d, want 0 and %d", first, nacked, end1)
			}
			_, acks3, _ := read(t, ctx, in, 1) // read after the nacked batch
			if err := acks3[0](ctx, nil); err != nil {
				t.Fatal(err)
			}
			if err := acks[0](ctx, errors.New("output failed")); err != nil {
				t.Fatal(err)
			}
			if _, _, err := in.Read(ctx); !errors.Is(err, component.ErrNotConnected) {
				t.Fatalf("read after a nack: %v, want ErrNotConnected", err)
			}
			if err := in.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			if group != "" && tc.membership {
				if got := committed(t, addrs, group); got != end1 {
					t.Fatalf("committed %d, want %d (the acknowledged prefix)", got, end1)
				}
			}
			_, _, rows := read(t, ctx, in, int(9-end1))
			for i, r := range rows {
				if r.offset != end1+int64(i) {
					t.Fatalf("after the nack row %d has offset %d, want %d", i, r.offset, end1+int64(i))
				}
			}
		})
	}
}

// A new input that seeks to the position of the last batch another one
// read continues exactly after it, on every partition.
func TestInputSeekResumesExactly(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	produceSpread(t, addrs, 0, 30)
	ctx := testCtx(t, 30*time.Second)

	in1 := newTestInput(t, addrs, map[string]any{"batch_size": int64(7)})
	if err := in1.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	bs, _, rows1 := read(t, ctx, in1, 12)
	pos := bs[len(bs)-1].Pos
	if err := in1.Close(ctx); err != nil { // no acks: the position alone decides
		t.Fatal(err)
	}
	var decoded map[string]map[string]int64
	if err := json.Unmarshal(pos, &decoded); err != nil || len(decoded["in"]) != 3 {
		t.Fatalf("position %s: want every partition of in (%v)", pos, err)
	}
	produceSpread(t, addrs, 30, 9)

	in2 := newTestInput(t, addrs, map[string]any{"batch_size": int64(7)})
	if err := in2.Seek(pos); err != nil {
		t.Fatal(err)
	}
	if err := in2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in2.Close(ctx)
	_, _, rows2 := read(t, ctx, in2, 39-len(rows1))
	seen := map[string]bool{}
	for _, r := range append(rows1, rows2...) {
		if seen[r.value] {
			t.Fatalf("%s read twice", r.value)
		}
		seen[r.value] = true
	}
	for i := 0; i < 39; i++ {
		if !seen[fmt.Sprintf("v%d", i)] {
			t.Fatalf("v%d skipped", i)
		}
	}
}

// With a group, a position overrides the committed offsets of the
// partitions it names.
func TestInputSeekWithGroup(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	produceP0(t, addrs, 10)
	ctx := testCtx(t, 30*time.Second)
	vals := func() map[string]any { return map[string]any{"consumer_group": "g-seek"} }

	in1 := newTestInput(t, addrs, vals())
	if err := in1.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	_, acks, _ := read(t, ctx, in1, 10)
	for _, ack := range acks {
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := in1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := committed(t, addrs, "g-seek"); got != 10 {
		t.Fatalf("committed %d, want 10", got)
	}

	in2 := newTestInput(t, addrs, vals())
	if err := in2.Seek([]byte(`{"in":{"0":4}}`)); err != nil {
		t.Fatal(err)
	}
	if err := in2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in2.Close(ctx)
	bs, _, rows := read(t, ctx, in2, 6)
	for i, r := range rows {
		if r.offset != int64(4+i) {
			t.Fatalf("row %d: offset %d, want %d", i, r.offset, 4+i)
		}
	}
	var pos map[string]map[string]int64
	if err := json.Unmarshal(bs[len(bs)-1].Pos, &pos); err != nil || pos["in"]["0"] != 10 {
		t.Fatalf("position %s, want in/0 at 10 (%v)", bs[len(bs)-1].Pos, err)
	}
}

// When a second member joins, the first commits what it acknowledged
// before its partitions move, so the second does not read them again.
func TestInputRebalanceCommitsAcked(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	produceSpread(t, addrs, 0, 30)
	ctx := testCtx(t, 60*time.Second)
	vals := func() map[string]any {
		return map[string]any{"consumer_group": "g-reb", "commit_period": time.Hour}
	}

	a := newTestInput(t, addrs, vals())
	if err := a.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer a.Close(ctx)
	_, acks, _ := read(t, ctx, a, 30)
	for _, ack := range acks {
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}

	b := newTestInput(t, addrs, vals())
	if err := b.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	produceSpread(t, addrs, 30, 30)
	_, _, rows := read(t, ctx, b, 1)
	for _, r := range rows {
		if r.offset < 10 {
			t.Fatalf("member b read %+v, which member a had acknowledged", r)
		}
	}
}

func TestInputReadHonoursContext(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	for _, group := range []string{"", "g-ctx"} {
		in := newTestInput(t, addrs, map[string]any{"consumer_group": group})
		if err := in.Connect(testCtx(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		start := time.Now()
		_, _, err := in.Read(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("group %q: read of an empty topic: %v, want a deadline error", group, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("group %q: read returned %v after its context ended", group, d)
		}
		if err := in.Close(testCtx(t, 10*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInputBrokerUnreachable(t *testing.T) {
	addr := closedAddr(t)
	for _, group := range []string{"", "g-down"} {
		in := newTestInput(t, []string{addr}, map[string]any{"consumer_group": group})
		err := in.Connect(testCtx(t, 10*time.Second))
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Fatalf("group %q: connect to %s: %v, want an error naming the broker", group, addr, err)
		}
		if _, _, err := in.Read(testCtx(t, time.Second)); !errors.Is(err, component.ErrNotConnected) {
			t.Fatalf("read without a connection: %v", err)
		}
		if err := in.Close(testCtx(t, 5*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestInputConfigErrors(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"no topics":        {"brokers": []any{"x:9092"}, "topics": []any{}},
		"batch_size 0":     {"brokers": []any{"x:9092"}, "topics": []any{"in"}, "batch_size": int64(0)},
		"short fetch wait": {"brokers": []any{"x:9092"}, "topics": []any{"in"}, "fetch_max_wait": time.Millisecond},
		"sasl no user":     {"brokers": []any{"x:9092"}, "topics": []any{"in"}, "sasl": map[string]any{"mechanism": "PLAIN"}},
		"cert without key": {"brokers": []any{"x:9092"}, "topics": []any{"in"}, "tls": map[string]any{"enabled": true, "cert_file": "c.pem"}},
		"tls disabled":     {"brokers": []any{"x:9092"}, "topics": []any{"in"}, "tls": map[string]any{"ca_file": "ca.pem"}},
	} {
		if _, err := newInput(testConfig(component.KindInput, inputSpec(), vals), component.Resources{}); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "test.yaml:1: streams[0].input.") {
			t.Errorf("%s: error %q does not name the field", name, err)
		}
	}
	in := newTestInput(t, []string{"x:9092"}, map[string]any{})
	for _, pos := range []string{"", "[]", `{"in":{"x":1}}`, `{"in":{"0":-1}}`} {
		if err := in.Seek([]byte(pos)); err == nil {
			t.Errorf("seek %q: no error", pos)
		}
	}
}

// When the broker goes away, Read ends with its context (or an error naming
// the brokers) and Close is bounded by its context, with or without a group.
func TestInputBrokerGone(t *testing.T) {
	for _, group := range []string{"", "g-gone"} {
		t.Run("group="+group, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in"),
				kfake.GroupMinSessionTimeout(100*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			addrs := c.ListenAddrs()
			produceP0(t, addrs, 3)
			in := newTestInput(t, addrs, map[string]any{"consumer_group": group})
			if err := in.Connect(testCtx(t, 10*time.Second)); err != nil {
				c.Close()
				t.Fatal(err)
			}
			_, acks, _ := read(t, testCtx(t, 10*time.Second), in, 3)
			for _, ack := range acks {
				_ = ack(context.Background(), nil)
			}
			c.Close()

			start := time.Now()
			if _, _, err := in.Read(testCtx(t, time.Second)); err == nil {
				t.Fatal("read with the broker gone returned a batch")
			} else if !strings.Contains(err.Error(), addrs[0]) {
				t.Fatalf("error %q does not name the broker", err)
			}
			closeCtx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = in.Close(closeCtx) // the final commit fails: the broker is gone
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("read and close took %v", d)
			}
		})
	}
}

// newSelfAssignedInput builds an input with consumer group g and
// group_membership: false.
func newSelfAssignedInput(t testing.TB, addrs []string, g string, vals map[string]any) *input {
	t.Helper()
	vals["consumer_group"] = g
	vals["group_membership"] = false
	in := newTestInput(t, addrs, vals)
	if in.joinGroup {
		t.Fatal("group_membership: false, yet the input joins the group")
	}
	return in
}

// groupOffsets returns every offset group has committed for topic "in".
func groupOffsets(t testing.TB, addrs []string, group string) map[int32]int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).FetchOffsets(testCtx(t, 10*time.Second), group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return map[int32]int64{} // kfake: no commit yet
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil {
			t.Fatalf("fetch offsets of %s: %v", group, o.Err)
		}
		if o.Topic == "in" && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// posOf decodes a position of topic "in".
func posOf(t testing.TB, pos []byte) map[int32]int64 {
	t.Helper()
	o, err := parsePos(pos)
	if err != nil {
		t.Fatalf("position %s: %v", pos, err)
	}
	out := map[int32]int64{}
	for p, off := range o["in"] {
		out[p] = off
	}
	if len(o) != 1 || len(out) != 3 {
		t.Fatalf("position %s: want the 3 partitions of in and nothing else", pos)
	}
	return out
}

func ackAll(t testing.TB, ctx context.Context, acks []message.AckFunc) {
	t.Helper()
	for _, ack := range acks {
		if err := ack(ctx, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// checkStarts checks that the rows of each partition are consecutive
// offsets starting at want[partition], and that each partition has n[p]
// rows.
func checkStarts(t testing.TB, rows []row, want, n map[int32]int64) {
	t.Helper()
	next := map[int32]int64{}
	for p, off := range want {
		next[p] = off
	}
	got := map[int32]int64{}
	for _, r := range rows {
		if r.offset != next[r.partition] {
			t.Fatalf("partition %d: offset %d, want %d", r.partition, r.offset, next[r.partition])
		}
		next[r.partition]++
		got[r.partition]++
	}
	for p := int32(0); p < 3; p++ {
		if got[p] != n[p] {
			t.Fatalf("partition %d: %d rows, want %d", p, got[p], n[p])
		}
	}
}

// Without group membership a new input that seeks to the position of the
// last batch another one read continues exactly after it on every
// partition, and acknowledgements and Close commit nothing to the group.
func TestInputSelfAssignedResumesAtSeek(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	produceSpread(t, addrs, 0, 30)
	ctx := testCtx(t, 30*time.Second)

	in1 := newSelfAssignedInput(t, addrs, "g-self", map[string]any{"batch_size": int64(7)})
	if err := in1.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	bs, acks, rows1 := read(t, ctx, in1, 12)
	ackAll(t, ctx, acks)
	pos := bs[len(bs)-1].Pos
	at := posOf(t, pos)
	if err := in1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := groupOffsets(t, addrs, "g-self"); len(got) != 0 {
		t.Fatalf("group offsets %v committed without a checkpoint", got)
	}
	produceSpread(t, addrs, 30, 9) // 13 per partition now

	in2 := newSelfAssignedInput(t, addrs, "g-self", map[string]any{"batch_size": int64(7)})
	if err := in2.Seek(pos); err != nil {
		t.Fatal(err)
	}
	if err := in2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in2.Close(ctx)
	_, _, rows2 := read(t, ctx, in2, 39-len(rows1))
	checkStarts(t, rows2, at, map[int32]int64{0: 13 - at[0], 1: 13 - at[1], 2: 13 - at[2]})
	seen := map[string]bool{}
	for _, r := range append(rows1, rows2...) {
		if seen[r.value] {
			t.Fatalf("%s read twice", r.value)
		}
		seen[r.value] = true
	}
	if len(seen) != 39 {
		t.Fatalf("read %d distinct records, want 39", len(seen))
	}
}

// Without a position the input starts at the group's committed offsets;
// a position overrides them for the partitions it names; partitions with
// neither start at the log start.
func TestInputSelfAssignedStartsAtGroupOffsets(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	produceSpread(t, addrs, 0, 30) // 10 per partition
	ctx := testCtx(t, 30*time.Second)

	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	var os kadm.Offsets
	os.AddOffset("in", 0, 4, -1)
	os.AddOffset("in", 1, 7, -1)
	err = kadm.NewClient(cl).CommitAllOffsets(ctx, "g-start", os)
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}

	in := newSelfAssignedInput(t, addrs, "g-start", map[string]any{})
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, rows := read(t, ctx, in, 19)
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	checkStarts(t, rows, map[int32]int64{0: 4, 1: 7, 2: 0}, map[int32]int64{0: 6, 1: 3, 2: 10})

	in2 := newSelfAssignedInput(t, addrs, "g-start", map[string]any{})
	if err := in2.Seek([]byte(`{"in":{"0":8}}`)); err != nil {
		t.Fatal(err)
	}
	if err := in2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in2.Close(ctx)
	bs, _, rows := read(t, ctx, in2, 15)
	checkStarts(t, rows, map[int32]int64{0: 8, 1: 7, 2: 0}, map[int32]int64{0: 2, 1: 3, 2: 10})
	if at := posOf(t, bs[len(bs)-1].Pos); at[0] != 10 || at[1] != 10 || at[2] != 10 {
		t.Fatalf("position %v after reading everything, want 10 on every partition", at)
	}
}

// CommitCheckpoint commits exactly the offsets of the position it is
// given (also backwards, and after Close); acknowledgements commit
// nothing. Group members and inputs without a group commit nothing.
func TestInputCommitCheckpoint(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	produceSpread(t, addrs, 0, 30)
	ctx := testCtx(t, 30*time.Second)

	in := newSelfAssignedInput(t, addrs, "g-ckpt", map[string]any{"batch_size": int64(5)})
	if err := in.CommitCheckpoint(ctx, nil); err != nil { // before Connect, no position
		t.Fatal(err)
	}
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	bs, acks, _ := read(t, ctx, in, 12)
	ackAll(t, ctx, acks)
	if got := groupOffsets(t, addrs, "g-ckpt"); len(got) != 0 {
		t.Fatalf("acknowledgements committed %v", got)
	}
	first, last := bs[0].Pos, bs[len(bs)-1].Pos
	for _, pos := range [][]byte{first, last, first} {
		if err := in.CommitCheckpoint(ctx, pos); err != nil {
			t.Fatal(err)
		}
		if got, want := groupOffsets(t, addrs, "g-ckpt"), posOf(t, pos); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("committed %v, want exactly %v", got, want)
		}
	}
	if err := in.CommitCheckpoint(ctx, []byte(`{"in":{"0":-3}}`)); err == nil {
		t.Fatal("invalid position committed")
	}
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The final checkpoint may complete after the input closed.
	if err := in.CommitCheckpoint(ctx, []byte(`{"in":{"0":10,"1":10,"2":10}}`)); err != nil {
		t.Fatal(err)
	}
	if got := groupOffsets(t, addrs, "g-ckpt"); fmt.Sprint(got) != fmt.Sprint(map[int32]int64{0: 10, 1: 10, 2: 10}) {
		t.Fatalf("committed after close %v", got)
	}

	// A group member commits what it acknowledged; CommitCheckpoint is a
	// no-op for it (and without a group). While it is in the group, a
	// checkpoint commit is refused with a reason.
	member := newTestInput(t, addrs, map[string]any{"consumer_group": "g-member", "commit_period": time.Hour})
	if err := member.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer member.Close(ctx)
	read(t, ctx, member, 1)
	if err := member.CommitCheckpoint(ctx, last); err != nil {
		t.Fatal(err)
	}
	if got := groupOffsets(t, addrs, "g-member"); len(got) != 0 {
		t.Fatalf("group member: CommitCheckpoint committed %v", got)
	}
	busy := newSelfAssignedInput(t, addrs, "g-member", map[string]any{})
	defer busy.Close(ctx)
	if err := busy.CommitCheckpoint(ctx, last); err == nil || !strings.Contains(err.Error(), "active members") {
		t.Fatalf("commit into a group with a member: %v, want an error naming active members", err)
	}
	noGroup := newTestInput(t, addrs, map[string]any{})
	if err := noGroup.CommitCheckpoint(ctx, last); err != nil {
		t.Fatal(err)
	}
}

// A second instance started while the first still runs (as after a
// SIGKILL whose process the broker does not yet know is gone) reads every
// partition at once and commits checkpoints: no group membership can
// block it.
func TestInputSelfAssignedNotBlockedByDeadInstance(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	produceSpread(t, addrs, 0, 30)
	ctx := testCtx(t, 30*time.Second)

	zombie := newSelfAssignedInput(t, addrs, "g-zombie", map[string]any{"batch_size": int64(4)})
	if err := zombie.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer zombie.Close(ctx) // only when the test ends
	bs, _, _ := read(t, ctx, zombie, 4)
	if err := zombie.CommitCheckpoint(ctx, bs[0].Pos); err != nil {
		t.Fatal(err)
	}

	// The new instance restores the checkpoint's position.
	at := posOf(t, bs[0].Pos)
	in := newSelfAssignedInput(t, addrs, "g-zombie", map[string]any{})
	if err := in.Seek(bs[0].Pos); err != nil {
		t.Fatal(err)
	}
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	n := 30 - (at[0] + at[1] + at[2])
	bs2, _, rows := read(t, ctx, in, int(n))
	checkStarts(t, rows, at, map[int32]int64{0: 10 - at[0], 1: 10 - at[1], 2: 10 - at[2]})
	if err := in.CommitCheckpoint(ctx, bs2[len(bs2)-1].Pos); err != nil {
		t.Fatal(err)
	}
	if got := groupOffsets(t, addrs, "g-zombie"); fmt.Sprint(got) != fmt.Sprint(map[int32]int64{0: 10, 1: 10, 2: 10}) {
		t.Fatalf("committed %v", got)
	}
}

// read_committed (the default) never returns records of aborted
// transactions, such as an upstream exactly-once pipeline's.
func TestInputSelfAssignedReadsCommittedOnly(t *testing.T) {
	c := newCluster(t)
	addrs := c.ListenAddrs()
	ctx := testCtx(t, 30*time.Second)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.TransactionalID("upstream"),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, commit := range []bool{false, true, false} {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 6; i++ {
			r := &kgo.Record{Topic: "in", Partition: int32(i % 3), Value: fmt.Appendf(nil, "%v-%d", commit, i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	produceSpread(t, addrs, 0, 3) // after the last aborted transaction

	in := newSelfAssignedInput(t, addrs, "g-rc", map[string]any{})
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	_, _, rows := read(t, ctx, in, 9)
	for _, r := range rows {
		if strings.HasPrefix(r.value, "false-") {
			t.Fatalf("read %q of an aborted transaction", r.value)
		}
	}
	if len(rows) != 9 {
		t.Fatalf("read %d records, want 9", len(rows))
	}
}

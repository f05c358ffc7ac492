package kafka

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newCluster starts an in-process broker with topics "in" and "out" of 3
// partitions. Group session timeouts may be short so that tests do not
// wait for members that left.
func newCluster(t testing.TB, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	opts = append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(3, "in", "out"),
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}, opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// testConfig builds a component config the way the config package does:
// the spec's defaults applied, object fields as *component.Config.
func testConfig(kind component.Kind, spec component.Spec, vals map[string]any) *component.Config {
	path := "streams[0]." + string(kind)
	return component.NewConfig("test.yaml", path, 1, spec.Name, withDefaults(spec.Fields, vals, path), nil)
}

func withDefaults(fields []component.Field, vals map[string]any, path string) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range vals {
		out[k] = v
	}
	for _, f := range fields {
		v, ok := out[f.Name]
		if f.Type == component.TypeObject {
			m, isMap := v.(map[string]any)
			switch {
			case ok && !isMap:
				continue // already a *Config
			case !ok && f.Default == nil:
				continue
			}
			out[f.Name] = component.NewConfig("test.yaml", path+"."+f.Name, 1, "", withDefaults(f.Fields, m, path+"."+f.Name), nil)
			continue
		}
		if !ok && f.Default != nil {
			out[f.Name] = f.Default
		}
	}
	return out
}

// newTestInput builds a kafka input; a consumer group gets short session
// timeouts (a member that left must not hold partitions for long).
func newTestInput(t testing.TB, addrs []string, vals map[string]any) *input {
	t.Helper()
	vals["brokers"] = anyList(addrs)
	if _, ok := vals["topics"]; !ok {
		vals["topics"] = []any{"in"}
	}
	i, err := newInput(testConfig(component.KindInput, inputSpec(), vals), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	in := i.(*input)
	in.extraOpts = []kgo.Opt{
		kgo.SessionTimeout(3 * time.Second),
		kgo.HeartbeatInterval(100 * time.Millisecond),
		kgo.RebalanceTimeout(5 * time.Second),
	}
	return in
}

func newTestOutput(t testing.TB, addrs []string, vals map[string]any) *output {
	t.Helper()
	vals["brokers"] = anyList(addrs)
	if _, ok := vals["topic"]; !ok {
		vals["topic"] = "out"
	}
	o, err := newOutput(testConfig(component.KindOutput, outputSpec(), vals), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	return o.(*output)
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// produce writes records with a plain client (records keep their Partition).
func produce(t testing.TB, addrs []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(testCtx(t, 10*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// consume reads n records of topic from the start with a plain client.
func consume(t testing.TB, addrs []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := testCtx(t, 15*time.Second)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records of %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

// row is one record of an input batch.
type row struct {
	topic     string
	partition int32
	offset    int64
	key       string
	value     string
	nullKey   bool
}

func rowsOf(t testing.TB, b *message.Batch) []row {
	t.Helper()
	val, key := b.Values(), message.AsBinary(b.Column(message.MetaKey))
	topic := message.AsBinary(b.Column(MetaTopic))
	part, _ := b.Column(message.MetaPartition).(interface{ Value(int) int32 })
	off, _ := b.Column(message.MetaOffset).(interface{ Value(int) int64 })
	ts, _ := b.Column(message.MetaTimestamp).(interface{ Value(int) int64 })
	if val == nil || key == nil || topic == nil || part == nil || off == nil || ts == nil {
		t.Fatalf("batch lacks a column: %v", b.Schema())
	}
	rows := make([]row, b.NumRows())
	for i := range rows {
		rows[i] = row{topic: topic.String(i), partition: part.Value(i), offset: off.Value(i),
			key: string(key.Bytes(i)), value: string(val.Bytes(i)), nullKey: key.IsNull(i)}
		if ts.Value(i) <= 0 {
			t.Fatalf("row %d: timestamp %d", i, ts.Value(i))
		}
	}
	return rows
}

// read reads batches until it has at least n rows.
func read(t testing.TB, ctx context.Context, in *input, n int) ([]*message.Batch, []message.AckFunc, []row) {
	t.Helper()
	var bs []*message.Batch
	var acks []message.AckFunc
	var rows []row
	for len(rows) < n {
		b, ack, err := in.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d rows: %v", len(rows), n, err)
		}
		bs = append(bs, b)
		acks = append(acks, ack)
		rows = append(rows, rowsOf(t, b)...)
	}
	return bs, acks, rows
}

// closedAddr returns an address where nothing listens.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

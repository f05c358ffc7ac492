package processors

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

// newStateful builds a stateful processor from YAML over backend b (nil: a
// fresh memory backend), closing both at the end of the test.
func newStateful(t testing.TB, yaml string, b kv.Backend) component.Processor {
	t.Helper()
	conf := parseProcConf(t, yaml)
	if b == nil {
		var err error
		if b, err = memory.New(kv.Config{}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = b.Close() })
	reg := component.Lookup(component.KindProcessor, conf.Type)
	p, err := reg.NewProcessor(conf, component.Resources{State: b, KeyGroups: b.Config().KeyGroups, MaxKeyGroups: b.Config().MaxKeyGroups})
	if err != nil {
		t.Fatalf("new %s: %v", conf.Type, err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func words(ws ...string) *message.Batch {
	return record([]string{"word"}, stringCol(ws...))
}

// emitted returns a function that renders what a processor call returned
// (failing on an error or an error batch): emitted(t)(p.Process(ctx, b)).
func emitted(t testing.TB) func(out []*message.Batch, err error) []string {
	return func(out []*message.Batch, err error) []string {
		t.Helper()
		return emittedRows(t, out, err)
	}
}

func emittedRows(t testing.TB, out []*message.Batch, err error) []string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, b := range out {
		if b.IsError() {
			t.Fatalf("unexpected error batch: %v", jsonRows(b))
		}
		rows = append(rows, jsonRows(b)...)
	}
	return rows
}

func wantRows(t testing.TB, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const wordCountYAML = "type: aggregate\ngroup_by: word\nkey_column: word\naggregates: [{function: count, as: count}]\n"

func TestAggregateOnUpdate(t *testing.T) {
	p := newStateful(t, wordCountYAML, nil)
	wantRows(t, emitted(t)(p.Process(context.Background(), words("the", "weir", "the"))),
		`{"word":"the","count":1}`, `{"word":"weir","count":1}`, `{"word":"the","count":2}`)
	b := withMeta(words("weir", "a", "the"))
	out, err := p.Process(context.Background(), b)
	rows := emittedRows(t, out, err)
	// Only the key and the aggregates: no other columns, metadata neither.
	wantRows(t, rows, `{"word":"weir","count":2}`, `{"word":"a","count":1}`, `{"word":"the","count":3}`)
	if s := schemaString(out[0]); s != "word:utf8,count:int64" {
		t.Fatalf("schema %s", s)
	}
	f := p.(component.Flusher)
	if out, err := f.Flush(context.Background()); err != nil || len(out) != 0 || f.FlushInterval() != 0 {
		t.Fatalf("on_update flush: %v, %v", out, err)
	}
	if out, err := p.(component.BarrierListener).OnBarrier(context.Background(), 1); err != nil || len(out) != 0 {
		t.Fatalf("on_update barrier: %v, %v", out, err)
	}
}

func TestAggregateBinaryKeysAndDefaults(t *testing.T) {
	// split over __value__ gives a binary column; the default key column is
	// "key" and the default aggregate a count.
	p := newStateful(t, "type: aggregate\ngroup_by: __value__\n", nil)
	out, err := p.Process(context.Background(), message.FromStrings("x", "y", "x"))
	wantRows(t, emittedRows(t, out, err), `{"key":"x","count":1}`, `{"key":"y","count":1}`, `{"key":"x","count":2}`)
	if s := schemaString(out[0]); s != "key:utf8,count:int64" {
		t.Fatalf("schema %s", s)
	}
}

func TestAggregateAllFunctions(t *testing.T) {
	p := newStateful(t, `
type: aggregate
group_by: user
key_column: user
aggregates:
  - {function: count}
  - {function: sum, field: n}
  - {function: avg, field: x}
  - {function: min, field: x}
  - {function: max, field: n}
  - {function: first, field: page}
  - {function: last, field: page}
`, nil)
	b := record([]string{"user", "n", "x", "page"},
		stringCol("a", "b", "a", "a"), int64Col(1, 10, 2, 3),
		nullableFloat64([]float64{0.5, 1, 0, 2.5}, []bool{true, true, false, true}),
		nullableString([]string{"/", "/b", "/x", ""}, []bool{true, true, true, false}))
	wantRows(t, emitted(t)(p.Process(context.Background(), b)),
		`{"user":"a","count":1,"sum_n":1,"avg_x":0.5,"min_x":0.5,"max_n":1,"first_page":"/","last_page":"/"}`,
		`{"user":"b","count":1,"sum_n":10,"avg_x":1,"min_x":1,"max_n":10,"first_page":"/b","last_page":"/b"}`,
		`{"user":"a","count":2,"sum_n":3,"avg_x":0.5,"min_x":0.5,"max_n":2,"first_page":"/","last_page":"/x"}`,
		`{"user":"a","count":3,"sum_n":6,"avg_x":1.5,"min_x":0.5,"max_n":3,"first_page":"/","last_page":"/x"}`)
}

func TestAggregateSingleNonCount(t *testing.T) {
	p := newStateful(t, "type: aggregate\ngroup_by: k\naggregates: [{function: sum, field: v, as: total}]\n", nil)
	b := record([]string{"k", "v"}, stringCol("a", "a", "b"), int64Col(2, 3, 4))
	wantRows(t, emitted(t)(p.Process(context.Background(), b)),
		`{"key":"a","total":2}`, `{"key":"a","total":5}`, `{"key":"b","total":4}`)
}

func TestAggregateOnCheckpoint(t *testing.T) {
	p := newStateful(t, wordCountYAML+"emit: on_checkpoint\n", nil)
	ctx := context.Background()
	bl := p.(component.BarrierListener)
	if out := emitted(t)(p.Process(ctx, words("b", "a", "b"))); len(out) != 0 {
		t.Fatalf("on_checkpoint emitted on data: %v", out)
	}
	wantRows(t, emitted(t)(bl.OnBarrier(ctx, 1)), `{"word":"a","count":1}`, `{"word":"b","count":2}`)
	if out := emitted(t)(bl.OnBarrier(ctx, 2)); len(out) != 0 {
		t.Fatalf("nothing changed, emitted %v", out)
	}
	emitted(t)(p.Process(ctx, words("c", "b")))
	wantRows(t, emitted(t)(bl.OnBarrier(ctx, 3)), `{"word":"b","count":3}`, `{"word":"c","count":1}`)
	emitted(t)(p.Process(ctx, words("a")))
	// The end of the input emits what changed since the last barrier.
	wantRows(t, emitted(t)(p.(component.Flusher).Flush(ctx)), `{"word":"a","count":2}`)
}

func TestAggregateOnEnd(t *testing.T) {
	p := newStateful(t, wordCountYAML+"emit: on_end\n", nil)
	ctx := context.Background()
	emitted(t)(p.Process(ctx, words("b", "a", "b")))
	if out := emitted(t)(p.(component.BarrierListener).OnBarrier(ctx, 1)); len(out) != 0 {
		t.Fatalf("on_end emitted at a barrier: %v", out)
	}
	emitted(t)(p.Process(ctx, words("c")))
	wantRows(t, emitted(t)(p.(component.Flusher).Flush(ctx)),
		`{"word":"a","count":1}`, `{"word":"b","count":2}`, `{"word":"c","count":1}`)
}

func TestAggregateOnEndManyKeys(t *testing.T) {
	// More keys than one emitted batch holds: several batches, sorted.
	p := newStateful(t, "type: aggregate\ngroup_by: k\nemit: on_end\naggregates: [{function: count}, {function: max, field: k}]\n", nil)
	n := aggEmitBatchRows*2 + 5
	vals := make([]int64, n)
	for i := range vals {
		vals[i] = int64(i)
	}
	emitted(t)(p.Process(context.Background(), record([]string{"k"}, int64Col(vals...))))
	out, err := p.(component.Flusher).Flush(context.Background())
	if err != nil || len(out) != 3 {
		t.Fatalf("flush: %d batches, %v", len(out), err)
	}
	var keys []string
	for _, b := range out {
		keys = append(keys, strs(t, b, "key")...)
	}
	if len(keys) != n || !slices.IsSorted(keys) {
		t.Fatalf("%d keys, sorted %v", len(keys), slices.IsSorted(keys))
	}
}

func TestAggregateTTL(t *testing.T) {
	clock := kv.NewManualClock(time.Unix(1_700_000_000, 0))
	b, err := memory.New(kv.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	p := newStateful(t, wordCountYAML+"state_ttl: 10s\n", b)
	ctx := context.Background()
	count := func(w string) string {
		t.Helper()
		rows := emitted(t)(p.Process(ctx, words(w)))
		return rows[0]
	}
	if got := count("a"); got != `{"word":"a","count":1}` {
		t.Fatal(got)
	}
	clock.Advance(9 * time.Second)
	if got := count("a"); got != `{"word":"a","count":2}` {
		t.Fatal(got)
	}
	clock.Advance(9 * time.Second) // 18s after the first write, 9s after the last: refreshed on write
	if got := count("a"); got != `{"word":"a","count":3}` {
		t.Fatal(got)
	}
	clock.Advance(10 * time.Second) // expired
	if got := count("a"); got != `{"word":"a","count":1}` {
		t.Fatalf("after the TTL: %s", got)
	}

	// on_end skips keys that expired.
	b2, _ := memory.New(kv.Config{Clock: clock})
	p = newStateful(t, wordCountYAML+"state_ttl: 10s\nemit: on_end\n", b2)
	emitted(t)(p.Process(ctx, words("old")))
	clock.Advance(6 * time.Second)
	emitted(t)(p.Process(ctx, words("new")))
	clock.Advance(6 * time.Second)
	wantRows(t, emitted(t)(p.(component.Flusher).Flush(ctx)), `{"word":"new","count":1}`)
}

func TestAggregateExpressionKeys(t *testing.T) {
	p := newStateful(t, `
type: aggregate
group_by: 'lower(name) + "/" + string(id % 2)'
aggregates: [{function: count, as: n}]
`, nil)
	b := record([]string{"name", "id"}, stringCol("Ann", "ANN", "bob", "ann"), int64Col(1, 3, 2, 2))
	wantRows(t, emitted(t)(p.Process(context.Background(), b)),
		`{"key":"ann/1","n":1}`, `{"key":"ann/1","n":2}`, `{"key":"bob/0","n":1}`, `{"key":"ann/0","n":1}`)

	// An integer column as the key: the decimal text.
	p = newStateful(t, "type: aggregate\ngroup_by: id\n", nil)
	wantRows(t, emitted(t)(p.Process(context.Background(), b)),
		`{"key":"1","count":1}`, `{"key":"3","count":1}`, `{"key":"2","count":1}`, `{"key":"2","count":2}`)
}

func TestAggregateErrorRows(t *testing.T) {
	p := newStateful(t, "type: aggregate\ngroup_by: k\naggregates: [{function: count}, {function: sum, field: v}]\n", nil)
	b := record([]string{"k", "v"},
		nullableString([]string{"a", "", "a", "b"}, []bool{true, false, true, true}),
		stringCol("1", "2", "x", "4"))
	out, err := p.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := splitResults(t, out)
	wantRows(t, jsonRows(good), `{"key":"a","count":1,"sum_v":1}`, `{"key":"b","count":1,"sum_v":4}`)
	if bad == nil || bad.NumRows() != 2 {
		t.Fatalf("error batch %v", jsonRows(bad))
	}
	errs := strs(t, bad, message.MetaError)
	if !strings.Contains(errs[0], `group_by: key column "k" is null`) || !strings.Contains(errs[1], `"x" in column "v" is not a number`) {
		t.Fatalf("errors %q", errs)
	}
	// The failed row did not change a's state.
	wantRows(t, emitted(t)(p.Process(context.Background(), record([]string{"k", "v"}, stringCol("a"), stringCol("1")))),
		`{"key":"a","count":2,"sum_v":2}`)

	// A key column of a type keys cannot be made of fails the batch.
	p = newStateful(t, "type: aggregate\ngroup_by: k\n", nil)
	lst := array.NewListBuilder(message.Alloc, arrow.PrimitiveTypes.Int64)
	lst.Append(true)
	lb := record([]string{"k"}, lst.NewArray())
	if _, err := p.Process(context.Background(), lb); err == nil {
		t.Fatal("list key column: want an error")
	}
}

func TestAggregateKeysMatchState(t *testing.T) {
	p := newStateful(t, "type: aggregate\ngroup_by: 'k ?? nil'\n", nil)
	b := record([]string{"k"}, nullableString([]string{"a", "", "c"}, []bool{true, false, true}))
	var keys []string
	err := p.(component.Keyed).Keys(b, func(row int, key []byte) {
		if key == nil {
			keys = append(keys, "<nil>")
			return
		}
		keys = append(keys, string(key))
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "a,<nil>,c" {
		t.Fatalf("keys %v", keys)
	}
	out, err := p.Process(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := splitResults(t, out)
	if got := strs(t, good, "key"); strings.Join(got, ",") != "a,c" {
		t.Fatalf("state keys %v", got)
	}
}

func TestAggregateWrongKeyGroup(t *testing.T) {
	// A backend holding only some key groups rejects the other keys' rows
	// (the exchange would never send them).
	b, err := memory.New(kv.Config{MaxKeyGroups: 128, KeyGroups: kv.KeyGroupRange{Start: 0, End: 64}})
	if err != nil {
		t.Fatal(err)
	}
	p := newStateful(t, wordCountYAML, b)
	var in []string
	mine := 0
	for i := 0; i < 50; i++ {
		w := fmt.Sprint("w", i)
		in = append(in, w)
		if kv.KeyGroupOf([]byte(w), 128) < 64 {
			mine++
		}
	}
	out, err := p.Process(context.Background(), words(in...))
	if err != nil {
		t.Fatal(err)
	}
	good, bad := splitResults(t, out)
	if good.NumRows() != mine || bad.NumRows() != 50-mine {
		t.Fatalf("%d good, %d bad; want %d good", good.NumRows(), bad.NumRows(), mine)
	}
}

func TestAggregateConfigErrors(t *testing.T) {
	for yaml, msg := range map[string]string{
		"group_by: 'a +'":                "group_by",
		"group_by: k\nkey_column: count": `"count" is also the key_column`,
	} {
		conf := parseProcConf(t, "type: aggregate\n"+yaml+"\n")
		_, err := newAggregate(conf, component.Resources{})
		if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "component.yaml:") {
			t.Errorf("%q: error %v, want %q", yaml, err, msg)
		}
	}
}

func TestAggregatePebbleBackend(t *testing.T) {
	// The same results when state is encoded (CBOR) in Pebble.
	for _, yaml := range []string{
		wordCountYAML,
		"type: aggregate\ngroup_by: word\nkey_column: word\naggregates: [{function: last, field: word}]\n",
		"type: aggregate\ngroup_by: word\nkey_column: word\naggregates: [{function: count}, {function: first, field: word}]\n",
	} {
		var results [2][]string
		for i, kind := range []state.BackendKind{state.BackendMemory, state.BackendPebble} {
			b, err := state.NewBackend(state.BackendConfig{Kind: kind, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			p := newStateful(t, yaml, b)
			for _, in := range [][]string{{"a", "b", "a"}, {"b", "b", "c"}} {
				results[i] = append(results[i], emitted(t)(p.Process(context.Background(), words(in...)))...)
			}
		}
		if strings.Join(results[0], "\n") != strings.Join(results[1], "\n") {
			t.Fatalf("memory:\n%s\npebble:\n%s", strings.Join(results[0], "\n"), strings.Join(results[1], "\n"))
		}
	}
}

func TestAggregateRestoreFromSnapshot(t *testing.T) {
	// State written to entry files (a checkpoint) and restored into a new
	// backend continues where it was, for every state layout.
	for _, yaml := range []string{
		wordCountYAML,
		"type: aggregate\ngroup_by: word\nkey_column: word\naggregates: [{function: count}, {function: last, field: word}]\n",
	} {
		src, _ := memory.New(kv.Config{})
		p := newStateful(t, yaml, src)
		emitted(t)(p.Process(context.Background(), words("a", "b", "a")))
		snap, err := src.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		dst, _ := memory.New(kv.Config{})
		for kg := 0; kg < kv.DefaultMaxKeyGroups; kg++ {
			var buf bytes.Buffer
			if err := kv.WriteKeyGroup(&buf, snap, kg); err != nil {
				t.Fatal(err)
			}
			if err := dst.Restore(&buf); err != nil {
				t.Fatal(err)
			}
		}
		snap.Release()
		q := newStateful(t, yaml, dst)
		rows := emitted(t)(q.Process(context.Background(), words("a", "c")))
		if !strings.Contains(rows[0], `"word":"a","count":3`) || !strings.Contains(rows[1], `"word":"c","count":1`) {
			t.Fatalf("after restore: %v", rows)
		}
	}
}

func TestAggregateCountDoesNotAllocatePerRow(t *testing.T) {
	p := newStateful(t, wordCountYAML, nil)
	vocab := []string{"the", "weir", "river", "a", "flow", "water", "stream", "state"}
	in := make([]string, 4096)
	for i := range in {
		in[i] = vocab[i%len(vocab)]
	}
	b := words(in...)
	ctx := context.Background()
	emitted(t)(p.Process(ctx, b)) // every key exists
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := p.Process(ctx, b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 64 {
		t.Fatalf("%v allocations for a batch of %d rows: the count path allocates per row", allocs, len(in))
	}
	// on_checkpoint: a changed key is remembered once per checkpoint.
	p = newStateful(t, wordCountYAML+"emit: on_checkpoint\n", nil)
	emitted(t)(p.Process(ctx, b))
	allocs = testing.AllocsPerRun(20, func() {
		if _, err := p.Process(ctx, b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 64 {
		t.Fatalf("on_checkpoint: %v allocations for %d rows", allocs, len(in))
	}
}

// BenchmarkAggregateCount counts words of a Zipf-like vocabulary in
// batches of 8192, as the word_count example does after split.
func BenchmarkAggregateCount(b *testing.B) {
	b.Run("reference-ptrmap", func(b *testing.B) {
		// The hand-written ceiling on the same batches: one map lookup and
		// an increment per word.
		batches := zipfWordBatches(16, 8192, 50000)
		counts := map[string]*int64{}
		rows := 0
		for i := 0; i < b.N; i++ {
			bt := batches[i%len(batches)]
			col := message.AsBinary(bt.Column("word"))
			for j := 0; j < bt.NumRows(); j++ {
				w := col.Bytes(j)
				c := counts[string(w)]
				if c == nil {
					c = new(int64)
					counts[string(w)] = c
				}
				*c++
			}
			rows += bt.NumRows()
		}
		b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(rows), "ns/row")
	})
	for _, emit := range []string{emitOnUpdate, emitOnCheckpoint, emitOnEnd} {
		b.Run(emit, func(b *testing.B) {
			p := newStateful(b, wordCountYAML+"emit: "+emit+"\n", nil)
			batches := zipfWordBatches(16, 8192, 50000)
			ctx := context.Background()
			for _, bt := range batches { // warm: every key exists
				if _, err := p.Process(ctx, bt); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			rows := 0
			for i := 0; i < b.N; i++ {
				bt := batches[i%len(batches)]
				if _, err := p.Process(ctx, bt); err != nil {
					b.Fatal(err)
				}
				rows += bt.NumRows()
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(rows), "ns/row")
		})
	}
}

// BenchmarkAggregateMulti is the general path: several aggregates per key.
func BenchmarkAggregateMulti(b *testing.B) {
	p := newStateful(b, "type: aggregate\ngroup_by: word\naggregates: [{function: count}, {function: sum, field: n}, {function: max, field: n}]\n", nil)
	batches := zipfWordBatches(4, 8192, 50000)
	for i, bt := range batches {
		vals := make([]int64, bt.NumRows())
		for j := range vals {
			vals[j] = int64(i + j)
		}
		batches[i] = bt.WithColumn("n", int64Col(vals...))
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	rows := 0
	for i := 0; i < b.N; i++ {
		bt := batches[i%len(batches)]
		if _, err := p.Process(ctx, bt); err != nil {
			b.Fatal(err)
		}
		rows += bt.NumRows()
	}
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
}

// zipfWordBatches returns n batches of size words drawn from a Zipf
// distribution over vocab words.
func zipfWordBatches(n, size, vocab int) []*message.Batch {
	r := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(r, 1.1, 1, uint64(vocab-1))
	out := make([]*message.Batch, n)
	for i := range out {
		ws := make([]string, size)
		for j := range ws {
			ws[j] = fmt.Sprintf("w%d", z.Uint64())
		}
		out[i] = words(ws...)
	}
	return out
}

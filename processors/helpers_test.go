package processors

import (
	"context"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"go.uber.org/goleak"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig builds the config of a processor as the config package would:
// the spec's defaults, overridden by vals.
func testConfig(t testing.TB, name string, vals map[string]any) (*component.Config, *component.Registration) {
	t.Helper()
	reg := component.Lookup(component.KindProcessor, name)
	if reg == nil {
		t.Fatalf("processor %q is not registered", name)
	}
	full := map[string]any{}
	for _, f := range reg.Spec.Fields {
		if f.Default != nil {
			full[f.Name] = f.Default
		}
	}
	for k, v := range vals {
		full[k] = v
	}
	return component.NewConfig("test.yaml", "pipeline.processors[0]", 3, name, full, nil), reg
}

// newProc builds a processor; the test fails on a config error.
func newProc(t testing.TB, name string, vals map[string]any) component.Processor {
	t.Helper()
	conf, reg := testConfig(t, name, vals)
	p, err := reg.NewProcessor(conf, component.Resources{})
	if err != nil {
		t.Fatalf("new %s: %v", name, err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

// confErr returns the constructor's error (the test fails if there is none).
func confErr(t *testing.T, name string, vals map[string]any) error {
	t.Helper()
	conf, reg := testConfig(t, name, vals)
	_, err := reg.NewProcessor(conf, component.Resources{})
	if err == nil {
		t.Fatalf("new %s with %v: want an error", name, vals)
	}
	if !strings.Contains(err.Error(), "test.yaml:") {
		t.Fatalf("error does not name the file: %v", err)
	}
	return err
}

func process(t testing.TB, p component.Processor, b *message.Batch) []*message.Batch {
	t.Helper()
	out, err := p.Process(context.Background(), b)
	if err != nil {
		t.Fatalf("process: %v", err)
	}
	return out
}

// splitResults returns the data batch and the error batch of a result
// (either may be nil), failing on anything else.
func splitResults(t testing.TB, out []*message.Batch) (good, bad *message.Batch) {
	t.Helper()
	for _, b := range out {
		if b.IsError() {
			if bad != nil {
				t.Fatal("two error batches")
			}
			bad = b
		} else {
			if good != nil {
				t.Fatal("two data batches")
			}
			good = b
		}
	}
	return good, bad
}

// jsonRows renders every row as a JSON object of all its columns.
func jsonRows(b *message.Batch) []string {
	if b == nil {
		return nil
	}
	rec := b.Record()
	cols := make([]int, rec.NumCols())
	for i := range cols {
		cols[i] = i
	}
	out := make([]string, b.NumRows())
	for r := range out {
		out[r] = string(message.AppendJSONRow(nil, rec, cols, r))
	}
	return out
}

// strs returns a binary or string column's values ("<null>" for null).
func strs(t testing.TB, b *message.Batch, name string) []string {
	t.Helper()
	col := b.Column(name)
	if col == nil {
		t.Fatalf("no column %q in %s", name, b.Schema())
	}
	bc := message.AsBinary(col)
	if bc == nil {
		t.Fatalf("column %q is %s", name, col.DataType())
	}
	out := make([]string, bc.Len())
	for i := range out {
		if bc.IsNull(i) {
			out[i] = "<null>"
		} else {
			out[i] = bc.String(i)
		}
	}
	return out
}

func schemaString(b *message.Batch) string {
	var parts []string
	for _, f := range b.Schema().Fields() {
		parts = append(parts, f.Name+":"+f.Type.String())
	}
	return strings.Join(parts, ",")
}

// withMeta adds an int64 __meta_offset column (100 + row) and a string
// __meta_key column ("k<row>") to b.
func withMeta(b *message.Batch) *message.Batch {
	n := b.NumRows()
	off := array.NewInt64Builder(message.Alloc)
	key := array.NewStringBuilder(message.Alloc)
	for i := 0; i < n; i++ {
		off.Append(int64(100 + i))
		key.Append("k" + string(rune('0'+i%10)))
	}
	return b.WithColumn(message.MetaOffset, off.NewArray()).WithColumn(message.MetaKey, key.NewArray())
}

// record builds a batch from named columns.
func record(names []string, cols ...arrow.Array) *message.Batch {
	fields := make([]arrow.Field, len(names))
	for i, n := range names {
		fields[i] = arrow.Field{Name: n, Type: cols[i].DataType(), Nullable: true}
	}
	return message.New(array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(cols[0].Len())))
}

func int64Col(vals ...int64) arrow.Array {
	b := array.NewInt64Builder(message.Alloc)
	b.AppendValues(vals, nil)
	return b.NewArray()
}

func stringCol(vals ...string) arrow.Array {
	b := array.NewStringBuilder(message.Alloc)
	b.AppendValues(vals, nil)
	return b.NewArray()
}

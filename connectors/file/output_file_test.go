package file

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

func newOutput(t *testing.T, vals map[string]any) *fileOutput {
	t.Helper()
	out, err := newFileOutput(testConfig(fileOutputSpec(), vals), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	return out.(*fileOutput)
}

// writeBatches connects, writes and closes.
func writeBatches(t *testing.T, out *fileOutput, batches ...*message.Batch) {
	t.Helper()
	ctx := context.Background()
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for _, b := range batches {
		if err := out.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func readString(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestFileOutputAppendAndTruncate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "dir", "out.txt") // directories are created
	writeBatches(t, newOutput(t, map[string]any{"path": p}), message.FromStrings("a", "b"))
	writeBatches(t, newOutput(t, map[string]any{"path": p}), message.FromStrings("c"))
	if got := readString(t, p); got != "a\nb\nc\n" {
		t.Fatalf("after append: %q", got)
	}
	writeBatches(t, newOutput(t, map[string]any{"path": p, "append": false, "format": "lines"}), message.FromStrings("d"))
	if got := readString(t, p); got != "d\n" {
		t.Fatalf("after truncate: %q", got)
	}
}

func TestFileOutputWriteIsVisibleBeforeClose(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	out := newOutput(t, map[string]any{"path": p, "sync": true})
	ctx := context.Background()
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer out.Close(ctx)
	if err := out.Write(ctx, message.FromStrings("x", "y")); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, p); got != "x\ny\n" {
		t.Fatalf("after Write: %q", got)
	}
	// A reconnect (after an error) keeps what was written, even without append.
	out2 := newOutput(t, map[string]any{"path": p, "append": false})
	if err := out2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out2.Write(ctx, message.FromStrings("1")); err != nil {
		t.Fatal(err)
	}
	if err := out2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out2.Write(ctx, message.FromStrings("2")); err != nil {
		t.Fatal(err)
	}
	if err := out2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, p); got != "1\n2\n" {
		t.Fatalf("after reconnect: %q", got)
	}
}

func TestFileOutputColumnsAsJSON(t *testing.T) {
	ids := array.NewInt64Builder(message.Alloc)
	ids.AppendValues([]int64{1, 2}, nil)
	names := array.NewStringBuilder(message.Alloc)
	names.Append(`a "quoted" name`)
	names.AppendNull()
	meta := array.NewStringBuilder(message.Alloc)
	meta.AppendValues([]string{"src", "src"}, nil)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "id", Type: arrow.PrimitiveTypes.Int64},
		{Name: "name", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: message.MetaSource, Type: arrow.BinaryTypes.String},
	}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{ids.NewArray(), names.NewArray(), meta.NewArray()}, 2)
	b := message.New(rec)

	p := filepath.Join(t.TempDir(), "out.ndjson")
	writeBatches(t, newOutput(t, map[string]any{"path": p}), b)
	lines := strings.Split(strings.TrimSuffix(readString(t, p), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("lines %q", lines)
	}
	var got []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q is not JSON: %v", l, err)
		}
		got = append(got, m)
	}
	if got[0]["id"] != float64(1) || got[0]["name"] != `a "quoted" name` || got[1]["name"] != nil {
		t.Fatalf("rows %v", got)
	}
	if _, ok := got[0][message.MetaSource]; ok {
		t.Fatalf("metadata column written: %v", got[0])
	}
}

func TestFileOutputValueOnly(t *testing.T) {
	src := array.NewStringBuilder(message.Alloc)
	src.Append("somewhere")
	b := message.FromStrings(`{"raw":true}`).WithColumn(message.MetaSource, src.NewArray())
	p := filepath.Join(t.TempDir(), "out.ndjson")
	writeBatches(t, newOutput(t, map[string]any{"path": p}), b)
	if got := readString(t, p); got != `{"raw":true}`+"\n" {
		t.Fatalf("got %q", got)
	}
}

// TestFileOutputCharDevice opens character devices: /dev/stdout with
// append, /dev/null also with truncate and sync (truncating /dev/stdout
// could truncate a file the test's output is redirected to).
func TestFileOutputCharDevice(t *testing.T) {
	for _, tc := range []struct {
		path   string
		append bool
	}{{"/dev/stdout", true}, {"/dev/null", true}, {"/dev/null", false}} {
		if _, err := os.Stat(tc.path); err != nil {
			t.Skipf("no %s", tc.path)
		}
		out := newOutput(t, map[string]any{"path": tc.path, "append": tc.append, "sync": true})
		ctx := context.Background()
		if err := out.Connect(ctx); err != nil {
			t.Fatalf("%s append %v: %v", tc.path, tc.append, err)
		}
		b := message.FromStrings()
		if tc.path == "/dev/null" {
			b = message.FromStrings("discarded")
		}
		if err := out.Write(ctx, b); err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if err := out.Close(ctx); err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
	}
}

func TestFileOutputErrors(t *testing.T) {
	out := newOutput(t, map[string]any{"path": filepath.Join(t.TempDir(), "x")})
	if err := out.Write(context.Background(), message.FromStrings("a")); !errors.Is(err, component.ErrNotConnected) {
		t.Fatalf("write before connect: %v", err)
	}
	if r := component.Lookup(component.KindOutput, "file"); r.Spec.Delivery != component.DeliveryExactlyOnce {
		t.Fatalf("delivery %q", r.Spec.Delivery)
	}
}

func TestFileOutputCutsTornLineOnAppend(t *testing.T) {
	for _, tc := range []struct{ before, after string }{
		{"a\nb\n", "a\nb\n"},
		{"a\nb\n{\"wo", "a\nb\n"},
		{"{\"wo", ""},
	} {
		path := filepath.Join(t.TempDir(), "out.txt")
		if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
			t.Fatal(err)
		}
		cutTornLine(path)
		got, _ := os.ReadFile(path)
		if string(got) != tc.after {
			t.Fatalf("%q: got %q, want %q", tc.before, got, tc.after)
		}
	}
}

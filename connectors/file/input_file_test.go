package file

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig builds a config the way the config package would: the spec's
// defaults, overridden by vals.
func testConfig(spec component.Spec, vals map[string]any) *component.Config {
	all := map[string]any{}
	for _, f := range spec.Fields {
		if f.Default != nil {
			all[f.Name] = f.Default
		}
	}
	for k, v := range vals {
		all[k] = v
	}
	return component.NewConfig("test.yaml", "input", 1, spec.Name, all, nil)
}

func newInput(t testing.TB, vals map[string]any) *fileInput {
	t.Helper()
	in, err := newFileInput(testConfig(fileInputSpec(), vals), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	return in.(*fileInput)
}

func writeFile(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rows renders a batch's rows: the __value__ payload, or the columns
// joined by "|" (null as "<nil>").
func rows(b *message.Batch) []string {
	if v := b.Values(); v != nil {
		out := make([]string, v.Len())
		for i := range out {
			out[i] = string(v.Bytes(i))
		}
		return out
	}
	rec := b.Record()
	out := make([]string, rec.NumRows())
	for i := range out {
		var parts []string
		for c := 0; c < int(rec.NumCols()); c++ {
			col := message.AsBinary(rec.Column(c))
			if col.IsNull(i) {
				parts = append(parts, "<nil>")
			} else {
				parts = append(parts, col.String(i))
			}
		}
		out[i] = strings.Join(parts, "|")
	}
	return out
}

func offset(b *message.Batch) int64 { return int64(binary.BigEndian.Uint64(b.Pos)) }

// readAll connects, reads to the end and closes.
func readAll(t testing.TB, in *fileInput) []*message.Batch {
	t.Helper()
	ctx := context.Background()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := in.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}()
	var out []*message.Batch
	for {
		b, ack, err := in.Read(ctx)
		if errors.Is(err, component.ErrEndOfInput) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ack != nil {
			t.Fatal("file input should not need acks")
		}
		out = append(out, b)
	}
}

func allRows(batches []*message.Batch) []string {
	var out []string
	for _, b := range batches {
		out = append(out, rows(b)...)
	}
	return out
}

func checkRows(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d rows %q, want %d rows %q", len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("row %d = %q, want %q (all: %q)", i, got[i], want[i], got)
		}
	}
}

func TestFileInputLines(t *testing.T) {
	for name, tc := range map[string]struct {
		content string
		format  string
		want    []string
	}{
		"lines":               {"a\nbb\nccc\n", "lines", []string{"a", "bb", "ccc"}},
		"no trailing newline": {"a\nbb\nccc", "lines", []string{"a", "bb", "ccc"}},
		"crlf":                {"a\r\nbb\r\n", "lines", []string{"a", "bb"}},
		"empty lines kept":    {"a\n\nb\n\n", "lines", []string{"a", "", "b", ""}},
		"empty file":          {"", "lines", nil},
		"ndjson":              {`{"a":1}` + "\n" + `{"a":2}` + "\n", "ndjson", []string{`{"a":1}`, `{"a":2}`}},
		"ndjson blank lines":  {"\n" + `{"a":1}` + "\n  \n\r\n" + `{"a":2}`, "ndjson", []string{`{"a":1}`, `{"a":2}`}},
		"ndjson only blank":   {"\n\n", "ndjson", nil},
	} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, tc.content)
			in := newInput(t, map[string]any{"path": p, "format": tc.format, "batch_size": int64(2)})
			batches := readAll(t, in)
			checkRows(t, allRows(batches), tc.want)
			for _, b := range batches {
				if b.NumRows() > 2 || b.NumRows() == 0 {
					t.Fatalf("batch of %d rows", b.NumRows())
				}
				if b.Schema().Field(0).Name != message.ValueColumn || b.Schema().Field(0).Type.ID() != arrow.BINARY {
					t.Fatalf("schema %s", b.Schema())
				}
			}
			if n := len(batches); n > 0 && offset(batches[n-1]) != int64(len(tc.content)) {
				t.Fatalf("last position %d, want %d", offset(batches[n-1]), len(tc.content))
			}
		})
	}
}

func TestFileInputHugeLine(t *testing.T) {
	huge := strings.Repeat("x", 3<<20+17) // longer than the 1 MiB read buffer
	content := "first\n" + huge + "\nlast"
	p := writeFile(t, content)
	in := newInput(t, map[string]any{"path": p})
	got := allRows(readAll(t, in))
	if len(got) != 3 || got[0] != "first" || got[1] != huge || got[2] != "last" {
		t.Fatalf("got %d rows (lengths %v)", len(got), lengths(got))
	}
}

func lengths(s []string) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[i] = len(v)
	}
	return out
}

func TestFileInputCSV(t *testing.T) {
	for name, tc := range map[string]struct {
		content string
		vals    map[string]any
		cols    []string
		want    []string
	}{
		"header": {"id,name\n1,ann\n2,\"bob, jr\"\n3,\"multi\nline\"\n", nil,
			[]string{"id", "name"}, []string{"1|ann", "2|bob, jr", "3|multi\nline"}},
		"no header": {"1,ann\n2,bob\n", map[string]any{"csv_header": false},
			[]string{"c0", "c1"}, []string{"1|ann", "2|bob"}},
		"delimiter": {"a;b\nx;y\n", map[string]any{"csv_delimiter": ";"},
			[]string{"a", "b"}, []string{"x|y"}},
		"tab": {"a\tb\nx\ty\n", map[string]any{"csv_delimiter": `\t`},
			[]string{"a", "b"}, []string{"x|y"}},
		"short rows and empty lines": {"a,b,c\n1,2\n\n3,4,5", nil,
			[]string{"a", "b", "c"}, []string{"1|2|<nil>", "3|4|5"}},
		"header only": {"a,b\n", nil, nil, nil},
		"empty":       {"", nil, nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			vals := map[string]any{"path": writeFile(t, tc.content), "format": "csv", "batch_size": int64(2)}
			for k, v := range tc.vals {
				vals[k] = v
			}
			batches := readAll(t, newInput(t, vals))
			checkRows(t, allRows(batches), tc.want)
			for _, b := range batches {
				var names []string
				for _, f := range b.Schema().Fields() {
					if f.Type.ID() != arrow.STRING {
						t.Fatalf("column %s is %s, want string", f.Name, f.Type)
					}
					names = append(names, f.Name)
				}
				if strings.Join(names, ",") != strings.Join(tc.cols, ",") {
					t.Fatalf("columns %v, want %v", names, tc.cols)
				}
			}
		})
	}
}

func TestFileInputCSVTooManyFields(t *testing.T) {
	p := writeFile(t, "a,b\n1,2\n3,4,5\n6,7\n")
	in := newInput(t, map[string]any{"path": p, "format": "csv"})
	ctx := context.Background()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	b, _, err := in.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rows(b), []string{"1|2"}) // the rows before the bad one
	if _, _, err := in.Read(ctx); err == nil || !strings.Contains(err.Error(), "3 fields") {
		t.Fatalf("got %v, want a field count error", err)
	}
}

// TestFileInputSeek checks that resuming at any batch's position yields
// exactly the records after that batch.
func TestFileInputSeek(t *testing.T) {
	var lines, ndjson, csvBody strings.Builder
	for i := 1; i <= 23; i++ {
		fmt.Fprintf(&lines, "line %d\n", i)
		if i%5 == 0 {
			ndjson.WriteString("\n") // blank lines are skipped but counted in offsets
		}
		fmt.Fprintf(&ndjson, `{"n":%d}`+"\n", i)
		fmt.Fprintf(&csvBody, "%d,\"v\n%d\"\n", i, i)
	}
	for name, tc := range map[string]struct {
		content string
		vals    map[string]any
	}{
		"lines":         {strings.TrimSuffix(lines.String(), "\n"), map[string]any{"format": "lines"}},
		"ndjson":        {ndjson.String(), map[string]any{"format": "ndjson"}},
		"csv header":    {"n,v\n" + csvBody.String(), map[string]any{"format": "csv"}},
		"csv no header": {csvBody.String(), map[string]any{"format": "csv", "csv_header": false}},
	} {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, tc.content)
			conf := func() map[string]any {
				vals := map[string]any{"path": p, "batch_size": int64(4)}
				for k, v := range tc.vals {
					vals[k] = v
				}
				return vals
			}
			batches := readAll(t, newInput(t, conf()))
			all := allRows(batches)
			if len(all) != 23 {
				t.Fatalf("%d rows", len(all))
			}
			seen := 0
			for _, b := range batches {
				seen += b.NumRows()
				in := newInput(t, conf())
				if err := in.Seek(b.Pos); err != nil {
					t.Fatal(err)
				}
				rest := readAll(t, in)
				checkRows(t, allRows(rest), all[seen:])
				if len(rest) > 0 && !bytes.Equal(rest[len(rest)-1].Pos, batches[len(batches)-1].Pos) {
					t.Fatalf("resumed run ends at %d, want %d", offset(rest[len(rest)-1]), offset(batches[len(batches)-1]))
				}
				if len(rest) > 0 && !sameSchema(rest[0], batches[0]) {
					t.Fatalf("schema after seek %s, want %s", rest[0].Schema(), batches[0].Schema())
				}
			}
			// An empty position starts over.
			in := newInput(t, conf())
			if err := in.Seek(nil); err != nil {
				t.Fatal(err)
			}
			checkRows(t, allRows(readAll(t, in)), all)
			if err := in.Seek([]byte{1}); err == nil {
				t.Fatal("seek to a 1-byte position succeeded")
			}
		})
	}
}

func sameSchema(a, b *message.Batch) bool { return a.Schema().Equal(b.Schema()) }

func TestFileInputReconnectResumes(t *testing.T) {
	p := writeFile(t, "a\nb\nc\nd\n")
	in := newInput(t, map[string]any{"path": p, "batch_size": int64(1)})
	ctx := context.Background()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	b, _, err := in.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkRows(t, rows(b), []string{"a"})
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		b, _, err := in.Read(ctx)
		if errors.Is(err, component.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, rows(b)...)
	}
	checkRows(t, got, []string{"b", "c", "d"})
	if err := in.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestFileInputProgress(t *testing.T) {
	content := strings.Repeat("0123456789\n", 100)
	p := writeFile(t, content)
	in := newInput(t, map[string]any{"path": p, "batch_size": int64(30)})
	ctx := context.Background()
	if err := in.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in.Close(ctx)
	if done, total := in.Progress(); done != 0 || total != int64(len(content)) {
		t.Fatalf("progress before reading = %d/%d", done, total)
	}
	if _, _, err := in.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if done, total := in.Progress(); done != 330 || total != int64(len(content)) {
		t.Fatalf("progress after one batch = %d/%d, want 330/%d", done, total, len(content))
	}
	for {
		_, _, err := in.Read(ctx)
		if errors.Is(err, component.ErrEndOfInput) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if done, total := in.Progress(); done != total {
		t.Fatalf("progress at the end = %d/%d", done, total)
	}

	// After a seek, progress starts at the seek offset.
	in2 := newInput(t, map[string]any{"path": p})
	if err := in2.Seek(binary.BigEndian.AppendUint64(nil, 110)); err != nil {
		t.Fatal(err)
	}
	if err := in2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	defer in2.Close(ctx)
	if done, _ := in2.Progress(); done != 110 {
		t.Fatalf("progress after seek = %d, want 110", done)
	}
}

func TestFileInputErrors(t *testing.T) {
	ctx := context.Background()
	in := newInput(t, map[string]any{"path": filepath.Join(t.TempDir(), "missing")})
	if err := in.Connect(ctx); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("connect to a missing file: %v", err)
	}
	for field, value := range map[string]any{
		"batch_size":    int64(0),
		"format":        "xml",
		"csv_delimiter": ",,",
		"path":          "",
	} {
		t.Run(field, func(t *testing.T) {
			vals := map[string]any{"path": "x", field: value}
			_, err := newFileInput(testConfig(fileInputSpec(), vals), component.Resources{})
			var fe *component.FieldError
			if !errors.As(err, &fe) || fe.Path != "input."+field {
				t.Fatalf("got %v, want an error naming %s", err, field)
			}
		})
	}
}

func TestFileRegistered(t *testing.T) {
	for _, kind := range []component.Kind{component.KindInput, component.KindOutput} {
		r := component.Lookup(kind, "file")
		if r == nil {
			t.Fatalf("file %s not registered", kind)
		}
		for _, f := range r.Spec.Fields {
			if f.Description == "" {
				t.Errorf("%s field %s has no description", kind, f.Name)
			}
		}
	}
}

// BenchmarkFileInputLines reads a ~50 MB file of lines; MB/s is the
// reading throughput.
func BenchmarkFileInputLines(b *testing.B) {
	p := filepath.Join(b.TempDir(), "bench.txt")
	var buf bytes.Buffer
	for i := 0; buf.Len() < 50<<20; i++ {
		fmt.Fprintf(&buf, `{"id":%d,"user":"user-%d","event":"click","value":%d}`+"\n", i, i%1000, i*7)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	size := int64(buf.Len())
	buf = bytes.Buffer{}
	b.SetBytes(size)
	b.ReportAllocs()
	ctx := context.Background()
	for b.Loop() {
		in := newInput(b, map[string]any{"path": p})
		if err := in.Connect(ctx); err != nil {
			b.Fatal(err)
		}
		var n int64
		for {
			batch, _, err := in.Read(ctx)
			if errors.Is(err, component.ErrEndOfInput) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n += int64(batch.NumRows())
		}
		if n == 0 {
			b.Fatal("no rows")
		}
		in.Close(ctx)
	}
}

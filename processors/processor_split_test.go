package processors

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/message"
)

func TestSplit(t *testing.T) {
	values := []string{"the quick  brown", "", "  fox\tjumps\n", "a\u00a0b\u2003c", ",x,,y,", "one"}
	tests := []struct {
		name    string
		conf    map[string]any
		tokens  []string
		offsets []int64 // __meta_offset of each token's row (100 + row)
	}{
		{"whitespace", nil,
			[]string{"the", "quick", "brown", "fox", "jumps", "a", "b", "c", ",x,,y,", "one"},
			[]int64{100, 100, 100, 102, 102, 103, 103, 103, 104, 105}},
		{"whitespace keep empty", map[string]any{"keep_empty": true},
			[]string{"the", "quick", "brown", "", "", "fox", "jumps", "", "a", "b", "c", ",x,,y,", "one"},
			[]int64{100, 100, 100, 101, 102, 102, 102, 102, 103, 103, 103, 104, 105}},
		{"separator", map[string]any{"separator": ","},
			[]string{"the quick  brown", "  fox\tjumps\n", "a\u00a0b\u2003c", "x", "y", "one"},
			[]int64{100, 102, 103, 104, 104, 105}},
		{"separator keep empty", map[string]any{"separator": ",", "keep_empty": true},
			[]string{"the quick  brown", "", "  fox\tjumps\n", "a\u00a0b\u2003c", "", "x", "", "y", "", "one"},
			[]int64{100, 101, 102, 103, 104, 104, 104, 104, 104, 105}},
		{"regex", map[string]any{"regex": `[ ,]+`},
			[]string{"the", "quick", "brown", "fox\tjumps\n", "a\u00a0b\u2003c", "x", "y", "one"},
			[]int64{100, 100, 100, 102, 103, 104, 104, 105}},
		{"regex keep empty", map[string]any{"regex": `,`, "keep_empty": true},
			[]string{"the quick  brown", "", "  fox\tjumps\n", "a\u00a0b\u2003c", "", "x", "", "y", "", "one"},
			[]int64{100, 101, 102, 103, 104, 104, 104, 104, 104, 105}},
	}
	in := withMeta(message.FromStrings(values...))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := process(t, newProc(t, "split", tt.conf), in)
			if len(out) != 1 {
				t.Fatalf("%d batches", len(out))
			}
			b := out[0]
			if got := schemaString(b); got != "__value__:binary,__meta_offset:int64,__meta_key:utf8" {
				t.Fatalf("schema %s", got)
			}
			if got := strs(t, b, message.ValueColumn); !slices.Equal(got, tt.tokens) {
				t.Fatalf("tokens\n got %q\nwant %q", got, tt.tokens)
			}
			if got := b.Column(message.MetaOffset).(*array.Int64).Int64Values(); !slices.Equal(got, tt.offsets) {
				t.Fatalf("offsets %v, want %v", got, tt.offsets)
			}
			keys := strs(t, b, message.MetaKey)
			for i, off := range tt.offsets {
				if want := "k" + string(rune('0'+off-100)); keys[i] != want {
					t.Fatalf("token %d: key %q, want %q", i, keys[i], want)
				}
			}
		})
	}
}

func TestSplitOutputFieldAndStringColumn(t *testing.T) {
	in := record([]string{"tags", "id"}, stringCol("a;b", "c"), int64Col(1, 2))
	p := newProc(t, "split", map[string]any{"field": "tags", "separator": ";", "output_field": "tag"})
	out := process(t, p, in)
	if got := schemaString(out[0]); got != "tags:utf8,id:int64,tag:utf8" {
		t.Fatalf("schema %s", got)
	}
	if got := jsonRows(out[0]); !slices.Equal(got, []string{
		`{"tags":"a;b","id":1,"tag":"a"}`, `{"tags":"a;b","id":1,"tag":"b"}`, `{"tags":"c","id":2,"tag":"c"}`,
	}) {
		t.Fatalf("rows %q", got)
	}
}

func TestSplitNullsAndNoTokens(t *testing.T) {
	bld := array.NewBinaryBuilder(message.Alloc, arrow.BinaryTypes.Binary)
	bld.AppendNull()
	bld.Append([]byte("   "))
	in := record([]string{message.ValueColumn}, bld.NewArray())
	if out := process(t, newProc(t, "split", nil), in); len(out) != 0 {
		t.Fatalf("want no batch, got %q", jsonRows(out[0]))
	}
	// One token per row: the other columns are sliced, not copied.
	in = withMeta(message.FromStrings("a", "b"))
	out := process(t, newProc(t, "split", nil), in)
	if out[0].Column(message.MetaKey) == nil || out[0].NumRows() != 2 {
		t.Fatalf("rows %q", jsonRows(out[0]))
	}
}

func TestSplitErrors(t *testing.T) {
	confErr(t, "split", map[string]any{"separator": ",", "regex": ","})
	confErr(t, "split", map[string]any{"regex": "("})
	confErr(t, "split", map[string]any{"field": ""})
	p := newProc(t, "split", map[string]any{"field": "nope"})
	if _, err := p.Process(t.Context(), message.FromStrings("a")); err == nil {
		t.Fatal("want an error for a missing field")
	}
	p = newProc(t, "split", map[string]any{"field": "n"})
	if _, err := p.Process(t.Context(), record([]string{"n"}, int64Col(1))); err == nil {
		t.Fatal("want an error for a non-text field")
	}
}

// TestSplitWhitespaceMatchesStringsFields compares with strings.Fields on
// text with mixed Unicode whitespace.
func TestSplitWhitespaceMatchesStringsFields(t *testing.T) {
	values := []string{
		"\u0085x\u2028y\u3000 z\v", "héllo wörld", "\xff\xfe bad utf8", "tab\tsep\r\nline", strings.Repeat("w ", 100),
	}
	out := process(t, newProc(t, "split", nil), message.FromStrings(values...))
	var want []string
	for _, v := range values {
		want = append(want, strings.Fields(v)...)
	}
	if got := strs(t, out[0], message.ValueColumn); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

func splitBenchInput(lines int) *message.Batch {
	words := []string{"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "stream", "processing"}
	vals := make([][]byte, lines)
	var line bytes.Buffer
	for i := range vals {
		line.Reset()
		for w := 0; w < 12; w++ {
			if w > 0 {
				line.WriteByte(' ')
			}
			line.WriteString(words[(i+w*7)%len(words)])
		}
		vals[i] = bytes.Clone(line.Bytes())
	}
	return message.FromValues(vals)
}

// BenchmarkSplitWhitespace is the word count hot path: 8192 lines of 12
// words each.
func BenchmarkSplitWhitespace(b *testing.B) {
	for _, meta := range []bool{false, true} {
		name := "value-only"
		in := splitBenchInput(8192)
		if meta {
			name = "with-meta-columns"
			in = withMeta(in)
		}
		b.Run(name, func(b *testing.B) {
			p := newProc(b, "split", nil)
			b.SetBytes(int64(message.AsBinary(in.Column(message.ValueColumn)).TotalBytes()))
			b.ReportAllocs()
			tokens := 0
			for b.Loop() {
				out, err := p.Process(b.Context(), in)
				if err != nil {
					b.Fatal(err)
				}
				tokens += out[0].NumRows()
			}
			b.ReportMetric(float64(tokens)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

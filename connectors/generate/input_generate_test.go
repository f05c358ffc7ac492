package generate

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newTestInput builds the input the way the config package would: the
// spec's defaults, overridden by vals.
func newTestInput(t *testing.T, vals map[string]any) *generateInput {
	t.Helper()
	in, err := newTestInputErr(vals)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func newTestInputErr(vals map[string]any) (*generateInput, error) {
	spec := generateSpec()
	all := map[string]any{}
	for _, f := range spec.Fields {
		if f.Default != nil {
			all[f.Name] = f.Default
		}
	}
	for k, v := range vals {
		all[k] = v
	}
	conf := component.NewConfig("test.yaml", "input", 1, "generate", all, nil)
	in, err := newGenerateInput(conf, component.Resources{})
	if err != nil {
		return nil, err
	}
	return in.(*generateInput), nil
}

func values(b *message.Batch) []string {
	v := b.Values()
	out := make([]string, v.Len())
	for i := range out {
		out[i] = string(v.Bytes(i))
	}
	return out
}

func pos(b *message.Batch) uint64 { return binary.BigEndian.Uint64(b.Pos) }

// readAll reads until ErrEndOfInput and returns every batch.
func readAll(t *testing.T, in component.Input) []*message.Batch {
	t.Helper()
	ctx := context.Background()
	var out []*message.Batch
	for {
		b, _, err := in.Read(ctx)
		if errors.Is(err, component.ErrEndOfInput) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		if len(out) > 1e6 {
			t.Fatal("input does not end")
		}
	}
}

func TestGenerateDefaultTemplate(t *testing.T) {
	in := newTestInput(t, map[string]any{"count": int64(3)})
	if !in.Bounded() {
		t.Fatal("count > 0 should be bounded")
	}
	batches := readAll(t, in)
	var got []string
	for _, b := range batches {
		if b.NumRows() != 1 {
			t.Fatalf("batch of %d rows, want 1 (default batch_size)", b.NumRows())
		}
		got = append(got, values(b)...)
	}
	want := []string{`{"id":1}`, `{"id":2}`, `{"id":3}`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateCountAndBatching(t *testing.T) {
	in := newTestInput(t, map[string]any{"count": int64(10), "batch_size": int64(4)})
	batches := readAll(t, in)
	if len(batches) != 3 {
		t.Fatalf("got %d batches, want 3", len(batches))
	}
	wantRows := []int{4, 4, 2}
	wantPos := []uint64{4, 8, 10}
	n := 0
	for i, b := range batches {
		if b.NumRows() != wantRows[i] || pos(b) != wantPos[i] {
			t.Fatalf("batch %d: %d rows at pos %d, want %d rows at pos %d", i, b.NumRows(), pos(b), wantRows[i], wantPos[i])
		}
		for _, v := range values(b) {
			n++
			if v != `{"id":`+strconv.Itoa(n)+`}` {
				t.Fatalf("record %d = %q", n, v)
			}
		}
	}
	// Batches must not share memory: the input reuses its buffers.
	if values(batches[0])[0] != `{"id":1}` {
		t.Fatalf("first batch changed after later reads: %q", values(batches[0]))
	}
	// Still at the end.
	if _, _, err := in.Read(context.Background()); !errors.Is(err, component.ErrEndOfInput) {
		t.Fatalf("read after end: %v", err)
	}
}

func TestGenerateUnbounded(t *testing.T) {
	in := newTestInput(t, map[string]any{"batch_size": int64(100)})
	if in.Bounded() {
		t.Fatal("count 0 should be unbounded")
	}
	for i := 0; i < 50; i++ {
		b, _, err := in.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if b.NumRows() != 100 {
			t.Fatalf("batch of %d rows", b.NumRows())
		}
	}
}

func TestGenerateTemplate(t *testing.T) {
	in := newTestInput(t, map[string]any{
		"payload":    `${!count}:${!timestamp_ms}:${!random_int}${!count}-$x{y}${!`,
		"count":      int64(2),
		"batch_size": int64(2),
	})
	before := time.Now().UnixMilli()
	b, _, err := in.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixMilli()
	for i, v := range values(b) {
		fields := strings.SplitN(v, ":", 3)
		if len(fields) != 3 {
			t.Fatalf("record %q", v)
		}
		n := strconv.Itoa(i + 1)
		if fields[0] != n {
			t.Fatalf("count in %q", v)
		}
		ts, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil || ts < before || ts > after {
			t.Fatalf("timestamp in %q not in [%d,%d]", v, before, after)
		}
		rest, ok := strings.CutSuffix(fields[2], n+"-$x{y}${!")
		if !ok {
			t.Fatalf("suffix of %q", v)
		}
		if r, err := strconv.ParseInt(rest, 10, 64); err != nil || r < 0 {
			t.Fatalf("random int in %q", v)
		}
	}
}

func TestGenerateJSONPayloadIsValid(t *testing.T) {
	in := newTestInput(t, map[string]any{"payload": `{"n":${!count},"ts":${!timestamp_ms}}`, "count": int64(5), "batch_size": int64(5)})
	b, _, err := in.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range values(b) {
		var m map[string]int64
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			t.Fatalf("%q: %v", v, err)
		}
	}
}

func TestGenerateBadConfig(t *testing.T) {
	for field, value := range map[string]any{
		"payload":    "${!nope}",
		"batch_size": int64(0),
		"count":      int64(-1),
		"interval":   -time.Second,
	} {
		t.Run(field, func(t *testing.T) {
			_, err := newTestInputErr(map[string]any{field: value})
			var fe *component.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a field error", err)
			}
			if fe.Path != "input."+field {
				t.Fatalf("error %q does not name %s", err, field)
			}
		})
	}
}

func TestGenerateSeek(t *testing.T) {
	in := newTestInput(t, map[string]any{"count": int64(10), "batch_size": int64(3)})
	if _, _, err := in.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _, err := in.Read(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	saved := b.Pos // after record 6

	// A new input (another process) resumes after record 6.
	in2 := newTestInput(t, map[string]any{"count": int64(10), "batch_size": int64(3)})
	if err := in2.Seek(saved); err != nil {
		t.Fatal(err)
	}
	if err := in2.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	batches := readAll(t, in2)
	var got []string
	for _, b := range batches {
		got = append(got, values(b)...)
	}
	want := `{"id":7}|{"id":8}|{"id":9}|{"id":10}`
	if strings.Join(got, "|") != want {
		t.Fatalf("after seek got %q, want %s", got, want)
	}
	if pos(batches[len(batches)-1]) != 10 {
		t.Fatalf("last pos %d", pos(batches[len(batches)-1]))
	}

	// Seeking to the end ends at once; a bad position is an error.
	if err := in2.Seek(binary.BigEndian.AppendUint64(nil, 10)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := in2.Read(context.Background()); !errors.Is(err, component.ErrEndOfInput) {
		t.Fatalf("read after seek to end: %v", err)
	}
	if err := in2.Seek([]byte{1, 2}); err == nil {
		t.Fatal("seek to a 2-byte position succeeded")
	}
}

func TestGenerateInterval(t *testing.T) {
	const interval = 20 * time.Millisecond
	in := newTestInput(t, map[string]any{"interval": interval, "count": int64(3)})
	start := time.Now()
	batches := readAll(t, in)
	if len(batches) != 3 {
		t.Fatalf("%d batches", len(batches))
	}
	// The first batch is free, then one interval between batches.
	if el := time.Since(start); el < 2*interval {
		t.Fatalf("3 batches took %s, want at least %s", el, 2*interval)
	}
	if err := in.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateIntervalRespectsContext(t *testing.T) {
	in := newTestInput(t, map[string]any{"interval": time.Hour})
	defer in.Close(context.Background())
	if _, _, err := in.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := in.Read(ctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read did not return after cancel")
	}
}

func TestGenerateRegistered(t *testing.T) {
	r := component.Lookup(component.KindInput, "generate")
	if r == nil || r.NewInput == nil {
		t.Fatal("generate input not registered")
	}
	for _, f := range r.Spec.Fields {
		if f.Description == "" {
			t.Errorf("field %s has no description", f.Name)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	in, err := newTestInputErr(map[string]any{"batch_size": int64(1024)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := in.Read(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

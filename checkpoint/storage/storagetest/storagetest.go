// Package storagetest is the conformance suite every checkpoint
// storage.Storage passes (Run), and the helpers that connect tests to the
// S3 server scripts/minio.sh starts (S3FromEnv, MinIOFromEnv).
package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-stream/weir/checkpoint/storage"
)

// Run runs the conformance suite. newStorage must return an empty Storage
// for each test (e.g. a new temp dir, or a unique S3 prefix) and arrange its
// cleanup with t.Cleanup.
func Run(t *testing.T, newStorage func(t *testing.T) storage.Storage) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Storage)
	}{
		{"RoundTrip", testRoundTrip},
		{"Large", testLarge},
		{"Overwrite", testOverwrite},
		{"NotFound", testNotFound},
		{"List", testList},
		{"Delete", testDelete},
		{"DeleteMany", testDeleteMany},
		{"Names", testNames},
		{"SizeMismatch", testSizeMismatch},
		{"FailingReader", testFailingReader},
		{"Canceled", testCanceled},
		{"ConcurrentPuts", testConcurrentPuts},
		{"ConcurrentOverwrites", testConcurrentOverwrites},
		{"AtomicWhileInFlight", testAtomicWhileInFlight},
		{"String", testString},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStorage(t)) })
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// put stores data under name, failing the test on error.
func put(t *testing.T, s storage.Storage, name string, data []byte) {
	t.Helper()
	if err := s.Put(ctxFor(t), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", name, len(data), err)
	}
}

// get returns the object's bytes, failing the test on error.
func get(t *testing.T, s storage.Storage, name string) []byte {
	t.Helper()
	b, err := tryGet(ctxFor(t), s, name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return b
}

func tryGet(ctx context.Context, s storage.Storage, name string) ([]byte, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func names(infos []storage.ObjectInfo) []string {
	out := make([]string, len(infos))
	for i, o := range infos {
		out[i] = o.Name
	}
	return out
}

func list(t *testing.T, s storage.Storage, prefix string) []storage.ObjectInfo {
	t.Helper()
	infos, err := s.List(ctxFor(t), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return infos
}

// pattern is a reader of n deterministic pseudo-random bytes that cannot
// seek (so Puts take their streaming path).
type pattern struct {
	rng *rand.PCG
	n   int64
}

func newPattern(seed uint64, n int64) *pattern {
	return &pattern{rng: rand.NewPCG(seed, seed^0x9e3779b97f4a7c15), n: n}
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := p.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	if i < len(b) {
		v := p.rng.Uint64()
		for ; i < len(b); i++ {
			b[i] = byte(v)
			v >>= 8
		}
	}
	p.n -= int64(len(b))
	return len(b), nil
}

func patternSum(seed uint64, n int64) [32]byte {
	h := sha256.New()
	if _, err := io.Copy(h, newPattern(seed, n)); err != nil {
		panic(err)
	}
	return [32]byte(h.Sum(nil))
}

func testRoundTrip(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	small := []byte(`{"checkpoint":42}`)
	cases := []struct {
		name string
		r    io.Reader
		size int64
		want []byte
	}{
		{"p/empty", bytes.NewReader(nil), 0, []byte{}},
		{"p/empty-unknown-size", strings.NewReader(""), -1, []byte{}},
		{"p/small", bytes.NewReader(small), int64(len(small)), small},
		{"p/small-unknown-size", io.MultiReader(bytes.NewReader(small)), -1, small},
		{"p/small-not-seekable", io.MultiReader(bytes.NewReader(small)), int64(len(small)), small},
		{"p/deep/er/than/that/x.sst", bytes.NewReader(small), int64(len(small)), small},
	}
	// A file, read from its current offset (a snapshot file on disk).
	f, err := os.CreateTemp(t.TempDir(), "body")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("skip" + string(small)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(4, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	cases = append(cases, struct {
		name string
		r    io.Reader
		size int64
		want []byte
	}{"p/from-file", f, int64(len(small)), small})
	for _, c := range cases {
		if err := s.Put(ctx, c.name, c.r, c.size); err != nil {
			t.Fatalf("Put(%q): %v", c.name, err)
		}
	}
	for _, c := range cases {
		if got := get(t, s, c.name); !bytes.Equal(got, c.want) {
			t.Errorf("Get(%q) = %q, want %q", c.name, got, c.want)
		}
		info, err := s.Stat(ctx, c.name)
		if err != nil {
			t.Fatalf("Stat(%q): %v", c.name, err)
		}
		if info.Name != c.name || info.Size != int64(len(c.want)) || info.ModTime.IsZero() {
			t.Errorf("Stat(%q) = %+v, want name %q, size %d and a time", c.name, info, c.name, len(c.want))
		}
	}
}

func testLarge(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	const n = 20 << 20
	for _, size := range []int64{n, -1} {
		name := fmt.Sprintf("large/size%d.bin", size)
		if err := s.Put(ctx, name, newPattern(7, n), size); err != nil {
			t.Fatalf("Put(%q) of %d streamed bytes: %v", name, n, err)
		}
		rc, err := s.Get(ctx, name)
		if err != nil {
			t.Fatalf("Get(%q): %v", name, err)
		}
		h := sha256.New()
		got, err := io.Copy(h, rc)
		_ = rc.Close()
		if err != nil {
			t.Fatalf("read %q: %v", name, err)
		}
		if got != n || [32]byte(h.Sum(nil)) != patternSum(7, n) {
			t.Fatalf("Get(%q): %d bytes, or content differs from the %d put", name, got, n)
		}
		if info, err := s.Stat(ctx, name); err != nil || info.Size != n {
			t.Fatalf("Stat(%q) = %+v, %v; want size %d", name, info, err, n)
		}
	}
}

func testOverwrite(t *testing.T, s storage.Storage) {
	put(t, s, "o/x", bytes.Repeat([]byte("a"), 100))
	put(t, s, "o/x", []byte("shorter"))
	if got := get(t, s, "o/x"); string(got) != "shorter" {
		t.Fatalf("after overwrite Get = %q, want %q", got, "shorter")
	}
	if infos := list(t, s, ""); len(infos) != 1 || infos[0].Size != 7 {
		t.Fatalf("after overwrite List = %+v, want one object of 7 bytes", infos)
	}
}

func testNotFound(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	put(t, s, "dir/present", []byte("x"))
	for _, name := range []string{"absent", "dir/absent", "dir/present/below", "dir"} {
		_, err := s.Get(ctx, name)
		if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get(%q) error = %v, want ErrNotFound", name, err)
		} else if !strings.Contains(err.Error(), name) {
			t.Errorf("Get(%q) error %q does not name the object", name, err)
		}
		if storage.IsTransient(err) {
			t.Errorf("Get(%q): not found must not be transient: %v", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%q) error = %v, want ErrNotFound", name, err)
		}
	}
}

func testList(t *testing.T, s storage.Storage) {
	all := []string{"a/1", "a/10", "a/2", "a/b/c", "ab", "b", "z/y/x"}
	order := slices.Clone(all)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for i, n := range order {
		put(t, s, n, bytes.Repeat([]byte{'x'}, i))
	}
	cases := []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"a/", []string{"a/1", "a/10", "a/2", "a/b/c"}},
		{"a", []string{"a/1", "a/10", "a/2", "a/b/c", "ab"}},
		{"a/1", []string{"a/1", "a/10"}},
		{"a/b", []string{"a/b/c"}},
		{"a/b/", []string{"a/b/c"}},
		{"z/y/", []string{"z/y/x"}},
		{"z/y/x", []string{"z/y/x"}},
		{"z/y/x/", nil},
		{"z/y/x/w/", nil},
		{"nope/", nil},
		{"b/", nil},
		{"c", nil},
	}
	for _, c := range cases {
		infos := list(t, s, c.prefix)
		if got := names(infos); !slices.Equal(got, c.want) {
			t.Errorf("List(%q) = %q, want %q", c.prefix, got, c.want)
		}
		for _, o := range infos {
			wantSize := int64(slices.Index(order, o.Name))
			if o.Size != wantSize || o.ModTime.IsZero() {
				t.Errorf("List(%q): %+v, want size %d and a time", c.prefix, o, wantSize)
			}
		}
	}
}

func testDelete(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	put(t, s, "d/x/y", []byte("1"))
	put(t, s, "d/z", []byte("2"))
	for range 2 { // the second time it is already gone
		if err := s.Delete(ctx, "d/x/y"); err != nil {
			t.Fatalf("Delete(d/x/y): %v", err)
		}
	}
	if err := s.Delete(ctx, "never/there"); err != nil {
		t.Fatalf("Delete of a missing object: %v", err)
	}
	if err := s.Delete(ctx, "d"); err != nil { // only a "directory" of d/z
		t.Fatalf("Delete(d): %v", err)
	}
	if _, err := s.Get(ctx, "d/x/y"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if got := names(list(t, s, "")); !slices.Equal(got, []string{"d/z"}) {
		t.Fatalf("List after Delete = %q, want [d/z]", got)
	}
	// The name can be used again, also as a directory.
	put(t, s, "d/x/y", []byte("3"))
	put(t, s, "d/x/w", []byte("4"))
	if got := get(t, s, "d/x/y"); string(got) != "3" {
		t.Fatalf("Get after re-Put = %q", got)
	}
}

func testDeleteMany(t *testing.T, s storage.Storage) {
	for _, n := range []string{"m/1", "m/2", "m/3", "m/4", "m/5"} {
		put(t, s, n, []byte(n))
	}
	if err := storage.DeleteMany(ctxFor(t), s, []string{"m/1", "m/3", "m/5", "m/missing"}); err != nil {
		t.Fatalf("DeleteMany: %v", err)
	}
	if got := names(list(t, s, "m/")); !slices.Equal(got, []string{"m/2", "m/4"}) {
		t.Fatalf("List after DeleteMany = %q, want [m/2 m/4]", got)
	}
}

// BadNames are names every Storage must reject with ErrInvalidName.
var BadNames = []string{
	"", "/abs", "a//b", "a/", "/", ".", "..", "../up", "a/../b", "a/./b", "a/..",
	".tmp-x", "dir/.tmp-123", "back\\slash", "nul\x00", "line\nbreak", "\xff\xfe",
	strings.Repeat("x", 256), strings.Repeat("abc/", 200) + "x",
}

// GoodNames are unusual names every Storage must accept.
var GoodNames = []string{
	"with space/ünïcode-名前.json", ".hidden", "a.b/c..d", "x/...", "chk-00000000000000000042.json",
	"+=,@;&$!'()~", strings.Repeat("y", 255),
}

func testNames(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	for _, name := range BadNames {
		checks := map[string]error{
			"Put":    s.Put(ctx, name, strings.NewReader("x"), 1),
			"Delete": s.Delete(ctx, name),
		}
		_, checks["Get"] = s.Get(ctx, name)
		_, checks["Stat"] = s.Stat(ctx, name)
		for op, err := range checks {
			if !errors.Is(err, storage.ErrInvalidName) || storage.IsTransient(err) {
				t.Errorf("%s(%q) = %v, want a permanent ErrInvalidName", op, name, err)
			}
		}
	}
	for _, prefix := range []string{"/a", "../", "a//", "a/../b", "a/.tmp-", "..", "a/..", ".", "a/."} {
		if _, err := s.List(ctx, prefix); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("List(%q) = %v, want ErrInvalidName", prefix, err)
		}
	}
	for _, name := range GoodNames {
		put(t, s, name, []byte(name))
		if got := get(t, s, name); string(got) != name {
			t.Errorf("Get(%q) = %q", name, got)
		}
	}
	want := slices.Sorted(slices.Values(GoodNames))
	if got := names(list(t, s, "")); !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	for _, prefix := range []string{".h", ".t", "x/...", "a.b/", "with space/ü"} {
		if _, err := s.List(ctx, prefix); err != nil {
			t.Errorf("List(%q): %v", prefix, err)
		}
	}
}

func testSizeMismatch(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	put(t, s, "sz/kept", []byte("old"))
	cases := []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"sz/short", io.MultiReader(strings.NewReader("12345")), 10},
		{"sz/long", io.MultiReader(strings.NewReader("12345")), 3},
		{"sz/short-seekable", strings.NewReader("12345"), 10},
		{"sz/long-seekable", strings.NewReader("12345"), 3},
		{"sz/kept", io.MultiReader(strings.NewReader("new content")), 3},
	}
	for _, c := range cases {
		if err := s.Put(ctx, c.name, c.r, c.size); err == nil {
			t.Errorf("Put(%q) of 5 bytes announced as %d succeeded", c.name, c.size)
		}
	}
	if got := names(list(t, s, "")); !slices.Equal(got, []string{"sz/kept"}) {
		t.Errorf("after failed Puts List = %q, want only [sz/kept]", got)
	}
	if got := get(t, s, "sz/kept"); string(got) != "old" {
		t.Errorf("a failed overwrite changed the object: %q", got)
	}
}

var errBoom = errors.New("boom: the producer failed")

// failing yields n bytes then fails.
type failing struct{ n int }

func (f *failing) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errBoom
	}
	k := min(len(p), f.n)
	clear(p[:k])
	f.n -= k
	return k, nil
}

func testFailingReader(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	put(t, s, "f/old", []byte("old"))
	for _, name := range []string{"f/new", "f/old"} {
		for _, n := range []int{0, 100, 9 << 20} {
			err := s.Put(ctx, name, &failing{n: n}, -1)
			if !errors.Is(err, errBoom) {
				t.Errorf("Put(%q) from a reader failing after %d bytes = %v, want its error", name, n, err)
			}
		}
	}
	if got := names(list(t, s, "")); !slices.Equal(got, []string{"f/old"}) {
		t.Errorf("after failed Puts List = %q, want [f/old]", got)
	}
	if got := get(t, s, "f/old"); string(got) != "old" {
		t.Errorf("failed overwrite changed the object: %q", got)
	}
}

// gate is a reader that yields first bytes, signals reached, then blocks
// until release is closed (then yields rest) or ctx ends.
type gate struct {
	ctx     context.Context
	first   io.Reader
	rest    io.Reader
	reached chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(ctx context.Context, first, rest []byte) *gate {
	return &gate{ctx: ctx, first: bytes.NewReader(first), rest: bytes.NewReader(rest),
		reached: make(chan struct{}), release: make(chan struct{})}
}

func (g *gate) Read(p []byte) (int, error) {
	if n, err := g.first.Read(p); n > 0 || err != io.EOF {
		return n, err
	}
	g.once.Do(func() { close(g.reached) })
	select {
	case <-g.release:
	case <-g.ctx.Done():
		return 0, g.ctx.Err()
	}
	return g.rest.Read(p)
}

func testCanceled(t *testing.T, s storage.Storage) {
	ctx, cancel := context.WithCancel(ctxFor(t))
	defer cancel()
	g := newGate(ctx, make([]byte, 1<<20), make([]byte, 1<<20))
	done := make(chan error, 1)
	go func() { done <- s.Put(ctx, "c/x", g, 2<<20) }()
	<-g.reached
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) || storage.IsTransient(err) {
		t.Fatalf("canceled Put = %v, want a permanent context.Canceled", err)
	}
	if infos := list(t, s, ""); len(infos) != 0 {
		t.Fatalf("after a canceled Put List = %+v, want nothing", infos)
	}
	if _, err := s.Get(ctx, "c/x"); err == nil {
		t.Fatalf("Get with a canceled ctx succeeded")
	}
	if err := s.Put(ctx, "c/y", strings.NewReader("x"), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled ctx = %v, want context.Canceled", err)
	}
}

func testConcurrentPuts(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	const writers, each = 8, 4
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				name := fmt.Sprintf("cc/w%d/obj-%d", w, i)
				if err := s.Put(ctx, name, newPattern(uint64(w*each+i), 64<<10), 64<<10); err != nil {
					t.Errorf("Put(%q): %v", name, err)
				}
			}
		})
	}
	wg.Wait()
	infos := list(t, s, "cc/")
	if len(infos) != writers*each {
		t.Fatalf("List after concurrent Puts: %d objects, want %d: %q", len(infos), writers*each, names(infos))
	}
	for w := range writers {
		for i := range each {
			name := fmt.Sprintf("cc/w%d/obj-%d", w, i)
			if sha256.Sum256(get(t, s, name)) != patternSum(uint64(w*each+i), 64<<10) {
				t.Errorf("Get(%q): content differs", name)
			}
		}
	}
}

// uniform reports whether b is n copies of one byte.
func uniform(b []byte, n int) bool {
	return len(b) == n && (n == 0 || bytes.Count(b, b[:1]) == n)
}

func testConcurrentOverwrites(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	const writers, size = 6, 512 << 10
	var writersDone sync.WaitGroup
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for range 2 {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := tryGet(ctx, s, "co/x")
				if errors.Is(err, storage.ErrNotFound) {
					continue
				}
				if err != nil {
					t.Errorf("Get during overwrites: %v", err)
					return
				}
				if !uniform(b, size) {
					t.Errorf("Get during overwrites saw a mix or a part: %d bytes", len(b))
					return
				}
			}
		})
	}
	for w := range writers {
		writersDone.Go(func() {
			for range 3 {
				data := bytes.Repeat([]byte{byte('a' + w)}, size)
				if err := s.Put(ctx, "co/x", io.MultiReader(bytes.NewReader(data)), size); err != nil {
					t.Errorf("Put: %v", err)
				}
			}
		})
	}
	writersDone.Wait()
	close(stop)
	readers.Wait()
	if b := get(t, s, "co/x"); !uniform(b, size) {
		t.Fatalf("final object is not one whole write (%d bytes)", len(b))
	}
	if got := names(list(t, s, "")); !slices.Equal(got, []string{"co/x"}) {
		t.Fatalf("List = %q, want [co/x]", got)
	}
}

// testAtomicWhileInFlight holds a large Put halfway and checks that neither
// the new object nor any temp file is visible, and that an old object is
// read whole, until the Put returns.
func testAtomicWhileInFlight(t *testing.T, s storage.Storage) {
	ctx := ctxFor(t)
	const half = 2 << 20
	old := bytes.Repeat([]byte("A"), 2*half)
	put(t, s, "at/old", old)
	for _, name := range []string{"at/new", "at/old"} {
		before := names(list(t, s, ""))
		g := newGate(ctx, bytes.Repeat([]byte("B"), half), bytes.Repeat([]byte("B"), half))
		done := make(chan error, 1)
		go func() { done <- s.Put(ctx, name, g, 2*half) }()
		<-g.reached
		if got := names(list(t, s, "")); !slices.Equal(got, before) {
			t.Errorf("List while %q is half written = %q, want %q", name, got, before)
		}
		b, err := tryGet(ctx, s, name)
		switch {
		case name == "at/new" && !errors.Is(err, storage.ErrNotFound):
			t.Errorf("Get(%q) while half written = %d bytes, %v; want ErrNotFound", name, len(b), err)
		case name == "at/old" && (err != nil || !bytes.Equal(b, old)):
			t.Errorf("Get(%q) while overwritten = %d bytes, %v; want the whole old object", name, len(b), err)
		}
		if info, err := s.Stat(ctx, "at/old"); err != nil || info.Size != 2*half {
			t.Errorf("Stat(at/old) while a Put is in flight = %+v, %v", info, err)
		}
		close(g.release)
		if err := <-done; err != nil {
			t.Fatalf("Put(%q): %v", name, err)
		}
		if b := get(t, s, name); !bytes.Equal(b, bytes.Repeat([]byte("B"), 2*half)) {
			t.Fatalf("Get(%q) after the Put: %d bytes, not the whole new object", name, len(b))
		}
	}
}

func testString(t *testing.T, s storage.Storage) {
	str := s.String()
	if !strings.HasPrefix(str, "file:///") && !strings.HasPrefix(str, "s3://") {
		t.Fatalf("String() = %q, want a file:/// or s3:// URL", str)
	}
}

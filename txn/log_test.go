package txn

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var allModes = []SyncMode{SyncPerEntry, SyncGroupCommit, SyncPeriodic}

func openLog(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func mustAppend(t testing.TB, l *Log, payloads ...[]byte) uint64 {
	t.Helper()
	lsn, err := l.Append(context.Background(), payloads)
	if err != nil {
		t.Fatal(err)
	}
	return lsn
}

type entry struct {
	lsn      uint64
	payloads [][]byte
}

// readAll returns the entries after lsn, with copied payloads.
func readAll(t testing.TB, l *Log, lsn uint64) []entry {
	t.Helper()
	var out []entry
	err := l.ReadFrom(lsn, func(lsn uint64, payloads [][]byte) error {
		e := entry{lsn: lsn}
		for _, p := range payloads {
			e.payloads = append(e.payloads, bytes.Clone(p))
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalEntries(a, b []entry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].lsn != b[i].lsn || len(a[i].payloads) != len(b[i].payloads) {
			return false
		}
		for j := range a[i].payloads {
			if !bytes.Equal(a[i].payloads[j], b[i].payloads[j]) {
				return false
			}
		}
	}
	return true
}

func payloadsOf(lsn uint64) [][]byte {
	switch lsn % 4 {
	case 0:
		return nil // an entry may hold no payload
	case 1:
		return [][]byte{{}} // or one empty payload
	}
	out := make([][]byte, lsn%4)
	for i := range out {
		out[i] = fmt.Appendf(nil, "entry %d payload %d %s", lsn, i, bytes.Repeat([]byte{'x'}, int(lsn)))
	}
	return out
}

func TestRoundTripAndReopen(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SyncMode: mode, SegmentBytes: 300}
			l := openLog(t, dir, opts)
			var want []entry
			for i := uint64(1); i <= 20; i++ {
				if lsn := mustAppend(t, l, payloadsOf(i)...); lsn != i {
					t.Fatalf("LSN %d, want %d", lsn, i)
				}
				want = append(want, entry{i, payloadsOf(i)})
			}
			if got := l.LastLSN(); got != 20 {
				t.Fatalf("LastLSN %d", got)
			}
			if got := readAll(t, l, 0); !equalEntries(got, want) {
				t.Fatalf("read %v\nwant %v", got, want)
			}
			if got := readAll(t, l, 13); !equalEntries(got, want[13:]) {
				t.Fatalf("read from 13: %v", got)
			}
			if got := readAll(t, l, 20); len(got) != 0 {
				t.Fatalf("read from the end: %v", got)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if segs, _ := listSegments(dir); len(segs) < 3 {
				t.Fatalf("%d segments, want several", len(segs))
			}

			l = openLog(t, dir, opts)
			defer l.Close()
			if got := readAll(t, l, 0); !equalEntries(got, want) {
				t.Fatalf("after reopen: %v", got)
			}
			if lsn := mustAppend(t, l, []byte("more")); lsn != 21 {
				t.Fatalf("LSN after reopen %d, want 21", lsn)
			}
		})
	}
}

func TestReadFromStopsOnError(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	defer l.Close()
	for i := 0; i < 5; i++ {
		mustAppend(t, l, []byte("x"))
	}
	stop := errors.New("stop")
	n := 0
	err := l.ReadFrom(0, func(uint64, [][]byte) error {
		n++
		if n == 2 {
			return stop
		}
		return nil
	})
	if err != stop || n != 2 {
		t.Fatalf("err %v after %d entries", err, n)
	}
}

// TestGroupCommitSharesFsync holds the first fsync until every other
// Append has written its entry: they must all share the second fsync.
func TestGroupCommitSharesFsync(t *testing.T) {
	const n = 50
	var l *Log
	release := make(chan struct{})
	var once sync.Once
	hook := func() {
		once.Do(func() { <-release })
	}
	l, err := open(t.TempDir(), Options{SyncMode: SyncGroupCommit}, hook)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	var wg sync.WaitGroup
	lsns := make(chan uint64, n)
	for i := 0; i < n; i++ {
		wg.Go(func() {
			lsn, err := l.Append(context.Background(), [][]byte{fmt.Appendf(nil, "%d", i)})
			if err != nil {
				t.Error(err)
			}
			lsns <- lsn
		})
	}
	waitFor(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.writtenLSN == n
	})
	close(release)
	wg.Wait()
	close(lsns)
	seen := map[uint64]bool{}
	for lsn := range lsns {
		seen[lsn] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct LSNs, want %d", len(seen), n)
	}
	if s := l.syncs.Load(); s > 2 {
		t.Fatalf("%d fsyncs for %d concurrent appends, want at most 2", s, n)
	}
	if got := len(readAll(t, l, 0)); got != n {
		t.Fatalf("read %d entries", got)
	}
}

func TestPerEntrySyncsEach(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{SyncMode: SyncPerEntry})
	defer l.Close()
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Go(func() { mustAppend(t, l, []byte("x")) })
	}
	wg.Wait()
	if s := l.syncs.Load(); s != 10 {
		t.Fatalf("%d fsyncs for 10 appends", s)
	}
}

func TestPeriodicSyncs(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{SyncMode: SyncPeriodic, SyncInterval: time.Millisecond})
	defer l.Close()
	mustAppend(t, l, []byte("x")) // returns after the write
	waitFor(t, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.syncedLSN == 1
	})
	if l.syncs.Load() == 0 {
		t.Fatal("no fsync")
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(time.Millisecond)
	}
}

func lastSegment(t *testing.T, dir string) segment {
	t.Helper()
	segs, err := listSegments(dir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("segments %v, %v", segs, err)
	}
	return segs[len(segs)-1]
}

func fileSize(t *testing.T, p string) int64 {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestTornTailIsCut tears the last entry in every way a crash or a bad
// sector can (cut at every length, every byte flipped): Open must keep the
// entries before it and continue after them.
func TestTornTailIsCut(t *testing.T) {
	// Build a template log: 3 entries, and know where the last one starts.
	tmpl := t.TempDir()
	l := openLog(t, tmpl, Options{})
	mustAppend(t, l, []byte("one"))
	mustAppend(t, l, []byte("two"), []byte("2"))
	seg := lastSegment(t, tmpl)
	lastStart := fileSize(t, seg.path)
	mustAppend(t, l, []byte("three"), []byte("3"), nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(seg.path)
	if err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, data []byte) {
		t.Helper()
		dir := t.TempDir()
		p := filepath.Join(dir, filepath.Base(seg.path))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l := openLog(t, dir, Options{})
		defer l.Close()
		got := readAll(t, l, 0)
		if len(got) != 2 || string(got[1].payloads[0]) != "two" {
			t.Fatalf("entries %v", got)
		}
		if size := fileSize(t, p); size != lastStart {
			t.Fatalf("file cut to %d bytes, want %d", size, lastStart)
		}
		if lsn := mustAppend(t, l, []byte("again")); lsn != 3 {
			t.Fatalf("next LSN %d, want 3", lsn)
		}
		if got := readAll(t, l, 2); len(got) != 1 || string(got[0].payloads[0]) != "again" {
			t.Fatalf("after the cut: %v", got)
		}
	}
	for cut := lastStart + 1; cut < int64(len(orig)); cut++ {
		check(t, orig[:cut])
	}
	for i := lastStart; i < int64(len(orig)); i++ {
		data := bytes.Clone(orig)
		data[i] ^= 0x40
		check(t, data)
	}
	// Zeros after the last entry (a file extended but not written) too.
	check(t, append(bytes.Clone(orig[:lastStart]), make([]byte, 64)...))
}

func TestTornSegmentHeaderIsRewritten(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 64})
	for i := 0; i < 4; i++ {
		mustAppend(t, l, bytes.Repeat([]byte("y"), 40))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// A crash right after the next segment file was created.
	p := segmentPath(dir, 5)
	if err := os.WriteFile(p, []byte("WEIR"), 0o644); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, Options{SegmentBytes: 64})
	defer l.Close()
	if lsn := mustAppend(t, l, []byte("z")); lsn != 5 {
		t.Fatalf("LSN %d, want 5", lsn)
	}
	if got := readAll(t, l, 0); len(got) != 5 {
		t.Fatalf("%d entries", len(got))
	}
}

func TestEarlierCorruptionIsAnError(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentBytes: 64})
	for i := 0; i < 4; i++ {
		mustAppend(t, l, bytes.Repeat([]byte("y"), 40))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := listSegments(dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	// A flipped byte in an entry of the first segment: ReadFrom reports it.
	data, _ := os.ReadFile(segs[0].path)
	data[len(data)-3] ^= 1
	os.WriteFile(segs[0].path, data, 0o644)
	l = openLog(t, dir, Options{SegmentBytes: 64})
	err := l.ReadFrom(0, func(uint64, [][]byte) error { return nil })
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadFrom: %v, want ErrCorrupt", err)
	}
	if got := readAll(t, l, 1); len(got) != 3 { // later segments still read
		t.Fatalf("%d entries after the first", len(got))
	}
	l.Close()
	// A bad header of an earlier segment: Open reports it.
	data, _ = os.ReadFile(segs[1].path)
	data[0] = 'X'
	os.WriteFile(segs[1].path, data, 0o644)
	if l, err := Open(dir, Options{}); !errors.Is(err, ErrCorrupt) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
}

func TestTruncate(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 100}
	l := openLog(t, dir, opts)
	for i := 0; i < 30; i++ {
		mustAppend(t, l, bytes.Repeat([]byte("p"), 30)) // about two entries a segment
	}
	before, _ := listSegments(dir)
	if err := l.Truncate(11); err != nil {
		t.Fatal(err)
	}
	after, _ := listSegments(dir)
	if len(after) >= len(before) || after[0].base > 11 {
		t.Fatalf("segments %v -> %v", before, after)
	}
	for _, s := range after[1:] {
		if s.base <= 11 {
			t.Fatalf("kept %v although %v starts at or before 11", after[0], s)
		}
	}
	if got := readAll(t, l, 10); len(got) != 20 || got[0].lsn != 11 {
		t.Fatalf("after truncate: %d entries from %d", len(got), got[0].lsn)
	}
	if err := l.ReadFrom(0, func(uint64, [][]byte) error { return nil }); !errors.Is(err, ErrTruncated) {
		t.Fatalf("ReadFrom(0): %v, want ErrTruncated", err)
	}
	// Truncating everything keeps the last segment, so LSNs continue.
	if err := l.Truncate(1000); err != nil {
		t.Fatal(err)
	}
	if segs, _ := listSegments(dir); len(segs) != 1 {
		t.Fatalf("%d segments after truncating everything", len(segs))
	}
	l.Close()
	l = openLog(t, dir, opts)
	defer l.Close()
	if lsn := mustAppend(t, l, []byte("next")); lsn != 31 {
		t.Fatalf("LSN %d, want 31", lsn)
	}
}

func TestClosedAndCanceled(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, [][]byte{[]byte("x")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.Append(context.Background(), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := l.ReadFrom(0, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := Open(t.TempDir(), Options{SyncMode: "sometimes"}); err == nil {
		t.Fatal("unknown sync mode accepted")
	}
}

// TestConcurrentAppendAndRead runs appenders and readers together (for the
// race detector) and checks that every acknowledged entry reads back.
func TestConcurrentAppendAndRead(t *testing.T) {
	for _, mode := range allModes {
		t.Run(string(mode), func(t *testing.T) {
			l := openLog(t, t.TempDir(), Options{SyncMode: mode, SegmentBytes: 4 << 10, SyncInterval: time.Millisecond})
			defer l.Close()
			var wg sync.WaitGroup
			acked := make([]sync.Map, 4)
			for w := range 4 {
				wg.Go(func() {
					for i := 0; i < 100; i++ {
						p := fmt.Appendf(nil, "w%d-%d", w, i)
						lsn := mustAppend(t, l, p)
						acked[w].Store(lsn, string(p))
					}
				})
			}
			wg.Go(func() {
				for i := 0; i < 20; i++ {
					var prev uint64
					if err := l.ReadFrom(0, func(lsn uint64, _ [][]byte) error {
						if lsn != prev+1 {
							return fmt.Errorf("LSN %d after %d", lsn, prev)
						}
						prev = lsn
						return nil
					}); err != nil {
						t.Error(err)
						return
					}
				}
			})
			wg.Wait()
			got := readAll(t, l, 0)
			if len(got) != 400 {
				t.Fatalf("%d entries", len(got))
			}
			for _, e := range got {
				found := false
				for w := range acked {
					if v, ok := acked[w].Load(e.lsn); ok {
						found = v == string(e.payloads[0])
					}
				}
				if !found {
					t.Fatalf("entry %d %q was not acknowledged as such", e.lsn, e.payloads[0])
				}
			}
		})
	}
}

// TestRandomAgainstReference runs random appends, reads, truncations and
// reopens against a slice of what was appended.
func TestRandomAgainstReference(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	opts := Options{SyncMode: allModes[rng.IntN(len(allModes))], SegmentBytes: int64(64 + rng.IntN(512))}
	l := openLog(t, dir, opts)
	defer func() { l.Close() }()
	var ref []entry   // ref[i] has LSN i+1
	var truncated int // entries before ref[truncated] may be gone
	for op := 0; op < 600; op++ {
		switch r := rng.IntN(100); {
		case r < 70:
			n := rng.IntN(4)
			payloads := make([][]byte, n)
			for i := range payloads {
				payloads[i] = make([]byte, rng.IntN(100))
				for j := range payloads[i] {
					payloads[i][j] = byte(rng.Uint32())
				}
			}
			lsn := mustAppend(t, l, payloads...)
			if lsn != uint64(len(ref)+1) {
				t.Fatalf("op %d: LSN %d, want %d", op, lsn, len(ref)+1)
			}
			ref = append(ref, entry{lsn, payloads})
		case r < 85:
			from := truncated + rng.IntN(len(ref)-truncated+1)
			got := readAll(t, l, uint64(from))
			if !equalEntries(got, ref[from:]) {
				t.Fatalf("op %d: ReadFrom(%d) differs: %d entries, want %d", op, from, len(got), len(ref)-from)
			}
		case r < 92:
			before := truncated + rng.IntN(len(ref)-truncated+1)
			if err := l.Truncate(uint64(before) + 1); err != nil {
				t.Fatal(err)
			}
			truncated = before
			segs, _ := listSegments(dir)
			if segs[0].base > uint64(before)+1 {
				t.Fatalf("op %d: first kept LSN %d, but entries from %d were needed", op, segs[0].base, before+1)
			}
		default:
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openLog(t, dir, opts)
		}
	}
	if got := readAll(t, l, uint64(truncated)); !equalEntries(got, ref[truncated:]) {
		t.Fatal("final read differs")
	}
}

func TestOpenLocksTheDirectory(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use by another transaction log") {
		t.Fatalf("second Open of %s: %v, want an in-use error", dir, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
}

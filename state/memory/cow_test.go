package memory

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/weir-stream/weir/state/kv"
)

// intOps are minimal Ops for int values.
type intOps struct{}

func (intOps) Encode(enc *kv.Encoder, name string, key []byte, v int, exp, _ int64, _ bool, emit func(kv.Entry) error) error {
	b, err := enc.Marshal(v)
	if err != nil {
		return err
	}
	return emit(kv.Entry{Kind: kv.EntryPut, State: name, Key: key, Value: b, ExpiresAt: exp})
}

func (intOps) Apply(_ int, _ bool, _ int64, e kv.Entry) (int, int64, bool, error) {
	var v int
	err := kv.Unmarshal(e.Value, &v)
	return v, e.ExpiresAt, err == nil, err
}
func (intOps) Clone(v int) int                  { return v }
func (intOps) Count(int) int                    { return 1 }
func (intOps) Size(int) int64                   { return 0 }
func (intOps) Expire(v int, _ int64) (int, int) { return v, 0 }
func (intOps) Expiring(int, int64) bool         { return false }

func mapPtr[T any](m map[string]*Cell[T]) uintptr { return reflect.ValueOf(m).Pointer() }

// TestSnapshotIsCopyOnWrite checks the snapshot's cost model: taking it
// copies no map; the first write to a key group after it clones that key
// group's map once; a cell written before it is replaced, not changed.
func TestSnapshotIsCopyOnWrite(t *testing.T) {
	b, err := New(kv.Config{MaxKeyGroups: 2})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := TableOf[int](b, "t", intOps{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		tb.Store(0, []byte(fmt.Sprint(i)), i, 0, nil, 0, 0)
	}
	before := mapPtr(tb.groups[0].m)
	old := tb.Peek(0, []byte("7"))
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	frozen := snap.(*snapshot).tables[0].(*frozen[int])
	if mapPtr(frozen.groups[0].m) != before {
		t.Fatal("Snapshot copied the map")
	}
	if mapPtr(tb.groups[0].m) != before {
		t.Fatal("live map replaced before any write")
	}
	// An update: the map is cloned once, the cell replaced.
	c := tb.Store(0, []byte("7"), -7, 0, old, tb.Mods(), 0)
	if c == old || old.V != 7 {
		t.Fatal("cell shared with the snapshot was changed in place")
	}
	cloned := mapPtr(tb.groups[0].m)
	if cloned == before {
		t.Fatal("map not cloned before the first write")
	}
	tb.Store(0, []byte("8"), -8, 0, nil, 0, 0)
	tb.Delete(0, []byte("9"))
	if mapPtr(tb.groups[0].m) != cloned {
		t.Fatal("map cloned twice in one epoch")
	}
	// Later updates of a cell written in this epoch are in place.
	if c2 := tb.Store(0, []byte("7"), -70, 0, c, tb.Mods(), 0); c2 != c || c.V != -70 {
		t.Fatal("update in the same epoch was not in place")
	}
	// Key group 1 was not written: its map was never cloned.
	if len(frozen.groups[0].m) != 100 || frozen.groups[0].m["7"].V != 7 || frozen.groups[0].m["9"] == nil {
		t.Fatal("frozen view changed")
	}
	snap.Release()
}

// TestExpiryQueueOneItemPerCell refreshes TTLs many times: the queue holds
// one live item per cell, not one per write.
func TestExpiryQueueOneItemPerCell(t *testing.T) {
	clock := kv.NewManualClock(time.Unix(100, 0))
	b, _ := New(kv.Config{MaxKeyGroups: 1, Clock: clock})
	tb, _ := TableOf[int](b, "t", intOps{})
	tb.SetTTL(1000)
	for round := range 50 {
		now := kv.NowMillis(clock)
		for k := range 100 {
			tb.Store(0, []byte(fmt.Sprint(k)), round, now+1000, nil, 0, now)
		}
		clock.Advance(100 * time.Millisecond)
	}
	if n := tb.q.len(); n > 150 {
		t.Fatalf("queue holds %d items for 100 cells", n)
	}
	// Once everything expired, writes to other keys clean up.
	clock.Advance(2 * time.Second)
	for k := range 200 {
		now := kv.NowMillis(clock)
		tb.Store(0, []byte(fmt.Sprint("other", k)), k, now+1000, nil, 0, now)
	}
	if got := b.Stats().Expired; got != 100 {
		t.Fatalf("incremental cleanup expired %d cells, want 100", got)
	}
	n, err := b.CleanupExpired(context.Background())
	if err != nil || n != 0 {
		t.Fatalf("CleanupExpired found %d more, %v", n, err)
	}
}

// TestRestoreChainDoesNotCopy: restoring a key group's chain (a full file,
// then deltas) applies each file to the same map; only a snapshot makes
// the next write copy it.
func TestRestoreChainDoesNotCopy(t *testing.T) {
	src, err := New(kv.Config{MaxKeyGroups: 1})
	if err != nil {
		t.Fatal(err)
	}
	st, err := TableOf[int](src, "t", intOps{})
	if err != nil {
		t.Fatal(err)
	}
	var files [][]byte
	for round := range 3 {
		for i := range 50 {
			st.Store(0, []byte(fmt.Sprint(i)), round*100+i, 0, nil, 0, 0)
		}
		snap, err := src.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if round == 0 {
			err = kv.WriteKeyGroup(&buf, snap, 0)
		} else {
			err = kv.WriteChanges(&buf, snap, 0)
		}
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, buf.Bytes())
		src.ConfirmSnapshot(snap.Seq())
		snap.Release()
	}

	b, err := New(kv.Config{MaxKeyGroups: 1})
	if err != nil {
		t.Fatal(err)
	}
	var maps []uintptr
	for _, f := range files {
		if err := b.Restore(bytes.NewReader(f)); err != nil {
			t.Fatal(err)
		}
		tb, err := TableOf[int](b, "t", intOps{})
		if err != nil {
			t.Fatal(err)
		}
		maps = append(maps, mapPtr(tb.groups[0].m))
		if c := tb.Peek(0, []byte("7")); c == nil {
			t.Fatal("key 7 not restored")
		}
	}
	tb, _ := TableOf[int](b, "t", intOps{})
	if c := tb.Peek(0, []byte("7")); c == nil || c.V != 207 {
		t.Fatalf("restored 7 = %v, want 207", c)
	}
	if maps[1] != maps[0] || maps[2] != maps[0] {
		t.Fatalf("the group's map was copied while restoring its chain: %v", maps)
	}
	// After a snapshot the next write copies it, as always.
	snap, err := b.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	tb.Store(0, []byte("7"), 1, 0, nil, 0, 0)
	if mapPtr(tb.groups[0].m) == maps[0] {
		t.Fatal("a write after a snapshot did not copy the frozen map")
	}
}

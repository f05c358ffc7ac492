// Package statetest is the conformance suite every state backend passes:
// the same tests, through the public state API, for memory and Pebble.
//
//	func TestConformance(t *testing.T) {
//		statetest.Run(t, func(t *testing.T, cfg kv.Config) state.Backend {
//			b, err := memory.New(cfg)
//			...
//			return b
//		})
//	}
//
// Run covers typed reads and writes of every kind of state, the guide's
// stores (batches, TTL, type conversion), TTL with a manual clock,
// snapshot consistency, full and per-key-group restore (also across a
// change of key-group ranges), change tracking for incremental snapshots,
// statistics, and a randomized test against a reference model.
package statetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
)

// Factory builds a fresh, empty backend with cfg (its Clock is a
// *kv.ManualClock the test controls). The backend is closed by the test.
type Factory func(t *testing.T, cfg kv.Config) state.Backend

// t0 is the manual clocks' start.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// env is one backend under test with its clock.
type env struct {
	t     *testing.T
	new   Factory
	clock *kv.ManualClock
	cfg   kv.Config
	b     state.Backend
}

func newEnv(t *testing.T, f Factory, maxKG int) *env {
	t.Helper()
	e := &env{t: t, new: f, clock: kv.NewManualClock(t0)}
	e.cfg = kv.Config{MaxKeyGroups: maxKG, Clock: e.clock}
	e.b = e.open(e.cfg)
	return e
}

// open builds another backend on the env's clock.
func (e *env) open(cfg kv.Config) state.Backend {
	e.t.Helper()
	cfg.Clock = e.clock
	b := e.new(e.t, cfg)
	e.t.Cleanup(func() { _ = b.Close() })
	return b
}

func (e *env) ctx() *state.KeyedContext {
	e.t.Helper()
	c, err := state.NewKeyedContext(e.b)
	must(e.t, err)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func setKey(t *testing.T, c *state.KeyedContext, key string) {
	t.Helper()
	must(t, c.SetCurrentKey([]byte(key)))
}

// Run runs the conformance suite against backends from f.
func Run(t *testing.T, f Factory) {
	t.Run("ValueState", func(t *testing.T) { testValueState(t, f) })
	t.Run("ListReducingAggregating", func(t *testing.T) { testListReducing(t, f) })
	t.Run("MapState", func(t *testing.T) { testMapState(t, f) })
	t.Run("KeyGroups", func(t *testing.T) { testKeyGroups(t, f) })
	t.Run("Store", func(t *testing.T) { testStore(t, f) })
	t.Run("StoreTypes", func(t *testing.T) { testStoreTypes(t, f) })
	t.Run("TTL", func(t *testing.T) { testTTL(t, f) })
	t.Run("MapTTL", func(t *testing.T) { testMapTTL(t, f) })
	t.Run("BatchAtomicity", func(t *testing.T) { testBatchAtomicity(t, f) })
	t.Run("SnapshotConsistency", func(t *testing.T) { testSnapshotConsistency(t, f) })
	t.Run("RestoreKeyGroups", func(t *testing.T) { testRestore(t, f) })
	t.Run("Incremental", func(t *testing.T) { testIncremental(t, f) })
	t.Run("CorruptFiles", func(t *testing.T) { testCorrupt(t, f) })
	t.Run("Stats", func(t *testing.T) { testStats(t, f) })
	t.Run("Random", func(t *testing.T) { RunRandom(t, f, 4, 1500) })
}

type point struct {
	X, Y int
	Tags []string `cbor:"tags"`
}

func testValueState(t *testing.T, f Factory) {
	e := newEnv(t, f, 0)
	c := e.ctx()
	counts, err := state.NewValueState[int64](c, "counts")
	must(t, err)
	names, err := state.NewValueState[string](c, "names")
	must(t, err)
	points, err := state.NewValueState[point](c, "points")
	must(t, err)

	if _, _, err := counts.Value(); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("Value without a current key: err = %v, want ErrInvalid", err)
	}
	for i := range 100 {
		setKey(t, c, fmt.Sprintf("key-%d", i))
		if _, ok, err := counts.Value(); err != nil || ok {
			t.Fatalf("fresh key: ok=%v err=%v", ok, err)
		}
		must(t, counts.Update(int64(i)))
		must(t, names.Update(fmt.Sprintf("name-%d", i)))
		must(t, points.Update(point{X: i, Y: -i, Tags: []string{"a"}}))
	}
	must(t, c.Flush())
	for i := range 100 {
		setKey(t, c, fmt.Sprintf("key-%d", i))
		v, ok, err := counts.Value()
		if err != nil || !ok || v != int64(i) {
			t.Fatalf("key-%d: counts = %v %v %v", i, v, ok, err)
		}
		// Read-modify-write, the hot path.
		must(t, counts.Update(v+1000))
		v, _, _ = counts.Value()
		if v != int64(i)+1000 {
			t.Fatalf("after update: %d", v)
		}
		s, ok, err := names.Value()
		if err != nil || !ok || s != fmt.Sprintf("name-%d", i) {
			t.Fatalf("names = %q %v %v", s, ok, err)
		}
		p, ok, err := points.Value()
		if err != nil || !ok || p.X != i || p.Y != -i || len(p.Tags) != 1 {
			t.Fatalf("points = %+v %v %v", p, ok, err)
		}
	}
	setKey(t, c, "key-7")
	must(t, counts.Clear())
	if _, ok, _ := counts.Value(); ok {
		t.Fatal("value after Clear")
	}
	if _, ok, _ := names.Value(); !ok {
		t.Fatal("Clear of one state cleared another")
	}
	seen := 0
	must(t, counts.Range(func(key []byte, v int64) bool {
		seen++
		if !strings.HasPrefix(string(key), "key-") || v < 1000 {
			t.Errorf("Range: %q = %d", key, v)
		}
		return true
	}))
	if seen != 99 {
		t.Fatalf("Range saw %d keys, want 99", seen)
	}
	// Same name, other type: rejected.
	if _, err := state.NewValueState[string](c, "counts"); !errors.Is(err, state.ErrTypeMismatch) {
		t.Fatalf("re-register with another type: %v", err)
	}
	if _, err := state.NewValueState[int64](c, "counts"); err != nil {
		t.Fatalf("re-register with the same type: %v", err)
	}
	if _, err := state.NewValueState[int64](c, ""); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("empty name: %v", err)
	}
	// After Close, handles fail with ErrClosed.
	must(t, e.b.Close())
	must(t, e.b.Close())
	setKey(t, c, "key-1")
	if _, _, err := counts.Value(); !errors.Is(err, state.ErrClosed) {
		t.Fatalf("Value after Close: %v", err)
	}
	if err := counts.Update(1); !errors.Is(err, state.ErrClosed) {
		t.Fatalf("Update after Close: %v", err)
	}
}

func testListReducing(t *testing.T, f Factory) {
	e := newEnv(t, f, 0)
	c := e.ctx()
	lists, err := state.NewListState[string](c, "lists")
	must(t, err)
	sums, err := state.NewReducingState(c, "sums", func(a, b int64) int64 { return a + b })
	must(t, err)
	type avgAcc struct{ Sum, N float64 }
	avg, err := state.NewAggregatingState(c, "avg", state.Aggregator[float64, avgAcc, float64]{
		Init:   func() avgAcc { return avgAcc{} },
		Add:    func(a avgAcc, v float64) avgAcc { return avgAcc{a.Sum + v, a.N + 1} },
		Result: func(a avgAcc) float64 { return a.Sum / a.N },
	})
	must(t, err)
	for round := range 3 {
		for k := range 5 {
			setKey(t, c, fmt.Sprint("k", k))
			must(t, lists.Add(fmt.Sprint("r", round)))
			must(t, sums.Add(int64(k)))
			must(t, avg.Add(float64(round*10)))
		}
		must(t, c.Flush())
	}
	setKey(t, c, "k3")
	l, err := lists.Get()
	must(t, err)
	if !slices.Equal(l, []string{"r0", "r1", "r2"}) {
		t.Fatalf("list = %v", l)
	}
	l = append(l, "mine") // appending to the returned slice must not change the state
	_ = l
	l2, _ := lists.Get()
	if len(l2) != 3 {
		t.Fatalf("list changed by appending to Get's slice: %v", l2)
	}
	must(t, lists.AddAll([]string{"x", "y"}))
	must(t, lists.Update([]string{"only"}))
	if l, _ := lists.Get(); !slices.Equal(l, []string{"only"}) {
		t.Fatalf("after Update: %v", l)
	}
	if s, ok, err := sums.Get(); err != nil || !ok || s != 9 {
		t.Fatalf("sum = %v %v %v", s, ok, err)
	}
	if a, ok, err := avg.Get(); err != nil || !ok || a != 10 {
		t.Fatalf("avg = %v %v %v", a, ok, err)
	}
	must(t, lists.Clear())
	if l, _ := lists.Get(); l != nil {
		t.Fatalf("after Clear: %v", l)
	}
	n := 0
	must(t, avg.Range(func(key []byte, v float64) bool { n++; return v == 10 }))
	if n == 0 {
		t.Fatal("aggregating Range saw nothing")
	}
}

func testMapState(t *testing.T, f Factory) {
	e := newEnv(t, f, 0)
	c := e.ctx()
	m, err := state.NewMapState[string, int64](c, "sessions")
	must(t, err)
	type coord struct{ X, Y int }
	pm, err := state.NewMapState[coord, bool](c, "by-point")
	must(t, err)
	for u := range 3 {
		setKey(t, c, fmt.Sprint("user", u))
		for i := range 10 {
			must(t, m.Put(fmt.Sprint("s", i), int64(u*100+i)))
		}
		must(t, pm.Put(coord{X: u, Y: 1}, true))
	}
	must(t, c.Flush())
	total := 0
	must(t, m.RangeAll(func(key []byte, k string, v int64) bool {
		if !strings.HasPrefix(string(key), "user") || !strings.HasPrefix(k, "s") {
			t.Errorf("RangeAll: %q %q", key, k)
		}
		total++
		return true
	}))
	if total != 30 {
		t.Fatalf("RangeAll saw %d entries, want 30", total)
	}
	setKey(t, c, "user1")
	if v, ok, err := m.Get("s4"); err != nil || !ok || v != 104 {
		t.Fatalf("Get = %v %v %v", v, ok, err)
	}
	if _, ok, _ := m.Get("nope"); ok {
		t.Fatal("Get of a missing map key")
	}
	if ok, _ := pm.Contains(coord{X: 1, Y: 1}); !ok {
		t.Fatal("struct map key not found")
	}
	must(t, m.Remove("s4"))
	must(t, m.Remove("s4"))
	if n, _ := m.Len(); n != 9 {
		t.Fatalf("Len = %d, want 9", n)
	}
	sum := int64(0)
	must(t, m.Range(func(k string, v int64) bool { sum += v; return true }))
	if sum != 9*100+(45-4) {
		t.Fatalf("Range sum = %d", sum)
	}
	must(t, m.Clear())
	if empty, _ := m.IsEmpty(); !empty {
		t.Fatal("not empty after Clear")
	}
	setKey(t, c, "user2")
	if n, _ := m.Len(); n != 10 {
		t.Fatalf("other key's map: Len = %d", n)
	}
	// Removing every entry one by one leaves no key behind.
	for i := range 10 {
		must(t, m.Remove(fmt.Sprint("s", i)))
	}
	if empty, _ := m.IsEmpty(); !empty {
		t.Fatal("not empty after removing every entry")
	}
}

func testKeyGroups(t *testing.T, f Factory) {
	e := newEnv(t, f, 8)
	half := e.open(kv.Config{MaxKeyGroups: 8, KeyGroups: kv.KeyGroupRange{Start: 4, End: 8}})
	c, err := state.NewKeyedContext(half)
	must(t, err)
	v, err := state.NewValueState[int](c, "v")
	must(t, err)
	inside, outside := 0, 0
	for i := range 100 {
		key := []byte(fmt.Sprint("k", i))
		kg := state.KeyGroupOf(key, 8)
		err := c.SetCurrentKey(key)
		if kg >= 4 {
			must(t, err)
			if c.KeyGroup() != kg {
				t.Fatalf("KeyGroup = %d, want %d", c.KeyGroup(), kg)
			}
			must(t, v.Update(i))
			inside++
		} else {
			if !errors.Is(err, state.ErrKeyGroupRange) {
				t.Fatalf("key of group %d: err = %v, want ErrKeyGroupRange", kg, err)
			}
			if _, _, err := v.Value(); err == nil {
				t.Fatal("handle usable after a rejected key")
			}
			outside++
		}
	}
	if inside == 0 || outside == 0 {
		t.Fatalf("keys not spread: %d inside, %d outside", inside, outside)
	}
}

func newStore(t *testing.T, b state.Backend, opts ...state.StoreOption) state.Store {
	t.Helper()
	s, err := state.NewStore(b, state.DefaultStateName, opts...)
	must(t, err)
	return s
}

func testStore(t *testing.T, f Factory) {
	e := newEnv(t, f, 0)
	s := newStore(t, e.b)
	must(t, state.PutTyped(s, "user_count", uint64(42)))
	must(t, state.PutTyped(s, "session", point{X: 1, Y: 2, Tags: []string{"x"}}))
	must(t, state.PutTyped(s, "name", "weir"))
	if v, ok, err := state.GetTyped[uint64](s, "user_count"); err != nil || !ok || v != 42 {
		t.Fatalf("user_count = %v %v %v", v, ok, err)
	}
	if v, ok, err := state.GetTyped[point](s, "session"); err != nil || !ok || v.Y != 2 || v.Tags[0] != "x" {
		t.Fatalf("session = %+v %v %v", v, ok, err)
	}
	if _, ok, err := state.GetTyped[string](s, "missing"); err != nil || ok {
		t.Fatalf("missing = %v %v", ok, err)
	}
	must(t, s.Remove("name"))
	must(t, s.Remove("name"))
	if _, ok, _ := s.Get("name"); ok {
		t.Fatal("removed key still there")
	}
	// Batches: invisible until committed, dropped by abort.
	must(t, s.BatchPut("a", 1))
	must(t, s.BatchPut("b", 2))
	must(t, s.BatchRemove("user_count"))
	if st := s.Stats(); st.ActiveTransactions != 1 {
		t.Fatalf("ActiveTransactions = %d, want 1", st.ActiveTransactions)
	}
	if _, ok, _ := s.Get("a"); ok {
		t.Fatal("staged write visible before commit")
	}
	must(t, s.CommitBatch())
	if st := s.Stats(); st.ActiveTransactions != 0 {
		t.Fatalf("ActiveTransactions = %d after commit", st.ActiveTransactions)
	}
	if v, ok, _ := state.GetTyped[int](s, "b"); !ok || v != 2 {
		t.Fatalf("b = %v %v", v, ok)
	}
	if _, ok, _ := s.Get("user_count"); ok {
		t.Fatal("batch remove not applied")
	}
	must(t, s.BatchPut("c", 3))
	must(t, s.AbortBatch())
	must(t, s.CommitBatch())
	if _, ok, _ := s.Get("c"); ok {
		t.Fatal("aborted write applied")
	}
	// Unencodable values fail at once, and a failing batch applies nothing.
	if err := s.Put("ch", make(chan int)); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("Put(chan): %v", err)
	}
	if err := s.BatchPut("f", func() {}); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("BatchPut(func): %v", err)
	}
	must(t, s.AbortBatch())
	if err := s.PutWithTTL("x", 1, 0); !errors.Is(err, state.ErrInvalid) {
		t.Fatalf("PutWithTTL(0): %v", err)
	}
	var se *state.StateError
	if err := s.PutWithTTL("x", 1, -time.Second); !errors.As(err, &se) || se.Key != "x" || se.Op != "put" {
		t.Fatalf("StateError = %#v", se)
	}
	must(t, s.Clear())
	for _, k := range []string{"a", "b", "session"} {
		if _, ok, _ := s.Get(k); ok {
			t.Fatalf("%s after Clear", k)
		}
	}
	if st := s.Stats(); st.Keys != 0 {
		t.Fatalf("Keys = %d after Clear", st.Keys)
	}
}

func testStoreTypes(t *testing.T, f Factory) {
	e := newEnv(t, f, 0)
	s := newStore(t, e.b)
	must(t, state.PutTyped(s, "int", int64(7)))
	must(t, state.PutTyped(s, "neg", int64(-7)))
	must(t, state.PutTyped(s, "str", "seven"))
	must(t, state.PutTyped(s, "time", t0.Add(123456789)))
	must(t, state.PutTyped(s, "bytes", []byte{0, 1, 2}))
	must(t, state.PutTyped(s, "bad-utf8", "\xff\xfe"))
	// Conversions the codec does work alike on every backend.
	if v, ok, err := state.GetTyped[uint64](s, "int"); err != nil || !ok || v != 7 {
		t.Fatalf("int64 as uint64: %v %v %v", v, ok, err)
	}
	if v, ok, err := state.GetTyped[int](s, "int"); err != nil || !ok || v != 7 {
		t.Fatalf("int64 as int: %v %v %v", v, ok, err)
	}
	for _, tc := range []struct {
		key string
		get func() error
	}{
		{"str", func() error { _, _, err := state.GetTyped[int64](s, "str"); return err }},
		{"neg", func() error { _, _, err := state.GetTyped[uint64](s, "neg"); return err }},
		{"int", func() error { _, _, err := state.GetTyped[point](s, "int"); return err }},
	} {
		err := tc.get()
		if !errors.Is(err, state.ErrTypeMismatch) {
			t.Fatalf("%s: err = %v, want ErrTypeMismatch", tc.key, err)
		}
		var se *state.StateError
		if !errors.As(err, &se) || se.Key != tc.key {
			t.Fatalf("%s: not a StateError naming the key: %v", tc.key, err)
		}
	}
	if v, _, err := state.GetTyped[time.Time](s, "time"); err != nil || !v.Equal(t0.Add(123456789)) {
		t.Fatalf("time = %v %v", v, err)
	}
	if v, _, err := state.GetTyped[[]byte](s, "bytes"); err != nil || !bytes.Equal(v, []byte{0, 1, 2}) {
		t.Fatalf("bytes = %v %v", v, err)
	}
	if v, _, err := state.GetTyped[string](s, "bad-utf8"); err != nil || v != "\xff\xfe" {
		t.Fatalf("invalid UTF-8 = %q %v", v, err)
	}
	// Struct evolution: fields added decode as zero, removed are ignored.
	type v1 struct {
		Name  string `cbor:"name"`
		Count int    `cbor:"count"`
	}
	type v2 struct {
		Name  string `cbor:"name"`
		Email string `cbor:"email"`
	}
	must(t, state.PutTyped(s, "user", v1{Name: "ann", Count: 3}))
	if v, _, err := state.GetTyped[v2](s, "user"); err != nil || v.Name != "ann" || v.Email != "" {
		t.Fatalf("evolved struct = %+v %v", v, err)
	}
}

func testTTL(t *testing.T, f Factory) {
	e := newEnv(t, f, 0)
	c := e.ctx()
	v, err := state.NewValueState[int](c, "v", state.WithTTL(state.TTLConfig{TTL: time.Second}))
	must(t, err)
	r, err := state.NewValueState[int](c, "r", state.WithTTL(state.TTLConfig{TTL: time.Second, UpdateOnRead: true}))
	must(t, err)
	setKey(t, c, "a")
	must(t, v.Update(1))
	must(t, r.Update(1))
	setKey(t, c, "b")
	must(t, v.Update(2))
	must(t, c.Flush())

	e.clock.Advance(600 * time.Millisecond)
	setKey(t, c, "a")
	if _, ok, _ := v.Value(); !ok {
		t.Fatal("expired early")
	}
	if _, ok, _ := r.Value(); !ok { // refreshes r's TTL
		t.Fatal("r expired early")
	}
	must(t, v.Update(10)) // refreshes a's TTL
	must(t, c.Flush())
	e.clock.Advance(600 * time.Millisecond) // 1.2 s after b was written
	if _, ok, _ := v.Value(); !ok {
		t.Fatal("refreshed value expired")
	}
	if _, ok, _ := r.Value(); !ok {
		t.Fatal("value refreshed on read expired")
	}
	setKey(t, c, "b")
	if _, ok, _ := v.Value(); ok {
		t.Fatal("expired value returned")
	}
	e.clock.Advance(2 * time.Second)
	setKey(t, c, "a")
	if _, ok, _ := v.Value(); ok {
		t.Fatal("expired value returned")
	}
	n, err := e.b.CleanupExpired(context.Background())
	must(t, err)
	if n != 3 {
		t.Fatalf("CleanupExpired removed %d, want 3", n)
	}
	st := e.b.Stats()
	if st.Keys != 0 || st.Expired < 3 {
		t.Fatalf("stats after cleanup: %+v", st)
	}

	// The guide's stores: PutWithTTL and a default TTL.
	s := newStore(t, e.b)
	must(t, s.PutWithTTL("temp", "x", time.Hour))
	must(t, s.Put("forever", "y"))
	e.clock.Advance(time.Hour)
	if _, ok, _ := s.Get("temp"); ok {
		t.Fatal("store: expired value returned")
	}
	if _, ok, _ := s.Get("forever"); !ok {
		t.Fatal("store: value without TTL expired")
	}
	ds, err := state.NewStore(e.b, "with-default", state.WithDefaultTTL(time.Minute))
	must(t, err)
	must(t, ds.Put("k", 1))
	e.clock.Advance(time.Minute)
	if _, ok, _ := ds.Get("k"); ok {
		t.Fatal("default TTL not applied")
	}

	// Incremental cleanup: writes with a TTL remove expired entries
	// without CleanupExpired.
	inc, err := state.NewValueState[int](c, "inc", state.WithTTL(state.TTLConfig{TTL: 10 * time.Millisecond}))
	must(t, err)
	for i := range 200 {
		setKey(t, c, fmt.Sprint("old", i))
		must(t, inc.Update(i))
	}
	must(t, c.Flush())
	before := e.b.Stats().Expired
	e.clock.Advance(time.Second)
	for i := range 2000 {
		setKey(t, c, fmt.Sprint("new", i))
		must(t, inc.Update(i))
		if i%100 == 0 {
			e.clock.Advance(time.Millisecond)
		}
	}
	must(t, c.Flush())
	if got := e.b.Stats().Expired - before; got < 150 {
		t.Fatalf("incremental cleanup removed %d of 200 expired entries", got)
	}
}

func testMapTTL(t *testing.T, f Factory) {
	e := newEnv(t, f, 0)
	c := e.ctx()
	m, err := state.NewMapState[string, int](c, "m", state.WithTTL(state.TTLConfig{TTL: time.Second}))
	must(t, err)
	setKey(t, c, "k")
	must(t, m.Put("old", 1))
	e.clock.Advance(700 * time.Millisecond)
	must(t, m.Put("new", 2))
	must(t, c.Flush())
	e.clock.Advance(500 * time.Millisecond)
	if _, ok, _ := m.Get("old"); ok {
		t.Fatal("expired map entry returned")
	}
	if _, ok, _ := m.Get("new"); !ok {
		t.Fatal("live map entry missing")
	}
	if n, _ := m.Len(); n != 1 {
		t.Fatalf("Len = %d, want 1", n)
	}
	n, err := e.b.CleanupExpired(context.Background())
	must(t, err)
	if n != 1 || e.b.Stats().Keys != 1 {
		t.Fatalf("cleanup removed %d, keys %d", n, e.b.Stats().Keys)
	}
}

// testBatchAtomicity commits batches that set every key to the batch's
// number, applied in key order, while readers read the keys in the same
// order: with atomic batches the numbers read never go down.
func testBatchAtomicity(t *testing.T, f Factory) {
	e := newEnv(t, f, 0)
	s := newStore(t, e.b)
	const keys, batches, readers = 20, 200, 4
	key := func(i int) string { return fmt.Sprintf("k%02d", i) }
	for i := range keys {
		must(t, s.Put(key(i), 0))
	}
	done := make(chan struct{})
	errs := make(chan error, readers+1)
	go func() {
		defer close(done)
		for b := 1; b <= batches; b++ {
			for i := range keys {
				if err := s.BatchPut(key(i), b); err != nil {
					errs <- err
					return
				}
			}
			if err := s.CommitBatch(); err != nil {
				errs <- err
				return
			}
		}
	}()
	readerDone := make(chan struct{}, readers)
	for range readers {
		go func() {
			defer func() { readerDone <- struct{}{} }()
			for {
				select {
				case <-done:
					return
				default:
				}
				last := -1
				for i := range keys {
					v, ok, err := state.GetTyped[int](s, key(i))
					if err != nil || !ok {
						errs <- fmt.Errorf("read %s: %v %v", key(i), ok, err)
						return
					}
					if v < last {
						errs <- fmt.Errorf("saw half a batch: %s = %d after %d", key(i), v, last)
						return
					}
					last = v
				}
			}
		}()
	}
	<-done
	for range readers {
		<-readerDone
	}
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := range keys {
		if v, _, _ := state.GetTyped[int](s, key(i)); v != batches {
			t.Fatalf("%s = %d, want %d", key(i), v, batches)
		}
	}
}

func testSnapshotConsistency(t *testing.T, f Factory) {
	e := newEnv(t, f, 4)
	c := e.ctx()
	v, err := state.NewValueState[int](c, "v")
	must(t, err)
	m, err := state.NewMapState[string, int](c, "m")
	must(t, err)
	for i := range 50 {
		setKey(t, c, fmt.Sprint("k", i))
		must(t, v.Update(i))
		must(t, m.Put("a", i))
	}
	want := dump(t, e.b)
	snap, err := e.b.Snapshot()
	must(t, err)
	defer snap.Release()
	// Writes after the snapshot: updates, inserts, deletes, a map change.
	for i := range 50 {
		setKey(t, c, fmt.Sprint("k", i))
		switch i % 3 {
		case 0:
			must(t, v.Update(-i))
		case 1:
			must(t, v.Clear())
		case 2:
			must(t, m.Put("b", i))
		}
		setKey(t, c, fmt.Sprint("new", i))
		must(t, v.Update(i))
	}
	must(t, c.Flush())
	// The snapshot is read from other goroutines while the owner writes:
	// one per key group at once (the checkpoint coordinator encodes key
	// groups in parallel), reading the changes too.
	got := make(chan map[string]string)
	go func() { got <- dumpSnapshotParallel(t, snap) }()
	for i := range 50 {
		setKey(t, c, fmt.Sprint("more", i))
		must(t, v.Update(i))
	}
	must(t, c.Flush())
	compare(t, "snapshot", <-got, want)
	if len(want) != 100 {
		t.Fatalf("dump has %d rows, want 100", len(want))
	}
}

// fill writes a mix of states over many keys.
func fill(t *testing.T, e *env, n int) {
	c := e.ctx()
	v, err := state.NewValueState[int64](c, "v")
	must(t, err)
	tv, err := state.NewValueState[string](c, "ttl", state.WithTTL(state.TTLConfig{TTL: time.Hour}))
	must(t, err)
	m, err := state.NewMapState[string, point](c, "m")
	must(t, err)
	l, err := state.NewListState[int](c, "l")
	must(t, err)
	s := newStore(t, e.b)
	for i := range n {
		setKey(t, c, fmt.Sprint("key", i))
		must(t, v.Update(int64(i)))
		if i%2 == 0 {
			must(t, tv.Update(fmt.Sprint(i)))
		}
		if i%3 == 0 {
			must(t, m.Put("p", point{X: i}))
			must(t, m.Put("q", point{Y: i, Tags: []string{"t"}}))
		}
		if i%5 == 0 {
			must(t, l.AddAll([]int{i, i + 1}))
		}
		if i%7 == 0 {
			must(t, s.PutWithTTL(fmt.Sprint("s", i), i, 2*time.Hour))
		}
	}
	must(t, c.Flush())
}

// files snapshots b and returns the full file of every key group.
func files(t *testing.T, b state.Backend) map[int][]byte {
	t.Helper()
	snap, err := b.Snapshot()
	must(t, err)
	defer snap.Release()
	out := map[int][]byte{}
	cfg := b.Config()
	for kg := cfg.KeyGroups.Start; kg < cfg.KeyGroups.End; kg++ {
		var buf bytes.Buffer
		must(t, state.WriteKeyGroup(&buf, snap, kg))
		out[kg] = buf.Bytes()
	}
	return out
}

func testRestore(t *testing.T, f Factory) {
	e := newEnv(t, f, 8)
	fill(t, e, 300)
	want := dump(t, e.b)
	fs := files(t, e.b)

	// Into a fresh backend, every key group.
	b2 := e.open(e.cfg)
	for kg := range 8 {
		must(t, b2.Restore(bytes.NewReader(fs[kg])))
	}
	compare(t, "restored", dump(t, b2), want)
	st1, st2 := e.b.Stats(), b2.Stats()
	if st1.Keys != st2.Keys {
		t.Fatalf("restored Keys = %d, want %d", st2.Keys, st1.Keys)
	}
	// The restored state is usable through the typed API.
	c2, err := state.NewKeyedContext(b2)
	must(t, err)
	m, err := state.NewMapState[string, point](c2, "m")
	must(t, err)
	setKey(t, c2, "key3")
	if p, ok, err := m.Get("q"); err != nil || !ok || p.Y != 3 || p.Tags[0] != "t" {
		t.Fatalf("restored map entry: %+v %v %v", p, ok, err)
	}
	// Reading restored values as another type fails (memory decodes at
	// registration, Pebble at the read).
	cx, err := state.NewKeyedContext(b2)
	must(t, err)
	vs, err := state.NewValueState[string](cx, "v")
	if err == nil {
		setKey(t, cx, "key1")
		_, _, err = vs.Value()
	}
	if !errors.Is(err, state.ErrTypeMismatch) {
		t.Fatalf("restored int64 read as string: %v", err)
	}
	s2 := newStore(t, b2)
	if v, ok, err := state.GetTyped[int](s2, "s14"); err != nil || !ok || v != 14 {
		t.Fatalf("restored store value: %v %v %v", v, ok, err)
	}

	// Re-scaling: two workers with half the key groups each.
	lo := e.open(kv.Config{MaxKeyGroups: 8, KeyGroups: state.RangeForWorker(8, 2, 0)})
	hi := e.open(kv.Config{MaxKeyGroups: 8, KeyGroups: state.RangeForWorker(8, 2, 1)})
	for kg := range 8 {
		dst := lo
		if !lo.Config().KeyGroups.Contains(kg) {
			dst = hi
			if err := lo.Restore(bytes.NewReader(fs[kg])); !errors.Is(err, state.ErrKeyGroupRange) {
				t.Fatalf("restore of a key group not held: %v", err)
			}
		}
		must(t, dst.Restore(bytes.NewReader(fs[kg])))
	}
	merged := dump(t, lo)
	maps.Copy(merged, dump(t, hi))
	compare(t, "re-scaled", merged, want)

	// Other number of key groups: refused.
	other := e.open(kv.Config{MaxKeyGroups: 16})
	if err := other.Restore(bytes.NewReader(fs[0])); !errors.Is(err, state.ErrKeyGroupRange) {
		t.Fatalf("restore into 16 key groups: %v", err)
	}

	// TTL keeps counting across a restore: the TTL'd values expire an hour
	// after they were written, not an hour after the restore.
	e.clock.Advance(59 * time.Minute)
	b3 := e.open(e.cfg)
	for kg := range 8 {
		must(t, b3.Restore(bytes.NewReader(fs[kg])))
	}
	c3, err := state.NewKeyedContext(b3)
	must(t, err)
	tv, err := state.NewValueState[string](c3, "ttl", state.WithTTL(state.TTLConfig{TTL: time.Hour}))
	must(t, err)
	setKey(t, c3, "key2")
	if _, ok, _ := tv.Value(); !ok {
		t.Fatal("restored TTL value missing before its expiry")
	}
	e.clock.Advance(2 * time.Minute)
	if _, ok, _ := tv.Value(); ok {
		t.Fatal("restored TTL value outlived its expiry")
	}
	// Restoring after the expiry drops it.
	b4 := e.open(e.cfg)
	for kg := range 8 {
		must(t, b4.Restore(bytes.NewReader(fs[kg])))
	}
	for k := range dump(t, b4) {
		if strings.Contains(k, "|ttl|") {
			t.Fatalf("expired row restored: %s", k)
		}
	}
}

func testIncremental(t *testing.T, f Factory) {
	e := newEnv(t, f, 4)
	fill(t, e, 100)
	c := e.ctx()
	v, err := state.NewValueState[int64](c, "v")
	must(t, err)
	m, err := state.NewMapState[string, point](c, "m")
	must(t, err)
	s := newStore(t, e.b)

	// Checkpoint 1: full.
	s1, err := e.b.Snapshot()
	must(t, err)
	full := map[int][]byte{}
	for kg := range 4 {
		var buf bytes.Buffer
		must(t, state.WriteKeyGroup(&buf, s1, kg))
		full[kg] = buf.Bytes()
	}
	s1.Release()
	e.b.ConfirmSnapshot(s1.Seq())

	// Changes: updates, deletes, map entry changes, a store clear.
	change := func(round int) {
		for i := round; i < 100; i += 9 {
			setKey(t, c, fmt.Sprint("key", i))
			must(t, v.Update(int64(1000*round+i)))
			if i%2 == 1 {
				must(t, v.Clear())
			}
			must(t, m.Remove("p"))
			must(t, m.Put("z", point{X: round}))
		}
		must(t, c.Flush())
	}
	change(1)
	// Checkpoint 2 is taken but never confirmed: its changes must still be
	// in checkpoint 3's delta.
	s2, err := e.b.Snapshot()
	must(t, err)
	if s2.Base() != s1.Seq() {
		t.Fatalf("Base = %d, want %d", s2.Base(), s1.Seq())
	}
	s2.Release()
	change(2)
	must(t, s.Clear())
	must(t, s.Put("after-clear", 1))

	s3, err := e.b.Snapshot()
	must(t, err)
	defer s3.Release()
	if s3.Base() != s1.Seq() || s3.Seq() <= s2.Seq() {
		t.Fatalf("seq/base = %d/%d", s3.Seq(), s3.Base())
	}
	want := dump(t, e.b)
	b2 := e.open(e.cfg)
	changedGroups := 0
	for kg := range 4 {
		must(t, b2.Restore(bytes.NewReader(full[kg])))
		if s3.Changed(kg) {
			changedGroups++
		}
		var buf bytes.Buffer
		must(t, state.WriteChanges(&buf, s3, kg))
		h, entries, err := state.DecodeEntries(bytes.NewReader(buf.Bytes()))
		must(t, err)
		if h.Kind != state.FileDelta || h.Base != s1.Seq() || h.Seq != s3.Seq() || h.KeyGroup != kg {
			t.Fatalf("delta header %+v", h)
		}
		if len(entries) >= 100 {
			t.Fatalf("delta of key group %d has %d entries: not incremental", kg, len(entries))
		}
		must(t, b2.Restore(bytes.NewReader(buf.Bytes())))
	}
	if changedGroups == 0 {
		t.Fatal("no key group reported changed")
	}
	compare(t, "full + delta", dump(t, b2), want)

	// After confirming 3, an unchanged backend has empty deltas.
	e.b.ConfirmSnapshot(s3.Seq())
	s4, err := e.b.Snapshot()
	must(t, err)
	defer s4.Release()
	for kg := range 4 {
		if s4.Changed(kg) {
			t.Fatalf("key group %d changed without writes", kg)
		}
		n := 0
		must(t, s4.Changes(kg, func(state.Entry) error { n++; return nil }))
		if n != 0 {
			t.Fatalf("key group %d: %d changes without writes", kg, n)
		}
	}
	// A restored backend's first delta holds only what changed after the
	// restore.
	c2, err := state.NewKeyedContext(b2)
	must(t, err)
	v2, err := state.NewValueState[int64](c2, "v")
	must(t, err)
	setKey(t, c2, "key0")
	must(t, v2.Update(-1))
	must(t, c2.Flush())
	s5, err := b2.Snapshot()
	must(t, err)
	defer s5.Release()
	if s5.Base() != 0 {
		t.Fatalf("restored backend's Base = %d", s5.Base())
	}
	total := 0
	for kg := range 4 {
		must(t, s5.Changes(kg, func(en state.Entry) error {
			total++
			if string(en.Key) != "key0" {
				t.Errorf("unexpected change %s %q", en.Kind, en.Key)
			}
			return nil
		}))
	}
	if total != 1 {
		t.Fatalf("%d changes after restore, want 1", total)
	}
}

func testCorrupt(t *testing.T, f Factory) {
	e := newEnv(t, f, 2)
	fill(t, e, 30)
	fs := files(t, e.b)
	good := fs[0]
	cases := map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-3],
		"torn":      good[:len(good)/2],
		"flipped":   flip(good, len(good)/2),
		"garbage":   []byte("not a state file at all"),
	}
	for name, data := range cases {
		b := e.open(e.cfg)
		err := b.Restore(bytes.NewReader(data))
		if !errors.Is(err, state.ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}

func testStats(t *testing.T, f Factory) {
	e := newEnv(t, f, 0)
	c := e.ctx()
	v, err := state.NewValueState[int64](c, "v")
	must(t, err)
	m, err := state.NewMapState[int, int](c, "m")
	must(t, err)
	for i := range 10 {
		setKey(t, c, fmt.Sprint(i))
		must(t, v.Update(int64(i)))
		must(t, m.Put(1, 1))
		must(t, m.Put(2, 2))
	}
	must(t, c.Flush())
	st := e.b.Stats()
	if st.Keys != 30 {
		t.Fatalf("Keys = %d, want 30 (10 values + 20 map entries)", st.Keys)
	}
	if st.TotalBytes <= 0 {
		t.Fatalf("TotalBytes = %d", st.TotalBytes)
	}
	h0, m0 := st.Hits, st.Misses
	setKey(t, c, "3")
	v.Value()
	setKey(t, c, "nope")
	v.Value()
	must(t, c.Flush())
	st = e.b.Stats()
	if st.Hits-h0 != 1 || st.Misses-m0 != 1 {
		t.Fatalf("hits/misses moved by %d/%d, want 1/1", st.Hits-h0, st.Misses-m0)
	}
	setKey(t, c, "3")
	must(t, m.Remove(1))
	must(t, v.Clear())
	must(t, c.Flush())
	if st := e.b.Stats(); st.Keys != 28 {
		t.Fatalf("Keys = %d after removes, want 28", st.Keys)
	}
}

// dump returns every live row of b (via a snapshot): "kg|state|key|userKey"
// to "value@expiry" with keys and values in hex.
func dump(t *testing.T, b state.Backend) map[string]string {
	t.Helper()
	must(t, b.Flush())
	snap, err := b.Snapshot()
	must(t, err)
	defer snap.Release()
	return dumpSnapshot(t, snap, b.Config().MaxKeyGroups)
}

func dumpSnapshot(t *testing.T, snap state.Snapshot, _ int) map[string]string {
	out := map[string]string{}
	rng := snap.KeyGroups()
	for kg := rng.Start; kg < rng.End; kg++ {
		err := snap.Entries(kg, func(e state.Entry) error {
			if e.Kind != state.EntryPut {
				return fmt.Errorf("snapshot entries include a %s", e.Kind)
			}
			k := rowKey(kg, e.State, e.Key, e.UserKey)
			if _, dup := out[k]; dup {
				return fmt.Errorf("duplicate row %s", k)
			}
			out[k] = fmt.Sprintf("%x@%d", e.Value, e.ExpiresAt)
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	return out
}

// dumpSnapshotParallel is dumpSnapshot with every key group's Entries,
// and Changes, read at the same time by its own goroutine.
func dumpSnapshotParallel(t *testing.T, snap state.Snapshot) map[string]string {
	rng := snap.KeyGroups()
	parts := make([]map[string]string, rng.End-rng.Start)
	var wg sync.WaitGroup
	for kg := rng.Start; kg < rng.End; kg++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			part := map[string]string{}
			err := snap.Entries(kg, func(e state.Entry) error {
				part[rowKey(kg, e.State, e.Key, e.UserKey)] = fmt.Sprintf("%x@%d", e.Value, e.ExpiresAt)
				return nil
			})
			if err == nil {
				err = snap.Changes(kg, func(state.Entry) error { return nil })
			}
			if err != nil {
				t.Error(err)
			}
			parts[kg-rng.Start] = part
		}()
	}
	wg.Wait()
	out := map[string]string{}
	for _, part := range parts {
		maps.Copy(out, part)
	}
	return out
}

func rowKey(kg int, st string, key, userKey []byte) string {
	return fmt.Sprintf("%d|%s|%x|%x", kg, st, key, userKey)
}

func compare(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %s = %s", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s = %s, want %s", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %s = %s", k, g))
		}
	}
	if len(diffs) > 0 {
		sort.Strings(diffs)
		if len(diffs) > 10 {
			diffs = append(diffs[:10], fmt.Sprintf("... %d more", len(diffs)-10))
		}
		t.Fatalf("%s: %d rows, want %d:\n%s", what, len(got), len(want), strings.Join(diffs, "\n"))
	}
}

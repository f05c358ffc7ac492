package statetest

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
)

// RunRandom applies ops random operations (puts, gets, removes, TTL puts,
// clock advances, batches, clears, cleanups, snapshots, restores) to a
// backend from f and to a reference model, comparing them after every
// read and regularly in full. It runs seeds seeds (1..seeds; more with
// $WEIR_STATE_SEEDS), or only the seed in $WEIR_STATE_SEED. A failure
// names its seed.
func RunRandom(t *testing.T, f Factory, seeds, ops int) {
	if s := os.Getenv("WEIR_STATE_SEEDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("WEIR_STATE_SEEDS: %v", err)
		}
		seeds = n
	}
	first, last := uint64(1), uint64(seeds)
	if s := os.Getenv("WEIR_STATE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WEIR_STATE_SEED: %v", err)
		}
		first, last = n, n
	}
	for seed := first; seed <= last; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r := &randomTest{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0x5eed))}
			r.run(f, ops)
		})
	}
}

const (
	rndKeys     = 24
	rndUserKeys = 4
	rndMaxKG    = 8
	ttlT        = 50 // ms: state "t"
	ttlM        = 80 // ms: state "m" entries
)

type refRow struct {
	val []byte
	exp int64
}

func (r refRow) live(now int64) bool { return r.exp == 0 || r.exp > now }

type randomTest struct {
	t    *testing.T
	seed uint64
	rng  *rand.Rand
	op   int
	desc string

	env   *env
	c     *state.KeyedContext
	v     *state.ValueState[int64]
	tv    *state.ValueState[string]
	m     *state.MapState[string, int64]
	l     *state.ListState[int64]
	store state.Store

	rows map[string]refRow // the model: rowKey -> row

	// The checkpoint chain: a full file per key group, then deltas.
	chain     []map[int][]byte
	chainRows map[string]refRow // the model at the chain's last snapshot
	baseOf    uint64            // the Base the next delta must report
	pending   *pendingCheckpoint
}

func (r *randomTest) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("seed %d, op %d (%s): %s\n(rerun with WEIR_STATE_SEED=%d)", r.seed, r.op, r.desc, fmt.Sprintf(format, args...), r.seed)
}

func (r *randomTest) check(err error) {
	r.t.Helper()
	if err != nil {
		r.fail("%v", err)
	}
}

func (r *randomTest) now() int64 { return kv.NowMillis(r.env.clock) }

func (r *randomTest) handles() {
	var err error
	r.c, err = state.NewKeyedContext(r.env.b)
	r.check(err)
	r.v, err = state.NewValueState[int64](r.c, "v")
	r.check(err)
	r.tv, err = state.NewValueState[string](r.c, "t", state.WithTTL(state.TTLConfig{TTL: ttlT * time.Millisecond}))
	r.check(err)
	r.m, err = state.NewMapState[string, int64](r.c, "m", state.WithTTL(state.TTLConfig{TTL: ttlM * time.Millisecond}))
	r.check(err)
	r.l, err = state.NewListState[int64](r.c, "l")
	r.check(err)
	r.store, err = state.NewStore(r.env.b, state.DefaultStateName)
	r.check(err)
}

func enc(v any) []byte {
	b, err := kv.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func kgOf(key string) int { return kv.KeyGroupOf([]byte(key), rndMaxKG) }

func rk(st, key string, userKey []byte) string {
	return rowKey(kgOf(key), st, []byte(key), userKey)
}

func (r *randomTest) get(k string) (refRow, bool) {
	row, ok := r.rows[k]
	if !ok || !row.live(r.now()) {
		return refRow{}, false
	}
	return row, true
}

func (r *randomTest) run(f Factory, ops int) {
	r.env = newEnv(r.t, f, rndMaxKG)
	r.rows = map[string]refRow{}
	r.handles()
	for r.op = 0; r.op < ops; r.op++ {
		if p := r.pending; p != nil {
			if p.left == 0 {
				r.finishCheckpoint()
			} else {
				p.left--
			}
		}
		r.step()
		if r.op%100 == 99 {
			r.desc = "full compare"
			r.compareAll(r.env.b, r.rows)
		}
	}
	r.finishCheckpoint()
	r.desc = "final compare"
	r.compareAll(r.env.b, r.rows)
}

func (r *randomTest) step() {
	key := fmt.Sprint("k", r.rng.IntN(rndKeys))
	uk := fmt.Sprint("u", r.rng.IntN(rndUserKeys))
	ukb := enc(uk)
	n := r.rng.IntN(100)
	setKey := func() { r.check(r.c.SetCurrentKey([]byte(key))) }
	switch {
	case n < 8: // value put
		x := r.rng.Int64N(1000)
		r.desc = fmt.Sprintf("v[%s] = %d", key, x)
		setKey()
		r.check(r.v.Update(x))
		r.rows[rk("v", key, nil)] = refRow{val: enc(x)}
	case n < 14: // value get
		r.desc = fmt.Sprintf("get v[%s]", key)
		setKey()
		got, ok, err := r.v.Value()
		r.check(err)
		row, want := r.get(rk("v", key, nil))
		if ok != want || (ok && !bytes.Equal(enc(got), row.val)) {
			r.fail("got %d %v, want %x %v", got, ok, row.val, want)
		}
	case n < 17: // value clear
		r.desc = fmt.Sprintf("clear v[%s]", key)
		setKey()
		r.check(r.v.Clear())
		delete(r.rows, rk("v", key, nil))
	case n < 23: // TTL value put
		x := fmt.Sprint("s", r.rng.IntN(100))
		r.desc = fmt.Sprintf("t[%s] = %s", key, x)
		setKey()
		r.check(r.tv.Update(x))
		r.rows[rk("t", key, nil)] = refRow{val: enc(x), exp: r.now() + ttlT}
	case n < 28: // TTL value get
		r.desc = fmt.Sprintf("get t[%s]", key)
		setKey()
		got, ok, err := r.tv.Value()
		r.check(err)
		row, want := r.get(rk("t", key, nil))
		if ok != want || (ok && !bytes.Equal(enc(got), row.val)) {
			r.fail("got %q %v, want %x %v", got, ok, row.val, want)
		}
	case n < 35: // map put
		x := r.rng.Int64N(1000)
		r.desc = fmt.Sprintf("m[%s][%s] = %d", key, uk, x)
		setKey()
		r.check(r.m.Put(uk, x))
		r.rows[rk("m", key, ukb)] = refRow{val: enc(x), exp: r.now() + ttlM}
	case n < 40: // map get
		r.desc = fmt.Sprintf("get m[%s][%s]", key, uk)
		setKey()
		got, ok, err := r.m.Get(uk)
		r.check(err)
		row, want := r.get(rk("m", key, ukb))
		if ok != want || (ok && !bytes.Equal(enc(got), row.val)) {
			r.fail("got %d %v, want %x %v", got, ok, row.val, want)
		}
		r.desc = fmt.Sprintf("len m[%s]", key)
		n, err := r.m.Len()
		r.check(err)
		wantN := 0
		for i := range rndUserKeys {
			if _, ok := r.get(rk("m", key, enc(fmt.Sprint("u", i)))); ok {
				wantN++
			}
		}
		if n != wantN {
			r.fail("Len = %d, want %d", n, wantN)
		}
	case n < 43: // map remove
		r.desc = fmt.Sprintf("remove m[%s][%s]", key, uk)
		setKey()
		r.check(r.m.Remove(uk))
		delete(r.rows, rk("m", key, ukb))
	case n < 44: // map clear
		r.desc = fmt.Sprintf("clear m[%s]", key)
		setKey()
		r.check(r.m.Clear())
		for i := range rndUserKeys {
			delete(r.rows, rk("m", key, enc(fmt.Sprint("u", i))))
		}
	case n < 48: // list add
		x := r.rng.Int64N(100)
		r.desc = fmt.Sprintf("l[%s] += %d", key, x)
		setKey()
		r.check(r.l.Add(x))
		var cur []int64
		if row, ok := r.get(rk("l", key, nil)); ok {
			r.check(kv.Unmarshal(row.val, &cur))
		}
		r.rows[rk("l", key, nil)] = refRow{val: enc(append(cur, x))}
	case n < 51: // list get
		r.desc = fmt.Sprintf("get l[%s]", key)
		setKey()
		got, err := r.l.Get()
		r.check(err)
		row, ok := r.get(rk("l", key, nil))
		if (got != nil) != ok || (ok && !bytes.Equal(enc(got), row.val)) {
			r.fail("got %v, want %x %v", got, row.val, ok)
		}
	case n < 57: // store put, with or without TTL
		x := r.rng.Int64N(1000)
		row := refRow{val: enc(x)}
		if r.rng.IntN(2) == 0 {
			ttl := 20 + r.rng.Int64N(80)
			r.desc = fmt.Sprintf("store %s = %d ttl %d", key, x, ttl)
			r.check(r.store.PutWithTTL(key, x, time.Duration(ttl)*time.Millisecond))
			row.exp = r.now() + ttl
		} else {
			r.desc = fmt.Sprintf("store %s = %d", key, x)
			r.check(state.PutTyped(r.store, key, x))
		}
		r.rows[rk(state.DefaultStateName, key, nil)] = row
	case n < 62: // store get
		r.desc = fmt.Sprintf("store get %s", key)
		got, ok, err := state.GetTyped[int64](r.store, key)
		r.check(err)
		row, want := r.get(rk(state.DefaultStateName, key, nil))
		if ok != want || (ok && !bytes.Equal(enc(got), row.val)) {
			r.fail("got %d %v, want %x %v", got, ok, row.val, want)
		}
	case n < 64: // store remove
		r.desc = fmt.Sprintf("store remove %s", key)
		r.check(r.store.Remove(key))
		delete(r.rows, rk(state.DefaultStateName, key, nil))
	case n < 68: // store batch
		r.batch()
	case n < 69: // store clear
		r.desc = "store clear"
		r.check(r.store.Clear())
		for k := range rndKeys {
			delete(r.rows, rk(state.DefaultStateName, fmt.Sprint("k", k), nil))
		}
	case n < 80: // time passes
		d := time.Duration(1+r.rng.IntN(30)) * time.Millisecond
		r.desc = fmt.Sprintf("advance %v", d)
		r.env.clock.Advance(d)
	case n < 83: // flush
		r.desc = "flush"
		r.check(r.c.Flush())
	case n < 86: // cleanup
		r.desc = "cleanup"
		_, err := r.env.b.CleanupExpired(context.Background())
		r.check(err)
		live := 0
		now := r.now()
		for _, row := range r.rows {
			if row.live(now) {
				live++
			}
		}
		if got := r.env.b.Stats().Keys; got != int64(live) {
			r.fail("Keys = %d after cleanup, want %d", got, live)
		}
	case n < 95: // checkpoint
		r.checkpoint()
	case n < 98: // restore from the chain, and maybe go on with it
		r.restore()
	default:
		r.desc = "full compare"
		r.compareAll(r.env.b, r.rows)
	}
}

func (r *randomTest) batch() {
	type op struct {
		key    string
		val    int64
		remove bool
	}
	var ops []op
	for range 1 + r.rng.IntN(4) {
		o := op{key: fmt.Sprint("k", r.rng.IntN(rndKeys)), val: r.rng.Int64N(1000), remove: r.rng.IntN(4) == 0}
		ops = append(ops, o)
		if o.remove {
			r.check(r.store.BatchRemove(o.key))
		} else {
			r.check(r.store.BatchPut(o.key, o.val))
		}
	}
	if st := r.store.Stats(); st.ActiveTransactions != 1 {
		r.fail("ActiveTransactions = %d with a batch open", st.ActiveTransactions)
	}
	if r.rng.IntN(5) == 0 {
		r.desc = fmt.Sprintf("abort batch %v", ops)
		r.check(r.store.AbortBatch())
		return
	}
	r.desc = fmt.Sprintf("commit batch %v", ops)
	r.check(r.store.CommitBatch())
	for _, o := range ops {
		k := rk(state.DefaultStateName, o.key, nil)
		if o.remove {
			delete(r.rows, k)
		} else {
			r.rows[k] = refRow{val: enc(o.val)}
		}
	}
}

// pendingCheckpoint is a snapshot being written out in the background
// while operations go on, as the checkpoint coordinator does it.
type pendingCheckpoint struct {
	snap  state.Snapshot
	rows  map[string]refRow
	full  bool
	left  int // operations to run before waiting for it
	done  chan struct{}
	files map[int][]byte
	err   error
}

func (r *randomTest) checkpoint() {
	r.finishCheckpoint()
	b := r.env.b
	snap, err := b.Snapshot()
	r.check(err)
	p := &pendingCheckpoint{
		snap:  snap,
		rows:  maps.Clone(r.rows),
		full:  len(r.chain) == 0 || r.rng.IntN(6) == 0,
		left:  r.rng.IntN(8),
		done:  make(chan struct{}),
		files: map[int][]byte{},
	}
	r.desc = fmt.Sprintf("checkpoint %d (full %v, base %d)", snap.Seq(), p.full, snap.Base())
	if !p.full && snap.Base() != r.baseOf {
		r.fail("snapshot %d has Base %d, want %d", snap.Seq(), snap.Base(), r.baseOf)
	}
	go func() {
		defer close(p.done)
		for kg := range rndMaxKG {
			var buf bytes.Buffer
			if p.full {
				p.err = state.WriteKeyGroup(&buf, snap, kg)
			} else {
				p.err = state.WriteChanges(&buf, snap, kg)
			}
			if p.err != nil {
				return
			}
			p.files[kg] = buf.Bytes()
		}
	}()
	r.pending = p
}

// finishCheckpoint waits for the pending checkpoint and, most of the time,
// confirms it (the others fail: their files are dropped).
func (r *randomTest) finishCheckpoint() {
	p := r.pending
	if p == nil {
		return
	}
	r.pending = nil
	<-p.done
	p.snap.Release()
	if p.err != nil {
		r.fail("writing checkpoint %d: %v", p.snap.Seq(), p.err)
	}
	if r.rng.IntN(10) < 3 {
		return
	}
	r.env.b.ConfirmSnapshot(p.snap.Seq())
	if p.full {
		r.chain = nil
	}
	r.chain = append(r.chain, p.files)
	r.chainRows = p.rows
	r.baseOf = p.snap.Seq()
}

func (r *randomTest) restore() {
	r.finishCheckpoint()
	if len(r.chain) == 0 {
		return
	}
	r.desc = fmt.Sprintf("restore chain of %d", len(r.chain))
	b2 := r.env.open(r.env.cfg)
	for _, files := range r.chain {
		for kg := range rndMaxKG {
			r.check(b2.Restore(bytes.NewReader(files[kg])))
		}
	}
	r.compareAll(b2, r.chainRows)
	if r.rng.IntN(3) != 0 {
		return
	}
	// Go on with the restored backend: the state rolls back to the
	// chain's last checkpoint.
	r.desc = "switch to restored backend"
	r.check(r.env.b.Close())
	r.env.b = b2
	r.rows = maps.Clone(r.chainRows)
	r.handles()
	r.baseOf = 0
}

// compareAll compares every live row of b with the model.
func (r *randomTest) compareAll(b state.Backend, rows map[string]refRow) {
	r.t.Helper()
	got := dump(r.t, b)
	now := r.now()
	want := map[string]string{}
	for k, row := range rows {
		if row.live(now) {
			want[k] = fmt.Sprintf("%x@%d", row.val, row.exp)
		}
	}
	if len(got) != len(want) || !maps.Equal(got, want) {
		var diffs []string
		for k, w := range want {
			if g := got[k]; g != w {
				diffs = append(diffs, fmt.Sprintf("%s: got %q want %q", k, g, w))
			}
		}
		for k, g := range got {
			if _, ok := want[k]; !ok {
				diffs = append(diffs, fmt.Sprintf("%s: extra %q", k, g))
			}
		}
		slices.Sort(diffs)
		r.fail("backend differs from the model in %d rows:\n%v", len(diffs), diffs)
	}
}

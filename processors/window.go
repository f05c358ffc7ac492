package processors

// Windows: the machinery shared by tumbling_window, sliding_window and
// session_window (one Go type, windowProc, configured by each processor's
// constructor).
//
// Semantics
//
//   - Rows are grouped by `key` (a column or an expression, stringified as
//     groupKey does); without `key` every row has the one global key "" and
//     the output has no key column.
//   - Time is event time when `timestamp_field` is set: a column of epoch
//     milliseconds (integer, float, Arrow timestamp, or a string holding a
//     number or an ISO 8601 / RFC 3339 time). Otherwise it is processing
//     time: the clock of the state backend when the batch is processed.
//   - Event-time watermark: W = (largest event time seen) −
//     max_out_of_orderness, after each row, in row order. With
//     thread_num > 1 the engine's keyed exchange computes it over the
//     whole stream on an instance of its own (Watermarks), each row
//     carries it to its worker (Batch.Watermarks), and every worker hears
//     when it advances (OnWatermark): each record is judged, and each
//     window closed, as with one instance, whatever thread_num is.
//   - A window is [start, end) for tumbling and sliding windows (aligned to
//     the Unix epoch: start is a multiple of slide). A session of a key
//     holds events whose gaps are at most `gap`: an event at t joins every
//     open session [first, last] of its key with first−gap ≤ t ≤ last+gap
//     (bridging sessions merges them); its close bound is last+gap+1, i.e.
//     it closes once no event within gap of its last one can come.
//   - A window closes when W ≥ bound + allowed_lateness (bound: end, or
//     last+gap+1), or, in processing time, when now ≥ bound (lateness and
//     out-of-orderness do not apply). It then emits one row: key, start,
//     end (int64 epoch ms) and its aggregates, and is deleted. Tumbling and
//     sliding windows output their bounds [start, end); a session outputs
//     the timestamps of its FIRST and LAST event.
//   - A record is late when every window it belongs to has closed (for a
//     session: when it touches no open session of its key and a session
//     holding only it would already be closed):
//     it goes to the error batch with __meta_error "<type>: late record:
//     event time T is behind the watermark W (window [S,E) closed)". A
//     record that arrives after the session it would have extended has
//     closed, but is not late itself, starts a new session (as in Flink):
//     choose max_out_of_orderness to cover the disorder of the input.
//   - Closing happens on records (per row, in row order, so the result
//     does not depend on how rows are batched), on OnTick for processing
//     time (every min(period/10, 100ms), at least 10ms), and at the end of
//     a bounded input (Flush emits every open window, closed or not).
//     OnBarrier emits nothing: open windows are in the state.
//
// State (all of it in res.State, so checkpoints carry it):
//   - "<type>/windows/<aggregates>": a value state per key holding the
//     key's open windows, sorted by start, each with its accumulators
//     ([]winState). Values are never changed in place: a key's windows are
//     copied when a row of a batch first changes them, changed, and stored
//     back (closing windows stores the rest, uncopied).
//   - "<type>/watermark": event time only, the instance's watermark, one
//     entry per key group (under a synthetic key of that group), written
//     when it advances. After a restore each key group keeps its own
//     watermark as a floor for lateness, so a window emitted before the
//     checkpoint is never created (and emitted) again, even when key
//     groups move to an instance with another watermark; the instance
//     starts from the smallest of them.
//   - In memory only: a slot per key (its state key and key group, its
//     rows in the current batch, and, with the memory backend and no
//     state_ttl, the windows it last stored, so that closing them needs
//     no state read) and a timer index (a min-heap of close times by slot,
//     one live entry per key with open windows), rebuilt lazily from the
//     state (Range) the first time the processor is used, which is after
//     any restore. Slots of keys without open windows are kept for keys
//     that come back, and dropped when they outnumber the open ones.
//   - state_ttl (when set) expires a key's open windows that received no
//     record for that long: they are dropped, never emitted.

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state"
	"github.com/weir-stream/weir/state/kv"
	"github.com/weir-stream/weir/state/memory"
)

// Field names shared by the window processors.
const (
	windowKey            = "key"
	windowTimestamp      = "timestamp_field"
	windowOutOfOrderness = "max_out_of_orderness"
	windowLateness       = "allowed_lateness"
	windowKeyColumn      = "key_column"
	windowStartColumn    = "start_column"
	windowEndColumn      = "end_column"
	windowStateTTL       = "state_ttl"
)

// windowBatchRows bounds the rows of one emitted batch.
const windowBatchRows = 8192

// windowFields returns the fields every window processor has, after its
// own (own come first in the spec).
func windowFields(own ...component.Field) []component.Field {
	return append(own,
		component.Field{Name: windowKey, Type: component.TypeExpr,
			Description: "Windows per key: a column name (read directly) or an expression, stringified; " +
				"a null key fails its row. Default: one global window sequence (no key column in the output)."},
		aggregatesField(),
		component.Field{Name: windowTimestamp, Type: component.TypeString,
			Description: "Column with the event time (epoch ms as an integer or float, an Arrow timestamp, or a " +
				"string holding a number or an ISO 8601 time). Default: processing time."},
		component.Field{Name: windowOutOfOrderness, Type: component.TypeDuration, Default: "0s",
			Description: "Event time: the watermark is the largest event time seen minus this."},
		component.Field{Name: windowLateness, Type: component.TypeDuration, Default: "0s",
			Description: "Event time: a window stays open for late records until the watermark passes its end " +
				"by this much; records for closed windows go to the error output."},
		component.Field{Name: windowKeyColumn, Type: component.TypeString, Default: "key",
			Description: "Output column holding the key (a string), when key is set."},
		component.Field{Name: windowStartColumn, Type: component.TypeString, Default: "window_start",
			Description: "Output column holding the window start (int64 epoch ms)."},
		component.Field{Name: windowEndColumn, Type: component.TypeString, Default: "window_end",
			Description: "Output column holding the window end (int64 epoch ms)."},
		component.Field{Name: windowStateTTL, Type: component.TypeDuration, Default: "0s", Advanced: true,
			Description: "Drop a key's open windows after this long without records (processing time; they are " +
				"not emitted); 0 keeps them until they close."},
	)
}

// windowMode is how windows are assigned.
type windowMode uint8

const (
	windowFixed   windowMode = iota + 1 // tumbling and sliding: [start, start+size)
	windowSession                       // sessions closed by a gap
)

// windowParams are what a window processor's constructor decides.
type windowParams struct {
	typ   string // processor type, for messages and state names
	mode  windowMode
	size  int64 // fixed: window length (ms)
	slide int64 // fixed: distance between window starts (ms); = size for tumbling
	gap   int64 // session: largest gap inside a session (ms)
	// tick is the period (size, slide or gap) processing-time ticks derive from.
	tick time.Duration
}

// winState is one open window of a key. Fixed windows: [Start, End).
// Sessions: the timestamps of the first and last event.
type winState struct {
	Start int64  `cbor:"1,keyasint"`
	End   int64  `cbor:"2,keyasint"`
	Acc   aggRow `cbor:"3,keyasint"`
}

// windowProc is the tumbling_window, sliding_window and session_window
// processor. It belongs to one goroutine, like its state.
type windowProc struct {
	windowParams
	key       *groupKey // nil: one global key
	eventTime bool
	tsField   string
	ooo       int64 // max out-of-orderness (ms)
	lateness  int64 // allowed lateness (ms); 0 in processing time
	keyCol    string
	startCol  string
	endCol    string
	specs     []aggSpec
	log       *slog.Logger

	ctx     *state.KeyedContext
	owned   kv.Backend // created here when the engine gave none (tests)
	clock   kv.Clock
	windows *state.ValueState[[]winState]
	marks   *state.ValueState[int64] // event time: watermark per key group
	kgs     kv.KeyGroupRange
	maxKG   int

	// cache: slots hold each key's stored windows (the memory backend
	// without TTL: nothing but this processor changes them).
	cache bool

	// Runtime, rebuilt by start after a restore.
	started  bool
	wm       int64   // event-time watermark
	wmSaved  int64   // watermark last written to marks
	floors   []int64 // per key group of kgs: restored watermark
	markKeys [][]byte
	slots    []keySlot
	slotOf   map[string]int32 // key → its slot
	free     []int32          // unused slots
	armedN   int              // slots with a live timer
	timers   timerHeap

	// Per batch, reused.
	reader  *aggReader
	ts      eventTimes
	out     *aggOutput
	fails   rowFailures
	times   []int64 // event time per row
	marksAt []int64 // watermark after each row
	next    []int32 // next row of the same key, -1 after the last
	touched []int32 // slots of the batch's keys, in order of first row
	batchNo uint64
	keyData []byte
	keyOffs []int32
	starts  []int64
	ends    []int64
	pending []*message.Batch
}

// keySlot is what the processor keeps in memory about a key.
type keySlot struct {
	key   string
	kg    int32 // the key's key group
	used  bool  // the slot holds a key (else it is in free)
	armed bool  // the key has a live timer entry, at at
	at    int64
	// ws are the windows stored for the key, when the processor caches
	// them (never changed in place, like the state's values); stored
	// tells whether the state holds a value for the key (maybe empty:
	// a cached key keeps its entry while it keeps its slot).
	ws     []winState
	stored bool
	// The rows of the key in batch batchNo: the first and last (the
	// others are linked by next).
	batch       uint64
	first, last int32
}

// newWindowProc builds a window processor from the common fields of conf
// and the type's parameters.
func newWindowProc(conf *component.Config, res component.Resources, wp windowParams) (*windowProc, error) {
	p := &windowProc{
		windowParams: wp,
		tsField:      conf.String(windowTimestamp),
		keyCol:       conf.String(windowKeyColumn),
		startCol:     conf.String(windowStartColumn),
		endCol:       conf.String(windowEndColumn),
		log:          res.Logger,
		slotOf:       make(map[string]int32),
		wm:           math.MinInt64,
		wmSaved:      math.MinInt64,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	p.eventTime = p.tsField != ""
	var err error
	if src := conf.String(windowKey); src != "" {
		if p.key, err = newGroupKey(src); err != nil {
			return nil, conf.Errorf(windowKey, "%v", err)
		}
	}
	ooo, lateness := conf.Duration(windowOutOfOrderness), conf.Duration(windowLateness)
	switch {
	case ooo < 0:
		return nil, conf.Errorf(windowOutOfOrderness, "must not be negative")
	case lateness < 0:
		return nil, conf.Errorf(windowLateness, "must not be negative")
	case !p.eventTime && ooo > 0:
		return nil, conf.Errorf(windowOutOfOrderness, "needs timestamp_field (processing-time windows have no out-of-order records)")
	case !p.eventTime && lateness > 0:
		return nil, conf.Errorf(windowLateness, "needs timestamp_field (processing-time windows have no late records)")
	}
	p.ooo, p.lateness = ooo.Milliseconds(), lateness.Milliseconds()
	if p.specs, err = parseAggregates(conf); err != nil {
		return nil, err
	}
	cols := map[string]string{p.startCol: windowStartColumn}
	names := []struct{ field, name string }{{windowStartColumn, p.startCol}, {windowEndColumn, p.endCol}}
	if p.key != nil {
		names = append(names, struct{ field, name string }{windowKeyColumn, p.keyCol})
	}
	for _, n := range names {
		if n.name == "" {
			return nil, conf.Errorf(n.field, "must not be empty")
		}
		if other, dup := cols[n.name]; dup && other != n.field {
			return nil, conf.Errorf(n.field, "column %q is also the %s", n.name, other)
		}
		cols[n.name] = n.field
	}
	for _, s := range p.specs {
		if other, dup := cols[s.As]; dup {
			return nil, conf.Errorf(aggregatesKey, "output column %q is also the %s; set a different `as`", s.As, other)
		}
	}
	ttl := conf.Duration(windowStateTTL)
	if ttl < 0 {
		return nil, conf.Errorf(windowStateTTL, "must not be negative")
	}

	backend, owned, err := stateBackend(res)
	if err != nil {
		return nil, err
	}
	p.owned = owned
	_, isMem := backend.(*memory.Backend)
	p.cache = isMem && ttl == 0
	cfg := backend.Config()
	p.clock, p.kgs, p.maxKG = cfg.Clock, cfg.KeyGroups, cfg.MaxKeyGroups
	if p.ctx, err = state.NewKeyedContext(backend); err != nil {
		p.closeOwned()
		return nil, fmt.Errorf("%s: %w", p.typ, err)
	}
	var opts []state.StateOption
	if ttl > 0 {
		opts = append(opts, state.WithTTL(state.TTLConfig{TTL: ttl}))
	}
	if p.windows, err = state.NewValueState[[]winState](p.ctx, stateName(p.typ+"/windows", aggSignature(p.specs)), opts...); err == nil && p.eventTime {
		p.marks, err = state.NewValueState[int64](p.ctx, p.typ+"/watermark")
	}
	if err != nil {
		p.closeOwned()
		return nil, fmt.Errorf("%s: %w", p.typ, err)
	}
	p.reader = newAggReader(p.specs)
	p.out = newAggOutput(p.specs)
	p.ts.field = p.tsField
	return p, nil
}

func (p *windowProc) closeOwned() {
	if p.owned != nil {
		_ = p.owned.Close()
		p.owned = nil
	}
}

// Close implements component.Processor.
func (p *windowProc) Close(context.Context) error {
	p.closeOwned()
	return nil
}

// emptyKey is the global key: empty, but not nil (nil means "no key").
var emptyKey = []byte{}

// Keys implements component.Keyed.
func (p *windowProc) Keys(b *message.Batch, fn func(row int, key []byte)) error {
	if p.key == nil {
		for i := 0; i < b.NumRows(); i++ {
			fn(i, emptyKey)
		}
		return nil
	}
	return keysOf(p.key, b, fn)
}

// FlushInterval implements component.Flusher: windows are flushed only at
// the end of the input.
func (p *windowProc) FlushInterval() time.Duration { return 0 }

// TickInterval implements component.Ticker: processing-time windows close
// on ticks, every tenth of their period, between 10ms and 100ms.
func (p *windowProc) TickInterval() time.Duration {
	if p.eventTime {
		return 0
	}
	return min(max(p.tick/10, 10*time.Millisecond), 100*time.Millisecond)
}

// closeAt is when window w closes: the watermark (or processing time) at
// which it is emitted.
func (p *windowProc) closeAt(w *winState) int64 {
	if p.mode == windowSession {
		return w.End + p.gap + 1 + p.lateness
	}
	return w.End + p.lateness
}

// ---- restore and timers ----

// start rebuilds what is kept in memory from the state, once, before the
// first use (so after any restore).
func (p *windowProc) start() error {
	if p.started {
		return nil
	}
	p.started = true
	var empty [][]byte // keys stored without windows, when not cached
	err := p.windows.Range(func(key []byte, ws []winState) bool {
		if len(ws) == 0 && !p.cache {
			empty = append(empty, key)
			return true
		}
		id := p.slot(key)
		if p.cache {
			p.slots[id].ws, p.slots[id].stored = ws, true
		}
		if len(ws) > 0 {
			p.arm(id, p.closeAt(&ws[0]))
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("%s: rebuild timers: %w", p.typ, err)
	}
	for _, key := range empty {
		if err := p.ctx.SetCurrentKey(key); err != nil {
			return fmt.Errorf("%s: %w", p.typ, err)
		}
		if err := p.windows.Clear(); err != nil {
			return fmt.Errorf("%s: %w", p.typ, err)
		}
	}
	if !p.eventTime {
		return nil
	}
	p.floors = make([]int64, p.kgs.Len())
	for i := range p.floors {
		p.floors[i] = math.MinInt64
	}
	lowest, found := int64(math.MaxInt64), false
	err = p.marks.Range(func(key []byte, w int64) bool {
		kg := kv.KeyGroupOf(key, p.maxKG)
		if p.kgs.Contains(kg) {
			p.floors[kg-p.kgs.Start] = w
			lowest, found = min(lowest, w), true
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("%s: restore watermark: %w", p.typ, err)
	}
	if found {
		p.wm, p.wmSaved = lowest, lowest
	}
	return nil
}

// ---- key slots and timers ----

// slot returns the slot of key, making one if it has none.
func (p *windowProc) slot(key []byte) int32 {
	if id, ok := p.slotOf[bytesToString(key)]; ok {
		return id
	}
	var id int32
	if n := len(p.free); n > 0 {
		id = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		id = int32(len(p.slots))
		p.slots = append(p.slots, keySlot{})
	}
	k := string(key)
	p.slots[id] = keySlot{key: k, kg: int32(kv.KeyGroupOf(key, p.maxKG)), used: true}
	p.slotOf[k] = id
	return id
}

// sweepSlots drops the slots of keys without open windows once they
// outnumber the others (and a few thousand), and with them the keys'
// empty values in the state: keys that come back keep theirs, keys that
// do not cost memory only for a while.
func (p *windowProc) sweepSlots() error {
	idle := len(p.slots) - len(p.free) - p.armedN
	if idle <= max(4096, p.armedN) {
		return nil
	}
	for id := range p.slots {
		s := &p.slots[id]
		if !s.used || s.armed {
			continue
		}
		if s.stored {
			if err := p.ctx.SetCurrentKeyInGroup(stringBytes(s.key), int(s.kg)); err != nil {
				return fmt.Errorf("%s: %w", p.typ, err)
			}
			if err := p.windows.Clear(); err != nil {
				return fmt.Errorf("%s: %w", p.typ, err)
			}
		}
		delete(p.slotOf, s.key)
		*s = keySlot{}
		p.free = append(p.free, int32(id))
	}
	return nil
}

// resetSlots forgets every slot and timer (after Flush cleared the state).
func (p *windowProc) resetSlots() {
	clear(p.slotOf)
	p.slots, p.free, p.timers, p.armedN = p.slots[:0], p.free[:0], p.timers[:0], 0
}

// timer is an entry of the timer index: it is live if its slot is still
// armed at the same time (re-arming earlier adds an entry, so the older
// one is ignored when it comes up).
type timer struct {
	at   int64
	slot int32
}

// timerHeap is a min-heap of timers by time, 4-ary: the children of an
// entry share a cache line.
type timerHeap []timer

func (h *timerHeap) push(t timer) {
	q := append(*h, t)
	i := len(q) - 1
	for i > 0 {
		up := (i - 1) / 4
		if q[up].at <= t.at {
			break
		}
		q[i] = q[up]
		i = up
	}
	q[i] = t
	*h = q
}

// pop removes and returns the earliest timer (the heap is not empty).
func (h *timerHeap) pop() timer {
	q := *h
	top := q[0]
	n := len(q) - 1
	t := q[n]
	q = q[:n]
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < min(c+4, n); j++ {
			if q[j].at < q[m].at {
				m = j
			}
		}
		if t.at <= q[m].at {
			break
		}
		q[i] = q[m]
		i = m
	}
	if n > 0 {
		q[i] = t
	}
	*h = q
	return top
}

// arm makes sure the windows of slot id are looked at when time reaches
// at. A key has one live entry; a later one is not added (the earlier
// entry re-arms when it fires).
func (p *windowProc) arm(id int32, at int64) {
	s := &p.slots[id]
	if s.armed {
		if s.at <= at {
			return
		}
	} else {
		p.armedN++
	}
	s.armed, s.at = true, at
	p.timers.push(timer{at: at, slot: id})
}

// closeDue emits every window whose close time is ≤ now.
func (p *windowProc) closeDue(now int64) error {
	for len(p.timers) > 0 && p.timers[0].at <= now {
		t := p.timers.pop()
		s := &p.slots[t.slot]
		if !s.armed || s.at != t.at {
			continue // stale: the key was re-armed earlier, or closed
		}
		s.armed = false
		p.armedN--
		key := stringBytes(s.key)
		var cur []winState
		if p.cache {
			cur = s.ws
		} else {
			if err := p.ctx.SetCurrentKeyInGroup(key, int(s.kg)); err != nil {
				return fmt.Errorf("%s: %w", p.typ, err)
			}
			var err error
			if cur, _, err = p.windows.Value(); err != nil {
				return fmt.Errorf("%s: %w", p.typ, err)
			}
		}
		if len(cur) == 0 {
			continue // expired (state_ttl)
		}
		if at := p.closeAt(&cur[0]); at > now {
			p.arm(t.slot, at) // a session grew since the timer was set
			continue
		}
		// The windows left are a part of cur: shared, never changed.
		ws := p.closeWindows(key, cur, now)
		if p.cache {
			if err := p.ctx.SetCurrentKeyInGroup(key, int(s.kg)); err != nil {
				return fmt.Errorf("%s: %w", p.typ, err)
			}
		}
		if err := p.store(s, ws); err != nil {
			return err
		}
		if len(ws) > 0 {
			p.arm(t.slot, p.closeAt(&ws[0]))
		}
	}
	return nil
}

// ---- windows of the current key ----

// winAcc is a window and its one accumulator in one allocation (the
// windows of most keys: one window, one aggregate).
type winAcc struct {
	w [1]winState
	a [1]aggAcc
}

// ownWindows returns a copy of cur that may be changed, accumulators
// included (state values are never changed in place), with room for one
// more window.
func (p *windowProc) ownWindows(cur []winState) []winState {
	if len(cur) == 1 && len(cur[0].Acc) == 1 {
		wa := &winAcc{w: [1]winState{cur[0]}, a: [1]aggAcc{cur[0].Acc[0]}}
		wa.w[0].Acc = wa.a[:]
		return wa.w[:]
	}
	ws := make([]winState, len(cur), len(cur)+1)
	copy(ws, cur)
	n := 0
	for i := range cur {
		n += len(cur[i].Acc)
	}
	accs := make([]aggAcc, n)
	for i := range ws {
		m := copy(accs, cur[i].Acc)
		ws[i].Acc, accs = accs[:m:m], accs[m:]
	}
	return ws
}

// addWindow inserts a new window [start, end] holding row i at j into ws
// (owned: changeable in place), and returns the windows, now owned. If
// the row cannot be read, ws is left as it was.
func (p *windowProc) addWindow(ws []winState, owned bool, j int, start, end int64, i int) ([]winState, error) {
	if len(ws) == 0 && len(p.specs) == 1 {
		wa := &winAcc{}
		if err := p.reader.add(wa.a[:], i); err != nil {
			return nil, err
		}
		wa.w[0] = winState{Start: start, End: end, Acc: wa.a[:]}
		return wa.w[:], nil
	}
	acc := make(aggRow, len(p.specs))
	if err := p.reader.add(acc, i); err != nil {
		return nil, err
	}
	if !owned {
		ws = p.ownWindows(ws)
	}
	return slices.Insert(ws, j, winState{Start: start, End: end, Acc: acc}), nil
}

// store writes the windows of the current key, slot s's. A cached key
// without windows keeps an empty value (until its slot is swept): a key
// that comes back is not deleted and inserted again.
func (p *windowProc) store(s *keySlot, ws []winState) error {
	var err error
	switch {
	case p.cache && len(ws) == 0 && !s.stored:
	case p.cache:
		err = p.windows.Update(ws)
		s.ws, s.stored = ws, true
	case len(ws) == 0:
		err = p.windows.Clear()
	default:
		err = p.windows.Update(ws)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", p.typ, err)
	}
	return nil
}

// closeWindows emits the windows of ws (sorted by start, so by close
// time) that close at or before now, and returns the others (a part of
// ws: closing changes no window).
func (p *windowProc) closeWindows(key []byte, ws []winState, now int64) []winState {
	k := 0
	for k < len(ws) && p.closeAt(&ws[k]) <= now {
		p.emit(key, &ws[k])
		k++
	}
	return ws[k:]
}

// assign adds row i with event time t to the windows ws of its key (owned
// when they may be changed in place), with weff the watermark lateness is
// judged by. It returns the new windows, whether they are owned and, if
// the row was not added, why (ws unchanged).
func (p *windowProc) assign(ws []winState, owned bool, i int, t, weff int64) ([]winState, bool, string) {
	if p.mode == windowSession {
		return p.assignSession(ws, owned, i, t, weff)
	}
	last := floorDiv(t, p.slide) * p.slide
	if last+p.size+p.lateness <= weff {
		return ws, owned, p.lateMsg(t, weff, last, last+p.size)
	}
	// Reading the row's values fails on the first window or never: a
	// failing row changes nothing.
	for s := last; s > t-p.size; s -= p.slide {
		if s+p.size+p.lateness <= weff {
			break // this window and the earlier ones have closed
		}
		j, found := slices.BinarySearchFunc(ws, s, func(w winState, s int64) int { return cmpInt64(w.Start, s) })
		if found {
			if !owned {
				ws, owned = p.ownWindows(ws), true
			}
			if err := p.reader.add(ws[j].Acc, i); err != nil {
				return ws, owned, p.typ + ": " + err.Error()
			}
			continue
		}
		nws, err := p.addWindow(ws, owned, j, s, s+p.size, i)
		if err != nil {
			return ws, owned, p.typ + ": " + err.Error()
		}
		ws, owned = nws, true
	}
	return ws, owned, ""
}

// assignSession is assign for sessions: the row joins (and merges) the
// open sessions within gap of t, or starts one.
func (p *windowProc) assignSession(ws []winState, owned bool, i int, t, weff int64) ([]winState, bool, string) {
	// Sessions are disjoint and sorted: those that t touches are ws[lo:hi].
	// They are open (ws holds only open sessions), so a row that touches
	// one is never late, however far behind the watermark it is.
	lo, hi := 0, len(ws)
	if len(ws) > 1 {
		lo = sort.Search(len(ws), func(j int) bool { return ws[j].End+p.gap >= t })
		hi = sort.Search(len(ws), func(j int) bool { return ws[j].Start-p.gap > t })
	} else if len(ws) == 1 && (ws[0].End+p.gap < t || ws[0].Start-p.gap > t) {
		if ws[0].End+p.gap < t {
			lo = 1
		} else {
			hi = 0
		}
	}
	if lo >= hi {
		if t+p.gap+1+p.lateness <= weff {
			return ws, owned, p.lateMsg(t, weff, t, t+p.gap+1)
		}
		nws, err := p.addWindow(ws, owned, lo, t, t, i)
		if err != nil {
			return ws, owned, p.typ + ": " + err.Error()
		}
		return nws, true, ""
	}
	if !owned {
		ws, owned = p.ownWindows(ws), true
	}
	merged := winState{Start: min(ws[lo].Start, t), End: max(ws[hi-1].End, t), Acc: ws[lo].Acc}
	if hi-lo > 1 {
		merged.Acc = merged.Acc.clone() // ws is left as it was if the row fails
		for j := lo + 1; j < hi; j++ {
			merged.Acc.merge(p.specs, ws[j].Acc)
		}
	}
	if err := p.reader.add(merged.Acc, i); err != nil {
		return ws, owned, p.typ + ": " + err.Error()
	}
	ws[lo] = merged
	return slices.Delete(ws, lo+1, hi), owned, ""
}

func (p *windowProc) lateMsg(t, w, start, end int64) string {
	return fmt.Sprintf("%s: late record: event time %d is behind the watermark %d (window [%d,%d) closed)", p.typ, t, w, start, end)
}

// ---- processing ----

// Process implements component.Processor.
func (p *windowProc) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	if err := p.start(); err != nil {
		return nil, err
	}
	if p.key != nil {
		if err := p.key.bind(b); err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
	}
	if err := p.reader.bind(b); err != nil {
		return nil, err
	}
	if p.eventTime {
		if err := p.ts.bind(b); err != nil {
			return nil, err
		}
	}
	n := b.NumRows()
	p.fails.reset()
	now := kv.NowMillis(p.clock)
	p.times = slices.Grow(p.times[:0], n)[:n]
	p.marksAt = slices.Grow(p.marksAt[:0], n)[:n]
	p.next = slices.Grow(p.next[:0], n)[:n]
	p.touched = p.touched[:0]
	p.batchNo++

	// Pass 1: event time and watermark per row, rows grouped by key.
	wm := p.wm
	for i := 0; i < n; i++ {
		t := now
		if p.eventTime {
			var err error
			if t, err = p.ts.at(i); err != nil {
				p.fails.add(i, p.typ+": "+err.Error())
				continue
			}
			wm = max(wm, t-p.ooo)
			if b.Watermarks != nil {
				// The stream's watermark, from the keyed exchange.
				wm = max(wm, b.Watermarks[i])
			}
			p.marksAt[i] = wm
		} else {
			p.marksAt[i] = now
		}
		p.times[i] = t
		key := emptyKey
		if p.key != nil {
			var err error
			if key, err = p.key.key(b, i); err != nil {
				p.fails.add(i, p.typ+": key: "+err.Error())
				continue
			}
		}
		id := p.slot(key)
		s := &p.slots[id]
		if s.batch != p.batchNo {
			s.batch, s.first = p.batchNo, int32(i)
			p.touched = append(p.touched, id)
		} else {
			p.next[s.last] = int32(i)
		}
		s.last = int32(i)
		p.next[i] = -1
	}

	// Pass 2: each key's rows, in row order.
	for _, id := range p.touched {
		if err := p.processKey(id); err != nil {
			return nil, err
		}
	}
	if p.eventTime {
		p.wm = wm
		now = wm
	}
	if err := p.advance(now); err != nil {
		return nil, err
	}
	bad, err := p.errorBatch(b)
	if err != nil {
		return nil, err
	}
	out := p.takeOutput()
	for _, o := range out {
		o.Pos = b.Pos
	}
	if bad != nil {
		out = append(out, bad)
	}
	return out, nil
}

// processKey applies the rows of the batch of slot id's key to its
// windows.
func (p *windowProc) processKey(id int32) error {
	s := &p.slots[id]
	key := stringBytes(s.key)
	if err := p.ctx.SetCurrentKeyInGroup(key, int(s.kg)); err != nil {
		for r := s.first; r >= 0; r = p.next[r] {
			p.fails.add(int(r), p.typ+": "+err.Error())
		}
		return nil
	}
	floor := int64(math.MinInt64)
	if p.eventTime {
		floor = p.floors[int(s.kg)-p.kgs.Start]
	}
	cur := s.ws
	if !p.cache {
		var err error
		if cur, _, err = p.windows.Value(); err != nil {
			return fmt.Errorf("%s: %w", p.typ, err)
		}
	}
	ws, owned := cur, false
	for r := s.first; r >= 0; r = p.next[r] {
		w := p.marksAt[r]
		ws = p.closeWindows(key, ws, w)
		var msg string
		if ws, owned, msg = p.assign(ws, owned, int(r), p.times[r], max(w, floor)); msg != "" {
			p.fails.add(int(r), msg)
		}
	}
	// Without a cache, every record stores (restarting the state's TTL);
	// with one, only changed windows are stored.
	if !p.cache || owned || len(ws) != len(cur) {
		if err := p.store(s, ws); err != nil {
			return err
		}
	}
	if len(ws) > 0 {
		p.arm(id, p.closeAt(&ws[0]))
	}
	return nil
}

// saveWatermark writes the event-time watermark of every key group of
// the instance when it has advanced.
func (p *windowProc) saveWatermark() error {
	if !p.eventTime || p.wm <= p.wmSaved {
		return nil
	}
	if p.markKeys == nil {
		p.markKeys = keyGroupKeys(p.maxKG, p.kgs)
	}
	for i, key := range p.markKeys {
		kg := p.kgs.Start + i
		if err := p.ctx.SetCurrentKeyInGroup(key, kg); err != nil {
			return fmt.Errorf("%s: %w", p.typ, err)
		}
		if err := p.marks.Update(max(p.wm, p.floors[i])); err != nil {
			return fmt.Errorf("%s: %w", p.typ, err)
		}
	}
	p.wmSaved = p.wm
	return nil
}

// keyGroupKeys returns, for every key group of r, a key of that group
// (the state key its watermark is stored under).
func keyGroupKeys(maxKG int, r kv.KeyGroupRange) [][]byte {
	keys := make([][]byte, r.Len())
	left := r.Len()
	for i := 0; left > 0; i++ {
		k := strconv.AppendInt([]byte("\x00watermark/"), int64(i), 10)
		kg := kv.KeyGroupOf(k, maxKG)
		if r.Contains(kg) && keys[kg-r.Start] == nil {
			keys[kg-r.Start] = k
			left--
		}
	}
	return keys
}

// Watermarks implements component.Watermarker on the keyed exchange's
// instance: the watermark after each row of the stream (event time only).
func (p *windowProc) Watermarks(b *message.Batch, marks []int64) (int64, error) {
	if !p.eventTime {
		for i := range marks {
			marks[i] = math.MinInt64
		}
		return math.MinInt64, nil
	}
	if err := p.ts.bind(b); err != nil {
		return 0, err
	}
	wm := p.wm
	for i := range marks {
		if t, err := p.ts.at(i); err == nil { // a bad row fails in its worker
			wm = max(wm, t-p.ooo)
		}
		marks[i] = wm
	}
	p.wm = wm
	return wm, nil
}

// OnWatermark implements component.Watermarker on a worker's instance: the
// stream's watermark advanced (maybe through rows of other workers only),
// so windows it passes close.
func (p *windowProc) OnWatermark(_ context.Context, wm int64) ([]*message.Batch, error) {
	if !p.eventTime {
		return nil, nil
	}
	if err := p.start(); err != nil { // restores the watermark first
		return nil, err
	}
	if wm <= p.wm {
		return nil, nil
	}
	p.wm = wm
	if err := p.advance(wm); err != nil {
		return nil, err
	}
	return p.takeOutput(), nil
}

// OnTick implements component.Ticker: processing-time windows whose end
// has passed close.
func (p *windowProc) OnTick(_ context.Context, now time.Time) ([]*message.Batch, error) {
	if p.eventTime {
		return nil, nil
	}
	if err := p.start(); err != nil {
		return nil, err
	}
	if err := p.advance(now.UnixMilli()); err != nil {
		return nil, err
	}
	return p.takeOutput(), nil
}

// advance closes the windows due at now (event time: the watermark), drops
// idle key slots, saves the watermark and flushes the state's writes.
func (p *windowProc) advance(now int64) error {
	if err := p.closeDue(now); err != nil {
		return err
	}
	if err := p.sweepSlots(); err != nil {
		return err
	}
	if err := p.saveWatermark(); err != nil { // nothing in processing time
		return err
	}
	if err := p.ctx.Flush(); err != nil {
		return fmt.Errorf("%s: %w", p.typ, err)
	}
	return nil
}

// Flush implements component.Flusher; the engine calls it when the input
// has ended: every open window is emitted (ordered by start, then key).
func (p *windowProc) Flush(context.Context) ([]*message.Batch, error) {
	if err := p.start(); err != nil {
		return nil, err
	}
	type open struct {
		key []byte
		w   winState
	}
	var all []open
	var keys [][]byte // every key with a value, empty ones too
	err := p.windows.Range(func(key []byte, ws []winState) bool {
		keys = append(keys, key)
		for _, w := range ws {
			all = append(all, open{key, w})
		}
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.typ, err)
	}
	slices.SortFunc(all, func(a, b open) int {
		if c := cmpInt64(a.w.Start, b.w.Start); c != 0 {
			return c
		}
		return strings.Compare(bytesToString(a.key), bytesToString(b.key))
	})
	for i := range all {
		p.emit(all[i].key, &all[i].w)
	}
	for _, key := range keys {
		if err := p.ctx.SetCurrentKey(key); err != nil {
			return nil, fmt.Errorf("%s: %w", p.typ, err)
		}
		if err := p.windows.Clear(); err != nil {
			return nil, fmt.Errorf("%s: %w", p.typ, err)
		}
	}
	p.resetSlots()
	if err := p.ctx.Flush(); err != nil {
		return nil, fmt.Errorf("%s: %w", p.typ, err)
	}
	return p.takeOutput(), nil
}

// ---- output ----

// emit appends the row of a closing window.
func (p *windowProc) emit(key []byte, w *winState) {
	if p.key != nil {
		if len(p.keyOffs) == 0 {
			p.keyOffs = append(p.keyOffs, 0)
		}
		p.keyData = append(p.keyData, key...)
		p.keyOffs = append(p.keyOffs, int32(len(p.keyData)))
	}
	p.starts = append(p.starts, w.Start)
	p.ends = append(p.ends, w.End)
	p.out.appendRow(w.Acc)
	if len(p.starts) >= windowBatchRows {
		p.pending = append(p.pending, p.buildOutput())
	}
}

// buildOutput makes a batch of the rows emitted since the last one.
func (p *windowProc) buildOutput() *message.Batch {
	n := len(p.starts)
	var fields []arrow.Field
	var cols []arrow.Array
	if p.key != nil {
		fields = append(fields, arrow.Field{Name: p.keyCol, Type: arrow.BinaryTypes.String, Nullable: true})
		cols = append(cols, message.NewBinaryArray(arrow.BinaryTypes.String, slices.Clone(p.keyOffs), slices.Clone(p.keyData), nil, 0))
	}
	starts, ends := array.NewInt64Builder(message.Alloc), array.NewInt64Builder(message.Alloc)
	defer starts.Release()
	defer ends.Release()
	starts.AppendValues(p.starts, nil)
	ends.AppendValues(p.ends, nil)
	fields = append(fields,
		arrow.Field{Name: p.startCol, Type: arrow.PrimitiveTypes.Int64, Nullable: true},
		arrow.Field{Name: p.endCol, Type: arrow.PrimitiveTypes.Int64, Nullable: true})
	cols = append(cols, starts.NewArray(), ends.NewArray())
	af, ac := p.out.build()
	fields = append(fields, af...)
	cols = append(cols, ac...)
	p.keyData, p.keyOffs = p.keyData[:0], p.keyOffs[:0]
	p.starts, p.ends = p.starts[:0], p.ends[:0]
	return message.New(array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(n)))
}

// takeOutput returns the batches emitted so far.
func (p *windowProc) takeOutput() []*message.Batch {
	if len(p.starts) > 0 {
		p.pending = append(p.pending, p.buildOutput())
	}
	out := p.pending
	p.pending = nil
	return out
}

// errorBatch returns the failed rows of b (rows were added per key, so
// they are sorted first).
func (p *windowProc) errorBatch(b *message.Batch) (*message.Batch, error) {
	if p.fails.len() == 0 {
		return nil, nil
	}
	sort.Sort(failureOrder{&p.fails})
	return p.fails.errorBatch(b)
}

// failureOrder sorts a rowFailures by row.
type failureOrder struct{ f *rowFailures }

func (o failureOrder) Len() int           { return len(o.f.rows) }
func (o failureOrder) Less(i, j int) bool { return o.f.rows[i] < o.f.rows[j] }
func (o failureOrder) Swap(i, j int) {
	o.f.rows[i], o.f.rows[j] = o.f.rows[j], o.f.rows[i]
	o.f.msgs[i], o.f.msgs[j] = o.f.msgs[j], o.f.msgs[i]
}

// ---- event time ----

// eventTimes reads the event time of rows from the timestamp column.
type eventTimes struct {
	field string
	c     aggColumn
}

// bind resolves the column in b (a missing column fails every row).
func (e *eventTimes) bind(b *message.Batch) error {
	c, err := bindAggColumn(b, e.field)
	if err != nil {
		return fmt.Errorf("timestamp_field: %w", err)
	}
	e.c = c
	return nil
}

// at returns row i's event time in epoch milliseconds.
func (e *eventTimes) at(i int) (int64, error) {
	v := e.c.value(i)
	switch v.K {
	case aggInt:
		return v.I, nil
	case aggFloat:
		if math.IsInf(v.F, 0) || math.Abs(v.F) > 1<<62 {
			return 0, fmt.Errorf("timestamp_field %q: %v is not a time in epoch milliseconds", e.field, v.F)
		}
		return int64(math.Floor(v.F)), nil
	case aggString:
		t, err := parseEventTime(v.S)
		if err != nil {
			return 0, fmt.Errorf("timestamp_field %q: %w", e.field, err)
		}
		return t, nil
	case aggBool:
		return 0, fmt.Errorf("timestamp_field %q is a boolean, not a time", e.field)
	}
	if e.c.arr == nil {
		return 0, fmt.Errorf("no timestamp_field column %q", e.field)
	}
	return 0, fmt.Errorf("timestamp_field %q is null", e.field)
}

// eventTimeLayouts are the ISO 8601 forms a timestamp string may have
// (without a zone: UTC).
var eventTimeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999",
	"2006-01-02",
}

// parseEventTime parses epoch milliseconds (an integer or a float) or an
// ISO 8601 time.
func parseEventTime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) && math.Abs(f) < 1<<62 {
		return int64(math.Floor(f)), nil
	}
	for _, layout := range eventTimeLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UnixMilli(), nil
		}
	}
	return 0, fmt.Errorf("%q is neither epoch milliseconds nor an ISO 8601 time", truncate(s, 40))
}

// ---- small helpers ----

// floorDiv is a/b rounded towards negative infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// stringBytes views s as bytes without copying; they must not be changed.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// windowMillis returns a duration field in whole milliseconds, which must
// be at least 1ms.
func windowMillis(conf *component.Config, field string, d time.Duration) (int64, error) {
	if d < time.Millisecond {
		return 0, conf.Errorf(field, "must be at least 1ms, got %v", d)
	}
	if d%time.Millisecond != 0 {
		return 0, conf.Errorf(field, "must be a whole number of milliseconds, got %v", d)
	}
	return d.Milliseconds(), nil
}

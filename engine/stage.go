package engine

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
	"github.com/weir-stream/weir/state/kv"
)

// stage is a set of parallel workers that run the same processor chain.
//
// An ordered stage (stateless processors) dispatches data round robin and
// collects it in the same order, so it keeps the input order. A keyed stage
// (it starts with a stateful processor) routes every row to the worker that
// owns its key's key group and merges the workers' outputs as they come:
// order is kept per key, not across keys.
type stage struct {
	keyed   bool
	workers [][]*proc
	// keyed stages with several workers:
	keys     component.Keyed
	keysProc *proc
	maxKG    int
	owner    []int // key group → worker
}

// start runs the stage between in and out; every goroutine it starts is
// added to wg.
func (st *stage) start(ctx context.Context, s *Stream, in <-chan *unit, out chan<- *unit, wg *sync.WaitGroup) {
	n := len(st.workers)
	if n == 1 {
		wg.Add(1)
		go func() { defer wg.Done(); s.workerLoop(ctx, st.workers[0], in, out, nil) }()
		return
	}
	q := s.opts.QueueDepth
	ins := make([]chan *unit, n)
	for i := range ins {
		ins[i] = make(chan *unit, q)
	}
	if !st.keyed {
		outs := make([]chan *unit, n)
		for i := range outs {
			outs[i] = make(chan *unit, q)
		}
		wg.Add(2 + n)
		go func() { defer wg.Done(); dispatchLoop(ctx, in, ins) }()
		for i := 0; i < n; i++ {
			go func() { defer wg.Done(); s.workerLoop(ctx, st.workers[i], ins[i], outs[i], nil) }()
		}
		go func() { defer wg.Done(); s.collectLoop(ctx, outs, out) }()
		return
	}
	merged := make(chan *unit, q)
	resume := make([]chan struct{}, n)
	for i := range resume {
		resume[i] = make(chan struct{}, 1)
	}
	wg.Add(2 + n)
	go func() { defer wg.Done(); s.exchangeLoop(ctx, st, in, ins) }()
	for i := 0; i < n; i++ {
		go func() { defer wg.Done(); s.workerLoop(ctx, st.workers[i], ins[i], merged, resume[i]) }()
	}
	go func() { defer wg.Done(); s.mergeLoop(ctx, n, merged, resume, out) }()
}

// dispatchLoop sends data round robin and control events to every worker.
func dispatchLoop(ctx context.Context, in <-chan *unit, workers []chan *unit) {
	next := 0
	for {
		var u *unit
		select {
		case u = <-in:
		case <-ctx.Done():
			return
		}
		if !u.isControl() {
			select {
			case workers[next] <- u:
			case <-ctx.Done():
				nackUnit(u)
				return
			}
			next = (next + 1) % len(workers)
			continue
		}
		for _, w := range workers {
			select {
			case w <- u.controlCopy():
			case <-ctx.Done():
				return
			}
		}
		if u.kind == message.KindEndOfStream {
			return
		}
	}
}

// exchangeLoop partitions data by key group and broadcasts control events.
// The acknowledgements of a unit split across workers fire once every part
// has been written.
func (s *Stream) exchangeLoop(ctx context.Context, st *stage, in <-chan *unit, workers []chan *unit) {
	n := len(workers)
	idx := make([][]int32, n)
	var kgs []uint16 // key group of each row of the batch being split
	parts := make([][]*message.Batch, n)
	// Event time: the exchange's instance computes the stream's watermark
	// (component.Watermarker); each row carries it to its worker, and every
	// worker hears when it advances.
	var wmr component.Watermarker
	if st.keysProc != nil {
		wmr = st.keysProc.wmarker
	}
	var marks []int64
	wm, wmSent := int64(math.MinInt64), int64(math.MinInt64)
	send := func(w int, u *unit) bool {
		select {
		case workers[w] <- u:
			return true
		case <-ctx.Done():
			nackUnit(u)
			return false
		}
	}
	for {
		var u *unit
		select {
		case u = <-in:
		case <-ctx.Done():
			return
		}
		if u.isControl() {
			for w := range workers {
				if !send(w, u.controlCopy()) {
					return
				}
			}
			if u.kind == message.KindEndOfStream {
				return
			}
			continue
		}
		acks := u.acks
		for w := range parts {
			parts[w] = parts[w][:0]
		}
		for _, b := range u.batches {
			acks = append(acks, b.TakeAcks()...)
			if b.IsError() {
				parts[0] = append(parts[0], b)
				continue
			}
			for w := range idx {
				idx[w] = idx[w][:0]
			}
			if wmr != nil {
				marks = slices.Grow(marks[:0], b.NumRows())[:b.NumRows()]
				last, err := wmr.Watermarks(b, marks)
				if err != nil {
					parts[0] = append(parts[0], failBatch(b, st.keysProc.name+": "+err.Error()))
					continue
				}
				wm = max(wm, last)
			}
			kgs = slices.Grow(kgs[:0], b.NumRows())[:b.NumRows()]
			err := st.keys.Keys(b, func(row int, key []byte) {
				w, kg := 0, message.NoKeyGroup
				if key != nil {
					kg = kv.KeyGroupOf(key, st.maxKG)
					w = st.owner[kg]
				}
				kgs[row] = uint16(kg)
				idx[w] = append(idx[w], int32(row))
			})
			if err != nil {
				parts[0] = append(parts[0], failBatch(b, st.keysProc.name+": "+err.Error()))
				continue
			}
			for w := range idx {
				if len(idx[w]) == 0 {
					continue
				}
				part, err := message.Take(b, idx[w])
				if err != nil {
					part = failBatch(b, "exchange: "+err.Error())
					w = 0
				} else {
					// The key groups travel with the rows: the keyed
					// processor does not hash the keys again.
					pk := make([]uint16, len(idx[w]))
					for i, r := range idx[w] {
						pk[i] = kgs[r]
					}
					part.KeyGroups = pk
					if wmr != nil {
						pm := make([]int64, len(idx[w]))
						for i, r := range idx[w] {
							pm[i] = marks[r]
						}
						part.Watermarks = pm
					}
				}
				parts[w] = append(parts[w], part)
			}
		}
		// A watermark that advanced goes to every worker, with rows or
		// without.
		advanced := wm > wmSent
		if advanced {
			wmSent = wm
		}
		k := 0
		for w := range parts {
			if len(parts[w]) > 0 {
				k++
			}
		}
		var shared message.AckFunc
		if k > 0 {
			shared = countdownAck(acks, k)
		}
		for w := range parts {
			pu := &unit{kind: message.KindData, start: u.start, wm: wm, hasWM: advanced}
			switch {
			case len(parts[w]) > 0:
				pu.batches = append([]*message.Batch(nil), parts[w]...)
				if shared != nil {
					pu.acks = []message.AckFunc{shared}
				}
			case k == 0 && w == 0:
				pu.acks = acks // no rows: the acks still travel in order
			case !advanced:
				continue
			}
			if !send(w, pu) {
				return
			}
		}
	}
}

// countdownAck returns an acknowledgement that must be called n times; the
// last call acknowledges every ack in acks (with the first error seen).
func countdownAck(acks []message.AckFunc, n int) message.AckFunc {
	if len(acks) == 0 {
		return nil
	}
	var left atomic.Int64
	left.Store(int64(n))
	var mu sync.Mutex
	var first error
	return func(ctx context.Context, err error) error {
		if err != nil {
			mu.Lock()
			if first == nil {
				first = err
			}
			mu.Unlock()
		}
		if left.Add(-1) != 0 {
			return nil
		}
		mu.Lock()
		e := first
		mu.Unlock()
		return message.AckAll(ctx, acks, e)
	}
}

// mergeLoop forwards the keyed workers' data as it comes and aligns their
// control events: a worker that has delivered a control event waits until
// every worker has (resume), so nothing after a barrier overtakes it.
func (s *Stream) mergeLoop(ctx context.Context, n int, in <-chan *unit, resume []chan struct{}, out chan<- *unit) {
	align := s.opts.Metrics.Checkpoint(s.Name).Alignment("keyed")
	var agg *unit
	got := 0
	var t0 time.Time
	for {
		var u *unit
		select {
		case u = <-in:
		case <-ctx.Done():
			return
		}
		if !u.isControl() {
			select {
			case out <- u:
			case <-ctx.Done():
				nackUnit(u)
				return
			}
			continue
		}
		if agg == nil {
			agg, t0 = u, time.Now()
		} else {
			if u.kind != agg.kind {
				panic("engine: keyed workers delivered different control events")
			}
			agg.merge(u)
		}
		got++
		if got < n {
			continue
		}
		if agg.kind == message.KindBarrier {
			align.Observe(time.Since(t0).Seconds())
		}
		done := agg.kind == message.KindEndOfStream
		select {
		case out <- agg:
		case <-ctx.Done():
			nackUnit(agg)
			return
		}
		for _, r := range resume {
			r <- struct{}{}
		}
		agg, got = nil, 0
		if done {
			return
		}
	}
}

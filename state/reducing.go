package state

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/weir-stream/weir/state/kv"
)

// ReducingState folds the values added for a key into one with a reduce
// function (Flink's ReducingState): Add(v) stores reduce(current, v), or v
// if there is no current value.
type ReducingState[T any] struct {
	c      *cell[T]
	reduce func(acc, v T) T
}

// NewReducingState returns the reducing state called name.
func NewReducingState[T any](c *KeyedContext, name string, reduce func(acc, v T) T, opts ...StateOption) (*ReducingState[T], error) {
	if reduce == nil {
		return nil, kv.NewError("register", name, fmt.Errorf("%w: nil reduce function", kv.ErrInvalid))
	}
	cl, err := newCell(c, name, "reducing state", newValueOps[T](), opts)
	if err != nil {
		return nil, err
	}
	return &ReducingState[T]{c: cl, reduce: reduce}, nil
}

// Get returns the current key's reduced value.
func (s *ReducingState[T]) Get() (T, bool, error) { return s.c.get() }

// Add folds v into the current key's value.
func (s *ReducingState[T]) Add(v T) error {
	cur, ok, err := s.c.get()
	if err != nil {
		return err
	}
	if ok {
		v = s.reduce(cur, v)
	}
	return s.c.put(v)
}

// Clear deletes the current key's value.
func (s *ReducingState[T]) Clear() error { return s.c.clear() }

// Range calls fn with every key and its reduced value until fn returns
// false.
func (s *ReducingState[T]) Range(fn func(key []byte, v T) bool) error { return s.c.each(fn) }

// Aggregator describes an aggregation from inputs IN to a result OUT
// through an accumulator ACC (Flink's AggregateFunction). The accumulator
// is what is stored, so it must be encodable; keep it a value type (or
// return a new one from Add) rather than mutating a shared one.
type Aggregator[IN, ACC, OUT any] struct {
	Init   func() ACC               // the empty accumulator
	Add    func(acc ACC, in IN) ACC // fold one input in
	Result func(acc ACC) OUT        // the result of an accumulator
}

// AggregatingState aggregates the inputs added for a key with an
// Aggregator (Flink's AggregatingState).
type AggregatingState[IN, ACC, OUT any] struct {
	c   *cell[ACC]
	agg Aggregator[IN, ACC, OUT]
}

// NewAggregatingState returns the aggregating state called name.
func NewAggregatingState[IN, ACC, OUT any](c *KeyedContext, name string, agg Aggregator[IN, ACC, OUT], opts ...StateOption) (*AggregatingState[IN, ACC, OUT], error) {
	if agg.Init == nil || agg.Add == nil || agg.Result == nil {
		return nil, kv.NewError("register", name, fmt.Errorf("%w: aggregator needs Init, Add and Result", kv.ErrInvalid))
	}
	cl, err := newCell(c, name, "aggregating state of "+reflect.TypeFor[IN]().String(), newValueOps[ACC](), opts)
	if err != nil {
		return nil, err
	}
	return &AggregatingState[IN, ACC, OUT]{c: cl, agg: agg}, nil
}

// Add folds in into the current key's accumulator.
func (s *AggregatingState[IN, ACC, OUT]) Add(in IN) error {
	acc, ok, err := s.c.get()
	if err != nil {
		return err
	}
	if !ok {
		acc = s.agg.Init()
	}
	return s.c.put(s.agg.Add(acc, in))
}

// Get returns the result for the current key.
func (s *AggregatingState[IN, ACC, OUT]) Get() (OUT, bool, error) {
	acc, ok, err := s.c.get()
	if err != nil || !ok {
		var zero OUT
		return zero, false, err
	}
	return s.agg.Result(acc), true, nil
}

// Accumulator returns the current key's accumulator.
func (s *AggregatingState[IN, ACC, OUT]) Accumulator() (ACC, bool, error) { return s.c.get() }

// Clear deletes the current key's accumulator.
func (s *AggregatingState[IN, ACC, OUT]) Clear() error { return s.c.clear() }

// Range calls fn with every key and its result until fn returns false.
func (s *AggregatingState[IN, ACC, OUT]) Range(fn func(key []byte, out OUT) bool) error {
	return s.c.each(func(key []byte, acc ACC) bool { return fn(key, s.agg.Result(acc)) })
}

// errStopRange stops a backend scan early.
var errStopRange = errors.New("stop range")

func isStop(err error) bool { return errors.Is(err, errStopRange) }

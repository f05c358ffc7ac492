package pebble

import (
	"bytes"
	"context"
	"errors"

	"github.com/weir-stream/weir/state/kv"
)

// Incremental expiry: once rows with an expiry have been written, every
// sweepEvery writes examine the next sweepRows rows after a cursor that
// walks the whole key range round and round, deleting expired ones.
const (
	sweepEvery = 64
	sweepRows  = 32
)

type sweeper struct {
	active bool
	writes int
	cursor []byte // next key to examine; nil: the start of the range
}

var errStop = errors.New("stop")

func (b *Backend) rangeBounds() (lo, hi []byte) {
	return appendGroupPrefix(nil, b.opts.KeyGroups.Start), appendGroupPrefix(nil, b.opts.KeyGroups.End)
}

// sweepSome examines up to n rows after the sweep cursor.
func (b *Backend) sweepSome(n int) error {
	lo, hi := b.rangeBounds()
	if b.sweep.cursor != nil {
		lo = b.sweep.cursor
	}
	now := b.now()
	var expired [][]byte
	var sizes []int
	seen := 0
	var next []byte
	err := b.iterate(lo, hi, func(k, v []byte) error {
		if seen == n {
			next = bytes.Clone(k)
			return errStop
		}
		seen++
		if exp, _, err := splitValue(v); err == nil && exp != 0 && exp <= now {
			expired = append(expired, bytes.Clone(k))
			sizes = append(sizes, len(k)+len(v))
		}
		return nil
	})
	if err != nil && err != errStop {
		return kv.NewError("cleanup", "", err)
	}
	b.sweep.cursor = next // nil at the end: start over
	return b.deleteExpired(expired, sizes)
}

func (b *Backend) deleteExpired(keys [][]byte, sizes []int) error {
	if len(keys) > 0 {
		b.forget()
	}
	for i, k := range keys {
		if err := b.writeBatch().Delete(k, nil); err != nil {
			return kv.NewError("cleanup", "", err)
		}
		b.keys.Add(-1)
		b.bytes.Add(-int64(sizes[i]))
		b.expired.Add(1)
		b.markDirty(int(k[0])<<8|int(k[1]), k, false)
	}
	return nil
}

// CleanupExpired removes every expired row, and recounts the rows for
// Stats.
func (b *Backend) CleanupExpired(ctx context.Context) (int, error) {
	if err := b.Flush(); err != nil {
		return 0, err
	}
	lo, hi := b.rangeBounds()
	now := b.now()
	removed := 0
	var rows, size int64 // live rows seen
	for {
		var keys [][]byte
		var sizes []int
		var next []byte
		err := b.iterate(lo, hi, func(k, v []byte) error {
			if len(keys) == 1024 {
				next = bytes.Clone(k)
				return errStop
			}
			if exp, _, err := splitValue(v); err == nil && exp != 0 && exp <= now {
				keys = append(keys, bytes.Clone(k))
				sizes = append(sizes, len(k)+len(v))
			} else {
				rows++
				size += int64(len(k) + len(v))
			}
			return nil
		})
		if err != nil && err != errStop {
			return removed, kv.NewError("cleanup", "", err)
		}
		if err := b.deleteExpired(keys, sizes); err != nil {
			return removed, err
		}
		removed += len(keys)
		if err := b.Flush(); err != nil {
			return removed, err
		}
		if next == nil {
			b.keys.Store(rows)
			b.bytes.Store(size)
			return removed, nil
		}
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		lo = next
	}
}

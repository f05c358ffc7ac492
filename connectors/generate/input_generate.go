// Package generate provides the generate input: records built from a
// payload template, as fast as possible or at an interval, optionally
// bounded by a record count.
//
// Invariants:
//   - Records are numbered from 1; ${!count} is the record's number.
//   - The position of a batch (Batch.Pos) is the number of records emitted
//     up to and including that batch, as 8 bytes big endian. Seek(pos) makes
//     the next record pos+1, so a replay after recovery continues the count
//     exactly where the checkpoint left it.
//   - With count > 0 the input ends (component.ErrEndOfInput) after count
//     records; the last batch may be smaller than batch_size.
package generate

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

const (
	fieldPayload   = "payload"
	fieldInterval  = "interval"
	fieldCount     = "count"
	fieldBatchSize = "batch_size"
)

const defaultPayload = `{"id":${!count}}`

func generateSpec() component.Spec {
	return component.Spec{
		Name: "generate",
		Summary: "Generates records from a payload template (for tests, demos and benchmarks); " +
			"ends after count records when count > 0.",
		Fields: []component.Field{
			{Name: fieldPayload, Type: component.TypeString, Default: defaultPayload,
				Description: "Payload template; ${!count} (record number from 1), ${!timestamp_ms} (epoch ms) and ${!random_int} are replaced per record."},
			{Name: fieldInterval, Type: component.TypeDuration, Default: time.Duration(0),
				Description: "Pause between batches; 0 generates as fast as possible."},
			{Name: fieldCount, Type: component.TypeInt, Default: int64(0),
				Description: "Total number of records, after which the input ends; 0 is unbounded."},
			{Name: fieldBatchSize, Type: component.TypeInt, Default: int64(1),
				Description: "Records per batch."},
		},
		Example: "input:\n  type: generate\n  payload: '{\"id\":${!count},\"ts\":${!timestamp_ms}}'\n  count: 1000\n  batch_size: 100\n",
	}
}

func init() {
	component.RegisterInput(generateSpec(), newGenerateInput)
}

// placeholder is what a template part substitutes.
type placeholder uint8

const (
	phNone placeholder = iota // a literal part
	phCount
	phTimestampMs
	phRandomInt
)

var placeholders = map[string]placeholder{
	"count":        phCount,
	"timestamp_ms": phTimestampMs,
	"random_int":   phRandomInt,
}

// part is a piece of a parsed template: a literal or a placeholder.
type part struct {
	lit string
	ph  placeholder
}

// parseTemplate splits a template into literal parts and placeholders. A
// "${!" without a closing brace is kept as literal text.
func parseTemplate(s string) ([]part, error) {
	var parts []part
	for {
		i := strings.Index(s, "${!")
		if i < 0 {
			break
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			break
		}
		name := s[i+3 : i+j]
		ph, ok := placeholders[name]
		if !ok {
			return nil, fmt.Errorf("unknown placeholder ${!%s} (known: ${!count}, ${!timestamp_ms}, ${!random_int})", name)
		}
		if i > 0 {
			parts = append(parts, part{lit: s[:i]})
		}
		parts = append(parts, part{ph: ph})
		s = s[i+j+1:]
	}
	if s != "" {
		parts = append(parts, part{lit: s})
	}
	return parts, nil
}

// generateInput is the generate input. It is used by one goroutine at a
// time (the Input contract), so it needs no lock.
type generateInput struct {
	parts     []part
	interval  time.Duration
	count     int64 // 0 = unbounded
	batchSize int

	seq     int64     // records emitted so far
	nextDue time.Time // when the next batch may be emitted (interval > 0)
	timer   *time.Timer
	data    []byte   // reused payload buffer of one batch
	values  [][]byte // reused slices of data, one per record
	ends    []int    // reused end offsets in data
}

var (
	_ component.Input      = (*generateInput)(nil)
	_ component.Replayable = (*generateInput)(nil)
)

func newGenerateInput(conf *component.Config, _ component.Resources) (component.Input, error) {
	parts, err := parseTemplate(conf.String(fieldPayload))
	if err != nil {
		return nil, conf.Errorf(fieldPayload, "%v", err)
	}
	in := &generateInput{
		parts:     parts,
		interval:  conf.Duration(fieldInterval),
		count:     int64(conf.Int(fieldCount)),
		batchSize: conf.Int(fieldBatchSize),
	}
	if in.interval < 0 {
		return nil, conf.Errorf(fieldInterval, "must not be negative, got %s", in.interval)
	}
	if in.count < 0 {
		return nil, conf.Errorf(fieldCount, "must not be negative, got %d", in.count)
	}
	if in.batchSize < 1 {
		return nil, conf.Errorf(fieldBatchSize, "must be at least 1, got %d", in.batchSize)
	}
	return in, nil
}

// Bounded reports whether the input ends (count > 0).
func (in *generateInput) Bounded() bool { return in.count > 0 }

// Seek makes the next record pos+1. pos is 8 bytes big endian (a Pos this
// input produced); an empty pos starts from the beginning.
func (in *generateInput) Seek(pos []byte) error {
	if len(pos) == 0 {
		in.seq = 0
		return nil
	}
	if len(pos) != 8 {
		return fmt.Errorf("generate input: seek: position has %d bytes, want 8", len(pos))
	}
	seq := int64(binary.BigEndian.Uint64(pos))
	if seq < 0 {
		return fmt.Errorf("generate input: seek: position %d out of range", uint64(seq))
	}
	in.seq = seq
	return nil
}

// Connect does nothing: the generator has no connection.
func (in *generateInput) Connect(context.Context) error { return nil }

// Read returns the next batch, after waiting for the interval if one is set.
func (in *generateInput) Read(ctx context.Context) (*message.Batch, message.AckFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	n := int64(in.batchSize)
	if in.count > 0 {
		left := in.count - in.seq
		if left <= 0 {
			return nil, nil, component.ErrEndOfInput
		}
		n = min(n, left)
	}
	if err := in.wait(ctx); err != nil {
		return nil, nil, err
	}
	b := in.build(int(n))
	return b, nil, nil
}

// wait blocks until the next batch is due, or ctx is done. The first batch
// is due at once.
func (in *generateInput) wait(ctx context.Context) error {
	if in.interval <= 0 {
		return nil
	}
	now := time.Now()
	if in.nextDue.IsZero() || !now.Before(in.nextDue) {
		in.nextDue = now.Add(in.interval)
		return nil
	}
	d := in.nextDue.Sub(now)
	if in.timer == nil {
		in.timer = time.NewTimer(d)
	} else {
		in.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		in.timer.Stop()
		return ctx.Err()
	case <-in.timer.C:
	}
	in.nextDue = in.nextDue.Add(in.interval)
	return nil
}

// build renders n records into the reused buffers and wraps them in a batch
// (message.FromValues copies them into Arrow memory).
func (in *generateInput) build(n int) *message.Batch {
	data := in.data[:0]
	ends := in.ends[:0]
	for i := 0; i < n; i++ {
		in.seq++
		for _, p := range in.parts {
			switch p.ph {
			case phNone:
				data = append(data, p.lit...)
			case phCount:
				data = strconv.AppendInt(data, in.seq, 10)
			case phTimestampMs:
				data = strconv.AppendInt(data, time.Now().UnixMilli(), 10)
			case phRandomInt:
				data = strconv.AppendInt(data, rand.Int64(), 10)
			}
		}
		ends = append(ends, len(data))
	}
	values := in.values[:0]
	start := 0
	for _, end := range ends {
		values = append(values, data[start:end:end])
		start = end
	}
	b := message.FromValues(values)
	b.Pos = binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(in.seq))
	in.data, in.ends, in.values = data, ends, values
	return b
}

// Close stops the interval timer.
func (in *generateInput) Close(context.Context) error {
	if in.timer != nil {
		in.timer.Stop()
	}
	return nil
}

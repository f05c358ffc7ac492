package processors

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/internal/rowexpr"
	"github.com/weir-stream/weir/message"
)

// Aggregate functions, shared by the aggregate processor and the window
// processors.
//
// Configuration: a list field `aggregates` (aggregatesField) of objects
// {function, field, as}; parseAggregates turns it into []aggSpec.
//
// State: per group (a key, or one window of a key) there is one aggAcc per
// aggSpec, in spec order (an aggRow). aggAcc is CBOR-friendly (exported
// fields with short tags, so fields can be added later), it holds no
// pointers but its strings, and a copy of it is independent: store rows
// by value and copy a row before changing it (state values must not be
// changed in place).
//
// Per batch: an aggReader resolves the value columns once (bind), then
// add folds row i into an aggRow. mergeAcc / aggRow.merge combine two
// accumulators (sliding windows). An aggOutput collects result rows and
// builds the output columns of a batch.
//
// Keys (group_by / key fields): groupKey turns a column name or an
// expression into each row's key bytes; keysOf implements
// component.Keyed.Keys with it, so the exchange routes rows by exactly the
// bytes Process gives SetCurrentKey. stateName makes state names.
//
// A window processor typically: specs := parseAggregates(conf); per batch
// reader.bind(b), then for each row copy its window's aggRow from state
// (row := make(aggRow, len(specs)); copy(row, cur)), reader.add(row, i),
// and store it; when a window closes, out.appendRow(row) and out.build().
//
// Semantics (as SQL): null values are skipped by every function; count
// without field counts rows, count with field counts non-null values; sum
// and avg of no values are null, as are min, max, first and last. Numbers
// keep their kind: sum, min, max, first and last of integers are int64, of
// floats (or a mix) float64; avg is always float64 and count int64. A
// string or binary column fed to sum or avg is parsed as numbers (a value
// that is not a number fails its row); min and max parse numbers the same
// way and compare other strings as strings (numbers order before
// strings); first and last keep values as they are. A column a batch lacks
// reads as null.
//
// Performance: bind resolves typed column slices once per batch; add does
// no allocation, except copying a string value that becomes a first, last,
// min or max.

// aggFunc is an aggregate function.
type aggFunc uint8

const (
	aggCount aggFunc = iota + 1
	aggSum
	aggMin
	aggMax
	aggAvg
	aggFirst
	aggLast
)

// aggFuncNames lists the function names in config order.
var aggFuncNames = []string{"count", "sum", "min", "max", "avg", "first", "last"}

func (f aggFunc) String() string {
	if f >= aggCount && f <= aggLast {
		return aggFuncNames[f-1]
	}
	return fmt.Sprintf("aggFunc(%d)", uint8(f))
}

func parseAggFunc(s string) (aggFunc, bool) {
	for i, n := range aggFuncNames {
		if n == s {
			return aggFunc(i + 1), true
		}
	}
	return 0, false
}

// Field names of one element of `aggregates`.
const (
	aggregatesKey = "aggregates"
	aggFunction   = "function"
	aggField      = "field"
	aggAs         = "as"
)

// aggregatesField returns the spec of the `aggregates` list field, whose
// default is one count named "count".
func aggregatesField() component.Field {
	return component.Field{
		Name: aggregatesKey, Type: component.TypeList, Elem: component.TypeObject,
		Default: []any{map[string]any{aggFunction: "count", aggAs: "count"}},
		Description: "Aggregates to compute: objects {function: count|sum|min|max|avg|first|last, " +
			"field: value column (not needed by count, which then counts rows), as: output column " +
			"(default: function, or function_field)}. Nulls are skipped.",
		Fields: []component.Field{
			{Name: aggFunction, Type: component.TypeString, Required: true, Options: aggFuncNames,
				Description: "Aggregate function."},
			{Name: aggField, Type: component.TypeString,
				Description: "Column holding the values (required except for count)."},
			{Name: aggAs, Type: component.TypeString,
				Description: "Name of the output column (default: function, or function_field)."},
		},
	}
}

// aggSpec is one configured aggregate.
type aggSpec struct {
	Func  aggFunc
	Field string // value column; "" for a count of rows
	As    string // output column
}

// parseAggregates reads the `aggregates` field of conf. Errors name the
// element's file, line and path.
func parseAggregates(conf *component.Config) ([]aggSpec, error) {
	list := conf.ObjectList(aggregatesKey)
	if len(list) == 0 {
		return nil, conf.Errorf(aggregatesKey, "needs at least one aggregate")
	}
	specs := make([]aggSpec, 0, len(list))
	seen := map[string]int{}
	for i, c := range list {
		fn, ok := parseAggFunc(c.String(aggFunction))
		if !ok {
			return nil, c.Errorf(aggFunction, "unknown function %q; expected one of: %s", c.String(aggFunction), strings.Join(aggFuncNames, ", "))
		}
		s := aggSpec{Func: fn, Field: c.String(aggField), As: c.String(aggAs)}
		if s.Field == "" && fn != aggCount {
			return nil, c.Errorf(aggField, "%s needs a field (the column to aggregate)", fn)
		}
		if s.As == "" {
			s.As = fn.String()
			if s.Field != "" {
				s.As += "_" + s.Field
			}
		}
		if j, dup := seen[s.As]; dup {
			return nil, c.Errorf(aggAs, "output column %q is already used by aggregates[%d]; set a different `as`", s.As, j)
		}
		seen[s.As] = i
		specs = append(specs, s)
	}
	return specs, nil
}

// aggSignature describes specs compactly ("count,sum(x)"): state names
// include it, so a changed list of aggregates starts fresh instead of
// misreading old accumulators.
func aggSignature(specs []aggSpec) string {
	var sb strings.Builder
	for i, s := range specs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(s.Func.String())
		if s.Field != "" {
			sb.WriteByte('(')
			sb.WriteString(s.Field)
			sb.WriteByte(')')
		}
	}
	return sb.String()
}

// aggKind is the kind of an aggValue.
type aggKind uint8

const (
	aggNone   aggKind = iota // null / no value yet
	aggInt                   // I
	aggFloat                 // F
	aggString                // S
	aggBool                  // I: 0 or 1
)

// aggValue is a small union of the values an accumulator holds and a
// result has.
type aggValue struct {
	K aggKind `cbor:"k,omitempty"`
	I int64   `cbor:"i,omitempty"`
	F float64 `cbor:"f,omitempty"`
	S string  `cbor:"s,omitempty"`
}

func (v aggValue) float() float64 {
	if v.K == aggInt {
		return float64(v.I)
	}
	return v.F
}

// compareAgg orders values for min and max: numbers by value (integers
// exactly), then strings, then bools.
func compareAgg(a, b aggValue) int {
	rank := func(v aggValue) int {
		switch v.K {
		case aggInt, aggFloat:
			return 0
		case aggString:
			return 1
		}
		return 2
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		return cmp.Compare(ra, rb)
	}
	switch {
	case a.K == aggInt && b.K == aggInt, a.K == aggBool:
		return cmp.Compare(a.I, b.I)
	case a.K == aggString:
		return strings.Compare(a.S, b.S)
	}
	return cmp.Compare(a.float(), b.float())
}

// owned returns v with its string copied out of batch memory.
func (v aggValue) owned() aggValue {
	if v.K == aggString {
		v.S = strings.Clone(v.S)
	}
	return v
}

// aggAcc is the accumulator of one aggregate for one group.
type aggAcc struct {
	// N counts what was folded in: rows (count without field) or non-null
	// values.
	N int64 `cbor:"n,omitempty"`
	// I and F are the sum (sum, avg): integers add into I and floats into
	// F; an integer sum that would overflow moves into F. Sum is I + F.
	I int64   `cbor:"i,omitempty"`
	F float64 `cbor:"f,omitempty"`
	// FL is set once the sum has a float part (its result is float64).
	FL bool `cbor:"fl,omitempty"`
	// V is the value of min, max, first and last.
	V aggValue `cbor:"v"`
}

// aggRow holds one accumulator per aggSpec, in spec order.
type aggRow []aggAcc

// clone returns an independent copy of r (strings are immutable and
// shared).
func (r aggRow) clone() aggRow { return append(aggRow(nil), r...) }

// addNumber folds a number into a sum.
func (a *aggAcc) addNumber(v aggValue) {
	if v.K == aggFloat {
		a.F += v.F
		a.FL = true
		return
	}
	s := a.I + v.I
	if (s > a.I) != (v.I > 0) { // overflow
		a.F += float64(a.I) + float64(v.I)
		a.I = 0
		a.FL = true
		return
	}
	a.I = s
}

// fold adds value v (not null, already converted for f: see
// aggReader.read) to the accumulator of function f. A string is copied
// only when it is kept.
func (a *aggAcc) fold(f aggFunc, v aggValue) {
	switch f {
	case aggCount:
	case aggSum, aggAvg:
		a.addNumber(v)
	case aggMin:
		if a.N == 0 || compareAgg(v, a.V) < 0 {
			a.V = v.owned()
		}
	case aggMax:
		if a.N == 0 || compareAgg(v, a.V) > 0 {
			a.V = v.owned()
		}
	case aggFirst:
		if a.N == 0 {
			a.V = v.owned()
		}
	case aggLast:
		a.V = v.owned()
	}
	a.N++
}

// mergeAcc folds src into dst (both of function f). For first and last,
// src's values must come after dst's (the later window part).
func mergeAcc(f aggFunc, dst *aggAcc, src aggAcc) {
	if src.N == 0 {
		return
	}
	if dst.N == 0 {
		*dst = src
		return
	}
	switch f {
	case aggSum, aggAvg:
		dst.addNumber(aggValue{K: aggInt, I: src.I})
		if src.FL {
			dst.F += src.F
			dst.FL = true
		}
	case aggMin:
		if compareAgg(src.V, dst.V) < 0 {
			dst.V = src.V
		}
	case aggMax:
		if compareAgg(src.V, dst.V) > 0 {
			dst.V = src.V
		}
	case aggLast:
		dst.V = src.V
	}
	dst.N += src.N
}

// merge folds src into r, spec by spec (see mergeAcc). r must be owned.
func (r aggRow) merge(specs []aggSpec, src aggRow) {
	for i := range specs {
		mergeAcc(specs[i].Func, &r[i], src[i])
	}
}

// result returns the value of the accumulator of function f (K is aggNone
// for null).
func (a *aggAcc) result(f aggFunc) aggValue {
	switch f {
	case aggCount:
		return aggValue{K: aggInt, I: a.N}
	case aggSum:
		if a.N == 0 {
			return aggValue{}
		}
		if a.FL {
			return aggValue{K: aggFloat, F: float64(a.I) + a.F}
		}
		return aggValue{K: aggInt, I: a.I}
	case aggAvg:
		if a.N == 0 {
			return aggValue{}
		}
		return aggValue{K: aggFloat, F: (float64(a.I) + a.F) / float64(a.N)}
	}
	if a.N == 0 {
		return aggValue{}
	}
	return a.V
}

// ---- reading values from a batch ----

type aggColKind uint8

const (
	colMissing aggColKind = iota // column absent or all null: every value is null
	colInt64
	colInt32
	colInt16
	colInt8
	colUint64
	colUint32
	colUint16
	colUint8
	colFloat64
	colFloat32
	colBool
	colBinary
	colTimestamp
)

// aggColumn reads the values of one column as aggValues.
type aggColumn struct {
	kind  aggColKind
	arr   arrow.Array
	nulls bool
	i64   []int64
	i32   []int32
	i16   []int16
	i8    []int8
	u64   []uint64
	u32   []uint32
	u16   []uint16
	u8    []uint8
	f64   []float64
	f32   []float32
	bools *array.Boolean
	bin   *message.BinaryColumn
	tsMul int64 // timestamps: multiply (>0) or divide (<0) to get epoch ms
}

// bindAggColumn resolves column name of b. A missing column reads as null;
// a column of an unsupported type is an error.
func bindAggColumn(b *message.Batch, name string) (aggColumn, error) {
	a := b.Column(name)
	if a == nil {
		return aggColumn{kind: colMissing}, nil
	}
	c := aggColumn{arr: a, nulls: a.NullN() > 0}
	switch t := a.(type) {
	case *array.Null:
		c.kind = colMissing
	case *array.Int64:
		c.kind, c.i64 = colInt64, t.Int64Values()
	case *array.Int32:
		c.kind, c.i32 = colInt32, t.Int32Values()
	case *array.Int16:
		c.kind, c.i16 = colInt16, t.Int16Values()
	case *array.Int8:
		c.kind, c.i8 = colInt8, t.Int8Values()
	case *array.Uint64:
		c.kind, c.u64 = colUint64, t.Uint64Values()
	case *array.Uint32:
		c.kind, c.u32 = colUint32, t.Uint32Values()
	case *array.Uint16:
		c.kind, c.u16 = colUint16, t.Uint16Values()
	case *array.Uint8:
		c.kind, c.u8 = colUint8, t.Uint8Values()
	case *array.Float64:
		c.kind, c.f64 = colFloat64, t.Float64Values()
	case *array.Float32:
		c.kind, c.f32 = colFloat32, t.Float32Values()
	case *array.Boolean:
		c.kind, c.bools = colBool, t
	case *array.Timestamp:
		c.kind = colTimestamp
		switch t.DataType().(*arrow.TimestampType).Unit {
		case arrow.Second:
			c.tsMul = 1000
		case arrow.Millisecond:
			c.tsMul = 1
		case arrow.Microsecond:
			c.tsMul = -1000
		default:
			c.tsMul = -1000000
		}
		c.i64 = arrow.Int64Traits.CastFromBytes(arrow.TimestampTraits.CastToBytes(t.TimestampValues()))
	default:
		bc := message.AsBinary(a)
		if bc == nil {
			return c, fmt.Errorf("column %q has type %s, which aggregates cannot read", name, a.DataType())
		}
		c.kind, c.bin = colBinary, bc
	}
	return c, nil
}

// value returns row i's value; a string aliases batch memory.
func (c *aggColumn) value(i int) aggValue {
	if c.kind == colMissing || (c.nulls && c.arr.IsNull(i)) {
		return aggValue{}
	}
	switch c.kind {
	case colInt64:
		return aggValue{K: aggInt, I: c.i64[i]}
	case colInt32:
		return aggValue{K: aggInt, I: int64(c.i32[i])}
	case colInt16:
		return aggValue{K: aggInt, I: int64(c.i16[i])}
	case colInt8:
		return aggValue{K: aggInt, I: int64(c.i8[i])}
	case colUint64:
		if v := c.u64[i]; v <= math.MaxInt64 {
			return aggValue{K: aggInt, I: int64(v)}
		}
		return aggValue{K: aggFloat, F: float64(c.u64[i])}
	case colUint32:
		return aggValue{K: aggInt, I: int64(c.u32[i])}
	case colUint16:
		return aggValue{K: aggInt, I: int64(c.u16[i])}
	case colUint8:
		return aggValue{K: aggInt, I: int64(c.u8[i])}
	case colFloat64:
		return floatValue(c.f64[i])
	case colFloat32:
		return floatValue(float64(c.f32[i]))
	case colBool:
		if c.bools.Value(i) {
			return aggValue{K: aggBool, I: 1}
		}
		return aggValue{K: aggBool}
	case colTimestamp:
		v := c.i64[i]
		if c.tsMul > 0 {
			return aggValue{K: aggInt, I: v * c.tsMul}
		}
		return aggValue{K: aggInt, I: v / -c.tsMul}
	}
	return aggValue{K: aggString, S: c.bin.String(i)}
}

// floatValue is a float; NaN reads as null (it has no order and would
// poison sums).
func floatValue(f float64) aggValue {
	if math.IsNaN(f) {
		return aggValue{}
	}
	return aggValue{K: aggFloat, F: f}
}

// parseNumber parses s as an int64, else a float64.
func parseNumber(s string) (aggValue, bool) {
	s = strings.TrimSpace(s)
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return aggValue{K: aggInt, I: i}, true
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) {
		return aggValue{K: aggFloat, F: f}, true
	}
	return aggValue{}, false
}

// aggReader folds the rows of a batch into accumulators.
type aggReader struct {
	specs []aggSpec
	cols  []aggColumn // per spec; unused for a count of rows
	// The row being added, per spec: its values and whether each counts.
	vals    []aggValue
	present []bool
}

func newAggReader(specs []aggSpec) *aggReader {
	return &aggReader{specs: specs, cols: make([]aggColumn, len(specs)),
		vals: make([]aggValue, len(specs)), present: make([]bool, len(specs))}
}

// bind resolves the value columns of b (once per batch). An error (a
// column of a type aggregates cannot read) concerns the whole batch.
func (r *aggReader) bind(b *message.Batch) error {
	for i, s := range r.specs {
		if s.Field == "" {
			continue
		}
		c, err := bindAggColumn(b, s.Field)
		if err != nil {
			return fmt.Errorf("%s: %w", s.As, err)
		}
		if c.kind == colBool && s.Func != aggFirst && s.Func != aggLast && s.Func != aggCount {
			return fmt.Errorf("%s: column %q is boolean; %s needs numbers", s.As, s.Field, s.Func)
		}
		r.cols[i] = c
	}
	return nil
}

// read converts row i's value for spec j; ok is false for null. A string
// that sum or avg cannot read as a number is an error.
func (r *aggReader) read(j, i int) (v aggValue, ok bool, err error) {
	s := &r.specs[j]
	if s.Field == "" {
		return aggValue{}, true, nil // count of rows
	}
	v = r.cols[j].value(i)
	if v.K == aggNone {
		return v, false, nil
	}
	if v.K == aggString {
		switch s.Func {
		case aggSum, aggAvg:
			n, ok := parseNumber(v.S)
			if !ok {
				return v, false, fmt.Errorf("%s: %q in column %q is not a number", s.As, truncate(v.S, 40), s.Field)
			}
			return n, true, nil
		case aggMin, aggMax:
			if n, ok := parseNumber(v.S); ok {
				return n, true, nil
			}
		}
	}
	return v, true, nil
}

// add folds row i of the bound batch into row (one accumulator per spec),
// changing row in place. If a value cannot be read, row is left unchanged
// and the error says why.
func (r *aggReader) add(row aggRow, i int) error {
	if len(r.specs) == 1 {
		return r.addOne(&row[0], i)
	}
	for j := range r.specs {
		v, ok, err := r.read(j, i)
		if err != nil {
			return err
		}
		r.vals[j], r.present[j] = v, ok
	}
	for j := range r.specs {
		if r.present[j] {
			row[j].fold(r.specs[j].Func, r.vals[j])
		}
	}
	return nil
}

// addOne is add for a single aggregate.
func (r *aggReader) addOne(acc *aggAcc, i int) error {
	v, ok, err := r.read(0, i)
	if err != nil || !ok {
		return err
	}
	acc.fold(r.specs[0].Func, v)
	return nil
}

// counts reports whether row i adds to the count of spec j (a count of
// rows, or a non-null value): the count-only fast path.
func (r *aggReader) counts(j, i int) bool {
	if r.specs[j].Field == "" {
		return true
	}
	c := &r.cols[j]
	return c.kind != colMissing && !(c.nulls && c.arr.IsNull(i)) &&
		!(c.kind == colFloat64 && math.IsNaN(c.f64[i])) && !(c.kind == colFloat32 && math.IsNaN(float64(c.f32[i])))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ---- building output columns ----

// aggOutput collects result rows and builds one output column per spec.
// Column types: count int64, avg float64; the others int64 when every
// value is an integer, float64 when numbers are mixed, string when there
// are strings (numbers are then written as text), bool when all are bools;
// a column without any value is int64 (first/last: string) of nulls.
type aggOutput struct {
	specs  []aggSpec
	vals   [][]aggValue // per spec, per row
	counts []int64      // rows of appendCount (a lone count spec)
}

func newAggOutput(specs []aggSpec) *aggOutput {
	return &aggOutput{specs: specs, vals: make([][]aggValue, len(specs))}
}

// len returns the number of rows collected.
func (o *aggOutput) len() int { return len(o.vals[0]) + len(o.counts) }

// reset drops the rows collected.
func (o *aggOutput) reset() {
	for j := range o.vals {
		clear(o.vals[j])
		o.vals[j] = o.vals[j][:0]
	}
	o.counts = o.counts[:0]
}

// appendRow appends the results of one group's accumulators (one per
// spec). The strings of results are kept until build.
func (o *aggOutput) appendRow(row []aggAcc) {
	for j := range o.specs {
		o.vals[j] = append(o.vals[j], row[j].result(o.specs[j].Func))
	}
}

// appendCount appends a row to an output whose only spec is a count (the
// fast path; do not mix it with appendRow in one batch).
func (o *aggOutput) appendCount(n int64) {
	o.counts = append(o.counts, n)
}

// build returns the output fields and columns of the rows collected, and
// starts over (reusing its buffers).
func (o *aggOutput) build() ([]arrow.Field, []arrow.Array) {
	fields := make([]arrow.Field, len(o.specs))
	cols := make([]arrow.Array, len(o.specs))
	if len(o.counts) > 0 {
		cols[0] = fixedArray(arrow.PrimitiveTypes.Int64, arrow.Int64Traits.CastToBytes(slices.Clone(o.counts)), nil, len(o.counts), 0)
		fields[0] = arrow.Field{Name: o.specs[0].As, Type: cols[0].DataType(), Nullable: true}
		o.counts = o.counts[:0]
		return fields, cols
	}
	for j, s := range o.specs {
		cols[j] = buildAggColumn(s.Func, o.vals[j])
		fields[j] = arrow.Field{Name: s.As, Type: cols[j].DataType(), Nullable: true}
		clear(o.vals[j]) // drop strings
		o.vals[j] = o.vals[j][:0]
	}
	return fields, cols
}

func buildAggColumn(f aggFunc, vals []aggValue) arrow.Array {
	var ints, floats, strs, bools, nulls int
	for _, v := range vals {
		switch v.K {
		case aggInt:
			ints++
		case aggFloat:
			floats++
		case aggString:
			strs++
		case aggBool:
			bools++
		default:
			nulls++
		}
	}
	kind := aggInt
	switch {
	case f == aggCount:
	case f == aggAvg:
		kind = aggFloat
	case strs > 0 || (bools > 0 && ints+floats > 0):
		kind = aggString
	case bools > 0:
		kind = aggBool
	case floats > 0:
		kind = aggFloat
	case ints == 0 && (f == aggFirst || f == aggLast):
		kind = aggString
	}
	n := len(vals)
	var valid []byte
	if nulls > 0 {
		valid = make([]byte, bitutilBytes(n))
		for i, v := range vals {
			if v.K != aggNone {
				valid[i>>3] |= 1 << (i & 7)
			}
		}
	}
	switch kind {
	case aggInt:
		out := make([]int64, n)
		for i, v := range vals {
			out[i] = v.I
		}
		return fixedArray(arrow.PrimitiveTypes.Int64, arrow.Int64Traits.CastToBytes(out), valid, n, nulls)
	case aggFloat:
		out := make([]float64, n)
		for i, v := range vals {
			out[i] = v.float()
		}
		return fixedArray(arrow.PrimitiveTypes.Float64, arrow.Float64Traits.CastToBytes(out), valid, n, nulls)
	case aggBool:
		out := make([]byte, bitutilBytes(n))
		for i, v := range vals {
			if v.I != 0 {
				out[i>>3] |= 1 << (i & 7)
			}
		}
		return fixedArray(arrow.FixedWidthTypes.Boolean, out, valid, n, nulls)
	}
	offsets := make([]int32, n+1)
	var data []byte
	for i, v := range vals {
		switch v.K {
		case aggString:
			data = append(data, v.S...)
		case aggInt:
			data = strconv.AppendInt(data, v.I, 10)
		case aggFloat:
			data = strconv.AppendFloat(data, v.F, 'g', -1, 64)
		case aggBool:
			data = strconv.AppendBool(data, v.I != 0)
		}
		offsets[i+1] = int32(len(data))
	}
	return message.NewBinaryArray(arrow.BinaryTypes.String, offsets, data, valid, nulls)
}

// fixedArray wraps a values buffer (and validity bitmap) as an array.
func fixedArray(dt arrow.DataType, values, valid []byte, n, nulls int) arrow.Array {
	var vb *memory.Buffer
	if nulls > 0 {
		vb = memory.NewBufferBytes(valid)
	}
	ad := array.NewData(dt, n, []*memory.Buffer{vb, memory.NewBufferBytes(values)}, nil, nulls, 0)
	defer ad.Release()
	return array.MakeFromData(ad)
}

// ---- group keys ----

// groupKey computes the key of each row from a column name or an
// expression: a plain identifier reads that column directly (the fast
// path); anything else is a rowexpr expression. Values are stringified the
// same way either way: strings and binary as they are, integers in
// decimal, floats in the shortest form that round-trips, bools as
// true/false, timestamps as epoch milliseconds. A null key (or a missing
// column) is an error of its row. The aggregate, dedupe and window
// processors use it for Keys and for their state's current key, so both
// agree byte for byte.
type groupKey struct {
	src  string
	col  string           // the column, when src is an identifier
	prog *rowexpr.Program // otherwise

	// Per batch.
	rec arrow.RecordBatch
	c   aggColumn
	buf []byte
}

// newGroupKey compiles src (a column name or an expression).
func newGroupKey(src string) (*groupKey, error) {
	k := &groupKey{src: src}
	if isIdent(src) {
		k.col = src
		return k, nil
	}
	p, err := rowexpr.Compile(src)
	if err != nil {
		return nil, err
	}
	k.prog = p
	return k, nil
}

func isIdent(s string) bool {
	switch s {
	case "", rowexpr.VarContent, rowexpr.VarMeta, "nil", "true", "false", "not", "and", "or", "in", "matches", "contains", "let":
		return false
	}
	for i, r := range s {
		if r != '_' && !(r >= 'a' && r <= 'z') && !(r >= 'A' && r <= 'Z') && !(i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// column returns the key column's binary reader when the key is a plain
// string or binary column of the batch last bound, else nil.
func (k *groupKey) column() (arrow.Array, *message.BinaryColumn) {
	if k.col == "" || k.c.kind != colBinary {
		return nil, nil
	}
	return k.c.arr, k.c.bin
}

// bind prepares for the rows of b (once per batch).
func (k *groupKey) bind(b *message.Batch) error {
	if k.prog != nil {
		return nil
	}
	rec := b.Record()
	if rec == k.rec && rec != nil {
		return nil
	}
	c, err := bindAggColumn(b, k.col)
	if err != nil {
		return err
	}
	k.rec, k.c = rec, c
	return nil
}

// key returns row i's key bytes, valid until the next call (or the end of
// the batch).
func (k *groupKey) key(b *message.Batch, i int) ([]byte, error) {
	var v aggValue
	if k.prog != nil {
		x, err := k.prog.Eval(b, i)
		if err != nil {
			return nil, err
		}
		if x == nil {
			return nil, fmt.Errorf("key expression %q is null", k.src)
		}
		k.buf = rowexpr.AppendText(k.buf[:0], x)
		return k.buf, nil
	}
	if k.c.kind == colBinary {
		if k.c.nulls && k.c.arr.IsNull(i) {
			return nil, fmt.Errorf("key column %q is null", k.col)
		}
		return k.c.bin.Bytes(i), nil
	}
	v = k.c.value(i)
	switch v.K {
	case aggNone:
		if k.c.kind == colMissing && k.c.arr == nil {
			return nil, fmt.Errorf("no key column %q", k.col)
		}
		return nil, fmt.Errorf("key column %q is null", k.col)
	case aggInt:
		k.buf = strconv.AppendInt(k.buf[:0], v.I, 10)
	case aggFloat:
		k.buf = strconv.AppendFloat(k.buf[:0], v.F, 'g', -1, 64)
	case aggBool:
		k.buf = strconv.AppendBool(k.buf[:0], v.I != 0)
	default:
		k.buf = append(k.buf[:0], v.S...)
	}
	return k.buf, nil
}

// keysOf calls fn with every row's key (nil when it cannot be computed).
func keysOf(k *groupKey, b *message.Batch, fn func(row int, key []byte)) error {
	if err := k.bind(b); err != nil {
		return err
	}
	n := b.NumRows()
	for i := 0; i < n; i++ {
		key, err := k.key(b, i)
		if err != nil {
			key = nil
		}
		fn(i, key)
	}
	return nil
}

// stateName is prefix/detail, with a long detail replaced by its hash
// (state names are at most 255 bytes).
func stateName(prefix, detail string) string {
	if len(prefix)+1+len(detail) > 200 {
		sum := sha256.Sum256([]byte(detail))
		detail = hex.EncodeToString(sum[:16])
	}
	return prefix + "/" + detail
}

// bytesToString views b as a string without copying; the string must not
// outlive b's memory (use strings.Clone to keep it).
func bytesToString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

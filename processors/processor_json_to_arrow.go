package processors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

const (
	jsonToArrowValueField = "value_field"
	jsonToArrowFields     = "fields"
	jsonToArrowKeepValue  = "keep_value"
)

func jsonToArrowSpec() component.Spec {
	return component.Spec{
		Name: "json_to_arrow",
		Summary: "Parses a JSON object per row (the __value__ column) into typed columns: " +
			"int64, float64, bool, string; nested objects and arrays as JSON text; null when missing.",
		Fields: []component.Field{
			{Name: jsonToArrowValueField, Type: component.TypeString, Default: message.ValueColumn,
				Description: "Column holding the JSON text."},
			{Name: jsonToArrowFields, Type: component.TypeList, Elem: component.TypeString,
				Description: "Only these top-level keys become columns (in this order, null when absent); default: every key seen in the batch."},
			{Name: jsonToArrowKeepValue, Type: component.TypeBool, Default: false,
				Description: "Keep the raw JSON column next to the parsed ones."},
		},
		Example: "pipeline:\n  processors:\n    - type: json_to_arrow\n      fields: [user, amount]\n",
	}
}

func init() {
	component.RegisterProcessor(jsonToArrowSpec(), newJSONToArrow)
}

// jsonToArrow parses JSON objects into columns. The type of a key is
// decided per batch from the values it has there: int64 when every number
// is an integer that fits, float64 for other numbers, bool, string; nested
// objects and arrays, and keys whose values mix types, become strings (the
// JSON text of non-string values). A key that is null in every row of the
// batch is a string column of nulls (not arrow.Null, whose IsNull is false). Columns are ordered by first
// appearance (or as `fields` lists them), after the input's other columns
// (metadata stays). Rows that are not a valid JSON object go to an error
// batch.
type jsonToArrow struct {
	valueField string
	keepValue  bool
	fieldList  []string // nil: every key

	// Per-batch scratch, reused across batches.
	keys    []jsonKey
	index   map[string]int32
	fields  []jsonField
	order   []int32 // key index by position in the last row
	fail    rowFailures
	good    []int32
	scratch []byte
}

// jsonKey is one top-level key of a batch and what its values look like.
type jsonKey struct {
	name      string
	lastSrc   int   // input row of the last occurrence (duplicate keys: last wins)
	lastField int   // index in fields of that occurrence
	kinds     uint8 // jsonBit* of the non-null values in good rows
	present   bool  // has a value (null included) in a good row
	filled    int   // output rows appended so far (pass 2)
}

// jsonField is one key:value of one row.
type jsonField struct {
	key        int32
	src        int32 // input row
	row        int32 // output row (good rows only)
	kind       uint8 // jsonKind*
	esc        bool  // string with escapes
	start, end int32 // value span in the row (strings: inside the quotes)
	num        uint64
}

const (
	jsonKindNull uint8 = iota
	jsonKindFalse
	jsonKindTrue
	jsonKindInt
	jsonKindFloat
	jsonKindString
	jsonKindNested
)

const (
	jsonBitInt uint8 = 1 << iota
	jsonBitFloat
	jsonBitBool
	jsonBitString
	jsonBitNested
)

var jsonKindBits = [...]uint8{
	jsonKindNull:   0,
	jsonKindFalse:  jsonBitBool,
	jsonKindTrue:   jsonBitBool,
	jsonKindInt:    jsonBitInt,
	jsonKindFloat:  jsonBitFloat,
	jsonKindString: jsonBitString,
	jsonKindNested: jsonBitNested,
}

func newJSONToArrow(conf *component.Config, _ component.Resources) (component.Processor, error) {
	p := &jsonToArrow{
		valueField: conf.String(jsonToArrowValueField),
		keepValue:  conf.Bool(jsonToArrowKeepValue),
		index:      map[string]int32{},
	}
	if p.valueField == "" {
		return nil, conf.Errorf(jsonToArrowValueField, "must not be empty")
	}
	if conf.Has(jsonToArrowFields) {
		p.fieldList = conf.StringList(jsonToArrowFields)
		seen := map[string]bool{}
		for _, f := range p.fieldList {
			if seen[f] {
				return nil, conf.Errorf(jsonToArrowFields, "key %q listed twice", f)
			}
			seen[f] = true
		}
		if p.fieldList == nil {
			p.fieldList = []string{}
		}
	}
	return p, nil
}

func (p *jsonToArrow) Close(context.Context) error { return nil }

func (p *jsonToArrow) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	col := b.Column(p.valueField)
	if col == nil {
		return nil, fmt.Errorf("no column %q", p.valueField)
	}
	vals := message.AsBinary(col)
	if vals == nil {
		return nil, fmt.Errorf("column %q is %s, not binary or string", p.valueField, col.DataType())
	}
	p.reset()
	n := vals.Len()
	goodRows := 0
	for r := 0; r < n; r++ {
		if vals.IsNull(r) {
			p.fail.add(r, "json_to_arrow: value is null")
			continue
		}
		mark := len(p.fields)
		if err := p.scanRow(vals.Bytes(r), r, goodRows); err != nil {
			p.fields = p.fields[:mark]
			p.fail.add(r, "json_to_arrow: "+err.Error())
			continue
		}
		goodRows++
	}
	for i := range p.fields {
		f := &p.fields[i]
		k := &p.keys[f.key]
		k.kinds |= jsonKindBits[f.kind]
		k.present = true
	}

	var good *message.Batch
	if goodRows > 0 {
		var err error
		if good, err = p.build(b, vals, goodRows); err != nil {
			return nil, err
		}
	}
	bad, err := p.fail.errorBatch(b)
	if err != nil {
		return nil, fmt.Errorf("error batch: %w", err)
	}
	return results(good, bad), nil
}

func (p *jsonToArrow) reset() {
	p.keys = p.keys[:0]
	p.order = p.order[:0]
	clear(p.index)
	p.fields = p.fields[:0]
	p.fail.reset()
	for _, name := range p.fieldList {
		p.addKey(name)
	}
}

func (p *jsonToArrow) addKey(name string) int32 {
	k := int32(len(p.keys))
	p.keys = append(p.keys, jsonKey{name: name, lastSrc: -1})
	p.index[name] = k
	return k
}

// lookupKey finds a key of the batch, trying first the key the previous
// row had at this position (rows usually repeat their key order), then
// the map.
func (p *jsonToArrow) lookupKey(name []byte, pos int) (int32, bool) {
	if pos < len(p.order) {
		if k := p.order[pos]; p.keys[k].name == unsafeString(name) {
			return k, true
		}
	}
	k, ok := p.index[unsafeString(name)]
	return k, ok
}

var errNotObject = errors.New("value is not a JSON object")

// scanRow validates one row and appends its top-level fields.
func (p *jsonToArrow) scanRow(d []byte, src, row int) error {
	i := skipJSONSpace(d, 0)
	if i >= len(d) || d[i] != '{' {
		if _, err := skipJSONValue(d, i, 0); err != nil {
			return err
		}
		return errNotObject
	}
	i = skipJSONSpace(d, i+1)
	pos := 0 // position of the key in the row
	if i < len(d) && d[i] == '}' {
		i++
	} else {
		for {
			if i >= len(d) || d[i] != '"' {
				return jsonErrAt(d, i, "looking for beginning of object key string")
			}
			kend, kesc, err := scanJSONString(d, i)
			if err != nil {
				return err
			}
			keyBytes := d[i+1 : kend-1]
			if kesc {
				p.scratch = appendJSONUnescaped(p.scratch[:0], keyBytes)
				keyBytes = p.scratch
			}
			i = skipJSONSpace(d, kend)
			if i >= len(d) || d[i] != ':' {
				return jsonErrAt(d, i, "after object key")
			}
			i = skipJSONSpace(d, i+1)

			key, known := p.lookupKey(keyBytes, pos)
			if !known && p.fieldList != nil {
				if i, err = skipJSONValue(d, i, 1); err != nil {
					return err
				}
			} else {
				if !known {
					key = p.addKey(string(keyBytes))
				}
				if pos < len(p.order) {
					p.order[pos] = key
				} else {
					p.order = append(p.order, key)
				}
				pos++
				f := jsonField{key: key, src: int32(src), row: int32(row), start: int32(i)}
				if i, err = p.scanValue(d, i, &f); err != nil {
					return err
				}
				k := &p.keys[key]
				if k.lastSrc == src {
					p.fields[k.lastField] = f
				} else {
					k.lastSrc, k.lastField = src, len(p.fields)
					p.fields = append(p.fields, f)
				}
			}

			i = skipJSONSpace(d, i)
			if i >= len(d) {
				return jsonErrAt(d, i, "")
			}
			if d[i] == '}' {
				i++
				break
			}
			if d[i] != ',' {
				return jsonErrAt(d, i, "after object key:value pair")
			}
			i = skipJSONSpace(d, i+1)
		}
	}
	if i = skipJSONSpace(d, i); i < len(d) {
		return jsonErrAt(d, i, "after top-level value")
	}
	return nil
}

// scanValue scans the value at d[i] into f and returns the index after it.
func (p *jsonToArrow) scanValue(d []byte, i int, f *jsonField) (int, error) {
	if i >= len(d) {
		return 0, jsonErrAt(d, i, "")
	}
	var end int
	var err error
	switch c := d[i]; {
	case c == '"':
		end, f.esc, err = scanJSONString(d, i)
		f.kind, f.start, f.end = jsonKindString, int32(i+1), int32(end-1)
		return end, err
	case c == '-' || (c >= '0' && c <= '9'):
		var isFloat bool
		if end, isFloat, err = scanJSONNumber(d, i); err != nil {
			return 0, err
		}
		f.end = int32(end)
		if !isFloat {
			if v, ok := parseJSONInt(d[i:end]); ok {
				f.kind, f.num = jsonKindInt, uint64(v)
				return end, nil
			}
		}
		v, err := strconv.ParseFloat(unsafeString(d[i:end]), 64)
		if err != nil { // the syntax is valid: out of range
			return 0, fmt.Errorf("number %s is out of the float64 range", d[i:end])
		}
		f.kind, f.num = jsonKindFloat, math.Float64bits(v)
		return end, nil
	case c == 't':
		end, err = scanJSONLiteral(d, i, "true")
		f.kind = jsonKindTrue
	case c == 'f':
		end, err = scanJSONLiteral(d, i, "false")
		f.kind = jsonKindFalse
	case c == 'n':
		end, err = scanJSONLiteral(d, i, "null")
		f.kind = jsonKindNull
	case c == '{' || c == '[':
		end, err = skipJSONContainer(d, i, 2)
		f.kind = jsonKindNested
	default:
		return 0, jsonErrAt(d, i, "looking for beginning of value")
	}
	f.end = int32(end)
	return end, err
}

// parseJSONInt parses a validated integer literal; ok is false when it does
// not fit in an int64.
func parseJSONInt(b []byte) (int64, bool) {
	neg := b[0] == '-'
	digits := b
	if neg {
		digits = b[1:]
	}
	if len(digits) <= 18 {
		var v int64
		for _, c := range digits {
			v = v*10 + int64(c-'0')
		}
		if neg {
			v = -v
		}
		return v, true
	}
	v, err := strconv.ParseInt(unsafeString(b), 10, 64)
	return v, err == nil
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// build assembles the output batch of the good rows.
func (p *jsonToArrow) build(b *message.Batch, vals *message.BinaryColumn, rows int) (*message.Batch, error) {
	builders := make([]array.Builder, len(p.keys))
	for k := range p.keys {
		key := &p.keys[k]
		key.filled = 0
		// A key seen only in failed rows is dropped, unless fields lists it.
		if p.fieldList != nil || key.present {
			builders[k] = newJSONColumnBuilder(key.kinds, rows)
		}
	}
	for i := range p.fields {
		f := &p.fields[i]
		key := &p.keys[f.key]
		bld := builders[f.key]
		for ; key.filled < int(f.row); key.filled++ {
			bld.AppendNull()
		}
		key.filled++
		p.appendValue(bld, vals.Bytes(int(f.src)), f)
	}

	// The input's other columns, restricted to the good rows; a parsed key
	// replaces a column of the same name.
	rec := b.Record()
	var keepIdx []int32
	if p.fail.len() > 0 {
		p.good = p.fail.goodRows(p.good[:0], int(rec.NumRows()))
		keepIdx = p.good
	}
	fields := make([]arrow.Field, 0, int(rec.NumCols())+len(p.keys))
	out := make([]arrow.Array, 0, cap(fields))
	for c, f := range rec.Schema().Fields() {
		if f.Name == p.valueField && !p.keepValue {
			continue
		}
		if k, ok := p.index[f.Name]; ok && builders[k] != nil {
			continue
		}
		arr := rec.Column(c)
		if keepIdx != nil {
			var err error
			if arr, err = message.TakeColumn(arr, keepIdx); err != nil {
				return nil, fmt.Errorf("column %s: %w", f.Name, err)
			}
		}
		fields = append(fields, f)
		out = append(out, arr)
	}
	for k := range p.keys {
		bld := builders[k]
		if bld == nil {
			continue
		}
		key := &p.keys[k]
		for ; key.filled < rows; key.filled++ {
			bld.AppendNull()
		}
		arr := bld.NewArray()
		bld.Release()
		fields = append(fields, arrow.Field{Name: key.name, Type: arr.DataType(), Nullable: true})
		out = append(out, arr)
	}
	res := message.New(array.NewRecordBatch(arrow.NewSchema(fields, nil), out, int64(rows)))
	res.Pos = b.Pos
	return res, nil
}

// newJSONColumnBuilder returns the builder for a key whose values have the
// given kinds.
func newJSONColumnBuilder(kinds uint8, rows int) array.Builder {
	var bld array.Builder
	switch {
	case kinds == 0:
		bld = array.NewStringBuilder(message.Alloc)
	case kinds == jsonBitInt:
		bld = array.NewInt64Builder(message.Alloc)
	case kinds&^(jsonBitInt|jsonBitFloat) == 0:
		bld = array.NewFloat64Builder(message.Alloc)
	case kinds == jsonBitBool:
		bld = array.NewBooleanBuilder(message.Alloc)
	default:
		bld = array.NewStringBuilder(message.Alloc)
	}
	bld.Reserve(rows)
	return bld
}

// appendValue appends the value of field f of row d. Non-string values in
// a string column are their JSON text.
func (p *jsonToArrow) appendValue(bld array.Builder, d []byte, f *jsonField) {
	if f.kind == jsonKindNull {
		bld.AppendNull()
		return
	}
	switch b := bld.(type) {
	case *array.Int64Builder:
		b.UnsafeAppend(int64(f.num))
	case *array.Float64Builder:
		if f.kind == jsonKindInt {
			b.UnsafeAppend(float64(int64(f.num)))
		} else {
			b.UnsafeAppend(math.Float64frombits(f.num))
		}
	case *array.BooleanBuilder:
		b.UnsafeAppend(f.kind == jsonKindTrue)
	case *array.StringBuilder:
		v := d[f.start:f.end]
		if f.kind == jsonKindString && f.esc {
			p.scratch = appendJSONUnescaped(p.scratch[:0], v)
			v = p.scratch
		}
		b.BinaryBuilder.Append(v)
	default:
		bld.AppendNull()
	}
}

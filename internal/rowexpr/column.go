package rowexpr

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/message"
)

// valueClass is the Arrow type family a Go value maps to.
type valueClass uint8

const (
	classNull valueClass = iota
	classInt
	classFloat
	classBool
	classString
	classBytes
	classOther
)

func classify(v any) valueClass {
	switch x := v.(type) {
	case nil:
		return classNull
	case int, int64, int32, int16, int8, uint, uint32, uint16, uint8:
		return classInt
	case uint64:
		if x <= math.MaxInt64 {
			return classInt
		}
		return classFloat
	case float64, float32:
		return classFloat
	case bool:
		return classBool
	case string:
		return classString
	case []byte:
		return classBytes
	}
	return classOther
}

// ColumnType returns the Arrow type BuildColumn gives values: the type of
// the first non-null value (int64, float64, bool, string, binary); integers
// mixed with floats give float64; any other mix, or another Go type, gives
// string. All null gives string (not arrow.Null, whose values do not report
// IsNull).
func ColumnType(values []any) arrow.DataType {
	cls := classNull
	for _, v := range values {
		c := classify(v)
		switch {
		case c == classNull || c == cls:
		case cls == classNull:
			cls = c
		case (cls == classInt && c == classFloat) || (cls == classFloat && c == classInt):
			cls = classFloat
		default:
			cls = classOther
		}
	}
	switch cls {
	case classInt:
		return arrow.PrimitiveTypes.Int64
	case classFloat:
		return arrow.PrimitiveTypes.Float64
	case classBool:
		return arrow.FixedWidthTypes.Boolean
	case classBytes:
		return arrow.BinaryTypes.Binary
	}
	return arrow.BinaryTypes.String
}

// BuildColumn builds an Arrow column from Go values, nil being null; see
// ColumnType for the type. Values that do not have the column's type are
// converted: numbers and bools to their text, time.Time to RFC 3339, other
// values to JSON.
func BuildColumn(values []any) arrow.Array {
	n := len(values)
	switch dt := ColumnType(values); dt.ID() {
	case arrow.INT64:
		bld := array.NewInt64Builder(message.Alloc)
		defer bld.Release()
		bld.Reserve(n)
		for _, v := range values {
			if v == nil {
				bld.UnsafeAppendBoolToBitmap(false)
				continue
			}
			bld.UnsafeAppend(toInt64(v))
		}
		return bld.NewArray()
	case arrow.FLOAT64:
		bld := array.NewFloat64Builder(message.Alloc)
		defer bld.Release()
		bld.Reserve(n)
		for _, v := range values {
			if v == nil {
				bld.UnsafeAppendBoolToBitmap(false)
				continue
			}
			bld.UnsafeAppend(toFloat64(v))
		}
		return bld.NewArray()
	case arrow.BOOL:
		bld := array.NewBooleanBuilder(message.Alloc)
		defer bld.Release()
		bld.Reserve(n)
		for _, v := range values {
			if v == nil {
				bld.UnsafeAppendBoolToBitmap(false)
				continue
			}
			bld.UnsafeAppend(v.(bool))
		}
		return bld.NewArray()
	case arrow.BINARY:
		bld := array.NewBinaryBuilder(message.Alloc, arrow.BinaryTypes.Binary)
		defer bld.Release()
		bld.Reserve(n)
		for _, v := range values {
			if v == nil {
				bld.AppendNull()
				continue
			}
			bld.Append(v.([]byte))
		}
		return bld.NewArray()
	default:
		bld := array.NewStringBuilder(message.Alloc)
		defer bld.Release()
		bld.Reserve(n)
		var buf []byte
		for _, v := range values {
			switch s := v.(type) {
			case nil:
				bld.AppendNull()
			case string:
				bld.Append(s)
			default:
				buf = AppendText(buf[:0], v)
				bld.BinaryBuilder.Append(buf)
			}
		}
		return bld.NewArray()
	}
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int:
		return int64(x)
	case int64:
		return x
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case uint:
		return int64(x)
	case uint64:
		return int64(x)
	case uint32:
		return int64(x)
	case uint16:
		return int64(x)
	case uint8:
		return int64(x)
	}
	return 0
}

func toFloat64(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case float32:
		return float64(x)
	case uint64:
		return float64(x)
	case uint:
		return float64(x)
	}
	return float64(toInt64(v))
}

// AppendText appends the text form of a value: strings as they are,
// numbers and bools as their literal, time.Time as RFC 3339, nil as
// "null", other values as JSON.
func AppendText(dst []byte, v any) []byte {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...)
	case string:
		return append(dst, x...)
	case []byte:
		return append(dst, x...)
	case bool:
		return strconv.AppendBool(dst, x)
	case float64:
		return strconv.AppendFloat(dst, x, 'g', -1, 64)
	case float32:
		return strconv.AppendFloat(dst, float64(x), 'g', -1, 32)
	case time.Time:
		return x.AppendFormat(dst, time.RFC3339Nano)
	case time.Duration:
		return append(dst, x.String()...)
	}
	switch classify(v) {
	case classInt:
		return strconv.AppendInt(dst, toInt64(v), 10)
	case classFloat:
		return strconv.AppendFloat(dst, toFloat64(v), 'g', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Append(dst, v)
	}
	return append(dst, b...)
}

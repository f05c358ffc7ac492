package message

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// RowEncoder turns the rows of a batch into payload bytes for outputs:
// the __value__ column when the batch has one, otherwise one JSON object per
// row built from every column that is not metadata (__meta_*).
type RowEncoder struct {
	buf  []byte
	cols []arrow.Array
	keys [][]byte // per column: `{"name":` or `,"name":`
}

// Rows calls fn for each row with its payload. The slice passed to fn is
// only valid during the call.
func (e *RowEncoder) Rows(b *Batch, fn func(row int, payload []byte) error) error {
	if v := b.Values(); v != nil {
		for i := 0; i < v.Len(); i++ {
			if err := fn(i, v.Bytes(i)); err != nil {
				return err
			}
		}
		return nil
	}
	rec := b.Record()
	schema := rec.Schema()
	e.cols = e.cols[:0]
	e.keys = e.keys[:0]
	for i, f := range schema.Fields() {
		if !strings.HasPrefix(f.Name, MetaPrefix) && f.Name != ValueColumn {
			e.cols = append(e.cols, rec.Column(i))
			// `"name":` (with the leading comma after the first), once per batch.
			var k []byte
			if len(e.keys) == 0 {
				k = append(k, '{')
			} else {
				k = append(k, ',')
			}
			k = AppendJSONString(k, f.Name)
			e.keys = append(e.keys, append(k, ':'))
		}
	}
	n := int(rec.NumRows())
	for row := 0; row < n; row++ {
		buf := e.buf[:0]
		if len(e.cols) == 0 {
			buf = append(buf, '{')
		}
		for c, col := range e.cols {
			buf = append(buf, e.keys[c]...)
			buf = AppendJSONValue(buf, col, row)
		}
		e.buf = append(buf, '}')
		if err := fn(row, e.buf); err != nil {
			return err
		}
	}
	return nil
}

// AppendJSONRow appends row as a JSON object of the given columns.
func AppendJSONRow(dst []byte, rec arrow.RecordBatch, cols []int, row int) []byte {
	dst = append(dst, '{')
	first := true
	for _, c := range cols {
		col := rec.Column(c)
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = AppendJSONString(dst, rec.ColumnName(c))
		dst = append(dst, ':')
		dst = AppendJSONValue(dst, col, row)
	}
	return append(dst, '}')
}

// AppendJSONValue appends the JSON form of one value of an Arrow column.
func AppendJSONValue(dst []byte, col arrow.Array, i int) []byte {
	if col.DataType().ID() == arrow.NULL || col.IsNull(i) {
		return append(dst, "null"...)
	}
	switch c := col.(type) {
	case *array.Int64:
		return strconv.AppendInt(dst, c.Value(i), 10)
	case *array.Int32:
		return strconv.AppendInt(dst, int64(c.Value(i)), 10)
	case *array.Int16:
		return strconv.AppendInt(dst, int64(c.Value(i)), 10)
	case *array.Int8:
		return strconv.AppendInt(dst, int64(c.Value(i)), 10)
	case *array.Uint64:
		return strconv.AppendUint(dst, c.Value(i), 10)
	case *array.Uint32:
		return strconv.AppendUint(dst, uint64(c.Value(i)), 10)
	case *array.Float64:
		return appendFloat(dst, c.Value(i))
	case *array.Float32:
		return appendFloat(dst, float64(c.Value(i)))
	case *array.Boolean:
		return strconv.AppendBool(dst, c.Value(i))
	case *array.String:
		return AppendJSONString(dst, c.Value(i))
	case *array.LargeString:
		return AppendJSONString(dst, c.Value(i))
	case *array.Binary:
		v := c.Value(i)
		if utf8.Valid(v) {
			return AppendJSONString(dst, string(v))
		}
		return AppendJSONString(dst, base64.StdEncoding.EncodeToString(v))
	case *array.Timestamp:
		return strconv.AppendInt(dst, int64(c.Value(i)), 10)
	case *array.List:
		start, end := c.ValueOffsets(i)
		vals := c.ListValues()
		dst = append(dst, '[')
		for j := start; j < end; j++ {
			if j > start {
				dst = append(dst, ',')
			}
			dst = AppendJSONValue(dst, vals, int(j))
		}
		return append(dst, ']')
	case *array.Struct:
		st := c.DataType().(*arrow.StructType)
		dst = append(dst, '{')
		for f := 0; f < c.NumField(); f++ {
			if f > 0 {
				dst = append(dst, ',')
			}
			dst = AppendJSONString(dst, st.Field(f).Name)
			dst = append(dst, ':')
			dst = AppendJSONValue(dst, c.Field(f), i)
		}
		return append(dst, '}')
	}
	return AppendJSONString(dst, col.ValueStr(i))
}

func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a quoted JSON string.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

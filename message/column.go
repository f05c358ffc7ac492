package message

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// BinaryColumn gives uniform, allocation-free access to a binary or string
// Arrow column.
type BinaryColumn struct {
	bin *array.Binary
	str *array.String
	lb  *array.LargeBinary
	ls  *array.LargeString
	n   int
}

// AsBinary wraps a binary-like column; it returns nil for other types.
func AsBinary(a arrow.Array) *BinaryColumn {
	switch c := a.(type) {
	case *array.Binary:
		return &BinaryColumn{bin: c, n: c.Len()}
	case *array.String:
		return &BinaryColumn{str: c, n: c.Len()}
	case *array.LargeBinary:
		return &BinaryColumn{lb: c, n: c.Len()}
	case *array.LargeString:
		return &BinaryColumn{ls: c, n: c.Len()}
	}
	return nil
}

// Len returns the number of values.
func (c *BinaryColumn) Len() int { return c.n }

// IsNull reports whether value i is null.
func (c *BinaryColumn) IsNull(i int) bool {
	switch {
	case c.bin != nil:
		return c.bin.IsNull(i)
	case c.str != nil:
		return c.str.IsNull(i)
	case c.lb != nil:
		return c.lb.IsNull(i)
	default:
		return c.ls.IsNull(i)
	}
}

// Bytes returns value i without copying; the slice must not be modified
// or kept beyond the batch's lifetime.
func (c *BinaryColumn) Bytes(i int) []byte {
	switch {
	case c.bin != nil:
		return c.bin.Value(i)
	case c.str != nil:
		s := c.str.Value(i)
		return unsafe.Slice(unsafe.StringData(s), len(s))
	case c.lb != nil:
		return c.lb.Value(i)
	default:
		s := c.ls.Value(i)
		return unsafe.Slice(unsafe.StringData(s), len(s))
	}
}

// String returns value i as a string without copying; it must not be kept
// beyond the batch's lifetime (use strings.Clone to keep it).
func (c *BinaryColumn) String(i int) string {
	switch {
	case c.str != nil:
		return c.str.Value(i)
	case c.ls != nil:
		return c.ls.Value(i)
	}
	b := c.Bytes(i)
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// TotalBytes returns the payload bytes of the column.
func (c *BinaryColumn) TotalBytes() int {
	if c.n == 0 {
		return 0
	}
	switch {
	case c.bin != nil:
		o := c.bin.ValueOffsets()
		return int(o[c.n] - o[0])
	case c.str != nil:
		o := c.str.ValueOffsets()
		return int(o[c.n] - o[0])
	case c.lb != nil:
		o := c.lb.ValueOffsets()
		return int(o[c.n] - o[0])
	default:
		o := c.ls.ValueOffsets()
		return int(o[c.n] - o[0])
	}
}

package state

import (
	"reflect"
	"unsafe"

	"github.com/weir-stream/weir/state/memory"
)

// Size estimates for Stats.TotalBytes of the memory backend: the heap bytes
// a value holds beyond its own inline size (which the backend counts with
// the cell). They are estimates: large slices and maps are sampled.

const sampleElems = 32

// sizeOfAny estimates a dynamically typed value, boxed in an interface.
func sizeOfAny(v any) int64 {
	switch x := v.(type) {
	case nil:
		return 0
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return 8 // the boxed word
	case string:
		return 16 + int64(len(x))
	case []byte:
		return 24 + int64(cap(x))
	case RawValue:
		return 24 + int64(cap(x))
	}
	rv := reflect.ValueOf(v)
	return int64(rv.Type().Size()) + heapSize(rv, 0)
}

// sizerFor returns the size estimator for values of type T, or nil if T
// holds no pointers (its size is all inline).
func sizerFor[T any]() func(T) int64 {
	t := reflect.TypeFor[T]()
	if t.Kind() == reflect.Interface {
		return func(v T) int64 { return sizeOfAny(any(v)) }
	}
	if !memory.HasPointers(t) {
		return nil
	}
	switch t.Kind() {
	case reflect.String:
		return func(v T) int64 { return int64(len(*(*string)(unsafe.Pointer(&v)))) }
	}
	plan := planFor(t, 0)
	return func(v T) int64 { return plan.heap(unsafe.Pointer(&v), 0) }
}

// sizePlan is the size estimator of one type, compiled once from its
// reflect.Type: walking a value with it reads memory directly instead of
// going through reflect.Value, and knows which parts hold no pointers
// without asking reflect again (the memory backend sizes every value it
// stores).
type sizePlan struct {
	kind   reflect.Kind
	typ    reflect.Type
	elem   *sizePlan // slice, array, pointer: the element's plan; nil if it holds no pointers
	esize  int64     // slice, array, pointer: the element's inline size
	n      int       // array length
	fields []fieldPlan
}

type fieldPlan struct {
	off  uintptr
	plan *sizePlan
}

// planFor returns the plan of t, or nil if t holds no pointers. Types
// nested deeper than heapSize looks are not followed.
func planFor(t reflect.Type, depth int) *sizePlan {
	if depth > 8 || !memory.HasPointers(t) {
		return nil
	}
	p := &sizePlan{kind: t.Kind(), typ: t}
	switch t.Kind() {
	case reflect.Slice, reflect.Pointer:
		p.esize = int64(t.Elem().Size())
		p.elem = planFor(t.Elem(), depth+1)
	case reflect.Array:
		p.esize = int64(t.Elem().Size())
		p.n = t.Len()
		p.elem = planFor(t.Elem(), depth+1)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if fp := planFor(f.Type, depth+1); fp != nil {
				p.fields = append(p.fields, fieldPlan{off: f.Offset, plan: fp})
			}
		}
	}
	return p
}

// heap estimates the heap bytes reachable from the value at ptr, as
// heapSize does.
func (p *sizePlan) heap(ptr unsafe.Pointer, depth int) int64 {
	if p == nil || depth > 8 {
		return 0
	}
	switch p.kind {
	case reflect.String:
		return int64(len(*(*string)(ptr)))
	case reflect.Slice:
		s := (*sliceHeader)(ptr)
		if s.data == nil {
			return 0
		}
		n := int64(s.cap) * p.esize
		if p.elem != nil {
			m := min(s.len, sampleElems)
			var sum int64
			for i := range m {
				sum += p.elem.heap(unsafe.Add(s.data, int64(i)*p.esize), depth+1)
			}
			if m > 0 {
				n += sum * int64(s.len) / int64(m)
			}
		}
		return n
	case reflect.Pointer:
		e := *(*unsafe.Pointer)(ptr)
		if e == nil {
			return 0
		}
		return p.esize + p.elem.heap(e, depth+1)
	case reflect.Struct:
		var n int64
		for _, f := range p.fields {
			n += f.plan.heap(unsafe.Add(ptr, f.off), depth+1)
		}
		return n
	case reflect.Array:
		if p.elem == nil {
			return 0
		}
		m := min(p.n, sampleElems)
		var sum int64
		for i := range m {
			sum += p.elem.heap(unsafe.Add(ptr, int64(i)*p.esize), depth+1)
		}
		if m == 0 {
			return 0
		}
		return sum * int64(p.n) / int64(m)
	case reflect.Interface:
		if p.typ.NumMethod() == 0 {
			x := *(*any)(ptr)
			if x == nil {
				return 0
			}
			e := reflect.ValueOf(x)
			return int64(e.Type().Size()) + heapSize(e, depth+1)
		}
		// A copy of the two words, so that ptr does not escape (which
		// would cost the callers an allocation per call).
		tmp := *(*[2]unsafe.Pointer)(ptr)
		return heapSize(reflect.NewAt(p.typ, unsafe.Pointer(&tmp)).Elem(), depth)
	case reflect.Map:
		tmp := *(*unsafe.Pointer)(ptr) // a map value is one pointer
		return heapSize(reflect.NewAt(p.typ, unsafe.Pointer(&tmp)).Elem(), depth)
	}
	return 0 // channels, funcs, unsafe pointers: as heapSize
}

// sliceHeader is the layout of a slice value.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// heapSize estimates the heap bytes reachable from v, not counting v's
// inline size.
func heapSize(v reflect.Value, depth int) int64 {
	if depth > 8 {
		return 0
	}
	switch v.Kind() {
	case reflect.String:
		return int64(v.Len())
	case reflect.Slice:
		if v.IsNil() {
			return 0
		}
		et := v.Type().Elem()
		n := int64(v.Cap()) * int64(et.Size())
		if memory.HasPointers(et) {
			n += sampled(v.Len(), func(i int) int64 { return heapSize(v.Index(i), depth+1) })
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return 0
		}
		kt, et := v.Type().Key(), v.Type().Elem()
		n := int64(v.Len()) * (int64(kt.Size()+et.Size()) + 8)
		if memory.HasPointers(kt) || memory.HasPointers(et) {
			var sum int64
			seen := 0
			it := v.MapRange()
			for seen < sampleElems && it.Next() {
				sum += heapSize(it.Key(), depth+1) + heapSize(it.Value(), depth+1)
				seen++
			}
			if seen > 0 {
				n += sum * int64(v.Len()) / int64(seen)
			}
		}
		return n
	case reflect.Pointer:
		if v.IsNil() {
			return 0
		}
		return int64(v.Type().Elem().Size()) + heapSize(v.Elem(), depth+1)
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		return int64(e.Type().Size()) + heapSize(e, depth+1)
	case reflect.Struct:
		var n int64
		for i := range v.NumField() {
			n += heapSize(v.Field(i), depth+1)
		}
		return n
	case reflect.Array:
		if !memory.HasPointers(v.Type().Elem()) {
			return 0
		}
		return sampled(v.Len(), func(i int) int64 { return heapSize(v.Index(i), depth+1) })
	}
	return 0
}

// sampled sums f over n elements, sampling the first few of long ones.
func sampled(n int, f func(int) int64) int64 {
	m := min(n, sampleElems)
	var sum int64
	for i := range m {
		sum += f(i)
	}
	if m == 0 {
		return 0
	}
	return sum * int64(n) / int64(m)
}

package state

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

type sizeInner struct {
	N    int64
	S    string
	Tags []string
	V    any
}

type sizeOuter struct {
	A     int64
	Inner []sizeInner
	P     *sizeInner
	M     map[string][]byte
	Arr   [3]string
	Fixed [4]int64
}

// TestSizePlanMatchesReflect: the compiled plans estimate exactly what the
// reflect walk does, on random values of nested types.
func TestSizePlanMatchesReflect(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	str := func() string { return strings.Repeat("x", r.IntN(40)) }
	inner := func() sizeInner {
		in := sizeInner{N: r.Int64(), S: str()}
		for range r.IntN(50) {
			in.Tags = append(in.Tags, str())
		}
		switch r.IntN(3) {
		case 1:
			in.V = str()
		case 2:
			in.V = []int{1, 2, 3}
		}
		return in
	}
	for i := range 200 {
		o := sizeOuter{A: int64(i), Arr: [3]string{str(), str(), str()}}
		for range r.IntN(60) {
			o.Inner = append(o.Inner, inner())
		}
		if r.IntN(2) == 0 {
			in := inner()
			o.P = &in
		}
		if r.IntN(2) == 0 {
			o.M = map[string][]byte{}
			for range r.IntN(10) {
				o.M[str()] = make([]byte, r.IntN(100))
			}
		}
		check := func(name string, got int64, v any) {
			t.Helper()
			want := heapSize(reflect.ValueOf(v).Elem(), 0)
			if got != want {
				t.Fatalf("value %d, %s: plan %d, reflect %d", i, name, got, want)
			}
		}
		check("struct", sizerFor[sizeOuter]()(o), &o)
		check("slice", sizerFor[[]sizeInner]()(o.Inner), &o.Inner)
		check("pointer", sizerFor[*sizeInner]()(o.P), &o.P)
		check("array", sizerFor[[3]string]()(o.Arr), &o.Arr)
	}
	if sizerFor[[4]int64]() != nil || sizerFor[struct{ A, B int }]() != nil {
		t.Fatal("types without pointers got a sizer")
	}
}

func BenchmarkSizer(b *testing.B) {
	v := make([]sizeInner, 4)
	for i := range v {
		v[i] = sizeInner{S: fmt.Sprint("s", i), Tags: []string{"a", "b"}}
	}
	plan := sizerFor[[]sizeInner]()
	b.Run("plan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			plan(v)
		}
	})
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			heapSize(reflect.ValueOf(&v).Elem(), 0)
		}
	})
}

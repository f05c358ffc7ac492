package kv

import (
	"errors"
	"testing"
	"time"
)

func TestCodecDeterministic(t *testing.T) {
	m := map[string]int{}
	for i := range 100 {
		m[string(rune('a'+i%26))+string(rune('a'+i/26))] = i
	}
	a, err := Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		b, _ := Marshal(m)
		if string(a) != string(b) {
			t.Fatal("map encoding is not deterministic")
		}
	}
}

func TestCodecRoundTrips(t *testing.T) {
	ts := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	var got time.Time
	b, _ := Marshal(ts)
	if err := Unmarshal(b, &got); err != nil || !got.Equal(ts) {
		t.Fatalf("time: %v %v", got, err)
	}
	var anyV any
	b, _ = Marshal(ts)
	if err := Unmarshal(b, &anyV); err != nil {
		t.Fatal(err)
	} else if tv, ok := anyV.(time.Time); !ok || !tv.Equal(ts) {
		t.Fatalf("time into any: %T %v", anyV, anyV)
	}
	long := make([]int, 200000) // beyond the library's default array limit
	b, _ = Marshal(long)
	var back []int
	if err := Unmarshal(b, &back); err != nil || len(back) != len(long) {
		t.Fatalf("long list: %d %v", len(back), err)
	}
}

func TestCodecErrors(t *testing.T) {
	b, _ := Marshal("text")
	var n int
	if err := Unmarshal(b, &n); !errors.Is(err, ErrTypeMismatch) {
		t.Fatalf("string into int: %v", err)
	}
	if err := Unmarshal([]byte{0x1a, 0x00}, &n); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: %v", err)
	}
	if _, err := Marshal(make(chan int)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("chan: %v", err)
	}
	if err := CheckEncodable(func() {}); err == nil {
		t.Fatal("func accepted")
	}
	if err := CheckEncodable(map[string]any{"a": 1}); err != nil {
		t.Fatal(err)
	}
}

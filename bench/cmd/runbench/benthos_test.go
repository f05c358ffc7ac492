package main

import (
	"os"
	"testing"
)

func TestBenthosHelpers(t *testing.T) {
	dir := t.TempDir()
	src, dst := dir+"/src", dir+"/dst"
	if err := os.WriteFile(src, []byte("a b  a\nc a\nb"), 0o644); err != nil {
		t.Fatal(err)
	}
	prefixFile(src, dst, 9)
	if got := fieldCounts(dst); len(got) != 2 || got["a"] != 2 || got["b"] != 1 {
		t.Fatalf("prefix counts %v, want a:2 b:1 (cut after the first line)", got)
	}
	if err := os.WriteFile(src, []byte("a 1\nb 1\na 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := lastCounts(src); len(got) != 2 || got["a"] != 2 || got["b"] != 1 {
		t.Fatalf("lastCounts %v, want a:2 b:1", got)
	}
}

package kv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

func sampleEntries(n int) []Entry {
	var es []Entry
	for i := range n {
		es = append(es, Entry{Kind: EntryPut, State: "s", Key: []byte(fmt.Sprint("key", i)), Value: []byte{0x18, byte(i)}, ExpiresAt: int64(i)})
		if i%3 == 0 {
			es = append(es, Entry{Kind: EntryPut, State: "map", Key: []byte("k"), UserKey: []byte{0x61, 'a' + byte(i%26)}, Value: []byte{0xf5}})
		}
		if i%5 == 0 {
			es = append(es, Entry{Kind: EntryDelete, State: "s", Key: []byte(fmt.Sprint("gone", i))})
		}
	}
	return append(es, Entry{Kind: EntryClear, State: "old"}, Entry{Kind: EntryPut, State: "s", Key: []byte{}, Value: []byte{0xf6}})
}

func TestEntryFileRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 10, 5000} { // 5000 entries span several frames
		h := FileHeader{Kind: FileDelta, MaxKeyGroups: 128, KeyGroup: 77, Seq: 9, Base: 4, Time: -5}
		es := sampleEntries(n)
		var buf bytes.Buffer
		if err := EncodeEntries(&buf, h, es); err != nil {
			t.Fatal(err)
		}
		gh, got, err := DecodeEntries(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		h.Version = FormatVersion
		if gh != h {
			t.Fatalf("header %+v, want %+v", gh, h)
		}
		if len(got) != len(es) {
			t.Fatalf("n=%d: %d entries, want %d", n, len(got), len(es))
		}
		for i := range es {
			w, g := es[i], got[i]
			if w.Kind != g.Kind || w.State != g.State || !bytes.Equal(w.Key, g.Key) || !bytes.Equal(w.UserKey, g.UserKey) ||
				!bytes.Equal(w.Value, g.Value) || w.ExpiresAt != g.ExpiresAt {
				t.Fatalf("entry %d = %+v, want %+v", i, g, w)
			}
		}
	}
}

func TestEntryFileCorruption(t *testing.T) {
	var buf bytes.Buffer
	if err := EncodeEntries(&buf, FileHeader{Kind: FileFull, MaxKeyGroups: 8}, sampleEntries(3000)); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	// Every truncation and every single flipped bit in a sample of
	// positions is detected.
	for cut := 0; cut < len(good); cut += 1 + len(good)/200 {
		if _, _, err := DecodeEntries(bytes.NewReader(good[:cut])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated at %d: err = %v", cut, err)
		}
	}
	for pos := 0; pos < len(good); pos += 1 + len(good)/300 {
		bad := bytes.Clone(good)
		bad[pos] ^= 1
		if _, _, err := DecodeEntries(bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("bit flipped at %d: err = %v", pos, err)
		}
	}
	if _, _, err := DecodeEntries(bytes.NewReader(append(bytes.Clone(good), 0))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing data: %v", err)
	}
}

func TestEntryWriterError(t *testing.T) {
	w, err := NewEntryWriter(io.Discard, FileHeader{Kind: FileFull})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(Entry{Kind: 9}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad kind: %v", err)
	}
	if _, err := NewEntryWriter(failWriter{}, FileHeader{}); err == nil {
		t.Fatal("write error not reported")
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

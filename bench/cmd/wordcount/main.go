// Command wordcount is the hand-written baseline of the word count
// benchmark: one goroutine reads a text file with bufio, splits every line on
// runs of white space (the rule of weir's split processor: Unicode white
// space, as strings.Fields), counts the words in a Go map, and at the end
// writes one NDJSON line {"word":W,"count":N} per word, in no particular
// order: the final counts, as weir's word_count.yaml writes them with
// EMIT=on_end.
//
//	wordcount [-map ptr|int] IN OUT
//
// -map ptr (the default, the ceiling) counts in a map[string]*int: looking
// a word up with m[string(b)] does not allocate, so only a new word's key is
// copied. -map int is the plainest program, counts[string(b)]++ on a
// map[string]int, which allocates the key string on every word (the Go
// compiler avoids the allocation for map reads, not for writes).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode"
	"unicode/utf8"
)

func main() {
	mode := flag.String("map", "ptr", "ptr: map[string]*int | int: map[string]int")
	flag.Parse()
	if flag.NArg() != 2 || (*mode != "ptr" && *mode != "int") {
		fmt.Fprintln(os.Stderr, "usage: wordcount [-map ptr|int] IN OUT")
		os.Exit(2)
	}
	in, err := os.Open(flag.Arg(0))
	check(err)
	r := bufio.NewReaderSize(in, 1<<20)
	var ptrs map[string]*int
	var ints map[string]int
	var add func(w []byte)
	if *mode == "ptr" {
		ptrs = make(map[string]*int)
		add = func(w []byte) {
			if p := ptrs[string(w)]; p != nil {
				*p++
				return
			}
			n := 1
			ptrs[string(w)] = &n
		}
	} else {
		ints = make(map[string]int)
		add = func(w []byte) { ints[string(w)]++ }
	}
	for {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line longer than the buffer: count it whole.
			long := append([]byte(nil), line...)
			for err == bufio.ErrBufferFull {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		words(line, add)
		if err == io.EOF {
			break
		}
		check(err)
	}
	check(in.Close())

	out, err := os.Create(flag.Arg(1))
	check(err)
	w := bufio.NewWriterSize(out, 1<<20)
	var buf []byte
	emit := func(word string, n int) {
		q, err := json.Marshal(word)
		check(err)
		buf = append(buf[:0], `{"word":`...)
		buf = append(buf, q...)
		buf = append(buf, `,"count":`...)
		buf = strconv.AppendInt(buf, int64(n), 10)
		buf = append(buf, "}\n"...)
		_, err = w.Write(buf)
		check(err)
	}
	for word, p := range ptrs {
		emit(word, *p)
	}
	for word, n := range ints {
		emit(word, n)
	}
	check(w.Flush())
	check(out.Close())
}

// words calls add with every white-space-separated word of line.
func words(line []byte, add func([]byte)) {
	start := -1
	for i := 0; i < len(line); {
		c := line[i]
		size := 1
		var space bool
		if c < utf8.RuneSelf {
			space = asciiSpace[c]
		} else {
			var r rune
			r, size = utf8.DecodeRune(line[i:])
			space = unicode.IsSpace(r)
		}
		if space {
			if start >= 0 {
				add(line[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		add(line[start:])
	}
}

var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
}

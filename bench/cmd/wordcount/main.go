// Command wordcount is the hand-written baseline of the word count
// benchmark: one goroutine reads a text file with bufio, splits every line on
// runs of whitespace (the same rule as weir's split processor: Unicode
// white space, like strings.Fields), counts words in a map[string]int, and
// at the end writes one NDJSON line {"word":W,"count":N} per word, in no
// particular order — the final counts that weir's word_count.yaml writes
// with EMIT=on_end.
//
//	wordcount IN OUT
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"unicode"
	"unicode/utf8"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: wordcount IN OUT")
		os.Exit(2)
	}
	in, err := os.Open(os.Args[1])
	check(err)
	counts := make(map[string]*int)
	r := bufio.NewReaderSize(in, 1<<20)
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
		countWords(counts, line)
		if err == io.EOF {
			break
		}
		check(err)
	}
	check(in.Close())

	out, err := os.Create(os.Args[2])
	check(err)
	w := bufio.NewWriterSize(out, 1<<20)
	buf := make([]byte, 0, 128)
	for word, n := range counts {
		buf = append(buf[:0], `{"word":`...)
		buf = strconv.AppendQuote(buf, word) // words of the benchmark text need no JSON escapes
		buf = append(buf, `,"count":`...)
		buf = strconv.AppendInt(buf, int64(*n), 10)
		buf = append(buf, "}\n"...)
		_, err := w.Write(buf)
		check(err)
	}
	check(w.Flush())
	check(out.Close())
}

// countWords adds the whitespace-separated words of line to counts.
func countWords(counts map[string]*int, line []byte) {
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
				add(counts, line[start:i])
				start = -1
			}
		} else if start < 0 {
			start = i
		}
		i += size
	}
	if start >= 0 {
		add(counts, line[start:])
	}
}

// add counts one word. The lookup with string(w) does not allocate; only a
// new word's key is copied.
func add(counts map[string]*int, w []byte) {
	if p := counts[string(w)]; p != nil {
		*p++
		return
	}
	n := 1
	counts[string(w)] = &n
}

var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
}

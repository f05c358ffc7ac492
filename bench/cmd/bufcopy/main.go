// Command bufcopy is the hand-written baseline of a pass-through pipeline:
// it copies a file line by line with bufio, as fast as one goroutine can.
package main

import (
	"bufio"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bufcopy IN OUT")
		os.Exit(2)
	}
	in, err := os.Open(os.Args[1])
	check(err)
	out, err := os.Create(os.Args[2])
	check(err)
	r := bufio.NewReaderSize(in, 1<<20)
	w := bufio.NewWriterSize(out, 1<<20)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		w.Write(sc.Bytes())
		w.WriteByte('\n')
	}
	check(sc.Err())
	check(w.Flush())
	check(out.Close())
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bufcopy:", err)
		os.Exit(1)
	}
}

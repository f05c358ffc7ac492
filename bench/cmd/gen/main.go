// Command gen writes seeded benchmark inputs.
//
//	gen -kind lines -size 50MB -out lines.txt       random text lines
//	gen -kind zipf  -size 50MB -vocab 100000 -out words.txt
//	gen -kind sessions -events 5000000 -users 10000 -out events.ndjson
//
// The same flags and seed always produce the same bytes.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

func main() {
	kind := flag.String("kind", "lines", "lines | zipf | sessions")
	size := flag.String("size", "50MB", "approximate output size (lines, zipf)")
	vocab := flag.Int("vocab", 100000, "vocabulary size (zipf)")
	events := flag.Int("events", 5000000, "number of events (sessions)")
	users := flag.Int("users", 10000, "number of users (sessions)")
	seed := flag.Uint64("seed", 42, "random seed")
	out := flag.String("out", "", "output file (required)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "gen: -out is required")
		os.Exit(2)
	}
	n, err := parseSize(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(2)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	rng := rand.New(rand.NewPCG(*seed, *seed^0x9e3779b97f4a7c15))
	switch *kind {
	case "lines":
		genLines(w, rng, n)
	case "zipf":
		genZipf(w, rng, n, *vocab)
	case "sessions":
		genSessions(w, rng, *events, *users)
	default:
		fmt.Fprintln(os.Stderr, "gen: unknown -kind", *kind)
		os.Exit(2)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := f.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	u := strings.ToUpper(s)
	switch {
	case strings.HasSuffix(u, "GB"):
		mult, u = 1e9, strings.TrimSuffix(u, "GB")
	case strings.HasSuffix(u, "MB"):
		mult, u = 1e6, strings.TrimSuffix(u, "MB")
	case strings.HasSuffix(u, "KB"):
		mult, u = 1e3, strings.TrimSuffix(u, "KB")
	}
	v, err := strconv.ParseInt(u, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

const letters = "abcdefghijklmnopqrstuvwxyz"

// genLines writes lines of 40-160 random lowercase characters and spaces.
func genLines(w *bufio.Writer, rng *rand.Rand, size int64) {
	var written int64
	line := make([]byte, 0, 200)
	for written < size {
		n := 40 + rng.IntN(120)
		line = line[:0]
		for i := 0; i < n; i++ {
			if rng.IntN(6) == 0 {
				line = append(line, ' ')
			} else {
				line = append(line, letters[rng.IntN(26)])
			}
		}
		line = append(line, '\n')
		w.Write(line)
		written += int64(len(line))
	}
}

// word returns a deterministic word for rank i.
func word(i int) string {
	var b []byte
	i++
	for i > 0 {
		b = append(b, letters[i%26])
		i /= 26
	}
	return "w" + string(b)
}

// genZipf writes lines of 5-15 words drawn from a Zipf distribution.
func genZipf(w *bufio.Writer, rng *rand.Rand, size int64, vocab int) {
	z := rand.NewZipf(rng, 1.1, 1, uint64(vocab-1))
	words := make([]string, vocab)
	for i := range words {
		words[i] = word(i)
	}
	var written int64
	for written < size {
		n := 5 + rng.IntN(11)
		for i := 0; i < n; i++ {
			if i > 0 {
				w.WriteByte(' ')
				written++
			}
			s := words[z.Uint64()]
			w.WriteString(s)
			written += int64(len(s))
		}
		w.WriteByte('\n')
		written++
	}
}

// genSessions writes NDJSON events {"user":U,"ts":MS} in roughly increasing
// time with a little disorder; users have bursts separated by gaps.
func genSessions(w *bufio.Writer, rng *rand.Rand, events, users int) {
	ts := int64(1_700_000_000_000)
	buf := make([]byte, 0, 64)
	for i := 0; i < events; i++ {
		ts += int64(rng.IntN(20))
		u := rng.IntN(users)
		jitter := int64(rng.IntN(1000))
		buf = buf[:0]
		buf = append(buf, `{"user":"u`...)
		buf = strconv.AppendInt(buf, int64(u), 10)
		buf = append(buf, `","ts":`...)
		buf = strconv.AppendInt(buf, ts-jitter, 10)
		buf = append(buf, "}\n"...)
		w.Write(buf)
	}
}

// Command kafkaloop is the baseline of the Kafka benchmark: a plain franz-go
// consume → count → produce loop, the same work as
// examples/exactly_once_kafka.yaml at-least-once, with nothing else.
//
//	kafkaloop -brokers HOST:PORT -in lines -out word-counts -lines N
//
// It reads every partition of -in (read_committed, no consumer group, from
// the start), splits every line on whitespace as strings.Fields does, counts
// every word in a map and produces {"word":W,"count":N} keyed by W per
// occurrence to -out (acks all, linger 0). It stops once it has read -lines
// lines and every produced record is acknowledged, and prints the number of
// records it produced.
//
// With -pass it is the baseline of the Kafka → Kafka pass-through instead:
// every record read is produced to -out as it is (key and value), nothing
// counted.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "seed brokers, comma-separated")
	in := flag.String("in", "lines", "input topic (text lines)")
	out := flag.String("out", "word-counts", "output topic")
	lines := flag.Int64("lines", 0, "lines in the input: stop after reading them")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	pass := flag.Bool("pass", false, "copy every record to -out as it is instead of counting words")
	flag.Parse()
	if *lines <= 0 {
		fmt.Fprintln(os.Stderr, "kafkaloop: -lines must be > 0")
		os.Exit(2)
	}
	n, err := loop(strings.Split(*brokers, ","), *in, *out, *lines, *timeout, *pass)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafkaloop:", err)
		os.Exit(1)
	}
	fmt.Println(n)
}

// loop runs the consume → count → produce loop (with pass, consume →
// produce) and returns the number of records produced.
func loop(brokers []string, in, out string, lines int64, timeout time.Duration, pass bool) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(in), kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DefaultProduceTopic(out), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	counts := map[string]*int{}
	var produced int64
	var produceErr atomic.Pointer[error]
	done := func(_ *kgo.Record, err error) {
		if err != nil {
			produceErr.CompareAndSwap(nil, &err)
		}
	}
	var read int64
	var val []byte
	for read < lines {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return produced, fmt.Errorf("read %d of %d lines: %w", read, lines, err)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			return produced, fmt.Errorf("fetch %s partition %d: %w", errs[0].Topic, errs[0].Partition, errs[0].Err)
		}
		for it := fs.RecordIter(); !it.Done(); {
			rec := it.Next()
			read++
			if pass {
				cl.Produce(ctx, &kgo.Record{Key: rec.Key, Value: rec.Value}, done)
				produced++
				continue
			}
			for _, w := range bytes.Fields(rec.Value) {
				c := counts[string(w)] // no allocation: map lookup by converted bytes
				if c == nil {
					c = new(int)
					counts[string(w)] = c
				}
				*c++
				val = append(val[:0], `{"word":`...)
				val = strconv.AppendQuote(val, string(w))
				val = append(val, `,"count":`...)
				val = strconv.AppendInt(val, int64(*c), 10)
				val = append(val, '}')
				key := append([]byte(nil), w...)
				cl.Produce(ctx, &kgo.Record{Key: key, Value: append([]byte(nil), val...)}, done)
				produced++
			}
		}
		if p := produceErr.Load(); p != nil {
			return produced, fmt.Errorf("produce to %s: %w", out, *p)
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return produced, fmt.Errorf("flush %s: %w", out, err)
	}
	if p := produceErr.Load(); p != nil {
		return produced, fmt.Errorf("produce to %s: %w", out, *p)
	}
	return produced, nil
}

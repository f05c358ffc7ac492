package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// exactlyOnceKafkaYAML is the example the Kafka benchmark runs: unchanged
	// for exactly-once, with both `exactly_once: true` switched off for
	// at-least-once.
	exactlyOnceKafkaYAML = "examples/exactly_once_kafka.yaml"
	kafkaLines           = 1_200_000 // about 6.6 M words, 22 MB
	kafkaVocab           = 10_000
	kafkaSeed            = 42
	kafkaInputTopic      = "lines"
	kafkaPartitions      = 3
	kafkaRunTimeout      = 3 * time.Minute
)

// kafka runs Kafka → count → Kafka on an in-process kfake broker: a plain
// franz-go loop (bench/cmd/kafkaloop), weir's exactly_once_kafka.yaml
// at-least-once, and the same exactly-once. Every run gets a fresh output
// topic, consumer group and state dir; the driver reads the output
// read_committed, times each run from its start to the last output record
// read, and checks the counts.
func (r *runner) kafka() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(kafkaPartitions, kafkaInputTopic))
	must(err)
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	must(err)
	defer admin.Close()

	want, words, inBytes := feedLines(admin)
	fmt.Fprintf(os.Stderr, "runbench: kafka: %d lines, %d words (%d distinct), %.1f MB in %q\n",
		kafkaLines, words, len(want), float64(inBytes)/1e6, kafkaInputTopic)

	eoCfg, err := os.ReadFile(exactlyOnceKafkaYAML)
	must(err)
	if n := bytes.Count(eoCfg, []byte("exactly_once: true")); n != 2 {
		fail("%s: %d `exactly_once: true` lines, want 2 (state and output)", exactlyOnceKafkaYAML, n)
	}
	aloCfg := writeConfig(r.tmp, "kafka-alo.yaml", strings.ReplaceAll(string(eoCfg), "exactly_once: true", "exactly_once: false"))

	m := func(name string) *measure { return &measure{name: name, bytes: inBytes, records: words} }
	base := m("franz-go consume → count → produce loop (baseline; at-least-once, acks all, linger 0)")
	alo := m("weir exactly_once_kafka.yaml with `exactly_once: false` (at-least-once)")
	eo := m("weir exactly_once_kafka.yaml (exactly-once)")
	adm := kadm.NewClient(admin)
	for i := 0; i < *runs; i++ {
		for _, p := range []struct {
			m           *measure
			tag         string
			exactlyOnce bool
		}{{base, "base", false}, {alo, "alo", false}, {eo, "eo", true}} {
			topic := fmt.Sprintf("counts-%s-%d", p.tag, i)
			_, err := adm.CreateTopic(context.Background(), kafkaPartitions, 1, nil, topic)
			must(err)
			var cmd []string
			var env []string
			switch p.tag {
			case "base":
				cmd = []string{r.bin("kafkaloop"), "-brokers", brokers[0], "-in", kafkaInputTopic, "-out", topic,
					"-lines", fmt.Sprint(kafkaLines)}
			default:
				cfg := exactlyOnceKafkaYAML
				if p.tag == "alo" {
					cfg = aloCfg
				}
				cmd = []string{r.weir, "run", "--progress", "never", cfg}
				env = []string{"KAFKA_BROKERS=" + brokers[0], "INPUT_TOPIC=" + kafkaInputTopic, "OUTPUT_TOPIC=" + topic,
					"CONSUMER_GROUP=bench-" + topic, "CHECKPOINT_INTERVAL_MS=" + kafkaCheckpointMs, "THREADS=2",
					"STATE_BACKEND=Memory", "STATE_DIR=" + filepath.Join(r.tmp, "kafka-state-"+topic)}
			}
			s, out := runKafka(brokers, topic, want, words, env, cmd, p.tag != "base")
			out.verify(p.m.name, p.exactlyOnce)
			p.m.add(s)
			fmt.Fprintf(os.Stderr, "runbench: kafka: %s run %d: %.2f s, %d records\n", p.tag, i+1, s.secs, out.records)
			os.RemoveAll(filepath.Join(r.tmp, "kafka-state-"+topic))
			// Free the broker's memory for the next runs.
			if _, err := adm.DeleteTopic(context.Background(), topic); err != nil {
				fmt.Fprintf(os.Stderr, "runbench: kafka: delete topic %s: %v\n", topic, err)
			}
		}
	}

	w := &r.report
	fmt.Fprintf(w, "## Kafka → count → Kafka (in-process kfake broker, %d k lines, %.2f M words, vocabulary %d k, seed %d)\n\n",
		kafkaLines/1000, float64(words)/1e6, kafkaVocab/1000, kafkaSeed)
	fmt.Fprintf(w, "`%s` (split → aggregate count per word, emit on_update: one `{\"word\":W,\"count\":N}` record keyed by W per word occurrence), "+
		"`THREADS=2`, memory state, checkpoints every "+kafkaCheckpointMs+" ms into a fresh `STATE_DIR`, against `bench/cmd/kafkaloop`, a plain franz-go loop doing the same work. "+
		"The broker is kfake (1 broker, %d partitions per topic) inside the driver process, so it shares the 2 cores with the program measured. "+
		"Every run has a fresh output topic and consumer group; the driver reads the output read_committed while the program runs. "+
		"Time: from the program's start to the last output record read (weir's Kafka input is unbounded: the driver then sends SIGTERM; "+
		"the franz-go loop exits by itself). Exactly-once output is committed once per checkpoint, so its time includes up to one checkpoint interval "+
		"of waiting for the last transaction. Records/s are words (= output records) per second; MB/s are of the input lines. "+
		"Every run's output is checked: for exactly-once each word's counts 1..n exactly once; for the others every count 1..n present and none above n. "+
		"Peak RSS is the program's, without the broker.\n\n",
		exactlyOnceKafkaYAML, kafkaPartitions)
	fmt.Fprintf(w, "| program | words/s | MB/s | time s (min–max) | peak RSS MB | ÷ franz-go loop | ÷ at-least-once |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, p := range []*measure{base, alo, eo} {
		md := p.median()
		lo, hi := p.rangeSecs()
		vsALO := "—"
		if p != base {
			vsALO = fmt.Sprintf("%.2f", p.ratio(alo))
		}
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %.2f (%.2f–%.2f) | %.0f | %.2f | %s |\n",
			p.name, p.rps(md.secs), p.mbps(md.secs), md.secs, lo, hi, p.medianRSS(), p.ratio(base), vsALO)
	}
	fmt.Fprintln(w)

	ratio := eo.ratio(alo)
	r.sum("Kafka → count → Kafka, exactly-once, words/s", fmt.Sprintf("%.0f", eo.rps(eo.median().secs)),
		fmt.Sprintf("at-least-once %.0f words/s; target ≥ 0.7 (franz-go loop %.0f words/s: %.2f)",
			alo.rps(alo.median().secs), base.rps(base.median().secs), eo.ratio(base)),
		fmt.Sprintf("%.2f", ratio), yesNo(ratio >= 0.7))
	r.sum("Kafka → count → Kafka, at-least-once, words/s", fmt.Sprintf("%.0f", alo.rps(alo.median().secs)),
		fmt.Sprintf("franz-go loop %.0f words/s; reference, no target", base.rps(base.median().secs)),
		fmt.Sprintf("%.2f", alo.ratio(base)), "—")
}

// feedLines produces the seeded input lines to the input topic (round robin
// over its partitions) and returns each word's count, the number of words
// and the bytes of the lines.
func feedLines(cl *kgo.Client) (want map[string]int, words, inBytes int64) {
	rng := rand.New(rand.NewPCG(kafkaSeed, 7))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(kafkaSeed, 8)), 1.1, 1, kafkaVocab-1)
	want = map[string]int{}
	const chunk = 5000
	recs := make([]*kgo.Record, 0, chunk)
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			fail("kafka: produce lines: %v", err)
		}
		recs = recs[:0]
	}
	var sb strings.Builder
	for i := 0; i < kafkaLines; i++ {
		sb.Reset()
		n := 1 + rng.IntN(10)
		for j := 0; j < n; j++ {
			if j > 0 {
				sb.WriteByte(' ')
			}
			w := "w" + strconv.FormatUint(zipf.Uint64(), 36)
			want[w]++
			sb.WriteString(w)
		}
		words += int64(n)
		inBytes += int64(sb.Len())
		recs = append(recs, &kgo.Record{Topic: kafkaInputTopic, Partition: int32(i % kafkaPartitions), Value: []byte(sb.String())})
		if len(recs) == chunk {
			flush()
		}
	}
	if len(recs) > 0 {
		flush()
	}
	return want, words, inBytes
}

// kafkaOutput checks a run's output, read read_committed, as it arrives.
type kafkaOutput struct {
	seen    map[string][]uint8 // word -> times each count was seen (index count-1), saturating
	records int64
	errs    []string // the first malformed or unexpected records
	nerrs   int
}

func newKafkaOutput(want map[string]int) *kafkaOutput {
	o := &kafkaOutput{seen: make(map[string][]uint8, len(want))}
	for w, n := range want {
		o.seen[w] = make([]uint8, n)
	}
	return o
}

func (o *kafkaOutput) bad(format string, args ...any) {
	if o.nerrs++; o.nerrs <= 10 {
		o.errs = append(o.errs, fmt.Sprintf(format, args...))
	}
}

// add checks one record: {"word":W,"count":N} keyed by W, W in the input,
// 1 ≤ N ≤ W's occurrences. The exact form weir and kafkaloop write is
// parsed by hand (the driver shares the cores with the program measured);
// anything else goes through encoding/json.
func (o *kafkaOutput) add(key, value []byte) {
	o.records++
	word, count, ok := parseCount(key, value)
	if !ok {
		var rec struct {
			Word  *string `json:"word"`
			Count *int    `json:"count"`
		}
		if err := json.Unmarshal(value, &rec); err != nil || rec.Word == nil || rec.Count == nil || string(key) != *rec.Word {
			o.bad("malformed record: key %q value %q", key, value)
			return
		}
		word, count = []byte(*rec.Word), *rec.Count
	}
	s, known := o.seen[string(word)]
	switch {
	case !known:
		o.bad("word %q is not in the input", word)
	case count < 1 || count > len(s):
		o.bad("word %s: count %d, but the word occurs %d times", word, count, len(s))
	case s[count-1] < math.MaxUint8:
		s[count-1]++
	}
}

// parseCount parses `{"word":"KEY","count":N}` exactly.
func parseCount(key, v []byte) (word []byte, count int, ok bool) {
	const pre, mid = `{"word":"`, `","count":`
	if !bytes.HasPrefix(v, []byte(pre)) || !bytes.HasSuffix(v, []byte("}")) {
		return nil, 0, false
	}
	v = v[len(pre) : len(v)-1]
	if !bytes.HasPrefix(v, key) || bytes.ContainsAny(key, `"\`) {
		return nil, 0, false
	}
	v = v[len(key):]
	if !bytes.HasPrefix(v, []byte(mid)) {
		return nil, 0, false
	}
	n, err := strconv.Atoi(string(v[len(mid):]))
	if err != nil {
		return nil, 0, false
	}
	return key, n, true
}

// runKafka is runKafkaRecords collecting the word counts of the output.
func runKafka(brokers []string, topic string, want map[string]int, words int64, env, cmd []string, signal bool) (sample, *kafkaOutput) {
	out := newKafkaOutput(want)
	s := runKafkaRecords(brokers, topic, words, env, cmd, signal, func(r *kgo.Record) { out.add(r.Key, r.Value) })
	return s, out
}

// runKafkaRecords starts cmd (through peakrss) and reads topic, passing
// each record to add, until it holds want records; then, if signal, stops
// the program with SIGTERM, and waits for it to exit. The sample's time
// runs from the start to the last record read; its RSS is the program's.
func runKafkaRecords(brokers []string, topic string, want int64, env, cmd []string, signal bool, add func(*kgo.Record)) sample {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	must(err)
	defer cl.Close()
	var records int64
	poll := func(d time.Duration) int {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		fs := cl.PollFetches(ctx)
		for _, fe := range fs.Errors() {
			if ctx.Err() == nil || !errors.Is(fe.Err, context.DeadlineExceeded) {
				fail("kafka: read %s partition %d: %v", topic, fe.Partition, fe.Err)
			}
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			add(r)
			n++
		})
		records += int64(n)
		return n
	}

	rss, err := os.CreateTemp(rssDir, "rss-")
	must(err)
	rss.Close()
	defer os.Remove(rss.Name())
	var stderr bytes.Buffer
	c := exec.Command(rssWrapper, append([]string{rss.Name()}, cmd...)...)
	c.Env = append(os.Environ(), env...)
	c.Stdout, c.Stderr = &stderr, &stderr
	t0 := time.Now()
	must(c.Start())
	exited := make(chan error, 1)
	go func() { exited <- c.Wait() }()
	var last time.Time
	deadline := t0.Add(kafkaRunTimeout)
	for records < want {
		if time.Now().After(deadline) {
			killTree(c.Process.Pid)
			<-exited
			fail("kafka: %s: after %v the output holds %d of %d records:\n%s", cmd[0], kafkaRunTimeout, records, want, tail(stderr.String(), 4000))
		}
		select {
		case err := <-exited:
			if !signal && err == nil {
				// The loop is done: everything it produced is acknowledged.
				exited <- err
				for poll(2*time.Second) > 0 {
					last = time.Now()
				}
				if records < want {
					fail("kafka: %s exited with %d of %d records in the output:\n%s", cmd[0], records, want, tail(stderr.String(), 4000))
				}
				continue
			}
			fail("kafka: %s exited (%v) with %d of %d records in the output:\n%s", cmd[0], err, records, want, tail(stderr.String(), 4000))
		default:
		}
		if poll(200*time.Millisecond) > 0 {
			last = time.Now()
		}
	}
	secs := last.Sub(t0).Seconds()
	if signal {
		child := childOf(c.Process.Pid)
		if child == 0 {
			fail("kafka: no child process of peakrss (pid %d)", c.Process.Pid)
		}
		must(syscall.Kill(child, syscall.SIGTERM))
	}
	select {
	case err := <-exited:
		if err != nil {
			fail("kafka: %s: %v\n%s", cmd[0], err, tail(stderr.String(), 4000))
		}
	case <-time.After(time.Minute):
		killTree(c.Process.Pid)
		<-exited
		fail("kafka: %s did not exit within a minute of SIGTERM:\n%s", cmd[0], tail(stderr.String(), 4000))
	}
	// Anything written at shutdown (duplicates, if any).
	for poll(500*time.Millisecond) > 0 {
	}
	data, err := os.ReadFile(rss.Name())
	must(err)
	var wall float64
	var kb int64
	if _, err := fmt.Sscanf(string(data), "%f %d", &wall, &kb); err != nil {
		fail("peakrss report %q: %v", data, err)
	}
	return sample{secs: secs, rssMB: float64(kb) / 1024}
}

// childOf returns the pid of a child process of pid (peakrss has one), or 0.
func childOf(pid int) int {
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		if f := strings.Fields(string(data)); len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	ents, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, e := range ents {
		data, err := os.ReadFile(e)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		_, rest, ok := bytes.Cut(data, []byte(") "))
		if !ok {
			continue
		}
		if f := strings.Fields(string(rest)); len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(filepath.Base(filepath.Dir(e)))
			return n
		}
	}
	return 0
}

// killTree kills peakrss's child and peakrss.
func killTree(pid int) {
	if child := childOf(pid); child != 0 {
		syscall.Kill(child, syscall.SIGKILL)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// verify checks that every count 1..n of every word was seen, with
// exactlyOnce each exactly once and nothing else; a mismatch fails the bench.
func (o *kafkaOutput) verify(name string, exactlyOnce bool) {
	var total int64
	for w, s := range o.seen {
		total += int64(len(s))
		for c, times := range s {
			switch {
			case times == 0:
				o.bad("word %s: count %d of %d missing", w, c+1, len(s))
			case times > 1 && exactlyOnce:
				o.bad("word %s: count %d of %d seen %d times (duplicate)", w, c+1, len(s), times)
			}
		}
	}
	if exactlyOnce && o.records != total {
		o.bad("%d records, want %d (one per word occurrence)", o.records, total)
	}
	if o.nerrs > 0 {
		for _, e := range o.errs {
			fmt.Fprintf(os.Stderr, "runbench: kafka: %s: %s\n", name, e)
		}
		fail("kafka: %s: %d errors in the output", name, o.nerrs)
	}
}

// kafkaCheckpointMs is the checkpoint interval of the Kafka runs. Output of
// the exactly-once run becomes visible at each commit, so the last records
// wait up to one interval: 250 ms keeps that tail small next to a run of a
// few seconds, and is the same for both weir runs.
var kafkaCheckpointMs = "250"

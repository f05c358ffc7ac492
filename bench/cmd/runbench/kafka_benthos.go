package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// benthosKafkaModule pins Benthos v4.27.0 (github.com/benthosdev/benthos),
	// the last release that bundled kafka_franz; its main package is the
	// Benthos CLI with the components the configs use.
	benthosKafkaModule = "bench/benthos-kafka"
	// The inputs are the first lines of the Kafka section's input (same
	// seeds), sized so that one Benthos run takes about 10 s on two shared
	// cores: Benthos copies about 0.1 M records/s and counts about 0.06 M
	// words/s (one message per word).
	kbPassLines  = 2_000_000
	kbCountLines = 150_000
	kbPassTopic  = "lines-pass"
	kbCountTopic = "lines-count"
	kbPartitions = 3
	// kbBenthosBatch is the batch size of Benthos's kafka_franz input
	// (BATCH_COUNT in its configs).
	kbBenthosBatch = 32
)

// kbProgram is one program of the section on one job.
type kbProgram struct {
	m    *measure
	tag  string
	in   string // input topic
	cmd  []string
	env  []string // besides the brokers, topics and group
	exit bool     // exits by itself once done (else: SIGTERM)
	eo   bool     // exactly-once: the output is checked for duplicates
}

// kafkaBenthos runs Kafka → Kafka on a kfake broker run as its own process
// (bench/cmd/kfakebroker, kfake.Ports): a pass-through and the word count,
// each by a plain franz-go loop (bench/cmd/kafkaloop), weir and Benthos
// v4.27.0 (bench/benthos-kafka). Every run gets a fresh output topic and
// consumer group; the driver reads the output read_committed, times each
// run from its start to the last output record read, and checks it.
func (r *runner) kafkaBenthos() {
	bin, err := r.buildBenthosKafka()
	if err != nil {
		fmt.Fprintf(os.Stderr, "runbench: kafkabenthos skipped: %v\n", err)
		fmt.Fprintf(&r.report, "## Kafka → Kafka against Benthos\n\nSkipped: Benthos could not be built from `%s`:\n\n```\n%s\n```\n\n",
			benthosKafkaModule, tail(err.Error(), 3000))
		r.sum("Kafka → Kafka pass-through: weir vs Benthos, records/s", "—", "Benthos not built (see its section)", "—", "skipped")
		return
	}
	brokers, stop := startBroker(r.bin("kfakebroker"), "-ports", "0", "-partitions", fmt.Sprint(kbPartitions),
		"-topics", kbPassTopic+","+kbCountTopic)
	defer stop()
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	must(err)
	defer admin.Close()
	passIn := feedKafkaLines(admin, kbPassTopic, kbPassLines, kbPartitions, true)
	countIn := feedKafkaLines(admin, kbCountTopic, kbCountLines, kbPartitions, false)
	fmt.Fprintf(os.Stderr, "runbench: kafkabenthos: broker %s; pass-through: %d lines, %.1f MB in %q; count: %d lines, %d words (%d distinct) in %q\n",
		strings.Join(brokers, ","), kbPassLines, float64(passIn.bytes)/1e6, kbPassTopic, kbCountLines, countIn.words, len(countIn.counts), kbCountTopic)

	eoCfg, err := os.ReadFile(exactlyOnceKafkaYAML)
	must(err)
	if n := bytes.Count(eoCfg, []byte("exactly_once: true")); n != 2 {
		fail("%s: %d `exactly_once: true` lines, want 2 (state and output)", exactlyOnceKafkaYAML, n)
	}
	aloCfg := writeConfig(r.tmp, "kb-count-alo.yaml", strings.ReplaceAll(string(eoCfg), "exactly_once: true", "exactly_once: false"))
	passCfg := writeConfig(r.tmp, "kb-pass.yaml", `# Kafka → Kafka pass-through: every record as it is, at-least-once.
health_check: {enabled: false}
streams:
  - input:
      type: kafka
      brokers: [${KAFKA_BROKERS}]
      topics: [${INPUT_TOPIC}]
      consumer_group: ${CONSUMER_GROUP}
    output:
      type: kafka
      brokers: [${KAFKA_BROKERS}]
      topic: ${OUTPUT_TOPIC}
`)
	configs := filepath.Join(benthosKafkaModule, "configs")
	loop := func(topic string, lines int, extra ...string) []string {
		return append([]string{r.bin("kafkaloop"), "-brokers", brokers[0], "-in", topic, "-lines", fmt.Sprint(lines)}, extra...)
	}
	benthosEnv := []string{"BATCH_COUNT=" + fmt.Sprint(kbBenthosBatch)}
	weirCount := []string{"CHECKPOINT_INTERVAL_MS=" + kafkaCheckpointMs, "THREADS=2", "STATE_BACKEND=Memory"}

	pm := func(name string) *measure { return &measure{name: name, bytes: passIn.bytes, records: kbPassLines} }
	pass := []*kbProgram{
		{m: pm("franz-go consume → produce loop (`kafkaloop -pass`)"), tag: "loop", in: kbPassTopic, cmd: loop(kbPassTopic, kbPassLines, "-pass"), exit: true},
		{m: pm("weir kafka → kafka, at-least-once"), tag: "weir", in: kbPassTopic, cmd: []string{r.weir, "run", "--progress", "never", passCfg}},
		{m: pm("Benthos kafka_franz → kafka_franz (`kafka_pass.yaml`)"), tag: "benthos", in: kbPassTopic,
			cmd: []string{bin, "-c", filepath.Join(configs, "kafka_pass.yaml")}, env: benthosEnv},
	}
	cm := func(name string) *measure { return &measure{name: name, bytes: countIn.bytes, records: countIn.words} }
	count := []*kbProgram{
		{m: cm("franz-go consume → count → produce loop (`kafkaloop`)"), tag: "loop", in: kbCountTopic, cmd: loop(kbCountTopic, kbCountLines), exit: true},
		{m: cm("weir exactly_once_kafka.yaml with `exactly_once: false` (at-least-once)"), tag: "weir-alo", in: kbCountTopic,
			cmd: []string{r.weir, "run", "--progress", "never", aloCfg}, env: weirCount},
		{m: cm("weir exactly_once_kafka.yaml (exactly-once)"), tag: "weir-eo", in: kbCountTopic,
			cmd: []string{r.weir, "run", "--progress", "never", exactlyOnceKafkaYAML}, env: weirCount, eo: true},
		{m: cm("Benthos memory cache get/+1/set, 1 thread (`kafka_count.yaml`)"), tag: "benthos", in: kbCountTopic,
			cmd: []string{bin, "-c", filepath.Join(configs, "kafka_count.yaml")}, env: benthosEnv},
	}

	adm := kadm.NewClient(admin)
	run := func(job string, p *kbProgram, i int, want int64, out recordCheck) {
		topic := fmt.Sprintf("kb-%s-%s-%d", job, p.tag, i)
		_, err := adm.CreateTopic(context.Background(), kbPartitions, 1, nil, topic)
		must(err)
		stateDir := filepath.Join(r.tmp, "kb-state-"+topic)
		env := append([]string{"KAFKA_BROKERS=" + strings.Join(brokers, ","), "INPUT_TOPIC=" + p.in, "OUTPUT_TOPIC=" + topic,
			"CONSUMER_GROUP=bench-" + topic, "STATE_DIR=" + stateDir}, p.env...)
		cmd := p.cmd
		if p.tag == "loop" {
			cmd = append(append([]string(nil), cmd...), "-out", topic)
		}
		var n int64
		s := runKafkaRecords(brokers, topic, want, env, cmd, !p.exit, func(r *kgo.Record) {
			n++
			out.record(r)
		})
		out.check(p.m.name, p.eo)
		p.m.add(s)
		fmt.Fprintf(os.Stderr, "runbench: kafkabenthos: %s %s run %d: %.2f s, %d records, peak RSS %.0f MB\n", job, p.tag, i+1, s.secs, n, s.rssMB)
		os.RemoveAll(stateDir)
		if _, err := adm.DeleteTopic(context.Background(), topic); err != nil {
			fmt.Fprintf(os.Stderr, "runbench: kafkabenthos: delete topic %s: %v\n", topic, err)
		}
	}
	for i := 0; i < *runs; i++ {
		for _, p := range pass {
			run("pass", p, i, kbPassLines, newPassOutput(passIn.lines))
		}
		for _, p := range count {
			run("count", p, i, countIn.words, countCheck{newKafkaOutput(countIn.counts)})
		}
	}
	r.kafkaBenthosReport(pass, count, passIn, countIn)
}

func (r *runner) kafkaBenthosReport(pass, count []*kbProgram, passIn, countIn kafkaInput) {
	w := &r.report
	fmt.Fprintf(w, "## Kafka → Kafka against Benthos (kfake broker in its own process)\n\n")
	fmt.Fprintf(w, "The broker is `bench/cmd/kfakebroker`, a kfake cluster (1 broker, %d partitions per topic) run as its own process "+
		"(`kfake.Ports`), so every program, Benthos included, talks to it over TCP as to a real broker; it shares the 2 cores with the program "+
		"measured and with the driver, which reads the output. Inputs: the first lines of the Kafka section's input (same seeds), "+
		"fewer because Benthos is slower: %s lines (%.1f MB) for the pass-through, %s lines (%s words, %d distinct, %.1f MB) for the count. "+
		"Benthos is v4.27.0 (`github.com/benthosdev/benthos/v4`, the last release with `kafka_franz`), "+
		"built from `%s` (its CLI with the pure, io and kafka components), configs in `%s/configs`: `kafka_franz` input in a consumer "+
		"group with `batching: {count: %d, period: 10ms}` (records of one partition handed on in batches; without it one message per "+
		"batch, several times slower; larger batches are slower too, see the README there) → one pipeline thread → `kafka_franz` output "+
		"(idempotent, acks all). weir: `kafka` input in a consumer group → `kafka` output (acks all, idempotent) for the pass-through; "+
		"`%s` for the count (split → aggregate count, `THREADS=2`, memory state, checkpoints every %s ms). "+
		"The franz-go loop (`bench/cmd/kafkaloop`, `-pass` for the pass-through) reads every partition without a group. "+
		"Pass-through: every record copied (the input records have no key, and none is written), checked record by record "+
		"(every input line as often as in the input, nothing else; duplicates, which at-least-once allows, are reported). Count: one `{\"word\":W,\"count\":N}` record keyed by W per word occurrence "+
		"(Benthos: per word inside `for_each`, `cache get` on a `memory` cache, a miss caught as 0, +1, `cache set`; its counts are not "+
		"checkpointed, and its JSON has the keys in the other order), checked as in the Kafka section (exactly-once: each count 1..n "+
		"exactly once). Time: from the program's start to the last output record read (weir and Benthos are stopped with SIGTERM then; "+
		"the loop exits by itself). Peak RSS is the program's, without the broker.\n\n",
		kbPartitions, thousands(kbPassLines), float64(passIn.bytes)/1e6, thousands(kbCountLines), thousands(countIn.words), len(countIn.counts),
		float64(countIn.bytes)/1e6, benthosKafkaModule, benthosKafkaModule, kbBenthosBatch, exactlyOnceKafkaYAML, kafkaCheckpointMs)
	fmt.Fprintf(w, "| job | program | records/s | MB/s | time s (min–max) | peak RSS MB | ÷ franz-go loop | weir ÷ Benthos |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, j := range []struct {
		job   string
		progs []*kbProgram
	}{{"pass-through (records = lines)", pass}, {"count (records = words)", count}} {
		base, bth := j.progs[0].m, j.progs[len(j.progs)-1].m
		for _, p := range j.progs {
			md := p.m.median()
			lo, hi := p.m.rangeSecs()
			vsLoop, vsBenthos := "—", "—"
			if p.m != base {
				vsLoop = fmt.Sprintf("%.2f", p.m.ratio(base))
			}
			if strings.HasPrefix(p.tag, "weir") {
				vsBenthos = fmt.Sprintf("%.2f", p.m.ratio(bth))
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.2f | %.2f (%.2f–%.2f) | %.0f | %s | %s |\n", j.job, p.m.name,
				thousands(int64(p.m.rps(md.secs))), p.m.mbps(md.secs), md.secs, lo, hi, p.m.medianRSS(), vsLoop, vsBenthos)
		}
	}
	fmt.Fprintln(w)

	rps := func(m *measure) string { return thousands(int64(m.rps(m.median().secs))) }
	wp, bp, lp := pass[1].m, pass[2].m, pass[0].m
	ratio := wp.ratio(bp)
	r.sum("Kafka → Kafka pass-through (broker in its own process): weir vs Benthos, records/s", rps(wp),
		fmt.Sprintf("Benthos %s records/s; target: ahead of Redpanda Connect (franz-go loop %s records/s: weir ÷ loop %.2f)",
			rps(bp), rps(lp), wp.ratio(lp)),
		fmt.Sprintf("%.2f", ratio), yesNo(ratio > 1))
	wc, we, bc, lc := count[1].m, count[2].m, count[3].m, count[0].m
	r.sum("Kafka → count → Kafka (broker in its own process), at-least-once: weir vs Benthos memory cache, words/s", rps(wc),
		fmt.Sprintf("Benthos %s words/s (franz-go loop %s words/s: weir ÷ loop %.2f; weir exactly-once %s words/s, ÷ Benthos %.2f)",
			rps(bc), rps(lc), wc.ratio(lc), rps(we), we.ratio(bc)),
		fmt.Sprintf("%.2f", wc.ratio(bc)), "—")
}

// buildBenthosKafka builds bench/benthos-kafka into the bin dir, or reuses
// the binary already there.
func (r *runner) buildBenthosKafka() (string, error) {
	bin, err := filepath.Abs(r.bin("benthos-kafka"))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	fmt.Fprintf(os.Stderr, "runbench: building Benthos v4.27.0 in %s (a minute or two the first time)\n", benthosKafkaModule)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = benthosKafkaModule
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cd %s && go build -o %s .: %v\n%s", benthosKafkaModule, bin, err, buf.String())
	}
	return bin, nil
}

// startBroker starts kfakebroker, waits for its "ready ADDRS" line and
// returns the addresses and a function that stops it (SIGTERM, then wait).
// The broker gets SIGKILL if the driver dies first (fail exits at once).
func startBroker(bin string, args ...string) ([]string, func()) {
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	must(err)
	must(cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-exited
		fail("kafkabenthos: %s printed no ready line within 30 s", bin)
	}
	addrs, ok := strings.CutPrefix(strings.TrimSpace(line), "ready ")
	if !ok || addrs == "" {
		cmd.Process.Kill()
		<-exited
		fail("kafkabenthos: %s: %q is not `ready ADDR,...`", bin, line)
	}
	return strings.Split(addrs, ","), func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				fmt.Fprintf(os.Stderr, "runbench: kafkabenthos: broker: %v\n", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			fmt.Fprintf(os.Stderr, "runbench: kafkabenthos: broker did not exit within 30 s of SIGTERM; killed\n")
		}
	}
}

// kafkaInput is what feedKafkaLines produced.
type kafkaInput struct {
	counts map[string]int   // word -> occurrences
	lines  map[string]int32 // line -> occurrences
	words  int64
	bytes  int64
}

// feedKafkaLines produces the first n lines of feedLines's input (same
// generator and seeds) to topic, round robin over its partitions. It is
// feedLines with the line count and topic as parameters, and, with
// keepLines, the lines kept for the pass-through's check.
func feedKafkaLines(cl *kgo.Client, topic string, n, partitions int, keepLines bool) kafkaInput {
	rng := rand.New(rand.NewPCG(kafkaSeed, 7))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(kafkaSeed, 8)), 1.1, 1, kafkaVocab-1)
	in := kafkaInput{counts: map[string]int{}}
	if keepLines {
		in.lines = map[string]int32{}
	}
	const chunk = 5000
	recs := make([]*kgo.Record, 0, chunk)
	flush := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			fail("kafkabenthos: produce lines: %v", err)
		}
		recs = recs[:0]
	}
	var sb strings.Builder
	for i := 0; i < n; i++ {
		sb.Reset()
		nw := 1 + rng.IntN(10)
		for j := 0; j < nw; j++ {
			if j > 0 {
				sb.WriteByte(' ')
			}
			w := "w" + strconv.FormatUint(zipf.Uint64(), 36)
			in.counts[w]++
			sb.WriteString(w)
		}
		line := sb.String()
		if keepLines {
			in.lines[line]++
		}
		in.words += int64(nw)
		in.bytes += int64(len(line))
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte(line)})
		if len(recs) == chunk {
			flush()
		}
	}
	if len(recs) > 0 {
		flush()
	}
	return in
}

// recordCheck checks the output of one run, record by record as the driver
// reads it, then as a whole; a wrong output fails the bench.
type recordCheck interface {
	record(*kgo.Record)
	check(name string, exactlyOnce bool)
}

// countCheck checks a word count's output as the Kafka section does.
type countCheck struct{ o *kafkaOutput }

func (c countCheck) record(r *kgo.Record)                { c.o.add(r.Key, r.Value) }
func (c countCheck) check(name string, exactlyOnce bool) { c.o.verify(name, exactlyOnce) }

// passOutput checks a pass-through's output: every input line as often as
// in the input (more is a duplicate, which at-least-once allows), nothing
// else.
type passOutput struct {
	left    map[string]int32 // line -> occurrences not seen yet (negative: duplicates)
	records int64
	unknown int64
	example string
}

func newPassOutput(lines map[string]int32) *passOutput {
	o := &passOutput{left: make(map[string]int32, len(lines))}
	for l, n := range lines {
		o.left[l] = n
	}
	return o
}

func (o *passOutput) record(r *kgo.Record) {
	o.records++
	if _, ok := o.left[string(r.Value)]; !ok {
		if o.unknown++; o.unknown == 1 {
			o.example = string(r.Value)
		}
		return
	}
	o.left[string(r.Value)]--
}

// check fails the bench if a line is missing or a record is not an input
// line, and reports duplicates.
func (o *passOutput) check(name string, exactlyOnce bool) {
	dups, err := o.result(exactlyOnce)
	if err != nil {
		fail("kafkabenthos: %s: %v", name, err)
	}
	if dups > 0 {
		fmt.Fprintf(os.Stderr, "runbench: kafkabenthos: %s: %d duplicate records (at-least-once)\n", name, dups)
	}
}

// result returns the number of duplicates, and an error if a line is
// missing, a record is not an input line, or, with exactlyOnce, a record is
// a duplicate.
func (o *passOutput) result(exactlyOnce bool) (dups int64, err error) {
	var missing int64
	for _, n := range o.left {
		if n > 0 {
			missing += int64(n)
		} else {
			dups -= int64(n)
		}
	}
	if o.unknown > 0 || missing > 0 || (exactlyOnce && dups > 0) {
		return dups, fmt.Errorf("%d records: %d input lines missing, %d duplicates, %d records not in the input (e.g. %q)",
			o.records, missing, dups, o.unknown, o.example)
	}
	return dups, nil
}

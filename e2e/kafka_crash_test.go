package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-stream/weir/checkpoint/storage/storagetest"
)

// The examples/exactly_once_kafka.yaml contract (issue 5): after any number
// of SIGKILLs and restarts, once the input is consumed, a read_committed
// consumer of the output sees for each word W that occurs n times the
// counts 1..n, each exactly once, and nothing else.

const exactlyOnceKafkaConfig = "../examples/exactly_once_kafka.yaml"

// TestExactlyOnceKafkaSurvivesSIGKILL runs the example on Memory state
// (checkpoints in a local dir).
func TestExactlyOnceKafkaSurvivesSIGKILL(t *testing.T) {
	crashKafkaWordCount(t, exactlyOnceKafkaConfig, true, []string{"STATE_DIR=" + filepath.Join(t.TempDir(), "state")})
}

// TestExactlyOnceKafkaSurvivesSIGKILLWithS3 is the same with Hybrid state:
// memory state, checkpoints in a real S3 server (MinIO, started by make test).
func TestExactlyOnceKafkaSurvivesSIGKILLWithS3(t *testing.T) {
	s3 := storagetest.S3FromEnv(t)
	s3.NewS3(t) // creates the bucket; cleans the prefix up
	crashKafkaWordCount(t, exactlyOnceKafkaConfig, true, []string{
		"STATE_BACKEND=Hybrid", "STATE_DIR=" + filepath.Join(t.TempDir(), "state"),
		"S3_BUCKET=" + s3.Bucket, "S3_PREFIX=" + storagetest.UniquePrefix(t), "S3_ENDPOINT=" + s3.Endpoint, "S3_USE_SSL=false",
		"AWS_REGION=" + s3.Region, "AWS_ACCESS_KEY_ID=" + s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s3.SecretKey,
	})
}

// Crash harness parameters. Lines keep arriving while a run goes, so that
// kills land while records flow; a last chunk arrives before the last run.
const (
	crashKills      = 12
	crashChunkLines = 200                   // lines per produce
	crashFeedEvery  = 20 * time.Millisecond // one chunk this often while a run goes
	crashMaxLines   = 60000                 // then the input stops growing
	crashFinalWait  = 2 * time.Minute
	endKey          = "__end__" // key of the sentinel records the harness appends to the output
)

// lineWriter writes seeded lines of words to the 3 partitions of "lines"
// (round robin) and counts the words it wrote. One goroutine at a time
// uses it.
type lineWriter struct {
	cl    *kgo.Client
	rng   *rand.Rand
	want  map[string]int
	total int // words written
	lines int
}

// write writes n lines (skewed: a few words are frequent).
func (lw *lineWriter) write(n int) error {
	recs := make([]*kgo.Record, n)
	for i := range recs {
		var sb strings.Builder
		words := 1 + lw.rng.IntN(10)
		for j := 0; j < words; j++ {
			w := "w" + strconv.Itoa(int(lw.rng.ExpFloat64()*300))
			lw.want[w]++
			lw.total++
			if j > 0 {
				sb.WriteString([]string{" ", "  ", "\t"}[lw.rng.IntN(3)])
			}
			sb.WriteString(w)
		}
		recs[i] = &kgo.Record{Topic: "lines", Partition: int32(lw.lines % 3), Value: []byte(sb.String())}
		lw.lines++
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := lw.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce lines: %w", err)
	}
	return nil
}

// feed writes a chunk every crashFeedEvery until stop is closed or the
// input has crashMaxLines lines.
func (lw *lineWriter) feed(stop <-chan struct{}) error {
	tick := time.NewTicker(crashFeedEvery)
	defer tick.Stop()
	for lw.lines < crashMaxLines {
		if err := lw.write(crashChunkLines); err != nil {
			return err
		}
		select {
		case <-stop:
			return nil
		case <-tick.C:
		}
	}
	return nil
}

// crashKafkaWordCount runs config (the exactly_once_kafka.yaml contract)
// against an in-process Kafka cluster: it kills the binary with SIGKILL at
// random moments while lines keep arriving (at least 10 times; the short
// checkpoint interval makes some kills land during checkpoints), restarts
// it, lets a last run consume everything, stops it with SIGTERM, and checks
// the committed output against the input. exactlyOnce false checks only
// that nothing is lost (every count 1..n present, none above n).
func crashKafkaWordCount(t *testing.T, config string, exactlyOnce bool, stateEnv []string) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("WEIR_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (set WEIR_CRASH_SEED to replay)", seed)
	killRng := rand.New(rand.NewPCG(seed, 1))

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "lines", "word-counts"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	producer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	lw := &lineWriter{cl: producer, rng: rand.New(rand.NewPCG(seed, 2)), want: map[string]int{}}
	if err := lw.write(10 * crashChunkLines); err != nil {
		t.Fatal(err)
	}

	env := append([]string{"KAFKA_BROKERS=" + brokers[0], "CHECKPOINT_INTERVAL_MS=100"}, stateEnv...)
	args := []string{"run", "--progress", "never", config}
	var lastStderr string
	kills := 0
	for kills < crashKills {
		p := start(t, nil, env, args...)
		stop, fed := make(chan struct{}), make(chan error, 1)
		go func() { fed <- lw.feed(stop) }()
		delay := time.Duration(50+killRng.IntN(750)) * time.Millisecond
		select {
		case <-p.done:
			close(stop)
			<-fed
			t.Fatalf("run %d exited (%v) before its kill:\n%s", kills, p.cmd.ProcessState, p.stderr.String())
		case <-time.After(delay):
		}
		p.signal(syscall.SIGKILL)
		<-p.done
		close(stop)
		if err := <-fed; err != nil {
			t.Fatal(err)
		}
		kills++
		lastStderr = p.stderr.String()
	}
	if err := lw.write(10 * crashChunkLines); err != nil {
		t.Fatal(err)
	}
	want, total := lw.want, lw.total
	t.Logf("%d lines, %d words (%d distinct) over %d kills", lw.lines, total, len(want), kills)

	// The last run goes until the output holds every count.
	out := newOutputReader(t, brokers)
	p := start(t, nil, env, args...)
	deadline := time.Now().Add(crashFinalWait)
	for out.distinct < total {
		if time.Now().After(deadline) {
			p.signal(syscall.SIGKILL)
			<-p.done
			t.Fatalf("after %v the output holds %d of %d counts (%d records); stderr of the last run:\n%s\nof the last killed run:\n%s",
				crashFinalWait, out.distinct, total, out.records, p.stderr.String(), lastStderr)
		}
		select {
		case <-p.done:
			t.Fatalf("the last run exited (%v) with %d of %d counts in the output:\n%s", p.cmd.ProcessState, out.distinct, total, p.stderr.String())
		default:
		}
		out.poll(t, 200*time.Millisecond)
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("the last run exited %d after SIGTERM:\n%s", code, p.stderr.String())
	}

	// Whatever the final checkpoint committed comes before a sentinel
	// record appended to every partition now.
	ends := make([]*kgo.Record, 3)
	for i := range ends {
		ends[i] = &kgo.Record{Topic: "word-counts", Partition: int32(i), Key: []byte(endKey)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = producer.ProduceSync(ctx, ends...).FirstErr()
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for out.ends < len(ends) {
		if time.Now().After(deadline) {
			t.Fatalf("the end of the output is not readable (a transaction left open?): %d of %d partitions read to the end", out.ends, len(ends))
		}
		out.poll(t, 200*time.Millisecond)
	}
	out.verify(t, want, total, exactlyOnce)
	t.Logf("%d kills; %d records verified for %d words", kills, out.records, len(want))
}

// outputReader reads word-counts with read_committed isolation.
type outputReader struct {
	cl       *kgo.Client
	counts   map[string]map[int]int // word -> count -> times seen
	records  int                    // records other than the sentinels
	distinct int                    // distinct (word, count) pairs
	ends     int                    // sentinels seen
	bad      []string               // records that are not {"word":W,"count":N} keyed by W
}

func newOutputReader(t *testing.T, brokers []string) *outputReader {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("word-counts"),
		kgo.ConsumeStartOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &outputReader{cl: cl, counts: map[string]map[int]int{}}
}

// poll reads what arrives within d.
func (o *outputReader) poll(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	fs := o.cl.PollFetches(ctx)
	for _, fe := range fs.Errors() {
		if ctx.Err() == nil || !errors.Is(fe.Err, context.DeadlineExceeded) {
			t.Fatalf("read word-counts partition %d: %v", fe.Partition, fe.Err)
		}
	}
	fs.EachRecord(func(r *kgo.Record) {
		if string(r.Key) == endKey {
			o.ends++
			return
		}
		o.records++
		var rec struct {
			Word  *string `json:"word"`
			Count *int    `json:"count"`
		}
		dec := json.NewDecoder(strings.NewReader(string(r.Value)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil || rec.Word == nil || rec.Count == nil || string(r.Key) != *rec.Word {
			o.bad = append(o.bad, fmt.Sprintf("key %q value %q", r.Key, r.Value))
			return
		}
		m := o.counts[*rec.Word]
		if m == nil {
			m = map[int]int{}
			o.counts[*rec.Word] = m
		}
		if m[*rec.Count] == 0 {
			o.distinct++
		}
		m[*rec.Count]++
	})
}

// verify checks the output against the input's word counts: every count
// 1..n of every word, none above n, no other word; with exactlyOnce each
// exactly once.
func (o *outputReader) verify(t *testing.T, want map[string]int, total int, exactlyOnce bool) {
	t.Helper()
	if len(o.bad) > 0 {
		t.Fatalf("%d malformed records, e.g. %s", len(o.bad), o.bad[0])
	}
	errs := 0
	fail := func(format string, args ...any) {
		if errs++; errs <= 20 {
			t.Errorf(format, args...)
		}
	}
	for w, n := range want {
		for c := 1; c <= n; c++ {
			switch times := o.counts[w][c]; {
			case times == 0:
				fail("word %s: count %d of %d never committed (lost)", w, c, n)
			case times > 1 && exactlyOnce:
				fail("word %s: count %d of %d committed %d times (duplicate)", w, c, n, times)
			}
		}
		for c := range o.counts[w] {
			if c < 1 || c > n {
				fail("word %s: count %d, but the word occurs %d times", w, c, n)
			}
		}
	}
	for w := range o.counts {
		if _, ok := want[w]; !ok {
			fail("word %q is not in the input", w)
		}
	}
	if exactlyOnce && o.records != total {
		fail("%d records committed, want %d (one per word occurrence)", o.records, total)
	}
	if errs > 20 {
		t.Errorf("... %d errors in all", errs)
	}
}

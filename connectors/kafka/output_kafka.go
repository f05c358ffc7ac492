package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/internal/rowexpr"
	"github.com/weir-stream/weir/message"
)

// Fields of the kafka output.
const (
	outFieldTopic         = "topic"
	outFieldKey           = "key"
	outFieldCompression   = "compression"
	outFieldAcks          = "acks"
	outFieldMaxInFlight   = "max_in_flight"
	outFieldBatchMaxBytes = "batch_max_bytes"
	outFieldExactlyOnce   = "exactly_once"
	outFieldTxnID         = "transactional_id"
	outFieldTxnTimeout    = "transactional_timeout"
)

// defaultTxnTimeout is the default transactional_timeout: the brokers'
// default transaction.max.timeout.ms, and more than the default checkpoint
// interval (60s) + checkpoint timeout (10m) + restart time (60s).
const defaultTxnTimeout = 15 * time.Minute

// Compression codecs.
const (
	compressionNone   = "none"
	compressionGzip   = "gzip"
	compressionSnappy = "snappy"
	compressionLZ4    = "lz4"
	compressionZstd   = "zstd"
)

// Acks settings.
const (
	acksAll    = "all"
	acksLeader = "leader"
	acksNone   = "none"
)

// defaultBatchMaxBytes is Kafka's default max.message.bytes.
const defaultBatchMaxBytes = 1000012

func outputSpec() component.Spec {
	return component.Spec{
		Name: "kafka",
		Summary: "Kafka producer (franz-go): one record per row (payload from __value__, else a JSON object of the " +
			"row), key from an expression or the __meta_key column. Write returns once every record is acknowledged. " +
			"With exactly_once: true, records are written in one Kafka transaction per checkpoint, committed when the " +
			"checkpoint completes (read them with isolation_level: read_committed).",
		Delivery:         component.DeliveryExactlyOnce,
		CheckCheckpoints: CheckTransactionTimeout,
		Fields: []component.Field{
			brokersField(),
			{Name: outFieldTopic, Type: component.TypeString, Required: true,
				Description: "topic to write to"},
			{Name: outFieldKey, Type: component.TypeExpr,
				Description: "expression giving each record's key from its row (e.g. user_id); null means no key; " +
					"empty: the __meta_key column when the batch has one"},
			clientIDField(),
			{Name: outFieldCompression, Type: component.TypeString, Default: compressionNone,
				Options:     []string{compressionNone, compressionGzip, compressionSnappy, compressionLZ4, compressionZstd},
				Description: "compression of record batches"},
			{Name: outFieldAcks, Type: component.TypeString, Default: acksAll,
				Options: []string{acksAll, acksLeader, acksNone},
				Description: "acknowledgement a write waits for: all in-sync replicas (idempotent, no duplicates from retries), " +
					"the leader only, or none (leader and none turn idempotency off)"},
			{Name: outFieldMaxInFlight, Type: component.TypeInt, Default: int64(1), Advanced: true,
				Description: "produce requests in flight per broker with acks leader or none (more is faster but may reorder on retries); " +
					"with acks all idempotency allows up to 5 and keeps order"},
			{Name: outFieldBatchMaxBytes, Type: component.TypeInt, Default: int64(defaultBatchMaxBytes), Advanced: true,
				Description: "largest record batch sent to one partition (must not exceed the topic's max.message.bytes)"},
			{Name: outFieldExactlyOnce, Type: component.TypeBool, Default: false,
				Description: "write in Kafka transactions committed at checkpoints (two-phase commit; needs state.enabled " +
					"and acks: all); without it the output is at-least-once"},
			{Name: outFieldTxnID, Type: component.TypeString, Advanced: true,
				Description: "exactly_once: base of the transactional ids (the output uses BASE-0, BASE-1 and BASE-2, and BASE-3, BASE-4, ... " +
					"while checkpoints fail); " +
					"must be unique to this output and stable across restarts: another writer with the same id is fenced; " +
					"empty: weir-STREAM-TOPIC"},
			{Name: outFieldTxnTimeout, Type: component.TypeDuration, Default: defaultTxnTimeout, Advanced: true,
				Description: "exactly_once: how long the broker keeps a transaction open before aborting it; must exceed " +
					"checkpoint interval + checkpoint timeout + 60s of restart time, and not exceed the brokers' transaction.max.timeout.ms; " +
					"checkpoints that keep failing for about this long make the stream restart from its last checkpoint"},
			tlsField(),
			saslField(),
		},
		Example: `output:
  type: kafka
  brokers: [localhost:9092]
  topic: enriched-orders
  key: customer_id
  compression: zstd
`,
	}
}

func init() {
	component.RegisterOutput(outputSpec(), newOutput)
}

type output struct {
	log           *slog.Logger
	client        clientConf
	topic         string
	compression   kgo.CompressionCodec
	acks          string
	maxInFlight   int
	batchMaxBytes int32

	// buildMu serializes building records: the key program and the row
	// encoder are not safe for concurrent use.
	buildMu sync.Mutex
	key     *rowexpr.Program // nil: the __meta_key column, if any
	enc     message.RowEncoder

	mu     sync.Mutex // guards cl and cancel
	cl     *kgo.Client
	cancel context.CancelFunc

	// txn is the pool of transactional producers (exactly_once); nil for
	// an at-least-once output. See output_kafka_txn.go.
	txn *txnPool
}

func newOutput(conf *component.Config, res component.Resources) (component.Output, error) {
	cc, err := parseClientConf(conf)
	if err != nil {
		return nil, err
	}
	o := &output{
		log:           loggerOf(res),
		client:        cc,
		topic:         conf.String(outFieldTopic),
		acks:          conf.String(outFieldAcks),
		maxInFlight:   conf.Int(outFieldMaxInFlight),
		batchMaxBytes: defaultBatchMaxBytes,
	}
	if o.topic == "" {
		return nil, conf.Errorf(outFieldTopic, "a topic is required")
	}
	if src := conf.String(outFieldKey); src != "" {
		p, err := rowexpr.Compile(src)
		if err != nil {
			return nil, conf.Errorf(outFieldKey, "invalid expression: %v", err)
		}
		o.key = p
	}
	switch c := conf.String(outFieldCompression); c {
	case compressionNone, "":
		o.compression = kgo.NoCompression()
	case compressionGzip:
		o.compression = kgo.GzipCompression()
	case compressionSnappy:
		o.compression = kgo.SnappyCompression()
	case compressionLZ4:
		o.compression = kgo.Lz4Compression()
	case compressionZstd:
		o.compression = kgo.ZstdCompression()
	default:
		return nil, conf.Errorf(outFieldCompression, "unknown compression %q", c)
	}
	switch o.acks {
	case "":
		o.acks = acksAll
	case acksAll, acksLeader, acksNone:
	default:
		return nil, conf.Errorf(outFieldAcks, "unknown acks %q (want all, leader or none)", o.acks)
	}
	if o.maxInFlight == 0 {
		o.maxInFlight = 1
	}
	if o.maxInFlight < 1 {
		return nil, conf.Errorf(outFieldMaxInFlight, "must be at least 1, got %d", o.maxInFlight)
	}
	if conf.Has(outFieldBatchMaxBytes) {
		n := conf.Int(outFieldBatchMaxBytes)
		if n < 1024 || n > 1<<30 {
			return nil, conf.Errorf(outFieldBatchMaxBytes, "must be between 1024 and 1073741824, got %d", n)
		}
		o.batchMaxBytes = int32(n)
	}
	if conf.Bool(outFieldExactlyOnce) {
		if o.acks != acksAll {
			return nil, conf.Errorf(outFieldAcks, "exactly_once needs acks: all (transactions are idempotent), got %s", o.acks)
		}
		timeout := conf.Duration(outFieldTxnTimeout)
		if !conf.Has(outFieldTxnTimeout) {
			timeout = defaultTxnTimeout
		}
		if timeout < time.Second {
			return nil, conf.Errorf(outFieldTxnTimeout, "must be at least 1s, got %v", timeout)
		}
		base := conf.String(outFieldTxnID)
		if base == "" {
			base = defaultTxnID(res, o.topic)
		}
		o.txn = newTxnPool(o, base, timeout)
	}
	return o, nil
}

// defaultTxnID is the default transactional_id: weir-STREAM-TOPIC, with
// -error for an error_output.
func defaultTxnID(res component.Resources, topic string) string {
	id := "weir-"
	if res.Stream != "" {
		id += res.Stream + "-"
	}
	id += topic
	if strings.HasPrefix(res.Label, "error_output") {
		id += "-error"
	}
	return id
}

// restartTime is what CheckTransactionTimeout allows for a crashed
// pipeline to be restarted and recover its outputs.
const restartTime = 60 * time.Second

// CheckTransactionTimeout checks the transactional_timeout of a kafka
// output with exactly_once: true (outputConf is any output's config; other
// outputs pass). A transaction is opened at the first record after a
// checkpoint barrier and must survive until the next checkpoint completes
// and commits it, or, after a crash, until the restarted pipeline
// re-commits it from the checkpoint: so the timeout must be larger than
// checkpoint interval + checkpoint timeout + restart time (60s). A shorter
// one lets the broker abort a pre-committed transaction, losing its
// records. The output's constructor does not see the state config, so
// whoever builds the stream calls this.
//
// This covers checkpoints that complete. A failed checkpoint leaves its
// transaction to the next one, so the transaction ages further; a
// PreCommit whose oldest transaction is too close to the timeout fails the
// stream (ErrCheckpointsFailing), which restarts from its last checkpoint.
func CheckTransactionTimeout(outputConf *component.Config, cp component.CheckpointSettings) error {
	if outputConf == nil || outputConf.Type != "kafka" || !outputConf.Bool(outFieldExactlyOnce) {
		return nil
	}
	if max := maxPendingTxns - 2; cp.TolerableFailures > max {
		return outputConf.Errorf(outFieldExactlyOnce,
			"exactly_once keeps at most %d transactions open for checkpoints that failed in a row, "+
				"so state.tolerable_failed_checkpoints must be at most %d, got %d", maxPendingTxns, max, cp.TolerableFailures)
	}
	checkpointInterval, checkpointTimeout := cp.Interval, cp.Timeout
	timeout := defaultTxnTimeout
	if outputConf.Has(outFieldTxnTimeout) {
		timeout = outputConf.Duration(outFieldTxnTimeout)
	}
	need := checkpointInterval + checkpointTimeout + restartTime
	if timeout <= need {
		return outputConf.Errorf(outFieldTxnTimeout,
			"%v is too short for exactly_once: it must be larger than checkpoint interval (%v) + checkpoint timeout (%v) "+
				"+ restart time (%v) = %v, or the broker may abort a transaction before its checkpoint commits it "+
				"(the brokers' transaction.max.timeout.ms, 15m by default, must allow it too)",
			timeout, checkpointInterval, checkpointTimeout, restartTime, need)
	}
	return nil
}

// ExactlyOnce reports whether the output writes in transactions committed
// at checkpoints (exactly_once: true).
func (o *output) ExactlyOnce() bool { return o.txn != nil }

// Connect creates the producer and checks that a broker answers. With
// exactly_once it starts the pool of transactional producers, unless
// Recover already did.
func (o *output) Connect(ctx context.Context) error {
	if o.txn != nil {
		return o.txn.connect(ctx)
	}
	opts, err := o.producerOpts()
	if err != nil {
		return err
	}
	cl, cancel, err := newClient(opts)
	if err != nil {
		return fmt.Errorf("kafka output: invalid client options: %w", err)
	}
	if err := cl.Ping(ctx); err != nil {
		closeClient(ctx, cl, cancel)
		return fmt.Errorf("kafka output: connect to brokers %s: %w", o.client.brokerList(), err)
	}
	o.mu.Lock()
	oldCl, oldCancel := o.cl, o.cancel
	o.cl, o.cancel = cl, cancel
	o.mu.Unlock()
	if oldCl != nil {
		closeClient(ctx, oldCl, oldCancel)
	}
	return nil
}

// producerOpts are the kgo options of a producer: connection, compression,
// batching, acks.
func (o *output) producerOpts() ([]kgo.Opt, error) {
	opts, err := o.client.opts(o.log)
	if err != nil {
		return nil, fmt.Errorf("kafka output: %w", err)
	}
	opts = append(opts,
		kgo.ProducerBatchCompression(o.compression),
		kgo.ProducerBatchMaxBytes(o.batchMaxBytes),
		// Write waits for its records: lingering would only delay the
		// last partial batch of every Write.
		kgo.ProducerLinger(0),
	)
	switch o.acks {
	case acksAll:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case acksLeader:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(o.maxInFlight))
	case acksNone:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(o.maxInFlight))
	}
	return opts, nil
}

// Write produces every row of b and returns once Kafka has acknowledged all
// of them, or with the first error. When ctx ends first it returns ctx's
// error; records already sent may still be written (at-least-once: the
// engine writes the batch again).
//
// With exactly_once the records join the open transaction of the current
// epoch and become visible when its checkpoint commits (see PreCommit).
func (o *output) Write(ctx context.Context, b *message.Batch) error {
	if o.txn != nil {
		recs, err := o.records(b)
		if err != nil {
			return fmt.Errorf("kafka output: topic %s: %w", o.topic, err)
		}
		return fatalTxnError(o.txn.write(ctx, recs))
	}
	o.mu.Lock()
	cl := o.cl
	o.mu.Unlock()
	if cl == nil {
		return fmt.Errorf("kafka output: %w", component.ErrNotConnected)
	}
	recs, err := o.records(b)
	if err != nil {
		return fmt.Errorf("kafka output: topic %s: %w", o.topic, err)
	}
	return o.produce(ctx, cl, recs)
}

// records builds one record per row. Payloads and keys are copied into one
// buffer per batch: the encoder reuses its buffer, and kgo may hold records
// after Write returns (see Write).
func (o *output) records(b *message.Batch) ([]*kgo.Record, error) {
	n := b.NumRows()
	if n == 0 {
		return nil, nil
	}
	o.buildMu.Lock()
	defer o.buildMu.Unlock()

	var metaKey *message.BinaryColumn
	if o.key == nil {
		if c := b.Column(message.MetaKey); c != nil {
			metaKey = message.AsBinary(c)
		}
	}
	size := 64 * n
	if v := b.Values(); v != nil {
		size = v.TotalBytes() + 16*n
	}
	buf := make([]byte, 0, size)
	// Growing buf leaves earlier records pointing into the old array,
	// which stays valid: nothing writes to it again.
	slab := make([]kgo.Record, n)
	recs := make([]*kgo.Record, n)
	err := o.enc.Rows(b, func(row int, payload []byte) error {
		r := &slab[row]
		r.Topic = o.topic
		start := len(buf)
		buf = append(buf, payload...)
		r.Value = buf[start:len(buf):len(buf)]
		switch {
		case o.key != nil:
			v, err := o.key.Eval(b, row)
			if err != nil {
				return fmt.Errorf("key expression, row %d: %w", row, err)
			}
			start = len(buf)
			switch k := v.(type) {
			case nil:
				r.Key = nil
			case []byte:
				buf = append(buf, k...)
				r.Key = buf[start:len(buf):len(buf)]
			default:
				buf = rowexpr.AppendText(buf, k)
				r.Key = buf[start:len(buf):len(buf)]
			}
		case metaKey != nil && !metaKey.IsNull(row):
			start = len(buf)
			buf = append(buf, metaKey.Bytes(row)...)
			r.Key = buf[start:len(buf):len(buf)]
		}
		recs[row] = r
		return nil
	})
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// produce sends recs and waits until every one is acknowledged, returning
// the first error. It is the one place records reach Kafka: a transactional
// producer (exactly_once) runs it inside the open transaction.
func (o *output) produce(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) error {
	if len(recs) == 0 {
		return nil
	}
	w := &produceWait{left: int64(len(recs)), done: make(chan struct{})}
	promise := w.promise // one closure per Write, not per record
	for _, r := range recs {
		cl.Produce(ctx, r, promise)
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		return fmt.Errorf("kafka output: produce to %s at %s: %w", o.topic, o.client.brokerList(), ctx.Err())
	}
	if err := w.err.Load(); err != nil {
		return fmt.Errorf("kafka output: produce to %s at %s: %w", o.topic, o.client.brokerList(), *err)
	}
	return nil
}

// produceWait collects the results of one Write's records.
type produceWait struct {
	left int64
	err  atomic.Pointer[error] // the first error
	done chan struct{}         // closed when every record has a result
}

func (w *produceWait) promise(_ *kgo.Record, err error) {
	if err != nil {
		first := err // only a failing record allocates
		w.err.CompareAndSwap(nil, &first)
	}
	if atomic.AddInt64(&w.left, -1) == 0 {
		close(w.done)
	}
}

// Close flushes buffered records and closes the producer; ctx bounds how
// long it waits for the brokers.
//
// With exactly_once, Close aborts the open transaction of the current
// epoch (its records are written again after a restart) and leaves a
// pre-committed one to Commit or to recovery.
func (o *output) Close(ctx context.Context) error {
	if o.txn != nil {
		return o.txn.close(ctx)
	}
	o.mu.Lock()
	cl, cancel := o.cl, o.cancel
	o.cl, o.cancel = nil, nil
	o.mu.Unlock()
	if cl == nil {
		return nil
	}
	var err error
	if ferr := cl.Flush(ctx); ferr != nil {
		err = fmt.Errorf("kafka output: flush to %s at %s: %w", o.topic, o.client.brokerList(), ferr)
	}
	closeClient(ctx, cl, cancel)
	return err
}

// fatalTxnError marks the transactional failures a restart must handle
// (the engine stops the stream on component.ErrFatal instead of retrying).
func fatalTxnError(err error) error {
	if errors.Is(err, ErrFenced) || errors.Is(err, ErrTransactionFailed) || errors.Is(err, ErrTransactionLost) ||
		errors.Is(err, ErrCheckpointsFailing) {
		return component.Fatal(err)
	}
	return err
}

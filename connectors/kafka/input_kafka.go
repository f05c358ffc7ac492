package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// Fields of the kafka input.
const (
	inFieldTopics          = "topics"
	inFieldConsumerGroup   = "consumer_group"
	inFieldGroupMembership = "group_membership"
	inFieldStartFromLatest = "start_from_latest"
	inFieldBatchSize       = "batch_size"
	inFieldFetchMaxWait    = "fetch_max_wait"
	inFieldIsolationLevel  = "isolation_level"
	inFieldCommitPeriod    = "commit_period"
)

// Isolation levels.
const (
	readCommitted   = "read_committed"
	readUncommitted = "read_uncommitted"
)

// MetaTopic is the column with each record's topic.
const MetaTopic = message.MetaPrefix + "topic"

var inputSchema = arrow.NewSchema([]arrow.Field{
	{Name: message.ValueColumn, Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: message.MetaKey, Type: arrow.BinaryTypes.Binary, Nullable: true},
	{Name: MetaTopic, Type: arrow.BinaryTypes.String},
	{Name: message.MetaPartition, Type: arrow.PrimitiveTypes.Int32},
	{Name: message.MetaOffset, Type: arrow.PrimitiveTypes.Int64},
	{Name: message.MetaTimestamp, Type: arrow.PrimitiveTypes.Int64},
}, nil)

func inputSpec() component.Spec {
	return component.Spec{
		Name: "kafka",
		Summary: "Kafka consumer (franz-go), read_committed by default. Replayable: batches carry their offsets " +
			"per partition, so a restore from a checkpoint resumes exactly. As a group member it commits the " +
			"acknowledged prefix of what it read (at-least-once); with group_membership: false it reads every " +
			"partition itself and commits the group's offsets only when a checkpoint completes (exactly-once pipelines).",
		Fields: []component.Field{
			brokersField(),
			{Name: inFieldTopics, Type: component.TypeList, Elem: component.TypeString, Required: true,
				Description: "topics to consume"},
			{Name: inFieldConsumerGroup, Type: component.TypeString,
				Description: "consumer group to join and commit offsets in; empty: read every partition without a group (offsets live only in checkpoints)"},
			{Name: inFieldGroupMembership, Type: component.TypeBool, Default: true,
				Description: "with consumer_group: true = join the group (the group assigns partitions; acknowledged offsets are committed every commit_period); " +
					"false = read every partition of the topics without joining, starting at the checkpoint's position, else at the group's committed offsets, " +
					"and commit those offsets only after a checkpoint completes (for lag tools). Set false in checkpointed exactly-once pipelines: " +
					"no rebalance, and a restarted process is never blocked by a dead member"},
			clientIDField(),
			{Name: inFieldStartFromLatest, Type: component.TypeBool, Default: false,
				Description: "where to start a partition with no committed offset and no checkpoint: false = oldest record, true = newest"},
			{Name: inFieldBatchSize, Type: component.TypeInt, Default: int64(8192),
				Description: "most records in one batch"},
			{Name: inFieldFetchMaxWait, Type: component.TypeDuration, Default: 100 * time.Millisecond, Advanced: true,
				Description: "how long a broker may hold a fetch waiting for records (at least 10ms)"},
			{Name: inFieldIsolationLevel, Type: component.TypeString, Default: readCommitted,
				Options:     []string{readCommitted, readUncommitted},
				Description: "read_committed skips records of aborted and open transactions"},
			{Name: inFieldCommitPeriod, Type: component.TypeDuration, Default: time.Second, Advanced: true,
				Description: "group members only: how often acknowledged offsets are committed (at least 100ms); they are also committed on rebalance and on close"},
			tlsField(),
			saslField(),
		},
		Example: `input:
  type: kafka
  brokers: [localhost:9092]
  topics: [orders]
  consumer_group: weir-orders
  # exactly-once pipelines (state.exactly_once): offsets live in checkpoints
  # group_membership: false
`,
	}
}

func init() {
	component.RegisterInput(inputSpec(), newInput)
}

// offsets is topic -> partition -> offset.
type offsets map[string]map[int32]int64

func (o offsets) set(topic string, partition int32, off int64) {
	ps := o[topic]
	if ps == nil {
		ps = make(map[int32]int64)
		o[topic] = ps
	}
	ps[partition] = off
}

func (o offsets) get(topic string, partition int32) (int64, bool) {
	off, ok := o[topic][partition]
	return off, ok
}

func (o offsets) del(topic string, partition int32) {
	if ps := o[topic]; ps != nil {
		delete(ps, partition)
		if len(ps) == 0 {
			delete(o, topic)
		}
	}
}

func (o offsets) clone() offsets {
	c := make(offsets, len(o))
	for t, ps := range o {
		for p, off := range ps {
			c.set(t, p, off)
		}
	}
	return c
}

// marshal encodes a position: {"topic":{"partition":offset}} (encoding/json
// sorts the keys, so equal positions encode equally).
func (o offsets) marshal() []byte {
	b, err := json.Marshal(o)
	if err != nil { // a map of ints cannot fail to encode
		panic(err)
	}
	return b
}

func parsePos(pos []byte) (offsets, error) {
	var raw map[string]map[string]int64
	if err := json.Unmarshal(pos, &raw); err != nil {
		return nil, err
	}
	o := make(offsets, len(raw))
	for t, ps := range raw {
		for p, off := range ps {
			pi, err := strconv.ParseInt(p, 10, 32)
			if err != nil || pi < 0 {
				return nil, fmt.Errorf("topic %s: bad partition %q", t, p)
			}
			if off < 0 {
				return nil, fmt.Errorf("topic %s partition %d: negative offset %d", t, pi, off)
			}
			o.set(t, int32(pi), off)
		}
	}
	return o, nil
}

// pendingBatch is a batch read and not yet acknowledged.
type pendingBatch struct {
	seq   uint64
	next  map[string]map[int32]kgo.EpochOffset // per partition: just after the batch's last record
	acked bool
}

type input struct {
	log    *slog.Logger
	client clientConf
	topics []string
	group  string
	// joinGroup: the input is a member of group, which assigns its
	// partitions. Otherwise (no group, or group_membership false) it
	// assigns every partition of its topics itself (assign.go).
	joinGroup     bool
	startLatest   bool
	batchSize     int
	fetchMaxWait  time.Duration
	readCommitted bool
	commitPeriod  time.Duration
	// extraOpts are appended to the client options (tests: short group
	// session timeouts).
	extraOpts []kgo.Opt

	// Builders of the batch columns; only Read uses them.
	bValue, bKey *array.BinaryBuilder
	bTopic       *array.StringBuilder
	bPart        *array.Int32Builder
	bOffset      *array.Int64Builder
	bTime        *array.Int64Builder

	// mu guards the fields below. Acknowledgements arrive on other
	// goroutines, and group callbacks on kgo's. Lock order: mu before kgo's
	// own locks (MarkCommitOffsets is called under mu); kgo never calls
	// back into the input while it holds a lock the input waits for.
	mu     sync.Mutex
	cl     *kgo.Client
	cancel context.CancelFunc
	// gen counts Connects; acknowledgements and callbacks of an older
	// client are ignored (its batches are read again from the new one).
	gen     uint64
	seq     uint64         // sequence number of the next batch
	pending []pendingBatch // read, not yet acknowledged, in read order
	// frontier is the next offset of every partition after the
	// acknowledged prefix of what was read (or where reading started).
	frontier offsets
	// pos is the next offset of every partition after the last batch read:
	// what Batch.Pos encodes.
	pos offsets
	// seek holds positions to start at that are not applied yet: from
	// Seek, or from the frontier when a nack makes the input reconnect.
	seek offsets
	// owned is the set of partitions assigned to this group member.
	owned offsets
	// rewind is set by a nack: the next Read returns ErrNotConnected.
	rewind bool
	// closing is set while the client closes: the revoke callback then
	// commits but keeps the frontier, which the next Connect resumes from.
	closing   bool
	connected bool // Connect succeeded at least once

	// commitMu serializes CommitCheckpoint and guards the fields below:
	// the client it commits with (created on first use, closed by Close;
	// after Close a commit uses a client of its own).
	commitMu     sync.Mutex
	commitCl     *kgo.Client
	commitCancel context.CancelFunc
	closed       bool
}

func newInput(conf *component.Config, res component.Resources) (component.Input, error) {
	cc, err := parseClientConf(conf)
	if err != nil {
		return nil, err
	}
	in := &input{
		log:           loggerOf(res),
		client:        cc,
		topics:        conf.StringList(inFieldTopics),
		group:         conf.String(inFieldConsumerGroup),
		joinGroup:     conf.String(inFieldConsumerGroup) != "" && conf.Bool(inFieldGroupMembership),
		startLatest:   conf.Bool(inFieldStartFromLatest),
		batchSize:     conf.Int(inFieldBatchSize),
		fetchMaxWait:  conf.Duration(inFieldFetchMaxWait),
		readCommitted: conf.String(inFieldIsolationLevel) != readUncommitted,
		commitPeriod:  conf.Duration(inFieldCommitPeriod),
		frontier:      offsets{},
		pos:           offsets{},
		seek:          offsets{},
		owned:         offsets{},
	}
	if len(in.topics) == 0 {
		return nil, conf.Errorf(inFieldTopics, "at least one topic is required")
	}
	seen := map[string]bool{}
	for _, t := range in.topics {
		if t == "" {
			return nil, conf.Errorf(inFieldTopics, "empty topic name")
		}
		if seen[t] {
			return nil, conf.Errorf(inFieldTopics, "topic %q listed twice", t)
		}
		seen[t] = true
	}
	if in.batchSize < 1 {
		return nil, conf.Errorf(inFieldBatchSize, "must be at least 1, got %d", in.batchSize)
	}
	if in.fetchMaxWait < 10*time.Millisecond {
		return nil, conf.Errorf(inFieldFetchMaxWait, "must be at least 10ms, got %v", in.fetchMaxWait)
	}
	if in.commitPeriod == 0 {
		in.commitPeriod = time.Second
	}
	if in.commitPeriod < 100*time.Millisecond {
		return nil, conf.Errorf(inFieldCommitPeriod, "must be at least 100ms, got %v", in.commitPeriod)
	}
	if l := conf.String(inFieldIsolationLevel); l != "" && l != readCommitted && l != readUncommitted {
		return nil, conf.Errorf(inFieldIsolationLevel, "unknown isolation level %q", l)
	}
	in.bValue = array.NewBinaryBuilder(message.Alloc, arrow.BinaryTypes.Binary)
	in.bKey = array.NewBinaryBuilder(message.Alloc, arrow.BinaryTypes.Binary)
	in.bTopic = array.NewStringBuilder(message.Alloc)
	in.bPart = array.NewInt32Builder(message.Alloc)
	in.bOffset = array.NewInt64Builder(message.Alloc)
	in.bTime = array.NewInt64Builder(message.Alloc)
	return in, nil
}

// Seek makes the next Connect start every partition named in pos at its
// offset. Partitions pos does not name start at the group's committed
// offset, else per start_from_latest. As a group member the positions are
// applied when the group assigns the partitions to this member (the first
// time only); partitions assigned to other members keep their committed
// offsets. Without membership every partition is this input's, so pos
// decides for all it names.
func (in *input) Seek(pos []byte) error {
	o, err := parsePos(pos)
	if err != nil {
		return fmt.Errorf("kafka input: invalid position %q: %w", pos, err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	in.seek = o
	in.frontier = offsets{}
	return nil
}

// Connect starts a client. Called again (after a nack, or when Read
// reported a closed client) it first closes the old client, committing what
// was acknowledged, and starts the new one at the acknowledged prefix.
func (in *input) Connect(ctx context.Context) error {
	in.mu.Lock()
	old := in.cl != nil
	in.mu.Unlock()
	if old {
		if err := in.closeClient(ctx); err != nil {
			in.log.Warn("kafka input: closing the previous client", "error", err)
		}
	}

	in.mu.Lock()
	if in.connected {
		// Resume at the acknowledged prefix: all of it without a group,
		// the partitions this member still owns with one (the others
		// resume at their committed offsets, wherever the group assigns
		// them).
		for t, ps := range in.frontier {
			for p, off := range ps {
				if _, own := in.owned.get(t, p); !in.joinGroup || own {
					in.seek.set(t, p, off)
				}
			}
		}
	}
	in.frontier = offsets{}
	in.owned = offsets{}
	in.pending = nil
	in.rewind = false
	in.gen++
	gen := in.gen
	seek := in.seek.clone()
	in.mu.Unlock()

	opts, err := in.client.opts(in.log)
	if err != nil {
		return fmt.Errorf("kafka input: %w", err)
	}
	opts = append(opts, kgo.FetchMaxWait(in.fetchMaxWait))
	if in.readCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	} else {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	}

	var start offsets
	if !in.joinGroup {
		parts, resolved, err := in.assign(ctx, opts, seek)
		if err != nil {
			return err
		}
		start = resolved
		opts = append(opts, kgo.ConsumePartitions(parts))
	} else {
		opts = append(opts, in.groupOpts(gen)...)
	}
	opts = append(opts, in.extraOpts...)

	cl, cancel, err := newClient(opts)
	if err != nil {
		return fmt.Errorf("kafka input: invalid client options: %w", err)
	}
	if in.joinGroup {
		if err := cl.Ping(ctx); err != nil {
			closeClient(ctx, cl, cancel)
			return fmt.Errorf("kafka input: connect to brokers %s: %w", in.client.brokerList(), err)
		}
	}

	in.mu.Lock()
	in.cl, in.cancel = cl, cancel
	if !in.joinGroup {
		in.seek = offsets{}
		in.frontier = start
		in.pos = start.clone()
	} else {
		in.pos = seek.clone()
	}
	in.connected = true
	in.mu.Unlock()
	return nil
}

// groupOpts are the consumer group options of client generation gen.
//
// Offsets: AutoCommitMarks makes kgo commit only what the input marks — the
// acknowledged prefix — every commit_period and, from onRevoked, before
// partitions move; kgo ignores marks for partitions the member does not own,
// so a late acknowledgement cannot move another member's offset.
//
// Positions: AdjustFetchOffsetsFn replaces the committed offsets kgo fetched
// for newly assigned partitions with the Seek positions. (SetOffsets from
// OnPartitionsAssigned would not do: it runs before those offsets are
// fetched, and SetOffsets skips partitions not yet consumed.)
func (in *input) groupOpts(gen uint64) []kgo.Opt {
	start := kgo.NewOffset().AtStart()
	if in.startLatest {
		start = kgo.NewOffset().AtEnd()
	}
	return []kgo.Opt{
		kgo.ConsumerGroup(in.group),
		kgo.ConsumeTopics(in.topics...),
		kgo.ConsumeStartOffset(start),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(in.commitPeriod),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			in.mu.Lock()
			defer in.mu.Unlock()
			if gen != in.gen {
				return
			}
			for t, ps := range assigned {
				for _, p := range ps {
					in.owned.set(t, p, 0)
				}
			}
		}),
		kgo.AdjustFetchOffsetsFn(func(_ context.Context, fetched map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			in.mu.Lock()
			defer in.mu.Unlock()
			if gen != in.gen {
				return fetched, nil
			}
			for t, ps := range fetched {
				for p := range ps {
					off, ok := in.seek.get(t, p)
					if !ok {
						continue
					}
					ps[p] = kgo.NewOffset().At(off).WithEpoch(-1)
					in.seek.del(t, p)
					in.frontier.set(t, p, off)
					in.pos.set(t, p, off)
				}
			}
			return fetched, nil
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			// Commit what was acknowledged before the partitions move.
			if err := cl.CommitMarkedOffsets(ctx); err != nil {
				in.log.Warn("kafka input: commit offsets before rebalance", "group", in.group, "error", err)
			}
			in.forget(gen, revoked)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			in.forget(gen, lost)
		}),
	}
}

// forget drops partitions that left this member: nothing more is committed
// or positioned for them (their records still in flight are acknowledged
// without effect; the new owner reads them again).
func (in *input) forget(gen uint64, parts map[string][]int32) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if gen != in.gen || in.closing {
		return
	}
	for t, ps := range parts {
		for _, p := range ps {
			in.owned.del(t, p)
			in.frontier.del(t, p)
			in.pos.del(t, p)
			for i := range in.pending {
				if m := in.pending[i].next[t]; m != nil {
					delete(m, p)
				}
			}
		}
	}
}

// Read returns the records of the next poll, at most batch_size.
func (in *input) Read(ctx context.Context) (*message.Batch, message.AckFunc, error) {
	in.mu.Lock()
	cl, rewind := in.cl, in.rewind
	in.mu.Unlock()
	if cl == nil {
		return nil, nil, fmt.Errorf("kafka input: %w", component.ErrNotConnected)
	}
	if rewind {
		return nil, nil, fmt.Errorf("kafka input: a batch was not delivered; reading again from the last acknowledged offsets: %w",
			component.ErrNotConnected)
	}
	for {
		fetches := cl.PollRecords(ctx, in.batchSize)
		n := fetches.NumRecords()
		if err := in.fetchErr(ctx, fetches, n > 0); err != nil {
			return nil, nil, err
		}
		if n > 0 {
			b, ack := in.batch(fetches, n)
			if b != nil {
				return b, ack, nil
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, nil, fmt.Errorf("kafka input: read from %s: %w", in.client.brokerList(), err)
		}
	}
}

// fetchErr turns the errors of a poll into Read's error. Errors that come
// with records are logged (kgo keeps consuming those partitions).
func (in *input) fetchErr(ctx context.Context, fetches kgo.Fetches, haveRecords bool) error {
	var first error
	for _, fe := range fetches.Errors() {
		switch {
		case errors.Is(fe.Err, kgo.ErrClientClosed):
			return fmt.Errorf("kafka input: %w: %w", component.ErrNotConnected, fe.Err)
		case ctx.Err() != nil && (errors.Is(fe.Err, context.Canceled) || errors.Is(fe.Err, context.DeadlineExceeded)):
			if !haveRecords {
				return fmt.Errorf("kafka input: read from %s: %w", in.client.brokerList(), ctx.Err())
			}
		case errors.As(fe.Err, new(*kgo.ErrDataLoss)):
			// kgo already moved on (see ConsumeResetOffset); say so.
			in.log.Warn("kafka input: data loss", "topic", fe.Topic, "partition", fe.Partition, "error", fe.Err)
		default:
			err := fmt.Errorf("kafka input: fetch topic %s partition %d from %s: %w", fe.Topic, fe.Partition, in.client.brokerList(), fe.Err)
			if haveRecords {
				in.log.Warn("kafka input: fetch error", "topic", fe.Topic, "partition", fe.Partition, "error", fe.Err)
			} else if first == nil {
				first = err
			}
		}
	}
	return first
}

// batch turns polled records into a batch and queues it for
// acknowledgement. It returns a nil batch when every record belonged to a
// partition this member lost meanwhile.
func (in *input) batch(fetches kgo.Fetches, n int) (*message.Batch, message.AckFunc) {
	in.mu.Lock()
	gen, seq := in.gen, in.seq
	next := make(map[string]map[int32]kgo.EpochOffset)
	var parts []kgo.FetchTopicPartition
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		if in.joinGroup {
			if _, own := in.owned.get(p.Topic, p.Partition); !own {
				return // revoked between the poll and now
			}
		}
		last := p.Records[len(p.Records)-1]
		m := next[p.Topic]
		if m == nil {
			m = make(map[int32]kgo.EpochOffset)
			next[p.Topic] = m
		}
		m[p.Partition] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
		in.pos.set(p.Topic, p.Partition, last.Offset+1)
		parts = append(parts, p)
	})
	if len(parts) == 0 {
		in.mu.Unlock()
		return nil, nil
	}
	in.seq++
	in.pending = append(in.pending, pendingBatch{seq: seq, next: next})
	pos := in.pos.marshal()
	in.mu.Unlock()

	valueBytes, keyBytes := 0, 0
	for _, p := range parts {
		for _, r := range p.Records {
			valueBytes += len(r.Value)
			keyBytes += len(r.Key)
		}
	}
	in.bValue.Reserve(n)
	in.bValue.ReserveData(valueBytes)
	in.bKey.Reserve(n)
	in.bKey.ReserveData(keyBytes)
	in.bTopic.Reserve(n)
	in.bPart.Reserve(n)
	in.bOffset.Reserve(n)
	in.bTime.Reserve(n)
	rows := 0
	for _, p := range parts {
		for _, r := range p.Records {
			if r.Value == nil {
				in.bValue.AppendNull()
			} else {
				in.bValue.Append(r.Value)
			}
			if r.Key == nil {
				in.bKey.AppendNull()
			} else {
				in.bKey.Append(r.Key)
			}
			in.bTopic.Append(r.Topic)
			in.bPart.UnsafeAppend(r.Partition)
			in.bOffset.UnsafeAppend(r.Offset)
			in.bTime.UnsafeAppend(r.Timestamp.UnixMilli())
			rows++
		}
	}
	cols := []arrow.Array{in.bValue.NewArray(), in.bKey.NewArray(), in.bTopic.NewArray(),
		in.bPart.NewArray(), in.bOffset.NewArray(), in.bTime.NewArray()}
	b := message.New(array.NewRecordBatch(inputSchema, cols, int64(rows)))
	b.Pos = pos
	return b, func(_ context.Context, err error) error {
		in.ack(gen, seq, err)
		return nil
	}
}

// ack records the outcome of batch seq of client generation gen and
// advances the acknowledged prefix.
func (in *input) ack(gen, seq uint64, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if gen != in.gen || len(in.pending) == 0 || seq < in.pending[0].seq {
		return // a batch of an older client: it is read again anyway
	}
	i := int(seq - in.pending[0].seq)
	if i >= len(in.pending) {
		return
	}
	if err != nil {
		if !in.rewind {
			in.log.Warn("kafka input: batch not delivered; it will be read again", "error", err)
		}
		in.rewind = true
		return
	}
	in.pending[i].acked = true
	var marks map[string]map[int32]kgo.EpochOffset
	for len(in.pending) > 0 && in.pending[0].acked {
		for t, ps := range in.pending[0].next {
			for p, eo := range ps {
				in.frontier.set(t, p, eo.Offset)
				if !in.joinGroup {
					continue
				}
				if marks == nil {
					marks = make(map[string]map[int32]kgo.EpochOffset)
				}
				m := marks[t]
				if m == nil {
					m = make(map[int32]kgo.EpochOffset)
					marks[t] = m
				}
				m[p] = eo
			}
		}
		in.pending[0] = pendingBatch{}
		in.pending = in.pending[1:]
	}
	if marks != nil && in.cl != nil {
		in.cl.MarkCommitOffsets(marks)
	}
}

// commit synchronously commits the acknowledged prefix (group member).
func (in *input) commit(ctx context.Context) error {
	in.mu.Lock()
	cl := in.cl
	in.mu.Unlock()
	if cl == nil || !in.joinGroup {
		return nil
	}
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		return fmt.Errorf("kafka input: commit offsets of group %s at %s: %w", in.group, in.client.brokerList(), err)
	}
	return nil
}

// closeClient commits the acknowledged prefix and closes the client (which
// leaves the group). It keeps the input's positions for a later Connect.
func (in *input) closeClient(ctx context.Context) error {
	in.mu.Lock()
	cl, cancel := in.cl, in.cancel
	in.closing = true
	in.mu.Unlock()
	if cl == nil {
		in.mu.Lock()
		in.closing = false
		in.mu.Unlock()
		return nil
	}
	err := in.commit(ctx)
	closeClient(ctx, cl, cancel)
	in.mu.Lock()
	in.cl, in.cancel = nil, nil
	in.closing = false
	in.mu.Unlock()
	return err
}

// checkpointCommitter is what the checkpoint coordinator calls on an input
// once a checkpoint is complete (see CommitCheckpoint).
type checkpointCommitter interface {
	CommitCheckpoint(ctx context.Context, pos []byte) error
}

var _ checkpointCommitter = (*input)(nil)

// CommitCheckpoint commits pos, the input position stored in a completed
// checkpoint (a Batch.Pos of this input), as the consumer group's offsets:
// exactly those offsets, for the partitions pos names. It is for
// monitoring and lag tools, and for the start of a run without a
// checkpoint; a restore from a checkpoint starts at the checkpoint's
// position whatever the group holds.
//
// It commits only with a consumer_group and group_membership: false; a
// group member commits its acknowledged offsets itself, and without a group
// there is nothing to commit (both return nil). It is safe to call
// concurrently with Read, also before Connect and after Close; calls are
// serialized. Kafka accepts the commit only while the group has no active
// members.
func (in *input) CommitCheckpoint(ctx context.Context, pos []byte) error {
	if in.group == "" || in.joinGroup || len(pos) == 0 {
		return nil
	}
	o, err := parsePos(pos)
	if err != nil {
		return fmt.Errorf("kafka input: invalid position %q: %w", pos, err)
	}
	if len(o) == 0 {
		return nil
	}
	in.commitMu.Lock()
	defer in.commitMu.Unlock()
	cl := in.commitCl
	if cl == nil {
		opts, err := in.client.opts(in.log)
		if err != nil {
			return fmt.Errorf("kafka input: %w", err)
		}
		var cancel context.CancelFunc
		if cl, cancel, err = newClient(opts); err != nil {
			return fmt.Errorf("kafka input: invalid client options: %w", err)
		}
		if in.closed {
			defer closeClient(ctx, cl, cancel)
		} else {
			in.commitCl, in.commitCancel = cl, cancel
		}
	}
	if err := commitGroupOffsets(ctx, kadm.NewClient(cl), in.group, o); err != nil {
		return fmt.Errorf("kafka input: %w at %s", err, in.client.brokerList())
	}
	return nil
}

// Close commits the acknowledged offsets (group member) and closes the
// clients; ctx bounds how long it waits for the brokers.
func (in *input) Close(ctx context.Context) error {
	err := in.closeClient(ctx)
	in.commitMu.Lock()
	defer in.commitMu.Unlock()
	if in.commitCl != nil {
		closeClient(ctx, in.commitCl, in.commitCancel)
		in.commitCl, in.commitCancel = nil, nil
	}
	in.closed = true
	return err
}

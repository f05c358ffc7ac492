package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Self-assignment: an input without a consumer group, or with
// group_membership: false, reads every partition of its topics itself
// (kgo.ConsumePartitions), as Flink's KafkaSource does. There is no group
// membership, hence no rebalance, and no dead member can hold partitions
// (with kfake a member killed mid-rebalance may never time out). Positions
// live in checkpoints; the group, when there is one, only supplies the
// starting offsets of a run without a checkpoint and receives the offsets
// of every completed checkpoint (CommitCheckpoint), for lag tools.

// assign lists the partitions of the topics and returns the offset each
// starts at, resolved to a number so that every batch's position names
// every partition: its position from seek, else the group's committed
// offset (when there is a group), else the log start or end per
// start_from_latest. Partitions created later are picked up by the next
// Connect.
func (in *input) assign(ctx context.Context, opts []kgo.Opt, seek offsets) (map[string]map[int32]kgo.Offset, offsets, error) {
	admin, cancel, err := newClient(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("kafka input: invalid client options: %w", err)
	}
	defer closeClient(ctx, admin, cancel)
	if err := admin.Ping(ctx); err != nil {
		return nil, nil, fmt.Errorf("kafka input: connect to brokers %s: %w", in.client.brokerList(), err)
	}
	adm := kadm.NewClient(admin)
	var listed kadm.ListedOffsets
	switch {
	case !in.startLatest:
		listed, err = adm.ListStartOffsets(ctx, in.topics...)
	case in.readCommitted:
		listed, err = adm.ListCommittedOffsets(ctx, in.topics...) // the last stable offset
	default:
		listed, err = adm.ListEndOffsets(ctx, in.topics...)
	}
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("kafka input: list partitions of %v at %s: %w", in.topics, in.client.brokerList(), err)
	}
	committed := offsets{}
	if in.group != "" {
		if committed, err = fetchGroupOffsets(ctx, adm, in.group, in.topics); err != nil {
			return nil, nil, fmt.Errorf("kafka input: %w at %s", err, in.client.brokerList())
		}
	}
	parts := make(map[string]map[int32]kgo.Offset, len(in.topics))
	start := offsets{}
	var fromPos, fromGroup, fromLog int
	for _, t := range in.topics {
		if len(listed[t]) == 0 {
			return nil, nil, fmt.Errorf("kafka input: topic %s has no partitions at %s", t, in.client.brokerList())
		}
		ps := make(map[int32]kgo.Offset, len(listed[t]))
		for p, lo := range listed[t] {
			off := lo.Offset
			if s, ok := seek.get(t, p); ok {
				off = s
				fromPos++
			} else if c, ok := committed.get(t, p); ok {
				off = c
				fromGroup++
			} else {
				fromLog++
			}
			ps[p] = kgo.NewOffset().At(off)
			start.set(t, p, off)
		}
		parts[t] = ps
	}
	in.log.Info("kafka input: reading every partition itself", "topics", in.topics, "group", in.group,
		"from_checkpoint", fromPos, "from_group_offsets", fromGroup, "from_log", fromLog)
	return parts, start, nil
}

// fetchGroupOffsets returns the offsets group has committed for topics;
// partitions without a committed offset are absent.
func fetchGroupOffsets(ctx context.Context, adm *kadm.Client, group string, topics []string) (offsets, error) {
	resp, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return offsets{}, nil // a group nobody has used yet (Kafka answers with no offsets, kfake with this)
	}
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("fetch the committed offsets of group %s: %w", group, err)
	}
	want := make(map[string]bool, len(topics))
	for _, t := range topics {
		want[t] = true
	}
	o := offsets{}
	resp.Each(func(r kadm.OffsetResponse) {
		if want[r.Topic] && r.At >= 0 {
			o.set(r.Topic, r.Partition, r.At)
		}
	})
	return o, nil
}

// commitGroupOffsets commits exactly o as group's offsets, without being a
// member (generation -1). Kafka accepts that only while the group has no
// members.
func commitGroupOffsets(ctx context.Context, adm *kadm.Client, group string, o offsets) error {
	var os kadm.Offsets
	for t, ps := range o {
		for p, off := range ps {
			os.Add(kadm.Offset{Topic: t, Partition: p, At: off, LeaderEpoch: -1})
		}
	}
	resp, err := adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resp.Error()
	}
	if errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.IllegalGeneration) {
		err = fmt.Errorf("%w (the group has active members: a consumer that joined group %s, "+
			"such as a kafka input with group_membership: true, must leave it first)", err, group)
	}
	if err != nil {
		return fmt.Errorf("commit offsets of group %s: %w", group, err)
	}
	return nil
}

package message

import "fmt"

// Kind tells what an Event carries.
type Kind uint8

const (
	// KindData carries a Batch.
	KindData Kind = iota
	// KindBarrier marks checkpoint CheckpointID: everything before it in the
	// channel belongs to the checkpoint, everything after it does not.
	KindBarrier
	// KindWatermark says no event with an event time below Watermark
	// (epoch milliseconds) is expected any more.
	KindWatermark
	// KindEndOfStream says a bounded input is exhausted (or the pipeline is
	// stopping): operators flush and forward it, then stop.
	KindEndOfStream
)

func (k Kind) String() string {
	switch k {
	case KindData:
		return "data"
	case KindBarrier:
		return "barrier"
	case KindWatermark:
		return "watermark"
	case KindEndOfStream:
		return "end-of-stream"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is what travels on every channel of the dataflow: a data batch or a
// control event, in order.
type Event struct {
	Kind  Kind
	Batch *Batch // KindData
	// CheckpointID is the checkpoint of a barrier, or on the end of stream
	// the final checkpoint taken after it (0: none).
	CheckpointID uint64
	Watermark    int64 // KindWatermark, epoch milliseconds
	// Drain, on the end of stream, says that stateful processors emit
	// everything they hold (the input ended). Without it (a stop with
	// checkpoints) they keep it in the final checkpoint instead.
	Drain bool
	// Acks, on a data event, are acknowledgements that belong at this point
	// of the stream but have no batch to ride on (a processor dropped every
	// row). They are called after every earlier batch has been written.
	Acks []AckFunc
}

// Data wraps a batch in an event.
func Data(b *Batch) Event { return Event{Kind: KindData, Batch: b} }

// Barrier returns a checkpoint barrier event.
func Barrier(id uint64) Event { return Event{Kind: KindBarrier, CheckpointID: id} }

// Watermark returns a watermark event.
func Watermark(t int64) Event { return Event{Kind: KindWatermark, Watermark: t} }

// EndOfStream returns the end-of-stream event.
func EndOfStream() Event { return Event{Kind: KindEndOfStream} }

// IsControl reports whether the event is a control event.
func (e Event) IsControl() bool { return e.Kind != KindData }

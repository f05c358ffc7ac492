package engine

import (
	"github.com/weir-stream/weir/message"
)

// kindTick is the engine's own control event: a processing-time tick that
// makes timed flushers (the batch processor) emit what they hold. It
// travels like any control event so that order is kept.
const kindTick message.Kind = 200

// unit is what travels on the engine's channels: one input batch (or one
// control event) and, after the workers, everything derived from it.
type unit struct {
	kind message.Kind
	ctrl message.Event
	// batches are the data (before processing, the input's one batch;
	// afterwards the results, error batches included).
	batches []*message.Batch
	// acks belong to this point of the stream but ride on no batch.
	acks []message.AckFunc
	// start is when the input returned the batch (unix nanoseconds).
	start int64
}

func (u *unit) isControl() bool { return u.kind != message.KindData }

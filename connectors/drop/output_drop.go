// Package drop provides the drop output, which discards every batch: for
// benchmarks and for pipelines whose effect is their state or metrics.
package drop

import (
	"context"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

func dropSpec() component.Spec {
	return component.Spec{
		Name:     "drop",
		Summary:  "Discards every record (for benchmarks, or when only state and metrics matter).",
		Delivery: component.DeliveryNotDelivered,
		Example:  "output:\n  type: drop\n",
	}
}

func init() {
	component.RegisterOutput(dropSpec(), func(*component.Config, component.Resources) (component.Output, error) {
		return dropOutput{}, nil
	})
}

// dropOutput discards batches.
type dropOutput struct{}

var _ component.Output = dropOutput{}

// Connect does nothing.
func (dropOutput) Connect(context.Context) error { return nil }

// Write discards the batch.
func (dropOutput) Write(ctx context.Context, _ *message.Batch) error { return ctx.Err() }

// Close does nothing.
func (dropOutput) Close(context.Context) error { return nil }

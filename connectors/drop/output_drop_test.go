package drop

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDrop(t *testing.T) {
	r := component.Lookup(component.KindOutput, "drop")
	if r == nil {
		t.Fatal("drop output not registered")
	}
	if r.Spec.Delivery != component.DeliveryNotDelivered {
		t.Fatalf("delivery %q", r.Spec.Delivery)
	}
	out, err := r.NewOutput(component.NewConfig("test.yaml", "output", 1, "drop", nil, nil), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := out.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := out.Write(ctx, message.FromStrings("a", "b")); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

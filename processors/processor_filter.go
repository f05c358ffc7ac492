package processors

import (
	"context"
	"fmt"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/internal/rowexpr"
	"github.com/weir-stream/weir/message"
)

const (
	filterCondition = "condition"
)

func filterSpec() component.Spec {
	return component.Spec{
		Name:    "filter",
		Summary: "Keeps the rows for which a boolean expr-lang condition is true; a row whose condition fails or is not a bool goes to the error output.",
		Fields: []component.Field{
			{Name: filterCondition, Type: component.TypeExpr, Required: true,
				Description: "Boolean expression over the row's columns, content, meta and now()."},
		},
		Example: "pipeline:\n  processors:\n    - type: filter\n      condition: amount > 100 && meta.partition == 0\n",
	}
}

func init() {
	component.RegisterProcessor(filterSpec(), newFilter)
}

// filter keeps the rows whose condition is true. When every row passes
// the input batch itself is returned; a contiguous run of kept rows is a
// zero-copy slice.
type filter struct {
	prog *rowexpr.Program
	keep []int32
	fail rowFailures
}

func newFilter(conf *component.Config, _ component.Resources) (component.Processor, error) {
	src := conf.String(filterCondition)
	if src == "" {
		return nil, conf.Errorf(filterCondition, "must not be empty")
	}
	prog, err := rowexpr.Compile(src, rowexpr.ExpectBool())
	if err != nil {
		return nil, conf.Errorf(filterCondition, "%v", err)
	}
	return &filter{prog: prog}, nil
}

func (p *filter) Close(context.Context) error { return nil }

func (p *filter) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	n := b.NumRows()
	p.keep = p.keep[:0]
	p.fail.reset()
	for row := 0; row < n; row++ {
		ok, err := p.prog.EvalBool(b, row)
		switch {
		case err != nil:
			p.fail.add(row, "filter: "+err.Error())
		case ok:
			p.keep = append(p.keep, int32(row))
		}
	}
	bad, err := p.fail.errorBatch(b)
	if err != nil {
		return nil, fmt.Errorf("error batch: %w", err)
	}
	var good *message.Batch
	switch len(p.keep) {
	case 0:
	case n:
		good = b
	default:
		if good, err = message.Take(b, p.keep); err != nil {
			return nil, err
		}
	}
	return results(good, bad), nil
}

package processors

import (
	"context"
	"fmt"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/internal/rowexpr"
	"github.com/weir-stream/weir/message"
)

const (
	mappingColumns = "columns"
	mappingDrop    = "drop"
)

func mappingSpec() component.Spec {
	return component.Spec{
		Name: "mapping",
		Summary: "Adds or replaces columns with expr-lang expressions evaluated per row, and drops columns. " +
			"Expressions see every column by name, content (the raw __value__ as a string), meta (the __meta_* columns) and now() (epoch ms).",
		Fields: []component.Field{
			{Name: mappingColumns, Type: component.TypeMap, Elem: component.TypeExpr,
				Description: "Column name to expression; every expression sees the input row (not the other new columns). The type comes from the values: int64, float64, string or bool (mixed types give string)."},
			{Name: mappingDrop, Type: component.TypeList, Elem: component.TypeString,
				Description: "Columns to remove (after the expressions ran)."},
		},
		Example: "pipeline:\n  processors:\n    - type: mapping\n      columns:\n        total: price * quantity\n" +
			"        user: lower(user)\n        partition: meta.partition\n      drop: [price]\n",
	}
}

func init() {
	component.RegisterProcessor(mappingSpec(), newMapping)
}

// mapping evaluates one expression per output column over every row of a
// batch. New columns are added in name order after the input's columns; a
// column that exists is replaced in place. A row on which any expression
// fails goes, with its original columns, to an error batch.
type mapping struct {
	names []string // sorted
	progs []*rowexpr.Program
	drop  map[string]bool

	failed []string // per row of the current batch: the first error, or ""
	fail   rowFailures
	good   []int32
}

func newMapping(conf *component.Config, _ component.Resources) (component.Processor, error) {
	p := &mapping{drop: map[string]bool{}}
	exprs := map[string]string{}
	if conf.Has(mappingColumns) {
		exprs = conf.StringMap(mappingColumns)
	}
	for name := range exprs {
		p.names = append(p.names, name)
	}
	sort.Strings(p.names)
	for _, name := range p.names {
		if name == "" {
			return nil, conf.Errorf(mappingColumns, "column name must not be empty")
		}
		prog, err := rowexpr.Compile(exprs[name])
		if err != nil {
			return nil, conf.Errorf(mappingColumns+"."+name, "%v", err)
		}
		p.progs = append(p.progs, prog)
	}
	if conf.Has(mappingDrop) {
		for _, d := range conf.StringList(mappingDrop) {
			if _, ok := exprs[d]; ok {
				return nil, conf.Errorf(mappingDrop, "column %q is both computed and dropped", d)
			}
			p.drop[d] = true
		}
	}
	if len(p.names) == 0 && len(p.drop) == 0 {
		return nil, conf.Errorf("", "set %s or %s", mappingColumns, mappingDrop)
	}
	return p, nil
}

func (p *mapping) Close(context.Context) error { return nil }

func (p *mapping) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	n := b.NumRows()
	if cap(p.failed) < n {
		p.failed = make([]string, n)
	}
	p.failed = p.failed[:n]
	clear(p.failed)
	nfailed := 0

	cols := make([]arrow.Array, len(p.progs))
	for i, prog := range p.progs {
		name := p.names[i]
		cols[i] = prog.EvalColumnEach(b, func(row int, err error) {
			if p.failed[row] == "" {
				p.failed[row] = fmt.Sprintf("mapping: column %s: %v", name, err)
				nfailed++
			}
		})
	}
	rec := replaceColumns(b.Record(), p.names, cols, p.drop)
	if nfailed == 0 {
		out := message.New(rec)
		out.Pos = b.Pos
		return []*message.Batch{out}, nil
	}

	p.fail.reset()
	for row, msg := range p.failed {
		if msg != "" {
			p.fail.add(row, msg)
		}
	}
	bad, err := p.fail.errorBatch(b)
	if err != nil {
		return nil, fmt.Errorf("error batch: %w", err)
	}
	var good *message.Batch
	if nfailed < n {
		p.good = p.fail.goodRows(p.good[:0], n)
		mapped := message.New(rec)
		mapped.Pos = b.Pos
		if good, err = message.Take(mapped, p.good); err != nil {
			return nil, err
		}
	}
	return results(good, bad), nil
}

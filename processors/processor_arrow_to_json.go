package processors

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

const (
	arrowToJSONFields = "fields"
)

func arrowToJSONSpec() component.Spec {
	return component.Spec{
		Name: "arrow_to_json",
		Summary: "Builds __value__ as one JSON object per row from the data columns (not __meta_*), " +
			"then drops those columns; metadata columns stay.",
		Fields: []component.Field{
			{Name: arrowToJSONFields, Type: component.TypeList, Elem: component.TypeString,
				Description: "Only these columns, in this order, go into the JSON (absent ones are skipped); default: every data column."},
		},
		Example: "pipeline:\n  processors:\n    - type: arrow_to_json\n      fields: [user, total]\n",
	}
}

func init() {
	component.RegisterProcessor(arrowToJSONSpec(), newArrowToJSON)
}

// arrowToJSON encodes rows as JSON objects (message.AppendJSONRow) into a
// binary __value__ column, the first column of its output, followed by
// the input's metadata columns.
type arrowToJSON struct {
	fields      []string // nil: every data column
	bytesPerRow int      // estimate from the last batch, to size the buffer
}

func newArrowToJSON(conf *component.Config, _ component.Resources) (component.Processor, error) {
	p := &arrowToJSON{bytesPerRow: 64}
	if conf.Has(arrowToJSONFields) {
		p.fields = conf.StringList(arrowToJSONFields)
		if len(p.fields) == 0 {
			return nil, conf.Errorf(arrowToJSONFields, "must list at least one column when set")
		}
	}
	return p, nil
}

func (p *arrowToJSON) Close(context.Context) error { return nil }

func isDataColumn(name string) bool {
	return name != message.ValueColumn && !strings.HasPrefix(name, message.MetaPrefix)
}

func (p *arrowToJSON) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	rec := b.Record()
	schema := rec.Schema()
	var cols []int
	if p.fields == nil {
		for i, f := range schema.Fields() {
			if isDataColumn(f.Name) {
				cols = append(cols, i)
			}
		}
	} else {
		for _, name := range p.fields {
			if idx := schema.FieldIndices(name); len(idx) > 0 {
				cols = append(cols, idx[0])
			}
		}
	}

	n := int(rec.NumRows())
	offsets := make([]int32, n+1)
	data := make([]byte, 0, n*p.bytesPerRow+64)
	for row := 0; row < n; row++ {
		data = message.AppendJSONRow(data, rec, cols, row)
		offsets[row+1] = int32(len(data))
	}
	if len(data) > math.MaxInt32 {
		return nil, fmt.Errorf("%d bytes of JSON in one batch: more than a binary column holds; use smaller batches", len(data))
	}
	if n > 0 {
		p.bytesPerRow = len(data)/n + 8
	}
	value := message.NewBinaryArray(arrow.BinaryTypes.Binary, offsets, data, nil, 0)

	fields := []arrow.Field{{Name: message.ValueColumn, Type: arrow.BinaryTypes.Binary, Nullable: true}}
	out := []arrow.Array{value}
	for i, f := range schema.Fields() {
		if strings.HasPrefix(f.Name, message.MetaPrefix) {
			fields = append(fields, f)
			out = append(out, rec.Column(i))
		}
	}
	res := message.New(array.NewRecordBatch(arrow.NewSchema(fields, nil), out, int64(n)))
	res.Pos = b.Pos
	return []*message.Batch{res}, nil
}

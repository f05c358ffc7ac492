package processors

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"regexp"
	"unicode"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

const (
	splitField       = "field"
	splitSeparator   = "separator"
	splitRegex       = "regex"
	splitOutputField = "output_field"
	splitKeepEmpty   = "keep_empty"
)

func splitSpec() component.Spec {
	return component.Spec{
		Name: "split",
		Summary: "Splits a text column into one row per token (by whitespace, a separator or a regex); " +
			"the row's other columns are repeated on every token.",
		Fields: []component.Field{
			{Name: splitField, Type: component.TypeString, Default: message.ValueColumn,
				Description: "Binary or string column to split."},
			{Name: splitSeparator, Type: component.TypeString, Default: "",
				Description: "Separator string; empty splits on runs of whitespace (like strings.Fields)."},
			{Name: splitRegex, Type: component.TypeString, Default: "",
				Description: "Split on matches of this regular expression instead (not with separator)."},
			{Name: splitOutputField, Type: component.TypeString, Default: "",
				Description: "Column for the tokens; empty replaces field. Otherwise field is kept (repeated)."},
			{Name: splitKeepEmpty, Type: component.TypeBool, Default: false,
				Description: "Keep empty tokens (between adjacent separators, at the ends, or of an empty value)."},
		},
		Example: "pipeline:\n  processors:\n    - type: split          # one row per word of __value__\n" +
			"    - type: split\n      field: tags\n      separator: \",\"\n      output_field: tag\n",
	}
}

func init() {
	component.RegisterProcessor(splitSpec(), newSplit)
}

// split emits one row per token of a text column. Tokens are the text
// between separators (a run of Unicode whitespace by default, a literal
// separator, or regex matches, as regexp.Split); empty tokens are dropped
// unless keep_empty. A null value or one without tokens emits no row.
//
// The token column is built in one pass into one data buffer with no
// allocation per token; the other columns are gathered with the token's
// parent row (a zero-copy slice when every row has exactly one token).
type split struct {
	field     string
	out       string
	sep       []byte
	re        *regexp.Regexp
	keepEmpty bool

	// Reused across batches.
	parents []int32
	offsets []int32
}

func newSplit(conf *component.Config, _ component.Resources) (component.Processor, error) {
	p := &split{
		field:     conf.String(splitField),
		out:       conf.String(splitOutputField),
		sep:       []byte(conf.String(splitSeparator)),
		keepEmpty: conf.Bool(splitKeepEmpty),
	}
	if p.field == "" {
		return nil, conf.Errorf(splitField, "must not be empty")
	}
	if p.out == "" {
		p.out = p.field
	}
	if re := conf.String(splitRegex); re != "" {
		if len(p.sep) > 0 {
			return nil, conf.Errorf(splitRegex, "set either separator or regex, not both")
		}
		var err error
		if p.re, err = regexp.Compile(re); err != nil {
			return nil, conf.Errorf(splitRegex, "invalid regular expression: %v", err)
		}
	}
	return p, nil
}

func (p *split) Close(context.Context) error { return nil }

func (p *split) Process(_ context.Context, b *message.Batch) ([]*message.Batch, error) {
	col := b.Column(p.field)
	if col == nil {
		return nil, fmt.Errorf("no column %q", p.field)
	}
	vals := message.AsBinary(col)
	if vals == nil {
		return nil, fmt.Errorf("column %q is %s, not binary or string", p.field, col.DataType())
	}
	total := vals.TotalBytes()
	if total > math.MaxInt32 {
		return nil, fmt.Errorf("column %q holds %d bytes: more than a binary column holds; use smaller batches", p.field, total)
	}
	n := vals.Len()
	data := make([]byte, 0, total)
	p.parents = p.parents[:0]
	p.offsets = append(p.offsets[:0], 0)
	for r := 0; r < n; r++ {
		if vals.IsNull(r) {
			continue
		}
		v := vals.Bytes(r)
		switch {
		case p.re != nil:
			data = p.splitRegex(data, v, int32(r))
		case len(p.sep) > 0:
			data = p.splitSeparator(data, v, int32(r))
		default:
			data = p.splitWhitespace(data, v, int32(r))
		}
	}
	if len(p.parents) == 0 {
		return nil, nil
	}

	dt := arrow.DataType(arrow.BinaryTypes.Binary)
	if id := col.DataType().ID(); id == arrow.STRING || id == arrow.LARGE_STRING {
		dt = arrow.BinaryTypes.String
	}
	// The offsets and parents escape into the batch: copy the reused ones.
	tokens := message.NewBinaryArray(dt, append([]int32(nil), p.offsets...), data, nil, 0)

	rec := b.Record()
	parents := p.parents
	copied := false
	fields := make([]arrow.Field, 0, rec.NumCols()+1)
	cols := make([]arrow.Array, 0, rec.NumCols()+1)
	replaced := false
	for i, f := range rec.Schema().Fields() {
		if f.Name == p.out {
			fields = append(fields, arrow.Field{Name: p.out, Type: dt, Nullable: true})
			cols = append(cols, tokens)
			replaced = true
			continue
		}
		if _, ok := message.Contiguous(parents); !ok && !copied {
			// The other columns are gathered by parents, which may escape
			// into them: copy the reused slice (only when there are any).
			parents, copied = append([]int32(nil), parents...), true
		}
		c, err := message.TakeColumn(rec.Column(i), parents)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", f.Name, err)
		}
		fields = append(fields, f)
		cols = append(cols, c)
	}
	if !replaced {
		fields = append(fields, arrow.Field{Name: p.out, Type: dt, Nullable: true})
		cols = append(cols, tokens)
	}
	res := message.New(array.NewRecordBatch(arrow.NewSchema(fields, nil), cols, int64(len(parents))))
	res.Pos = b.Pos
	return []*message.Batch{res}, nil
}

// emit appends one token of row r.
func (p *split) emit(data, tok []byte, r int32) []byte {
	if len(tok) == 0 && !p.keepEmpty {
		return data
	}
	data = append(data, tok...)
	p.offsets = append(p.offsets, int32(len(data)))
	p.parents = append(p.parents, r)
	return data
}

// asciiSpace marks the ASCII bytes unicode.IsSpace accepts.
var asciiSpace = [256]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// splitWhitespace splits v on runs of Unicode whitespace.
func (p *split) splitWhitespace(data, v []byte, r int32) []byte {
	start := 0 // start of the current token
	for i := 0; i < len(v); {
		c := v[i]
		size := 1
		var space bool
		if c < utf8.RuneSelf {
			space = asciiSpace[c]
		} else {
			var rn rune
			rn, size = utf8.DecodeRune(v[i:])
			space = unicode.IsSpace(rn)
		}
		if !space {
			i += size
			continue
		}
		data = p.emit(data, v[start:i], r)
		// Skip the rest of the whitespace run.
		i += size
		for i < len(v) {
			c := v[i]
			if c < utf8.RuneSelf {
				if !asciiSpace[c] {
					break
				}
				i++
				continue
			}
			rn, size := utf8.DecodeRune(v[i:])
			if !unicode.IsSpace(rn) {
				break
			}
			i += size
		}
		start = i
	}
	return p.emit(data, v[start:], r)
}

func (p *split) splitSeparator(data, v []byte, r int32) []byte {
	for {
		i := bytes.Index(v, p.sep)
		if i < 0 {
			return p.emit(data, v, r)
		}
		data = p.emit(data, v[:i], r)
		v = v[i+len(p.sep):]
	}
}

// splitRegex splits like regexp.Regexp.Split(v, -1).
func (p *split) splitRegex(data, v []byte, r int32) []byte {
	if len(v) == 0 {
		return p.emit(data, v, r)
	}
	beg, end := 0, 0
	for _, m := range p.re.FindAllIndex(v, -1) {
		end = m[0]
		if m[1] != 0 {
			data = p.emit(data, v[beg:end], r)
		}
		beg = m[1]
	}
	if end != len(v) {
		data = p.emit(data, v[beg:], r)
	}
	return data
}

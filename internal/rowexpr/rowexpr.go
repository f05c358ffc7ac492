// Package rowexpr evaluates expr-lang expressions (github.com/expr-lang/expr)
// against the rows of a message.Batch.
//
// Variables an expression sees, per row:
//   - every column by its name, as a Go value: int64 (all integer types;
//     uint64 above MaxInt64 becomes float64), float64 (float32 too), string
//     (string and binary columns), bool, int64 epoch milliseconds
//     (timestamps), nil (null or missing column); other types read as their
//     text (lists and structs as JSON text);
//   - content: the __value__ column as a string (raw payload);
//   - meta: a map of the __meta_* columns without the prefix, e.g.
//     meta.partition, meta.key, meta.offset;
//   - $env["any name"] reaches a column whose name is not an identifier.
//
// A column named content or meta is shadowed by these variables. A column
// the batch does not have reads as nil (no error), so expressions work on
// batches whose schema varies.
//
// Functions: every expr builtin (lower, upper, trim, split, len, int,
// float, string, fromJSON, toJSON, date, duration, ...), plus
//   - now(): the current time as int64 epoch milliseconds (this replaces
//     expr's builtin now(), which returns a time.Time).
//
// Invariants and performance:
//   - A Program owns one environment map and one VM, reused for every row:
//     only the columns the expression references are written, once per row,
//     and columns are resolved once per batch. No map is built per row.
//   - String values alias the batch's memory: a caller that keeps one past
//     the batch must copy it (strings.Clone).
//   - A Program is not safe for concurrent use; Clone gives an independent
//     one that shares the compiled bytecode.
package rowexpr

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/weir-stream/weir/message"
)

// Special variable names.
const (
	// VarContent is the raw payload (__value__) as a string.
	VarContent = "content"
	// VarMeta is the map of metadata columns without their __meta_ prefix.
	VarMeta = "meta"
)

// Option configures Compile.
type Option func(*options)

type options struct {
	clock    func() time.Time
	wantBool bool
	funcs    []expr.Option
}

// WithClock sets the clock now() reads (tests). Default time.Now.
func WithClock(clock func() time.Time) Option {
	return func(o *options) { o.clock = clock }
}

// ExpectBool makes Compile reject an expression whose type is known at
// compile time and is not bool (e.g. "1 + 2"). Types that depend on column
// values are checked per row by EvalBool.
func ExpectBool() Option {
	return func(o *options) { o.wantBool = true }
}

// WithFunction adds a function callable from expressions (see expr.Function
// for types).
func WithFunction(name string, fn func(params ...any) (any, error), types ...any) Option {
	return func(o *options) { o.funcs = append(o.funcs, expr.Function(name, fn, types...)) }
}

// Program is a compiled expression with its reusable evaluation state.
type Program struct {
	src     string
	prog    *vm.Program
	names   []string // referenced column names (without content/meta)
	metaAll bool     // meta used as a whole: load every meta column
	metaKey []string // meta keys referenced as meta.key / meta["key"]
	content bool     // content referenced
	envAll  bool     // $env used as a whole: load every column
	ident   string   // the whole expression is this one column name

	// Evaluation state, reused for every row.
	machine vm.VM
	env     map[string]any
	meta    map[string]any
	rec     arrow.RecordBatch // the record binds were made for
	binds   []binding
	results []any
}

// RowError is the error of one row.
type RowError struct {
	Row int
	Err error
}

func (e *RowError) Error() string { return fmt.Sprintf("row %d: %v", e.Row, e.Err) }

func (e *RowError) Unwrap() error { return e.Err }

// Compile compiles src. Column names are resolved per batch at evaluation.
func Compile(src string, opts ...Option) (*Program, error) {
	o := options{clock: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if strings.TrimSpace(src) == "" {
		return nil, errors.New("empty expression")
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, conciseError(err, true)
	}
	p := &Program{src: src, env: map[string]any{}, meta: map[string]any{}}
	p.collect(tree.Node)

	clock := o.clock
	eopts := []expr.Option{
		expr.Env(map[string]any{}),
		expr.AllowUndefinedVariables(),
		expr.Function("now", func(...any) (any, error) {
			return clock().UnixMilli(), nil
		}, new(func() int64)),
	}
	eopts = append(eopts, o.funcs...)
	prog, err := expr.Compile(src, eopts...)
	if err != nil {
		return nil, conciseError(err, true)
	}
	if o.wantBool {
		if t := prog.Node().Type(); t != nil && t.Kind() != reflect.Interface && t.Kind() != reflect.Bool {
			return nil, fmt.Errorf("expression must be boolean, but its type is %s", t)
		}
	}
	p.prog = prog
	return p, nil
}

// collect records which columns and meta keys the expression references.
func (p *Program) collect(root ast.Node) {
	seen := map[string]bool{}
	metaUses, metaKeyed := 0, 0
	metaKeys := map[string]bool{}
	var walk func(n ast.Node)
	walk = func(n ast.Node) {
		switch n := n.(type) {
		case nil:
			return
		case *ast.IdentifierNode:
			switch n.Value {
			case VarMeta:
				metaUses++
			case VarContent:
				p.content = true
			case "$env":
				p.envAll = true
			default:
				seen[n.Value] = true
			}
			return
		case *ast.MemberNode:
			if id, ok := n.Node.(*ast.IdentifierNode); ok {
				if s, ok := n.Property.(*ast.StringNode); ok {
					switch id.Value {
					case VarMeta:
						metaKeyed++
						metaKeys[s.Value] = true
					case "$env":
						seen[s.Value] = true
						walk(n.Property)
						return
					}
				}
			}
		case *ast.CallNode:
			// Skip the callee name: it is a function, not a column.
			if _, ok := n.Callee.(*ast.IdentifierNode); !ok {
				walk(n.Callee)
			}
			for _, a := range n.Arguments {
				walk(a)
			}
			return
		case *ast.BuiltinNode:
			walk(n.Map)
		}
		forEachChild(n, walk)
	}
	walk(root)
	if metaUses > metaKeyed {
		p.metaAll = true
	}
	for k := range metaKeys {
		p.metaKey = append(p.metaKey, k)
	}
	for k := range seen {
		p.names = append(p.names, k)
	}
	sort.Strings(p.names)
	sort.Strings(p.metaKey)
	if id, ok := root.(*ast.IdentifierNode); ok && id.Value != VarMeta && id.Value != VarContent && id.Value != "$env" {
		p.ident = id.Value
	}
}

// forEachChild calls fn for each direct child of n.
func forEachChild(n ast.Node, fn func(ast.Node)) {
	var kids []*ast.Node
	switch n := n.(type) {
	case *ast.UnaryNode:
		kids = []*ast.Node{&n.Node}
	case *ast.BinaryNode:
		kids = []*ast.Node{&n.Left, &n.Right}
	case *ast.ChainNode:
		kids = []*ast.Node{&n.Node}
	case *ast.MemberNode:
		kids = []*ast.Node{&n.Node, &n.Property}
	case *ast.SliceNode:
		kids = []*ast.Node{&n.Node, &n.From, &n.To}
	case *ast.BuiltinNode:
		for i := range n.Arguments {
			kids = append(kids, &n.Arguments[i])
		}
	case *ast.PredicateNode:
		kids = []*ast.Node{&n.Node}
	case *ast.VariableDeclaratorNode:
		kids = []*ast.Node{&n.Value, &n.Expr}
	case *ast.SequenceNode:
		for i := range n.Nodes {
			kids = append(kids, &n.Nodes[i])
		}
	case *ast.ConditionalNode:
		kids = []*ast.Node{&n.Cond, &n.Exp1, &n.Exp2}
	case *ast.ArrayNode:
		for i := range n.Nodes {
			kids = append(kids, &n.Nodes[i])
		}
	case *ast.MapNode:
		for i := range n.Pairs {
			kids = append(kids, &n.Pairs[i])
		}
	case *ast.PairNode:
		kids = []*ast.Node{&n.Key, &n.Value}
	}
	for _, k := range kids {
		if *k != nil {
			fn(*k)
		}
	}
}

// Source returns the expression text.
func (p *Program) Source() string { return p.src }

// Columns returns the column names the expression references (not counting
// content and meta), sorted. With $env used as a whole it cannot know them.
func (p *Program) Columns() []string { return append([]string(nil), p.names...) }

// Clone returns an independent Program sharing the compiled bytecode, for
// use from another goroutine.
func (p *Program) Clone() *Program {
	c := &Program{
		src: p.src, prog: p.prog, names: p.names, metaAll: p.metaAll, metaKey: p.metaKey,
		content: p.content, envAll: p.envAll, ident: p.ident,
		env: map[string]any{}, meta: map[string]any{},
	}
	return c
}

// Eval evaluates the expression for one row of b. An integer result is
// returned as int64 (expr computes with int).
func (p *Program) Eval(b *message.Batch, row int) (any, error) {
	p.bind(b)
	p.load(row)
	v, err := p.machine.Run(p.prog, p.env)
	if err != nil {
		return nil, conciseError(err, false)
	}
	if i, ok := v.(int); ok {
		return int64(i), nil
	}
	return v, nil
}

// EvalBool evaluates a boolean expression for one row; a result that is
// not a bool is an error.
func (p *Program) EvalBool(b *message.Batch, row int) (bool, error) {
	v, err := p.Eval(b, row)
	if err != nil {
		return false, err
	}
	t, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("expression result is %s, not a bool", typeName(v))
	}
	return t, nil
}

// EvalColumn evaluates the expression for every row and returns the
// results as one Arrow column (see BuildColumn for the type). It stops at
// the first failing row and returns a *RowError.
func (p *Program) EvalColumn(b *message.Batch) (arrow.Array, error) {
	var first *RowError
	col := p.evalColumn(b, func(row int, err error) bool {
		first = &RowError{Row: row, Err: err}
		return false
	})
	if first != nil {
		return nil, first
	}
	return col, nil
}

// EvalColumnEach is EvalColumn that keeps going: a row that fails is null
// in the result and is reported to onErr (in row order).
func (p *Program) EvalColumnEach(b *message.Batch, onErr func(row int, err error)) arrow.Array {
	return p.evalColumn(b, func(row int, err error) bool {
		onErr(row, err)
		return true
	})
}

func (p *Program) evalColumn(b *message.Batch, onErr func(int, error) bool) arrow.Array {
	p.bind(b)
	if p.ident != "" {
		if col := b.Column(p.ident); col != nil {
			switch col.DataType().ID() {
			case arrow.INT64, arrow.FLOAT64, arrow.STRING, arrow.BOOL:
				col.Retain()
				return col
			}
		}
	}
	n := b.NumRows()
	if cap(p.results) < n {
		p.results = make([]any, n)
	}
	res := p.results[:n]
	for row := 0; row < n; row++ {
		p.load(row)
		v, err := p.machine.Run(p.prog, p.env)
		if err != nil {
			res[row] = nil
			if !onErr(row, conciseError(err, false)) {
				clear(res)
				return nil
			}
			continue
		}
		res[row] = v
	}
	col := BuildColumn(res)
	clear(res) // drop references to batch memory
	return col
}

// binding reads one referenced column.
type binding struct {
	key  string // key in env, or in meta when isMeta
	meta bool
	col  column
}

// bind resolves the referenced columns in b's record (once per record).
func (p *Program) bind(b *message.Batch) {
	rec := b.Record()
	if p.rec == rec && rec != nil {
		return
	}
	p.rec = rec
	p.binds = p.binds[:0]
	clear(p.env)
	clear(p.meta)
	schema := rec.Schema()
	if p.envAll {
		for i, f := range schema.Fields() {
			p.binds = append(p.binds, binding{key: f.Name, col: newColumn(rec.Column(i))})
		}
	} else {
		for _, name := range p.names {
			if idx := schema.FieldIndices(name); len(idx) > 0 {
				p.binds = append(p.binds, binding{key: name, col: newColumn(rec.Column(idx[0]))})
			}
		}
	}
	if p.content {
		if idx := schema.FieldIndices(message.ValueColumn); len(idx) > 0 {
			p.binds = append(p.binds, binding{key: VarContent, col: newColumn(rec.Column(idx[0]))})
		}
	}
	if p.metaAll || len(p.metaKey) > 0 {
		p.env[VarMeta] = p.meta
		for i, f := range schema.Fields() {
			key, ok := strings.CutPrefix(f.Name, message.MetaPrefix)
			if !ok || (!p.metaAll && !containsSorted(p.metaKey, key)) {
				continue
			}
			p.binds = append(p.binds, binding{key: key, meta: true, col: newColumn(rec.Column(i))})
		}
	}
}

func containsSorted(s []string, v string) bool {
	i := sort.SearchStrings(s, v)
	return i < len(s) && s[i] == v
}

// load writes row's values of the bound columns into the environment.
func (p *Program) load(row int) {
	for i := range p.binds {
		bd := &p.binds[i]
		v := bd.col.value(row)
		if bd.meta {
			p.meta[bd.key] = v
		} else {
			p.env[bd.key] = v
		}
	}
}

type colKind uint8

const (
	kindOther colKind = iota
	kindNull
	kindInt64
	kindInt32
	kindInt16
	kindInt8
	kindUint64
	kindUint32
	kindUint16
	kindUint8
	kindFloat64
	kindFloat32
	kindBool
	kindBinary
	kindTimestamp
)

// column reads Go values out of an Arrow column without a type switch per
// value on the interface.
type column struct {
	kind  colKind
	arr   arrow.Array
	i64   []int64
	i32   []int32
	i16   []int16
	i8    []int8
	u64   []uint64
	u32   []uint32
	u16   []uint16
	u8    []uint8
	f64   []float64
	f32   []float32
	bools *array.Boolean
	bin   *message.BinaryColumn
	ts    []arrow.Timestamp
	tsDiv int64 // timestamps: divide by this to get milliseconds (or multiply when negative)
	buf   []byte
}

func newColumn(a arrow.Array) column {
	c := column{arr: a, kind: kindOther}
	switch t := a.(type) {
	case *array.Null:
		c.kind = kindNull
	case *array.Int64:
		c.kind, c.i64 = kindInt64, t.Int64Values()
	case *array.Int32:
		c.kind, c.i32 = kindInt32, t.Int32Values()
	case *array.Int16:
		c.kind, c.i16 = kindInt16, t.Int16Values()
	case *array.Int8:
		c.kind, c.i8 = kindInt8, t.Int8Values()
	case *array.Uint64:
		c.kind, c.u64 = kindUint64, t.Uint64Values()
	case *array.Uint32:
		c.kind, c.u32 = kindUint32, t.Uint32Values()
	case *array.Uint16:
		c.kind, c.u16 = kindUint16, t.Uint16Values()
	case *array.Uint8:
		c.kind, c.u8 = kindUint8, t.Uint8Values()
	case *array.Float64:
		c.kind, c.f64 = kindFloat64, t.Float64Values()
	case *array.Float32:
		c.kind, c.f32 = kindFloat32, t.Float32Values()
	case *array.Boolean:
		c.kind, c.bools = kindBool, t
	case *array.Timestamp:
		c.kind, c.ts = kindTimestamp, t.TimestampValues()
		switch t.DataType().(*arrow.TimestampType).Unit {
		case arrow.Second:
			c.tsDiv = -1000
		case arrow.Millisecond:
			c.tsDiv = 1
		case arrow.Microsecond:
			c.tsDiv = 1000
		case arrow.Nanosecond:
			c.tsDiv = 1000000
		}
	default:
		if bc := message.AsBinary(a); bc != nil {
			c.kind, c.bin = kindBinary, bc
		}
	}
	return c
}

func (c *column) value(i int) any {
	if c.arr.IsNull(i) {
		return nil
	}
	switch c.kind {
	case kindInt64:
		return c.i64[i]
	case kindInt32:
		return int64(c.i32[i])
	case kindInt16:
		return int64(c.i16[i])
	case kindInt8:
		return int64(c.i8[i])
	case kindUint64:
		if v := c.u64[i]; v <= math.MaxInt64 {
			return int64(v)
		}
		return float64(c.u64[i])
	case kindUint32:
		return int64(c.u32[i])
	case kindUint16:
		return int64(c.u16[i])
	case kindUint8:
		return int64(c.u8[i])
	case kindFloat64:
		return c.f64[i]
	case kindFloat32:
		return float64(c.f32[i])
	case kindBool:
		return c.bools.Value(i)
	case kindBinary:
		return c.bin.String(i)
	case kindTimestamp:
		v := int64(c.ts[i])
		if c.tsDiv < 0 {
			return v * -c.tsDiv
		}
		return v / c.tsDiv
	case kindNull:
		return nil
	}
	switch c.arr.(type) {
	case *array.List, *array.LargeList, *array.FixedSizeList, *array.Struct, *array.Map:
		c.buf = message.AppendJSONValue(c.buf[:0], c.arr, i)
		return string(c.buf)
	}
	return c.arr.ValueStr(i)
}

// exprError is an expr error on one line: expr's own errors span three
// (message, source line, caret), which reads badly in a record's
// __meta_error or a config error.
type exprError struct {
	msg  string
	prev error
}

func (e *exprError) Error() string { return e.msg }

func (e *exprError) Unwrap() error { return e.prev }

func conciseError(err error, withPos bool) error {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return err
	}
	msg := fe.Message
	if fe.Prev != nil && !strings.Contains(msg, fe.Prev.Error()) {
		msg += ": " + fe.Prev.Error()
	}
	if withPos && fe.Line > 0 {
		msg = fmt.Sprintf("%s (at %d:%d)", msg, fe.Line, fe.Column+1)
	}
	return &exprError{msg: msg, prev: fe.Prev}
}

func typeName(v any) string {
	if v == nil {
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

package config

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weir-stream/weir/component"
)

// maxDepth bounds nesting, so that an alias that contains itself is an
// error rather than endless recursion.
const maxDepth = 64

// validator checks YAML nodes against field tables ([]component.Field) and
// builds the values component.Config documents: string (string, expr),
// int64, float64, bool, time.Duration, []any (list), map[string]any (map),
// *component.Config (object, component slot). It collects every problem
// instead of stopping at the first.
//
// Absent fields get their Default; an absent object field whose Default is
// non-nil (conventionally map[string]any{}) is built from its fields'
// defaults. An explicit null is treated as absent. String fields take any
// scalar as written (port: 8080 is "8080"); int, float, bool and duration
// fields also take a quoted value that parses ("4", "true"), so that
// "${VAR}" works. A value that fails
// validation is left out of its parent, so accessors never see a value of
// the wrong type.
type validator struct {
	file  string
	errs  Errors
	depth int
}

func (v *validator) errorf(line int, path, format string, args ...any) {
	v.errs = append(v.errs, &component.FieldError{File: v.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// pair is one key and value of a mapping.
type pair struct{ key, val *yaml.Node }

// pairs returns the keys and values of mapping n with merge keys (<<: *x)
// expanded — keys written in n win over merged ones — and reports
// duplicate keys.
func (v *validator) pairs(n *yaml.Node, path string) []pair {
	var own, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, v.mergeSources(val, path)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			v.errorf(k.Line, join(path, k.Value), "duplicate key (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		own = append(own, pair{k, val})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key.Line
			own = append(own, p)
		}
	}
	return own
}

// mergeSources returns the pairs a merge key's value brings in: a mapping,
// or a list of mappings (earlier ones win).
func (v *validator) mergeSources(val *yaml.Node, path string) []pair {
	if v.enter() {
		defer v.leave()
	} else {
		v.errorf(val.Line, path, "too deeply nested (an alias that contains itself?)")
		return nil
	}
	val = resolve(val)
	switch val.Kind {
	case yaml.MappingNode:
		return v.pairs(val, path)
	case yaml.SequenceNode:
		var out []pair
		for _, m := range val.Content {
			if m = resolve(m); m.Kind == yaml.MappingNode {
				out = append(out, v.pairs(m, path)...)
				continue
			}
			v.errorf(m.Line, path, "merge key (<<) expects a mapping or a list of mappings, got %s", describe(m))
		}
		return out
	}
	v.errorf(val.Line, path, "merge key (<<) expects a mapping or a list of mappings, got %s", describe(val))
	return nil
}

func (v *validator) enter() bool {
	v.depth++
	if v.depth > maxDepth {
		v.depth--
		return false
	}
	return true
}

func (v *validator) leave() { v.depth-- }

// object validates mapping n (held by the key on line) against fields. The
// key named skip (a component's type) is left to the caller.
func (v *validator) object(n *yaml.Node, path string, line int, fields []component.Field, skip string) (map[string]any, map[string]int) {
	return v.objectPairs(v.pairs(n, path), path, line, fields, skip)
}

func (v *validator) objectPairs(ps []pair, path string, line int, fields []component.Field, skip string) (map[string]any, map[string]int) {
	vals := make(map[string]any, len(fields))
	lines := make(map[string]int, len(ps))
	present := make(map[string]bool, len(ps))
	for _, p := range ps {
		key := p.key.Value
		if key == skip {
			continue
		}
		kpath := join(path, key)
		kline := lineOr(p.key, line)
		f := findField(fields, key)
		if f == nil {
			v.unknownKey(kline, kpath, key, fields)
			continue
		}
		lines[key] = kline
		present[key] = true
		if val := resolve(p.val); isNull(val) {
			if f.Required {
				v.errorf(lineOr(val, kline), kpath, "expected %s, got null", expected(f))
			} else {
				present[key] = false // absent: takes its default
			}
			continue
		}
		if val, ok := v.value(p.val, kpath, kline, f); ok {
			vals[key] = val
		}
	}
	for i := range fields {
		f := &fields[i]
		if _, written := lines[f.Name]; written && present[f.Name] {
			continue
		}
		if f.Required {
			if _, written := lines[f.Name]; !written {
				v.errorf(line, path, "missing required field %q", f.Name)
			}
			continue
		}
		if f.Default != nil {
			if val, ok := v.defaultValue(join(path, f.Name), line, f); ok {
				vals[f.Name] = val
			}
		}
	}
	return vals, lines
}

func (v *validator) unknownKey(line int, path, key string, fields []component.Field) {
	if len(fields) == 0 {
		v.errorf(line, path, "unknown key; no keys are accepted here")
		return
	}
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	sort.Strings(names)
	v.errorf(line, path, "unknown key; expected one of: %s%s", strings.Join(names, ", "), didYouMean(key, names))
}

// defaultValue validates a field's Default as if it had been written in
// the file. A default that does not validate is a bug in a spec.
func (v *validator) defaultValue(path string, line int, f *component.Field) (any, bool) {
	if d, ok := f.Default.(time.Duration); ok && f.Type == component.TypeDuration {
		return d, true
	}
	var n yaml.Node
	if err := n.Encode(f.Default); err != nil {
		v.errorf(line, path, "invalid default %v in the spec (a bug in weir): %v", f.Default, err)
		return nil, false
	}
	sub := &validator{file: v.file, depth: v.depth}
	val, ok := sub.value(&n, path, line, f)
	if len(sub.errs) > 0 {
		v.errorf(line, path, "invalid default %v in the spec (a bug in weir): %s", f.Default, sub.errs[0].Msg)
		return nil, false
	}
	return val, ok
}

// value validates one value against its field and returns it as the Go
// type of the field's type. line is the line of the key (or list element)
// holding it, used for objects and components.
func (v *validator) value(n *yaml.Node, path string, line int, f *component.Field) (any, bool) {
	if !v.enter() {
		v.errorf(lineOr(n, line), path, "too deeply nested (an alias that contains itself?)")
		return nil, false
	}
	defer v.leave()
	n = resolve(n)
	vline := lineOr(n, line)
	if kind, ok := SlotKind(f.Type); ok {
		c := v.component(n, path, line, kind)
		return c, c != nil
	}
	switch f.Type {
	case component.TypeString, component.TypeExpr:
		if n.Kind != yaml.ScalarNode || isNull(n) {
			return v.mismatch(n, vline, path, f)
		}
		return v.option(n, vline, path, f)
	case component.TypeInt:
		i, ok := scalarInt(n)
		if !ok {
			return v.mismatch(n, vline, path, f)
		}
		return i, true
	case component.TypeFloat:
		x, ok := scalarFloat(n)
		if !ok {
			return v.mismatch(n, vline, path, f)
		}
		return x, true
	case component.TypeBool:
		if n.Kind == yaml.ScalarNode {
			switch {
			case n.ShortTag() == "!!bool":
				var b bool
				if n.Decode(&b) == nil {
					return b, true
				}
			case strings.EqualFold(n.Value, "true"):
				return true, true
			case strings.EqualFold(n.Value, "false"):
				return false, true
			}
		}
		return v.mismatch(n, vline, path, f)
	case component.TypeDuration:
		d, ok := scalarDuration(n)
		if !ok {
			return v.mismatch(n, vline, path, f)
		}
		return d, true
	case component.TypeList:
		if n.Kind != yaml.SequenceNode {
			return v.mismatch(n, vline, path, f)
		}
		elem := elemField(f)
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, e := range n.Content {
			val, eok := v.value(e, fmt.Sprintf("%s[%d]", path, i), lineOr(resolve(e), vline), &elem)
			if eok {
				out = append(out, val)
			}
			ok = ok && eok
		}
		return out, ok
	case component.TypeObject:
		if n.Kind != yaml.MappingNode {
			return v.mismatch(n, vline, path, f)
		}
		vals, lines := v.object(n, path, line, f.Fields, "")
		return component.NewConfig(v.file, path, line, "", vals, lines), true
	case component.TypeMap:
		if n.Kind != yaml.MappingNode {
			return v.mismatch(n, vline, path, f)
		}
		elem := elemField(f)
		out := map[string]any{}
		ok := true
		for _, p := range v.pairs(n, path) {
			val, eok := v.value(p.val, join(path, p.key.Value), lineOr(p.key, vline), &elem)
			if eok {
				out[p.key.Value] = val
			}
			ok = ok && eok
		}
		return out, ok
	case component.TypeAny, "":
		return v.anyValue(n, path, vline)
	}
	v.errorf(vline, path, "field type %q is unknown (a bug in weir's spec)", f.Type)
	return nil, false
}

// component validates a component slot: a mapping with type: NAME, the
// rest checked against NAME's registered spec.
func (v *validator) component(n *yaml.Node, path string, line int, kind component.Kind) *component.Config {
	if n.Kind != yaml.MappingNode {
		v.errorf(lineOr(n, line), path, "expected %s (a mapping with type: NAME), got %s", article(string(kind)), describe(n))
		return nil
	}
	ps := v.pairs(n, path)
	var typ *yaml.Node
	for _, p := range ps {
		if p.key.Value == "type" {
			typ = resolve(p.val)
		}
	}
	if typ == nil || isNull(typ) {
		v.errorf(line, path, "missing required field %q", "type")
		return nil
	}
	tpath := join(path, "type")
	if typ.Kind != yaml.ScalarNode {
		v.errorf(typ.Line, tpath, "expected the name of %s, got %s", article(string(kind)), describe(typ))
		return nil
	}
	reg := component.Lookup(kind, typ.Value)
	if reg == nil {
		names := component.Names(kind)
		if len(names) == 0 {
			v.errorf(typ.Line, tpath, "unknown %s type %q; no %ss are registered", kind, typ.Value, kind)
			return nil
		}
		v.errorf(typ.Line, tpath, "unknown %s type %q; expected one of: %s%s",
			kind, typ.Value, strings.Join(names, ", "), didYouMean(typ.Value, names))
		return nil
	}
	vals, lines := v.objectPairs(ps, path, line, reg.Spec.Fields, "type")
	return component.NewConfig(v.file, path, line, typ.Value, vals, lines)
}

// option checks a string against the field's Options.
func (v *validator) option(n *yaml.Node, line int, path string, f *component.Field) (any, bool) {
	s := n.Value
	if len(f.Options) == 0 {
		return s, true
	}
	for _, o := range f.Options {
		if s == o {
			return s, true
		}
	}
	v.errorf(line, path, "expected one of: %s, got %s%s", strings.Join(f.Options, ", "), describe(n), didYouMean(s, f.Options))
	return nil, false
}

func (v *validator) mismatch(n *yaml.Node, line int, path string, f *component.Field) (any, bool) {
	v.errorf(line, path, "expected %s, got %s", expected(f), describe(n))
	return nil, false
}

// anyValue converts a node to plain Go values: string, int64, float64,
// bool, nil, []any and map[string]any.
func (v *validator) anyValue(n *yaml.Node, path string, line int) (any, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, true
		case "!!int":
			if i, ok := scalarInt(n); ok {
				return i, true
			}
		case "!!float":
			if x, ok := scalarFloat(n); ok {
				return x, true
			}
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				return b, true
			}
		}
		return n.Value, true
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		ok := true
		for i, e := range n.Content {
			val, eok := v.value(e, fmt.Sprintf("%s[%d]", path, i), line, &component.Field{Type: component.TypeAny})
			out = append(out, val)
			ok = ok && eok
		}
		return out, ok
	case yaml.MappingNode:
		out := map[string]any{}
		ok := true
		for _, p := range v.pairs(n, path) {
			val, eok := v.value(p.val, join(path, p.key.Value), line, &component.Field{Type: component.TypeAny})
			out[p.key.Value] = val
			ok = ok && eok
		}
		return out, ok
	}
	v.errorf(line, path, "unexpected YAML node")
	return nil, false
}

func elemField(f *component.Field) component.Field {
	elem := component.Field{Type: f.Elem, Options: f.Options, Fields: f.Fields}
	if elem.Type == "" {
		if len(f.Fields) > 0 {
			elem.Type = component.TypeObject
		} else {
			elem.Type = component.TypeAny
		}
	}
	return elem
}

func scalarInt(n *yaml.Node) (int64, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	switch n.ShortTag() {
	case "!!int":
		var i int64
		if n.Decode(&i) == nil {
			return i, true
		}
	case "!!str":
		if i, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64); err == nil {
			return i, true
		}
	}
	return 0, false
}

func scalarFloat(n *yaml.Node) (float64, bool) {
	if n.Kind != yaml.ScalarNode {
		return 0, false
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		var x float64
		if n.Decode(&x) == nil {
			return x, true
		}
	case "!!str":
		if x, err := strconv.ParseFloat(strings.TrimSpace(n.Value), 64); err == nil {
			return x, true
		}
	}
	return 0, false
}

// scalarDuration accepts a Go duration string or an integer of
// milliseconds; negative durations are rejected.
func scalarDuration(n *yaml.Node) (time.Duration, bool) {
	if n.Kind != yaml.ScalarNode || isNull(n) {
		return 0, false
	}
	if ms, ok := scalarInt(n); ok {
		if ms < 0 || ms > math.MaxInt64/int64(time.Millisecond) {
			return 0, false
		}
		return time.Duration(ms) * time.Millisecond, true
	}
	if n.ShortTag() != "!!str" {
		return 0, false
	}
	d, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil || d < 0 {
		return 0, false
	}
	return d, true
}

// expected describes what a field accepts, for "expected X, got Y".
func expected(f *component.Field) string {
	if kind, ok := SlotKind(f.Type); ok {
		return article(string(kind)) + " (a mapping with type: NAME)"
	}
	switch f.Type {
	case component.TypeString, component.TypeExpr:
		return "a string"
	case component.TypeInt:
		return "an integer"
	case component.TypeFloat:
		return "a number"
	case component.TypeBool:
		return "true or false"
	case component.TypeDuration:
		return `a duration ("1s", "250ms", "1m30s") or an integer of milliseconds`
	case component.TypeList:
		return "a list"
	case component.TypeObject, component.TypeMap:
		return "a mapping"
	}
	return "a value"
}

// describe shows a node for "got ...": a quoted string, a plain scalar,
// "a mapping" or "a list".
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			s := n.Value
			if r := []rune(s); len(r) > 60 {
				s = string(r[:57]) + "..."
			}
			return strconv.Quote(s)
		case "!!null":
			return "null"
		}
		return n.Value
	}
	return "nothing"
}

func article(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < maxDepth; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// lineOr returns n's line, or fallback for nodes that did not come from the
// file (defaults).
func lineOr(n *yaml.Node, fallback int) int {
	if n.Line > 0 {
		return n.Line
	}
	return fallback
}

func findField(fields []component.Field, name string) *component.Field {
	for i := range fields {
		if fields[i].Name == name {
			return &fields[i]
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

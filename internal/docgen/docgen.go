// Package docgen renders what the component registry and the config's field
// tables describe: docs/components.md (Markdown), the JSON Schema of a config
// file (Schema) and the specs as JSON (Docs). Output depends only on what is
// registered, never on map order, so generated files are stable.
package docgen

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
)

// SpecDoc is a component spec as JSON (`weir components --format json`).
type SpecDoc struct {
	Kind     component.Kind `json:"kind"`
	Name     string         `json:"name"`
	Summary  string         `json:"summary"`
	Delivery string         `json:"delivery,omitempty"`
	Stateful bool           `json:"stateful,omitempty"`
	Bounded  bool           `json:"bounded,omitempty"`
	Fields   []FieldDoc     `json:"fields"`
	Example  string         `json:"example,omitempty"`
}

// FieldDoc is a field as JSON.
type FieldDoc struct {
	Name        string     `json:"name"`
	Type        string     `json:"type"`
	Description string     `json:"description"`
	Default     any        `json:"default,omitempty"`
	Required    bool       `json:"required,omitempty"`
	Options     []string   `json:"options,omitempty"`
	Fields      []FieldDoc `json:"fields,omitempty"`
	Advanced    bool       `json:"advanced,omitempty"`
}

// Specs returns the registered specs of kind, sorted by name.
func Specs(kind component.Kind) []component.Spec {
	names := component.Names(kind)
	out := make([]component.Spec, 0, len(names))
	for _, n := range names {
		out = append(out, component.Lookup(kind, n).Spec)
	}
	return out
}

// Doc converts a spec to its JSON form.
func Doc(s component.Spec) SpecDoc {
	return SpecDoc{
		Kind:     s.Kind,
		Name:     s.Name,
		Summary:  s.Summary,
		Delivery: string(s.Delivery),
		Stateful: s.Stateful,
		Bounded:  s.Bounded,
		Fields:   FieldDocs(s.Fields),
		Example:  Example(s),
	}
}

// FieldDocs converts a field table to its JSON form.
func FieldDocs(fields []component.Field) []FieldDoc {
	out := make([]FieldDoc, 0, len(fields))
	for _, f := range fields {
		out = append(out, FieldDoc{
			Name:        f.Name,
			Type:        TypeName(f),
			Description: f.Description,
			Default:     JSONDefault(f),
			Required:    f.Required,
			Options:     f.Options,
			Fields:      fieldDocsOrNil(f.Fields),
			Advanced:    f.Advanced,
		})
	}
	return out
}

func fieldDocsOrNil(fields []component.Field) []FieldDoc {
	if len(fields) == 0 {
		return nil
	}
	return FieldDocs(fields)
}

// TypeName names a field's type for people: "string", "list of string",
// "list of object", "map of string", "input" (a component slot), ...
func TypeName(f component.Field) string {
	switch f.Type {
	case component.TypeList:
		switch {
		case f.Elem != "" && f.Elem != component.TypeAny:
			return "list of " + string(f.Elem)
		case len(f.Fields) > 0:
			return "list of object"
		}
		return "list"
	case component.TypeMap:
		if f.Elem != "" && f.Elem != component.TypeAny {
			return "map of " + string(f.Elem)
		}
		return "map"
	}
	return string(f.Type)
}

// JSONDefault is a field's default as a JSON value (durations as strings
// such as "30s"), or nil when the field has none. An object's placeholder
// default (it exists with its fields' defaults) is nil too.
func JSONDefault(f component.Field) any {
	switch d := f.Default.(type) {
	case nil:
		return nil
	case time.Duration:
		return FormatDuration(d)
	case map[string]any:
		if f.Type == component.TypeObject && len(d) == 0 {
			return nil
		}
	}
	return f.Default
}

// FormatDefault is a field's default for a table cell: "" when none,
// strings as written (`""` when empty), other values as JSON.
func FormatDefault(f component.Field) string {
	d := JSONDefault(f)
	switch v := d.(type) {
	case nil:
		return ""
	case string:
		if v == "" {
			return `""`
		}
		return v
	}
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Sprint(d)
	}
	return string(b)
}

// FormatDuration is time.Duration.String without zero trailing units
// ("1m" rather than "1m0s").
func FormatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Example is a spec's example YAML with common indentation and blank lines
// around it removed.
func Example(s component.Spec) string {
	lines := strings.Split(strings.ReplaceAll(s.Example, "\t", "    "), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[0]) == "" {
		lines = lines[1:]
	}
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	indent := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " ")); indent < 0 || n < indent {
			indent = n
		}
	}
	for i, l := range lines {
		if len(l) >= indent && indent > 0 {
			lines[i] = l[indent:]
		}
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return strings.Join(lines, "\n")
}

// kindTitle is the plural heading of a kind.
func kindTitle(k component.Kind) string {
	switch k {
	case component.KindInput:
		return "Inputs"
	case component.KindProcessor:
		return "Processors"
	case component.KindOutput:
		return "Outputs"
	}
	return string(k)
}

// isSlot reports whether a field holds a component.
func isSlot(t component.FieldType) bool {
	_, ok := config.SlotKind(t)
	return ok
}

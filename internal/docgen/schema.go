package docgen

import (
	"encoding/json"
	"io"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/config"
)

// durationPattern matches Go duration strings ("1s", "250ms", "1m30s").
const durationPattern = `^([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$`

// Schema returns the JSON Schema (draft 2020-12) of a config file after
// ${VAR} substitution: the top-level keys from config.RootFields, and for
// each component slot a oneOf over the registered components of its kind
// ($defs "input", "processor", "output"), each an object whose `type` is a
// const and whose other properties are its spec's fields.
func Schema() map[string]any {
	defs := map[string]any{}
	for _, kind := range component.Kinds {
		var refs []any
		for _, s := range Specs(kind) {
			id := string(kind) + "." + s.Name
			comp := objectSchema(s.Fields)
			props := comp["properties"].(map[string]any)
			props["type"] = map[string]any{"const": s.Name}
			comp["required"] = append([]string{"type"}, requiredNames(s.Fields)...)
			comp["title"] = s.Name
			comp["description"] = oneLine(s.Summary)
			defs[id] = comp
			refs = append(refs, map[string]any{"$ref": "#/$defs/" + id})
		}
		if len(refs) == 0 {
			defs[string(kind)] = false // nothing registered: nothing validates
			continue
		}
		defs[string(kind)] = map[string]any{"oneOf": refs}
	}
	root := objectSchema(config.RootFields())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["title"] = "weir config"
	root["$defs"] = defs
	return root
}

// WriteSchema writes Schema as indented JSON.
func WriteSchema(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(Schema())
}

func objectSchema(fields []component.Field) map[string]any {
	props := map[string]any{}
	for _, f := range fields {
		props[f.Name] = fieldSchema(f)
	}
	s := map[string]any{
		"type":                 "object",
		"properties":           props,
		"additionalProperties": false,
	}
	if req := requiredNames(fields); len(req) > 0 {
		s["required"] = req
	}
	return s
}

func requiredNames(fields []component.Field) []string {
	var req []string
	for _, f := range fields {
		if f.Required {
			req = append(req, f.Name)
		}
	}
	return req
}

func fieldSchema(f component.Field) map[string]any {
	s := typeSchema(f.Type, f)
	if f.Description != "" {
		s["description"] = oneLine(f.Description)
	}
	if d := JSONDefault(f); d != nil {
		s["default"] = d
	}
	return s
}

// typeSchema is the schema of a value of type t; f supplies Options,
// Fields and Elem.
func typeSchema(t component.FieldType, f component.Field) map[string]any {
	if kind, ok := config.SlotKind(t); ok {
		return map[string]any{"$ref": "#/$defs/" + string(kind)}
	}
	switch t {
	case component.TypeString, component.TypeExpr:
		s := map[string]any{"type": "string"}
		if len(f.Options) > 0 {
			s["enum"] = f.Options
		}
		return s
	case component.TypeInt:
		return map[string]any{"type": "integer"}
	case component.TypeFloat:
		return map[string]any{"type": "number"}
	case component.TypeBool:
		return map[string]any{"type": "boolean"}
	case component.TypeDuration:
		return map[string]any{"anyOf": []any{
			map[string]any{"type": "string", "pattern": durationPattern},
			map[string]any{"type": "integer", "minimum": 0},
		}}
	case component.TypeList:
		return map[string]any{"type": "array", "items": elemSchema(f)}
	case component.TypeObject:
		return objectSchema(f.Fields)
	case component.TypeMap:
		return map[string]any{"type": "object", "additionalProperties": elemSchema(f)}
	}
	return map[string]any{}
}

// elemSchema is the schema of the elements of a list or map field.
func elemSchema(f component.Field) map[string]any {
	switch {
	case len(f.Fields) > 0 && (f.Elem == "" || f.Elem == component.TypeObject):
		return objectSchema(f.Fields)
	case f.Elem == "" || f.Elem == component.TypeAny:
		return map[string]any{}
	}
	return typeSchema(f.Elem, component.Field{Options: f.Options})
}

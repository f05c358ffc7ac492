package config

import (
	"fmt"
	"slices"

	"github.com/weir-stream/weir/component"
)

// CheckSpecs checks every registered component's spec for mistakes the
// validator would only find when a config uses them: duplicate or reserved
// field names, unknown field types, defaults that do not validate against
// their own field, options on non-string fields, missing descriptions.
// Tests of the packages that register components call it.
func CheckSpecs() []error {
	var errs []error
	for _, kind := range component.Kinds {
		for _, name := range component.Names(kind) {
			errs = append(errs, CheckSpec(component.Lookup(kind, name).Spec)...)
		}
	}
	return errs
}

// CheckSpec checks one spec; see CheckSpecs.
func CheckSpec(spec component.Spec) []error {
	var errs []error
	where := fmt.Sprintf("%s %q", spec.Kind, spec.Name)
	if spec.Summary == "" {
		errs = append(errs, fmt.Errorf("%s: empty Summary", where))
	}
	if spec.Kind == component.KindOutput && spec.Delivery == "" {
		errs = append(errs, fmt.Errorf("%s: outputs must state their Delivery", where))
	}
	if f := spec.Field("type"); f != nil {
		errs = append(errs, fmt.Errorf("%s: field name \"type\" is reserved for the component type", where))
	}
	return append(errs, CheckFields(where, spec.Fields)...)
}

// CheckFields checks a field table (a spec's, or RootFields).
func CheckFields(where string, fields []component.Field) []error {
	var errs []error
	seen := map[string]bool{}
	for i := range fields {
		f := &fields[i]
		at := fmt.Sprintf("%s: field %q", where, f.Name)
		if f.Name == "" {
			errs = append(errs, fmt.Errorf("%s: field %d has no name", where, i))
		}
		if seen[f.Name] {
			errs = append(errs, fmt.Errorf("%s: declared twice", at))
		}
		seen[f.Name] = true
		if f.Description == "" {
			errs = append(errs, fmt.Errorf("%s: empty Description", at))
		}
		if !knownType(f.Type) {
			errs = append(errs, fmt.Errorf("%s: unknown type %q", at, f.Type))
		}
		if f.Elem != "" && !knownType(f.Elem) {
			errs = append(errs, fmt.Errorf("%s: unknown element type %q", at, f.Elem))
		}
		if len(f.Options) > 0 {
			t := f.Type
			if t == component.TypeList {
				t = f.Elem
			}
			if t != component.TypeString && t != component.TypeExpr {
				errs = append(errs, fmt.Errorf("%s: Options on a %s field", at, f.Type))
			}
			if s, ok := f.Default.(string); ok && !slices.Contains(f.Options, s) {
				errs = append(errs, fmt.Errorf("%s: default %q is not one of its Options", at, s))
			}
		}
		if f.Required && f.Default != nil {
			errs = append(errs, fmt.Errorf("%s: Required with a Default", at))
		}
		if f.Type == component.TypeObject && len(f.Fields) == 0 {
			errs = append(errs, fmt.Errorf("%s: object without Fields (use map or any)", at))
		}
		if f.Default != nil {
			v := &validator{file: "spec"}
			v.defaultValue(f.Name, 0, f)
			for _, e := range v.errs {
				errs = append(errs, fmt.Errorf("%s: %s", at, e.Msg))
			}
		}
		if len(f.Fields) > 0 {
			errs = append(errs, CheckFields(at, f.Fields)...)
		}
	}
	return errs
}

func knownType(t component.FieldType) bool {
	if _, ok := SlotKind(t); ok {
		return true
	}
	switch t {
	case component.TypeString, component.TypeInt, component.TypeFloat, component.TypeBool,
		component.TypeDuration, component.TypeExpr, component.TypeList, component.TypeObject,
		component.TypeMap, component.TypeAny:
		return true
	}
	return false
}

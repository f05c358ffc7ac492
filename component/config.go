package component

import (
	"fmt"
	"time"
)

// Config is a component's parsed configuration: the values of its spec's
// fields after validation, with defaults applied. Values have the Go type of
// their field type: string (string, expr), int64, float64, bool,
// time.Duration, []any, map[string]any (map and object fields hold *Config
// for objects).
//
// Accessors never fail for a field of the matching type; they panic when a
// component reads a field its spec does not declare, which is a bug.
type Config struct {
	// File is the config file, Path the key path of this component
	// (streams[0].input), Line its line: used in error messages.
	File  string
	Path  string
	Line  int
	Type  string
	vals  map[string]any
	lines map[string]int
}

// NewConfig builds a Config. The config package calls it after validation;
// tests may call it directly (values must then have the documented types).
func NewConfig(file, path string, line int, typ string, vals map[string]any, lines map[string]int) *Config {
	if vals == nil {
		vals = map[string]any{}
	}
	if lines == nil {
		lines = map[string]int{}
	}
	return &Config{File: file, Path: path, Line: line, Type: typ, vals: vals, lines: lines}
}

// Has reports whether the field was set in the file (or has a default).
func (c *Config) Has(name string) bool {
	_, ok := c.vals[name]
	return ok
}

// Value returns the raw value of a field, or nil.
func (c *Config) Value(name string) any { return c.vals[name] }

// Values returns all field values.
func (c *Config) Values() map[string]any { return c.vals }

func get[T any](c *Config, name string) T {
	var zero T
	v, ok := c.vals[name]
	if !ok || v == nil {
		return zero
	}
	t, ok := v.(T)
	if !ok {
		panic(fmt.Sprintf("component config %s.%s: have %T, want %T", c.Path, name, v, zero))
	}
	return t
}

// String returns a string or expr field.
func (c *Config) String(name string) string { return get[string](c, name) }

// Int returns an int field.
func (c *Config) Int(name string) int { return int(get[int64](c, name)) }

// Float returns a float field.
func (c *Config) Float(name string) float64 {
	switch v := c.vals[name].(type) {
	case int64:
		return float64(v)
	}
	return get[float64](c, name)
}

// Bool returns a bool field.
func (c *Config) Bool(name string) bool { return get[bool](c, name) }

// Duration returns a duration field.
func (c *Config) Duration(name string) time.Duration { return get[time.Duration](c, name) }

// Object returns an object field (nil if absent and without default).
func (c *Config) Object(name string) *Config { return get[*Config](c, name) }

// List returns a list field.
func (c *Config) List(name string) []any { return get[[]any](c, name) }

// StringList returns a list of strings.
func (c *Config) StringList(name string) []string {
	l := c.List(name)
	out := make([]string, 0, len(l))
	for _, v := range l {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// ObjectList returns a list of objects.
func (c *Config) ObjectList(name string) []*Config {
	l := c.List(name)
	out := make([]*Config, 0, len(l))
	for _, v := range l {
		if o, ok := v.(*Config); ok {
			out = append(out, o)
		}
	}
	return out
}

// StringMap returns a map field with string values.
func (c *Config) StringMap(name string) map[string]string {
	m := get[map[string]any](c, name)
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// FieldLine returns the line of a field in the file, or the component's line.
func (c *Config) FieldLine(name string) int {
	if l, ok := c.lines[name]; ok {
		return l
	}
	return c.Line
}

// Errorf returns an error that names the file, line and key path of a field:
// "pipeline.yaml:12: streams[0].input.brokers: <message>". Constructors use
// it for semantic checks the spec cannot express.
func (c *Config) Errorf(field, format string, args ...any) error {
	path := c.Path
	if field != "" {
		path += "." + field
	}
	return &FieldError{File: c.File, Line: c.FieldLine(field), Path: path, Msg: fmt.Sprintf(format, args...)}
}

// FieldError is a config error that names where it is.
type FieldError struct {
	File string
	Line int
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	switch {
	case loc == "" && e.Path == "":
		return e.Msg
	case loc == "":
		return fmt.Sprintf("%s: %s", e.Path, e.Msg)
	case e.Path == "":
		return fmt.Sprintf("%s: %s", loc, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Path, e.Msg)
}

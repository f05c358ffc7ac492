// Package component defines weir's plug-in points — inputs, processors and
// outputs — and the specs that describe their configuration.
//
// Every component registers itself from an init function with a Spec (every
// field's type, default and one-line description) and a constructor. The
// spec drives config validation (`weir lint`), `weir components`, the JSON
// Schema (`weir schema`) and docs/components.md. Constructors only parse and
// validate configuration; all I/O starts in Connect.
package component

import (
	"fmt"
	"sort"
	"sync"
	"time"
)

// Kind is a component kind.
type Kind string

// Component kinds.
const (
	KindInput     Kind = "input"
	KindProcessor Kind = "processor"
	KindOutput    Kind = "output"
)

// Kinds lists the component kinds in display order.
var Kinds = []Kind{KindInput, KindProcessor, KindOutput}

// FieldType is the type of a config field.
type FieldType string

// Field types.
const (
	TypeString   FieldType = "string"
	TypeInt      FieldType = "int"
	TypeFloat    FieldType = "float"
	TypeBool     FieldType = "bool"
	TypeDuration FieldType = "duration" // "1s", "250ms" or an integer of milliseconds
	TypeExpr     FieldType = "expr"     // an expr-lang expression, as a string
	TypeList     FieldType = "list"     // list of Elem
	TypeObject   FieldType = "object"   // nested Fields
	TypeMap      FieldType = "map"      // string keys to Elem values
	TypeAny      FieldType = "any"
)

// Field describes one config field.
type Field struct {
	Name        string
	Type        FieldType
	Description string
	// Default is used when the field is absent. A field with no Default and
	// Required false is optional and reads as the zero value.
	Default  any
	Required bool
	// Options, when set, lists the only accepted values of a string field.
	Options []string
	// Fields are the children of an object field (or of a list of objects).
	Fields []Field
	// Elem is the element type of a list or map field.
	Elem FieldType
	// Advanced hides the field from the short `weir components` listing.
	Advanced bool
}

// Delivery is the guarantee an output gives.
type Delivery string

// Delivery guarantees.
const (
	DeliveryExactlyOnce  Delivery = "exactly-once (two-phase commit when exactly_once: true)"
	DeliveryAtLeastOnce  Delivery = "at-least-once"
	DeliveryNotDelivered Delivery = "none (records are discarded)"
)

// Spec describes a component.
type Spec struct {
	Kind    Kind
	Name    string
	Summary string
	Fields  []Field
	// Delivery is set on outputs: what they guarantee.
	Delivery Delivery
	// Stateful is set on processors that keep keyed state.
	Stateful bool
	// Bounded is set on inputs that end (file): the stream stops at the end.
	Bounded bool
	// Example is a YAML snippet of a typical configuration.
	Example string
	// CheckCheckpoints, when set, validates the component's config against
	// the checkpoint settings (state.enabled is true): the Kafka output's
	// transaction timeout must outlast a checkpoint, and its pending
	// transactions bound tolerable_failed_checkpoints. Its error is a
	// config error.
	CheckCheckpoints func(conf *Config, cp CheckpointSettings) error
}

// CheckpointSettings are the state settings Spec.CheckCheckpoints checks a
// component against.
type CheckpointSettings struct {
	Interval, Timeout time.Duration
	// TolerableFailures is state.tolerable_failed_checkpoints.
	TolerableFailures int
}

// Field returns the named field, or nil.
func (s *Spec) Field(name string) *Field {
	for i := range s.Fields {
		if s.Fields[i].Name == name {
			return &s.Fields[i]
		}
	}
	return nil
}

// Registration is a registered component: its spec and constructor.
type Registration struct {
	Spec Spec
	// Exactly one of these is set, matching Spec.Kind.
	NewInput     InputConstructor
	NewProcessor ProcessorConstructor
	NewOutput    OutputConstructor
}

var (
	mu       sync.RWMutex
	registry = map[Kind]map[string]*Registration{}
)

func register(r *Registration) {
	mu.Lock()
	defer mu.Unlock()
	m := registry[r.Spec.Kind]
	if m == nil {
		m = map[string]*Registration{}
		registry[r.Spec.Kind] = m
	}
	if _, dup := m[r.Spec.Name]; dup {
		panic(fmt.Sprintf("component: %s %q registered twice", r.Spec.Kind, r.Spec.Name))
	}
	m[r.Spec.Name] = r
}

// RegisterInput registers an input.
func RegisterInput(spec Spec, ctor InputConstructor) {
	spec.Kind = KindInput
	register(&Registration{Spec: spec, NewInput: ctor})
}

// RegisterProcessor registers a processor.
func RegisterProcessor(spec Spec, ctor ProcessorConstructor) {
	spec.Kind = KindProcessor
	register(&Registration{Spec: spec, NewProcessor: ctor})
}

// RegisterOutput registers an output.
func RegisterOutput(spec Spec, ctor OutputConstructor) {
	spec.Kind = KindOutput
	register(&Registration{Spec: spec, NewOutput: ctor})
}

// Lookup returns the registration of a component, or nil.
func Lookup(kind Kind, name string) *Registration {
	mu.RLock()
	defer mu.RUnlock()
	return registry[kind][name]
}

// Names returns the registered names of a kind, sorted.
func Names(kind Kind) []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry[kind]))
	for n := range registry[kind] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

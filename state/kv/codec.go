package kv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// The codec is CBOR (RFC 8949, github.com/fxamacker/cbor/v2), used for every
// value that leaves memory: Pebble rows, snapshot files, map-state user keys.
//
// Encoding is deterministic (RFC 8949 core deterministic: sorted map keys,
// shortest integers and floats), so equal user keys always encode to equal
// bytes. time.Time is encoded as an RFC 3339 string with nanoseconds inside
// tag 0, so it round-trips exactly. Go strings that are not valid UTF-8
// round-trip too.
//
// Decoding is lenient where struct evolution needs it:
//   - a field added to a struct decodes as its zero value from old data;
//   - a field removed from a struct is ignored when old data is decoded;
//   - fields are matched by name (`cbor:"name"` or `json:"name"` tags rename
//     them; keyasint tags make compact integer keys) — renaming a field
//     without keeping its tag name loses its old value;
//   - changing a field's type is compatible only where CBOR converts
//     (any integer width or signedness that holds the value, float widths).
//
// Decoding into an interface (any) yields generic types: uint64 for
// non-negative integers, int64 for negative ones, float64, string, []byte,
// bool, nil, []any, map[any]any, time.Time.
var (
	encMode cbor.UserBufferEncMode
	decMode cbor.DecMode
)

func init() {
	eo := cbor.CoreDetEncOptions()
	eo.Time = cbor.TimeRFC3339Nano
	eo.TimeTag = cbor.EncTagRequired
	em, err := eo.UserBufferEncMode()
	if err != nil {
		panic(err)
	}
	encMode = em
	dm, err := cbor.DecOptions{
		MaxArrayElements: 2147483647,
		MaxMapPairs:      2147483647,
		MaxNestedLevels:  256,
		UTF8:             cbor.UTF8DecodeInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	decMode = dm
}

// Marshal encodes v with the state codec.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: encode %T: %v", ErrInvalid, v, err)
	}
	return b, nil
}

// Unmarshal decodes data into the value v points to. A failure wraps
// ErrTypeMismatch (the data is valid CBOR of another shape) or ErrCorrupt
// (the data is not valid CBOR).
func Unmarshal(data []byte, v any) error {
	if err := decMode.Unmarshal(data, v); err != nil {
		return decodeErr(err, v)
	}
	return nil
}

func decodeErr(err error, v any) error {
	var syn *cbor.SyntaxError
	var extra *cbor.ExtraneousDataError
	if errors.As(err, &syn) || errors.As(err, &extra) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: decode into %T: %v", ErrCorrupt, v, err)
	}
	// Other decode errors (another CBOR type, overflow into a smaller
	// integer, wrong tags) mean the bytes do not fit the type.
	return fmt.Errorf("%w: decode into %T: %v", ErrTypeMismatch, v, err)
}

// Encoder encodes values into a reused buffer. The bytes returned by Marshal
// are valid until the next call. An Encoder is not safe for concurrent use.
type Encoder struct {
	buf bytes.Buffer
}

// Marshal encodes v and returns the encoding, valid until the next call.
func (e *Encoder) Marshal(v any) ([]byte, error) {
	e.buf.Reset()
	if err := encMode.MarshalToBuffer(v, &e.buf); err != nil {
		return nil, fmt.Errorf("%w: encode %T: %v", ErrInvalid, v, err)
	}
	return e.buf.Bytes(), nil
}

// RawValue is a value in its CBOR encoding that has not been decoded into a
// Go type yet: what the memory backend holds for a value restored from a
// snapshot before anybody has asked for it with a type. Reading it with a
// type decodes it; a snapshot writes the bytes back unchanged.
type RawValue []byte

var encodable sync.Map // reflect.Type -> struct{}: types known to encode

// CheckEncodable reports whether values of v's dynamic type can be encoded.
// Values are encoded until one of a type succeeds, which is then
// remembered: the memory backend checks values this way at Put, so that
// unencodable types (channels, functions) fail at once rather than at the
// next snapshot, without encoding every value on the hot path. A value whose
// type was seen before is not checked again (a map[string]any holding a
// channel can still fail at snapshot time).
func CheckEncodable(v any) error {
	if v == nil {
		return nil
	}
	t := reflect.TypeOf(v)
	if _, ok := encodable.Load(t); ok {
		return nil
	}
	if _, err := Marshal(v); err != nil {
		return err
	}
	encodable.Store(t, struct{}{})
	return nil
}

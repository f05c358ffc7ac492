package pebble

import (
	"encoding/binary"
	"fmt"

	"github.com/weir-stream/weir/state/kv"
)

// Key layout (every state row is one Pebble key):
//
//	keyGroup uint16 BE | state name | 0x00 | uvarint(len(key)) | key | userKey
//
// userKey is empty for plain values and the CBOR map key for map-state
// entries. The length prefix makes (name, key) a prefix that no other key
// shares, so a key's map entries are one range and can be deleted with one
// range tombstone; the key group in front makes every key group one range
// for snapshots, restores and re-scaling. Keys whose first two bytes are
// 0xFFFF hold backend metadata (key groups stop at 0x7FFF).
//
// Value layout: expiry int64 BE (Unix ms, 0: never) | CBOR value.

var metaMaxKeyGroups = []byte("\xff\xffmeta/max-key-groups")

func appendGroupPrefix(dst []byte, kg int) []byte {
	return binary.BigEndian.AppendUint16(dst, uint16(kg))
}

func appendStatePrefix(dst []byte, kg int, name string) []byte {
	dst = appendGroupPrefix(dst, kg)
	dst = append(dst, name...)
	return append(dst, 0)
}

// appendKeyPrefix appends the prefix shared by the value and the map
// entries of key.
func appendKeyPrefix(dst []byte, kg int, name string, key []byte) []byte {
	dst = appendStatePrefix(dst, kg, name)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	return append(dst, key...)
}

func appendRowKey(dst []byte, kg int, name string, key, userKey []byte) []byte {
	return append(appendKeyPrefix(dst, kg, name, key), userKey...)
}

// prefixEnd returns the smallest key greater than every key starting with
// p (p must not be all 0xFF).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	panic("state/pebble: prefixEnd of all-0xFF prefix")
}

// row is a parsed key.
type row struct {
	kg      int
	name    string
	key     []byte
	userKey []byte
}

func parseKey(k []byte) (row, error) {
	if len(k) < 3 {
		return row{}, fmt.Errorf("%w: short key %x", kv.ErrCorrupt, k)
	}
	r := row{kg: int(binary.BigEndian.Uint16(k))}
	rest := k[2:]
	i := 0
	for i < len(rest) && rest[i] != 0 {
		i++
	}
	if i == len(rest) {
		return row{}, fmt.Errorf("%w: key %x has no name terminator", kv.ErrCorrupt, k)
	}
	r.name = string(rest[:i])
	rest = rest[i+1:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > uint64(len(rest)-w) {
		return row{}, fmt.Errorf("%w: key %x has a bad length", kv.ErrCorrupt, k)
	}
	r.key = rest[w : w+int(n)]
	if uk := rest[w+int(n):]; len(uk) > 0 {
		r.userKey = uk
	}
	return r, nil
}

func appendValue(dst []byte, exp int64, v []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(exp))
	return append(dst, v...)
}

func splitValue(v []byte) (exp int64, val []byte, err error) {
	if len(v) < 8 {
		return 0, nil, fmt.Errorf("%w: short value", kv.ErrCorrupt)
	}
	return int64(binary.BigEndian.Uint64(v)), v[8:], nil
}

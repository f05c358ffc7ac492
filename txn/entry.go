package txn

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// An entry is framed as (integers little endian):
//
//	offset  size  field
//	0       4     length: the bytes after the first 8 (12 + payload section)
//	4       4     CRC-32C (Castagnoli) of bytes 16..end (count and payloads),
//	              continued over bytes 8..16 (LSN), then over bytes 0..4 (length)
//	8       8     LSN
//	16      4     payload count
//	20      …     each payload: 4-byte length, then its bytes
//
// The checksum covers the payload section first so that it can be computed
// before the LSN is known, outside the log's lock.
const (
	entryPrefixSize = 8  // length + checksum
	entryFixedSize  = 20 // prefix + LSN + payload count
	maxEntryBody    = math.MaxUint32
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeEntry appends the entry of payloads to dst with LSN and checksum
// still zero, and returns it with the checksum of its payload section; see
// sealEntry.
func encodeEntry(dst []byte, payloads [][]byte) ([]byte, uint32, error) {
	body := int64(12)
	for _, p := range payloads {
		body += 4 + int64(len(p))
	}
	if body > maxEntryBody {
		return dst, 0, fmt.Errorf("entry of %d bytes is too large (limit %d)", body, maxEntryBody)
	}
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(body))
	dst = append(dst, make([]byte, 12)...) // checksum and LSN, set by sealEntry
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payloads)))
	for _, p := range payloads {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(p)))
		dst = append(dst, p...)
	}
	return dst, crc32.Checksum(dst[start+16:], castagnoli), nil
}

// sealEntry sets the LSN and the checksum of an entry made by encodeEntry.
func sealEntry(e []byte, lsn uint64, partial uint32) {
	binary.LittleEndian.PutUint64(e[8:16], lsn)
	binary.LittleEndian.PutUint32(e[4:8], entryChecksum(partial, e[0:4], e[8:16]))
}

func entryChecksum(partial uint32, length, lsn []byte) uint32 {
	return crc32.Update(crc32.Update(partial, castagnoli, lsn), castagnoli, length)
}

// invalidEntryError reports an entry that is torn or corrupt.
type invalidEntryError struct {
	off    int64 // offset of the entry in its segment file
	reason string
}

func (e *invalidEntryError) Error() string {
	return fmt.Sprintf("invalid entry at offset %d: %s", e.off, e.reason)
}

// entryReader reads the entries of one segment file in order.
type entryReader struct {
	r        *bufio.Reader
	off      int64  // file offset of the next entry
	size     int64  // file size: no entry may extend past it
	next     uint64 // LSN the next entry must have
	prefix   [entryPrefixSize]byte
	body     []byte
	payloads [][]byte
}

// newEntryReader reads entries from r, which is positioned at offset off
// of a file of size bytes, starting with LSN next.
func newEntryReader(r io.Reader, off, size int64, next uint64) *entryReader {
	return &entryReader{r: bufio.NewReaderSize(r, 256<<10), off: off, size: size, next: next}
}

// read returns the next entry. The payloads are only valid until the next
// call. It returns io.EOF at the end of the file, and an
// *invalidEntryError when the entry there is torn or corrupt (the reader
// stays at that entry's offset).
func (er *entryReader) read() (uint64, [][]byte, error) {
	if er.off >= er.size {
		return 0, nil, io.EOF
	}
	invalid := func(format string, args ...any) error {
		return &invalidEntryError{off: er.off, reason: fmt.Sprintf(format, args...)}
	}
	if _, err := io.ReadFull(er.r, er.prefix[:]); err != nil {
		return 0, nil, invalid("incomplete header: %v", err)
	}
	n := int64(binary.LittleEndian.Uint32(er.prefix[0:4]))
	if n < entryFixedSize-entryPrefixSize {
		return 0, nil, invalid("length %d too short", n)
	}
	if n > er.size-er.off-entryPrefixSize {
		return 0, nil, invalid("length %d runs past the end of the file", n)
	}
	if int64(cap(er.body)) < n {
		er.body = make([]byte, n)
	}
	body := er.body[:n]
	if _, err := io.ReadFull(er.r, body); err != nil {
		return 0, nil, invalid("incomplete body: %v", err)
	}
	partial := crc32.Checksum(body[8:], castagnoli)
	if sum := entryChecksum(partial, er.prefix[0:4], body[0:8]); sum != binary.LittleEndian.Uint32(er.prefix[4:8]) {
		return 0, nil, invalid("checksum mismatch")
	}
	lsn := binary.LittleEndian.Uint64(body[0:8])
	if lsn != er.next {
		return 0, nil, invalid("LSN %d, want %d", lsn, er.next)
	}
	count := binary.LittleEndian.Uint32(body[8:12])
	payloads := er.payloads[:0]
	rest := body[12:]
	for i := uint32(0); i < count; i++ {
		if len(rest) < 4 {
			return 0, nil, invalid("payload %d of %d: missing length", i, count)
		}
		pn := binary.LittleEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(len(rest)) < uint64(pn) {
			return 0, nil, invalid("payload %d of %d: length %d past the entry's end", i, count, pn)
		}
		payloads = append(payloads, rest[:pn:pn])
		rest = rest[pn:]
	}
	if len(rest) != 0 {
		return 0, nil, invalid("%d bytes after the last payload", len(rest))
	}
	er.payloads = payloads
	er.off += entryPrefixSize + n
	er.next++
	return lsn, payloads, nil
}

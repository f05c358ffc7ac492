package kv

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// EntryKind says what an Entry does when it is applied.
type EntryKind uint8

// Entry kinds.
const (
	// EntryPut sets the value of (State, Key, UserKey).
	EntryPut EntryKind = 1
	// EntryDelete deletes (State, Key, UserKey); with a nil UserKey it
	// deletes the key's value and every map entry of the key.
	EntryDelete EntryKind = 2
	// EntryClear deletes everything of State in the key group.
	EntryClear EntryKind = 3
)

func (k EntryKind) String() string {
	switch k {
	case EntryPut:
		return "put"
	case EntryDelete:
		return "delete"
	case EntryClear:
		return "clear"
	}
	return fmt.Sprintf("EntryKind(%d)", uint8(k))
}

// Entry is one unit of state in a snapshot file: the backend-neutral form
// both backends write and restore from.
//
// Value and map-state rows: a value (value, list, reducing, aggregating
// state, and the guide's stores) is one Put with a nil UserKey; a map state
// is one Put per user key, UserKey being the CBOR encoding of the map key
// (never empty).
type Entry struct {
	Kind      EntryKind
	State     string // state name
	Key       []byte // nil for EntryClear
	UserKey   []byte // map-state user key, nil otherwise
	Value     []byte // CBOR encoding of the value (EntryPut only)
	ExpiresAt int64  // absolute expiry in Unix milliseconds, 0 = never (EntryPut only)
}

// FileKind says whether a file holds a key group's full state or the
// changes since a base snapshot.
type FileKind uint8

// File kinds.
const (
	FileFull  FileKind = 1 // restoring replaces everything in the key group
	FileDelta FileKind = 2 // restoring applies the entries in order on top
)

// FormatVersion is the version of the entry file format written.
const FormatVersion = 1

// FileHeader is the first frame of an entry file.
type FileHeader struct {
	Version      uint8 // FormatVersion when written
	Kind         FileKind
	MaxKeyGroups int    // key groups of the state that wrote it
	KeyGroup     int    // the key group the file holds
	Seq          uint64 // snapshot sequence number
	Base         uint64 // FileDelta: the snapshot the changes are relative to (0: the restored or empty state)
	Time         int64  // snapshot time, Unix ms: entries expired at this time were left out
}

// Entry files are a sequence of frames:
//
//	frame   = length uint32 LE | CRC-32C(payload) uint32 LE | payload
//	payload = 'H' header | 'E' entry* | 'T' uvarint(entry count)
//	header  = "WEIRKV" | version u8 | kind u8 | uvarint maxKeyGroups |
//	          uvarint keyGroup | uvarint seq | uvarint base | varint time
//	entry   = kind u8 | bytes(state) | [bytes(key) bytes(userKey)] |
//	          [varint expiresAt bytes(value)]          (bytes = uvarint len | data)
//
// The first frame is the header, the last the trailer with the number of
// entries; a file without its trailer is torn and fails to decode.
const (
	magic         = "WEIRKV"
	blockTarget   = 32 << 10
	maxFrameBytes = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// EntryWriter writes an entry file. Close must be called to write the
// trailer; it does not close the underlying writer.
type EntryWriter struct {
	w     io.Writer
	block []byte
	count uint64
	err   error
}

// NewEntryWriter writes h as the header frame of a new file to w.
func NewEntryWriter(w io.Writer, h FileHeader) (*EntryWriter, error) {
	ew := &EntryWriter{w: w, block: make([]byte, 0, blockTarget+1024)}
	p := []byte{'H'}
	p = append(p, magic...)
	p = append(p, FormatVersion, byte(h.Kind))
	p = binary.AppendUvarint(p, uint64(h.MaxKeyGroups))
	p = binary.AppendUvarint(p, uint64(h.KeyGroup))
	p = binary.AppendUvarint(p, h.Seq)
	p = binary.AppendUvarint(p, h.Base)
	p = binary.AppendVarint(p, h.Time)
	if err := ew.frame(p); err != nil {
		return nil, err
	}
	ew.block = append(ew.block, 'E')
	return ew, nil
}

func appendBytes(p, b []byte) []byte {
	p = binary.AppendUvarint(p, uint64(len(b)))
	return append(p, b...)
}

// Write appends e to the file.
func (w *EntryWriter) Write(e Entry) error {
	if w.err != nil {
		return w.err
	}
	p := append(w.block, byte(e.Kind))
	p = binary.AppendUvarint(p, uint64(len(e.State)))
	p = append(p, e.State...)
	switch e.Kind {
	case EntryPut:
		p = appendBytes(p, e.Key)
		p = appendBytes(p, e.UserKey)
		p = binary.AppendVarint(p, e.ExpiresAt)
		p = appendBytes(p, e.Value)
	case EntryDelete:
		p = appendBytes(p, e.Key)
		p = appendBytes(p, e.UserKey)
	case EntryClear:
	default:
		return fmt.Errorf("state: write entry: %w: kind %d", ErrInvalid, e.Kind)
	}
	w.block = p
	w.count++
	if len(w.block) >= blockTarget {
		if err := w.frame(w.block); err != nil {
			return err
		}
		w.block = append(w.block[:0], 'E')
	}
	return nil
}

// Count returns the number of entries written so far.
func (w *EntryWriter) Count() uint64 { return w.count }

// Close writes the last block and the trailer.
func (w *EntryWriter) Close() error {
	if w.err != nil {
		return w.err
	}
	if len(w.block) > 1 {
		if err := w.frame(w.block); err != nil {
			return err
		}
	}
	w.block = w.block[:0]
	if err := w.frame(binary.AppendUvarint([]byte{'T'}, w.count)); err != nil {
		return err
	}
	w.err = errors.New("state: entry writer closed")
	return nil
}

func (w *EntryWriter) frame(p []byte) error {
	var hdr [8]byte
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(p)))
	binary.LittleEndian.PutUint32(hdr[4:8], crc32.Checksum(p, crcTable))
	if _, err := w.w.Write(hdr[:]); err != nil {
		w.err = fmt.Errorf("state: write entry file: %w", err)
		return w.err
	}
	if _, err := w.w.Write(p); err != nil {
		w.err = fmt.Errorf("state: write entry file: %w", err)
		return w.err
	}
	return nil
}

// EntryReader reads an entry file, verifying every frame's checksum, the
// format and the trailer's entry count.
type EntryReader struct {
	r     *bufio.Reader
	hdr   FileHeader
	buf   []byte // current entries block (without the type byte)
	off   int
	count uint64
	done  bool
}

// NewEntryReader reads the header frame of the file in r.
func NewEntryReader(r io.Reader) (*EntryReader, error) {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	er := &EntryReader{r: br}
	p, err := er.frame(nil)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, corruptf("empty file")
		}
		return nil, err
	}
	if len(p) < 1+len(magic)+2 || p[0] != 'H' || string(p[1:1+len(magic)]) != magic {
		return nil, corruptf("not an entry file")
	}
	p = p[1+len(magic):]
	if p[0] != FormatVersion {
		return nil, corruptf("format version %d, want %d", p[0], FormatVersion)
	}
	h := FileHeader{Version: p[0], Kind: FileKind(p[1])}
	if h.Kind != FileFull && h.Kind != FileDelta {
		return nil, corruptf("file kind %d", p[1])
	}
	d := decoder{p: p[2:]}
	h.MaxKeyGroups = int(d.uvarint())
	h.KeyGroup = int(d.uvarint())
	h.Seq = d.uvarint()
	h.Base = d.uvarint()
	h.Time = d.varint()
	if d.err != nil || len(d.p) != 0 {
		return nil, corruptf("bad header")
	}
	er.hdr = h
	return er, nil
}

// Header returns the file's header.
func (r *EntryReader) Header() FileHeader { return r.hdr }

// Next returns the next entry, or io.EOF after the trailer has been read
// and verified. The entry's slices are valid until the next call.
func (r *EntryReader) Next() (Entry, error) {
	for r.off >= len(r.buf) {
		if r.done {
			return Entry{}, io.EOF
		}
		p, err := r.frame(r.buf[:0])
		if err != nil {
			if errors.Is(err, io.EOF) {
				return Entry{}, corruptf("torn file: no trailer")
			}
			return Entry{}, err
		}
		switch {
		case len(p) > 0 && p[0] == 'E':
			r.buf, r.off = p, 1
		case len(p) > 0 && p[0] == 'T':
			d := decoder{p: p[1:]}
			n := d.uvarint()
			if d.err != nil || len(d.p) != 0 {
				return Entry{}, corruptf("bad trailer")
			}
			if n != r.count {
				return Entry{}, corruptf("trailer counts %d entries, read %d", n, r.count)
			}
			if _, err := r.r.ReadByte(); err != io.EOF {
				return Entry{}, corruptf("data after trailer")
			}
			r.done = true
			r.buf, r.off = r.buf[:0], 0
		default:
			return Entry{}, corruptf("unknown frame")
		}
	}
	d := decoder{p: r.buf[r.off:]}
	var e Entry
	e.Kind = EntryKind(d.byte())
	e.State = string(d.bytes()) // state names are short and few; copy
	switch e.Kind {
	case EntryPut:
		e.Key = d.bytes()
		e.UserKey = nilIfEmpty(d.bytes())
		e.ExpiresAt = d.varint()
		e.Value = d.bytes()
	case EntryDelete:
		e.Key = d.bytes()
		e.UserKey = nilIfEmpty(d.bytes())
	case EntryClear:
	default:
		return Entry{}, corruptf("entry kind %d", e.Kind)
	}
	if d.err != nil {
		return Entry{}, d.err
	}
	r.off = len(r.buf) - len(d.p)
	r.count++
	return e, nil
}

func nilIfEmpty(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (r *EntryReader) frame(dst []byte) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r.r, hdr[:]); err != nil {
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, corruptf("torn frame header: %v", err)
	}
	n := binary.LittleEndian.Uint32(hdr[0:4])
	if n > maxFrameBytes {
		return nil, corruptf("frame of %d bytes", n)
	}
	if cap(dst) < int(n) {
		dst = make([]byte, n)
	}
	dst = dst[:n]
	if _, err := io.ReadFull(r.r, dst); err != nil {
		return nil, corruptf("torn frame: %v", err)
	}
	if crc32.Checksum(dst, crcTable) != binary.LittleEndian.Uint32(hdr[4:8]) {
		return nil, corruptf("frame checksum mismatch")
	}
	return dst, nil
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("state: entry file: %w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

type decoder struct {
	p   []byte
	err error
}

func (d *decoder) fail() {
	if d.err == nil {
		d.err = corruptf("truncated entry")
	}
	d.p = nil
}

func (d *decoder) byte() byte {
	if len(d.p) < 1 {
		d.fail()
		return 0
	}
	b := d.p[0]
	d.p = d.p[1:]
	return b
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.p)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.p)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.p = d.p[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.p)) {
		d.fail()
		return nil
	}
	b := d.p[:n:n]
	d.p = d.p[n:]
	return b
}

// EncodeEntries writes a complete entry file holding entries to w.
func EncodeEntries(w io.Writer, h FileHeader, entries []Entry) error {
	ew, err := NewEntryWriter(w, h)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := ew.Write(e); err != nil {
			return err
		}
	}
	return ew.Close()
}

// DecodeEntries reads a complete entry file. The entries own their bytes.
func DecodeEntries(r io.Reader) (FileHeader, []Entry, error) {
	er, err := NewEntryReader(r)
	if err != nil {
		return FileHeader{}, nil, err
	}
	var out []Entry
	for {
		e, err := er.Next()
		if err == io.EOF {
			return er.Header(), out, nil
		}
		if err != nil {
			return er.Header(), nil, err
		}
		e.Key = bytes.Clone(e.Key)
		e.UserKey = bytes.Clone(e.UserKey)
		e.Value = bytes.Clone(e.Value)
		out = append(out, e)
	}
}

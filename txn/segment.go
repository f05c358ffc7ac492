package txn

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// A segment file is named after the LSN of its first entry ("%020d.wal")
// and starts with a 16-byte header: the magic "WEIRWAL" and a format
// version byte (1), then that LSN (8 bytes little endian). Entries follow
// (see entry.go). A new segment's base is the next LSN of the log when it
// is created, so it may hold no entry yet.
const (
	segmentMagic      = "WEIRWAL\x01"
	segmentHeaderSize = 16
	segmentSuffix     = ".wal"
)

// segment is one file of the log.
type segment struct {
	base uint64 // LSN of its first entry
	path string
}

func segmentPath(dir string, base uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, segmentSuffix))
}

// listSegments returns the segment files of dir, oldest first. Other files
// are ignored.
func listSegments(dir string) ([]segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var segs []segment
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segmentSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		base, err := strconv.ParseUint(name, 10, 64)
		if err != nil || len(name) != 20 {
			continue
		}
		segs = append(segs, segment{base: base, path: filepath.Join(dir, e.Name())})
	}
	slices.SortFunc(segs, func(a, b segment) int {
		switch {
		case a.base < b.base:
			return -1
		case a.base > b.base:
			return 1
		}
		return 0
	})
	return segs, nil
}

func segmentHeader(base uint64) []byte {
	h := make([]byte, segmentHeaderSize)
	copy(h, segmentMagic)
	binary.LittleEndian.PutUint64(h[8:], base)
	return h
}

// checkHeader reads the header of f (from offset 0) and checks it against
// seg. The file offset is left after the header.
func checkHeader(f *os.File, seg segment) error {
	h := make([]byte, segmentHeaderSize)
	if _, err := io.ReadFull(f, h); err != nil {
		return fmt.Errorf("%w: %s: read header: %w", ErrCorrupt, seg.path, err)
	}
	if string(h[:8]) != segmentMagic {
		return fmt.Errorf("%w: %s: not a weir log segment (or an unknown version)", ErrCorrupt, seg.path)
	}
	if b := binary.LittleEndian.Uint64(h[8:]); b != seg.base {
		return fmt.Errorf("%w: %s: header says first LSN %d", ErrCorrupt, seg.path, b)
	}
	return nil
}

// createSegment creates the segment file of base with its header, durably
// (file and directory fsynced), and returns it open for appending.
func createSegment(dir string, base uint64) (*os.File, error) {
	p := segmentPath(dir, base)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(segmentHeader(base)); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// syncDir fsyncs a directory, so that entries created or removed in it are
// durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

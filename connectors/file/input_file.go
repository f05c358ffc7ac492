package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync/atomic"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

const (
	fieldPath         = "path"
	fieldFormat       = "format"
	fieldBatchSize    = "batch_size"
	fieldCSVHeader    = "csv_header"
	fieldCSVDelimiter = "csv_delimiter"
)

const (
	formatLines  = "lines"
	formatNDJSON = "ndjson"
	formatCSV    = "csv"
)

const (
	// readBufferSize is the size of the file reader's buffer.
	readBufferSize = 1 << 20
	// maxBatchBytes ends a batch early once its payload reaches this size,
	// so a file of long lines does not build gigantic batches (and Arrow's
	// 32-bit binary offsets never overflow).
	maxBatchBytes = 64 << 20
	// maxLineBytes is the longest line the input accepts.
	maxLineBytes = math.MaxInt32 - maxBatchBytes
)

func fileInputSpec() component.Spec {
	return component.Spec{
		Name:    "file",
		Summary: "Reads a file as lines, newline-delimited JSON or CSV; the stream ends at the end of the file.",
		Bounded: true,
		Fields: []component.Field{
			{Name: fieldPath, Type: component.TypeString, Required: true,
				Description: "Path of the file to read."},
			{Name: fieldFormat, Type: component.TypeString, Default: formatLines,
				Options:     []string{formatLines, formatNDJSON, formatCSV},
				Description: "lines and ndjson: one __value__ record per line (ndjson skips blank lines); csv: one string column per field."},
			{Name: fieldBatchSize, Type: component.TypeInt, Default: int64(8192),
				Description: "Records per batch (a batch also ends once it holds 64 MiB)."},
			{Name: fieldCSVHeader, Type: component.TypeBool, Default: true,
				Description: "csv: the first line names the columns; otherwise they are c0, c1, …"},
			{Name: fieldCSVDelimiter, Type: component.TypeString, Default: ",",
				Description: `csv: the field delimiter, one character ("\t" for tab).`},
		},
		Example: "input:\n  type: file\n  path: ./events.ndjson\n  format: ndjson\n",
	}
}

func init() {
	component.RegisterInput(fileInputSpec(), newFileInput)
}

var valueSchema = arrow.NewSchema([]arrow.Field{{Name: message.ValueColumn, Type: arrow.BinaryTypes.Binary}}, nil)

// fileInput is the file input. Read, Seek, Connect and Close are called by
// one goroutine at a time (the Input contract); only the progress counters
// are read concurrently, hence atomics.
type fileInput struct {
	path      string
	format    string
	batchSize int
	csvHeader bool
	delim     rune
	log       *slog.Logger

	start int64 // offset to start from (Seek), or to resume from (reconnect)
	f     *os.File
	br    *bufio.Reader
	off   int64 // file offset after the last record returned
	hint  int   // expected payload bytes of the next batch

	// csv
	cr      *csv.Reader
	csvBase int64 // file offset where cr started reading
	columns []string
	schema  *arrow.Schema
	csvErr  error // an error that follows the rows of the last batch

	done atomic.Int64 // bytes read (off), for Progress
	size atomic.Int64 // file size at Connect
}

var (
	_ component.Input      = (*fileInput)(nil)
	_ component.Replayable = (*fileInput)(nil)
	_ component.Progresser = (*fileInput)(nil)
)

func newFileInput(conf *component.Config, res component.Resources) (component.Input, error) {
	in := &fileInput{
		path:      conf.String(fieldPath),
		format:    conf.String(fieldFormat),
		batchSize: conf.Int(fieldBatchSize),
		csvHeader: conf.Bool(fieldCSVHeader),
		log:       res.Logger,
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.path == "" {
		return nil, conf.Errorf(fieldPath, "must not be empty")
	}
	switch in.format {
	case formatLines, formatNDJSON, formatCSV:
	default:
		return nil, conf.Errorf(fieldFormat, "unknown format %q (want lines, ndjson or csv)", in.format)
	}
	if in.batchSize < 1 {
		return nil, conf.Errorf(fieldBatchSize, "must be at least 1, got %d", in.batchSize)
	}
	d, err := parseDelimiter(conf.String(fieldCSVDelimiter))
	if err != nil {
		return nil, conf.Errorf(fieldCSVDelimiter, "%v", err)
	}
	in.delim = d
	return in, nil
}

// parseDelimiter accepts one character, or the two characters `\t` for tab.
func parseDelimiter(s string) (rune, error) {
	if s == `\t` {
		return '\t', nil
	}
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 || size != len(s) || r == utf8.RuneError {
		return 0, fmt.Errorf("must be exactly one character, got %q", s)
	}
	if r == '"' || r == '\r' || r == '\n' {
		return 0, fmt.Errorf("cannot be %q", r)
	}
	return r, nil
}

// Seek makes the input start at a byte offset (a Pos it produced earlier);
// it is called before Connect. An empty pos starts at the beginning.
func (in *fileInput) Seek(pos []byte) error {
	if len(pos) == 0 {
		in.start = 0
		return nil
	}
	if len(pos) != 8 {
		return fmt.Errorf("file input %s: seek: position has %d bytes, want 8", in.path, len(pos))
	}
	off := binary.BigEndian.Uint64(pos)
	if off > math.MaxInt64 {
		return fmt.Errorf("file input %s: seek: offset %d out of range", in.path, off)
	}
	in.start = int64(off)
	return nil
}

// Connect opens the file at the start offset. Called again, it reopens the
// file where the last batch ended.
func (in *fileInput) Connect(context.Context) error {
	if in.f != nil {
		in.f.Close()
		in.f = nil
		in.start = in.off
	}
	f, err := os.Open(in.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
			// Waiting will not make the file appear: fail the stream.
			return component.Permanent(fmt.Errorf("file input: %w", err))
		}
		return fmt.Errorf("file input: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file input: %w", err)
	}
	in.size.Store(st.Size())
	in.f = f
	if in.br == nil {
		in.br = bufio.NewReaderSize(f, readBufferSize)
	} else {
		in.br.Reset(f)
	}
	if in.format == formatCSV {
		if err := in.openCSV(); err != nil {
			in.f.Close()
			in.f = nil
			return err
		}
	} else if err := in.seekTo(in.start); err != nil {
		in.f.Close()
		in.f = nil
		return err
	}
	in.done.Store(in.off)
	in.log.Debug("file input opened", "path", in.path, "offset", in.off, "size", st.Size())
	return nil
}

// seekTo positions the file and its reader at off.
func (in *fileInput) seekTo(off int64) error {
	if off != 0 {
		if _, err := in.f.Seek(off, io.SeekStart); err != nil {
			return fmt.Errorf("file input %s: seek to %d: %w", in.path, off, err)
		}
		in.br.Reset(in.f)
	}
	in.off = off
	return nil
}

// openCSV reads the header (if any), then seeks to the start offset.
func (in *fileInput) openCSV() error {
	in.csvBase = 0
	in.off = 0
	in.cr = in.newCSVReader()
	if in.csvHeader {
		header, err := in.cr.Read()
		switch {
		case errors.Is(err, io.EOF):
			in.columns = nil // an empty file: Read ends at once
		case err != nil:
			return fmt.Errorf("file input %s: csv header: %w", in.path, err)
		default:
			in.columns = append([]string(nil), header...)
			in.off = in.cr.InputOffset()
		}
		in.schema = nil
	}
	if in.start > in.off {
		if err := in.seekTo(in.start); err != nil {
			return err
		}
		in.csvBase = in.start
		in.cr = in.newCSVReader()
	}
	return nil
}

func (in *fileInput) newCSVReader() *csv.Reader {
	// csv.NewReader keeps in.br: it is a *bufio.Reader of at least 4 KiB.
	r := csv.NewReader(in.br)
	r.Comma = in.delim
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	return r
}

// Read returns the next batch, or component.ErrEndOfInput at the end of
// the file.
func (in *fileInput) Read(ctx context.Context) (*message.Batch, message.AckFunc, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if in.f == nil {
		return nil, nil, fmt.Errorf("file input %s: read before connect: %w", in.path, component.ErrNotConnected)
	}
	var (
		b   *message.Batch
		err error
	)
	if in.format == formatCSV {
		b, err = in.readCSV()
	} else {
		b, err = in.readLines(in.format == formatNDJSON)
	}
	if err != nil {
		return nil, nil, err
	}
	in.done.Store(in.off)
	if b == nil {
		return nil, nil, component.ErrEndOfInput
	}
	b.Pos = binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(in.off))
	return b, nil, nil
}

// readLines reads up to batchSize lines into one contiguous buffer and
// wraps it, without another copy, as the __value__ column. It returns nil
// at the end of the file.
func (in *fileInput) readLines(skipBlank bool) (*message.Batch, error) {
	data := make([]byte, 0, max(in.hint, 64<<10))
	offsets := make([]int32, 1, in.batchSize+1)
	off := in.off
	for len(offsets) <= in.batchSize && len(data) < maxBatchBytes {
		lineStart := len(data)
		n := 0 // bytes of this line in the file, newline included
		var err error
		for {
			var chunk []byte
			chunk, err = in.br.ReadSlice('\n')
			n += len(chunk)
			if n > maxLineBytes {
				return nil, fmt.Errorf("file input %s: line at offset %d is longer than %d bytes", in.path, off, maxLineBytes)
			}
			data = append(data, chunk...)
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("file input %s: read at offset %d: %w", in.path, off, err)
		}
		if n == 0 { // end of file
			break
		}
		off += int64(n)
		line := data[lineStart:]
		line = bytes.TrimSuffix(line, []byte{'\n'})
		line = bytes.TrimSuffix(line, []byte{'\r'})
		data = data[:lineStart+len(line)]
		if skipBlank && len(bytes.TrimSpace(line)) == 0 {
			data = data[:lineStart]
		} else {
			offsets = append(offsets, int32(len(data)))
		}
		if err != nil { // io.EOF after a last line without newline
			break
		}
	}
	in.off = off
	rows := len(offsets) - 1
	if rows == 0 {
		return nil, nil
	}
	// Size the next batch's buffer so it rarely has to grow.
	in.hint = len(data) + len(data)/8
	return message.New(binaryRecord(data, offsets)), nil
}

// binaryRecord builds a one-column __value__ record from a data buffer and
// its offsets, sharing their memory.
func binaryRecord(data []byte, offsets []int32) arrow.RecordBatch {
	rows := len(offsets) - 1
	ad := array.NewData(arrow.BinaryTypes.Binary, rows, []*memory.Buffer{
		nil,
		memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets)),
		memory.NewBufferBytes(data),
	}, nil, 0, 0)
	defer ad.Release()
	arr := array.NewBinaryData(ad)
	defer arr.Release()
	return array.NewRecordBatch(valueSchema, []arrow.Array{arr}, int64(rows))
}

// readCSV reads up to batchSize CSV rows into one string column per field.
// It returns nil at the end of the file.
func (in *fileInput) readCSV() (*message.Batch, error) {
	if in.csvHeader && in.columns == nil {
		return nil, nil // empty file
	}
	var (
		builders []*array.StringBuilder
		rows     int
		dataLen  int
	)
	if err := in.csvErr; err != nil {
		in.csvErr = nil
		return nil, err
	}
	for rows < in.batchSize && dataLen < maxBatchBytes {
		rec, err := in.cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && len(rec) > len(in.columns) && in.columns != nil {
			err = fmt.Errorf("record at offset %d has %d fields, but there are only %d columns", in.off, len(rec), len(in.columns))
		}
		if err != nil {
			err = fmt.Errorf("file input %s: csv: %w", in.path, err)
			if rows == 0 {
				return nil, err
			}
			// Return the rows read so far; the error comes next.
			in.csvErr = err
			break
		}
		if in.columns == nil { // no header: the first row sets the width
			in.columns = make([]string, len(rec))
			for i := range in.columns {
				in.columns[i] = "c" + strconv.Itoa(i)
			}
		}
		if builders == nil {
			builders = in.newBuilders()
		}
		for i, bld := range builders {
			if i < len(rec) {
				bld.Append(rec[i])
				dataLen += len(rec[i])
			} else {
				bld.AppendNull()
			}
		}
		rows++
		in.off = in.csvBase + in.cr.InputOffset()
	}
	if rows == 0 {
		return nil, nil
	}
	in.hint = dataLen + dataLen/8
	if in.schema == nil {
		fields := make([]arrow.Field, len(in.columns))
		for i, name := range in.columns {
			fields[i] = arrow.Field{Name: name, Type: arrow.BinaryTypes.String, Nullable: true}
		}
		in.schema = arrow.NewSchema(fields, nil)
	}
	cols := make([]arrow.Array, len(builders))
	for i, bld := range builders {
		cols[i] = bld.NewArray()
		bld.Release()
	}
	rec := array.NewRecordBatch(in.schema, cols, int64(rows))
	for _, c := range cols {
		c.Release()
	}
	return message.New(rec), nil
}

func (in *fileInput) newBuilders() []*array.StringBuilder {
	builders := make([]*array.StringBuilder, len(in.columns))
	perCol := in.hint / max(len(in.columns), 1)
	for i := range builders {
		bld := array.NewStringBuilder(message.Alloc)
		bld.Reserve(in.batchSize)
		bld.ReserveData(perCol)
		builders[i] = bld
	}
	return builders
}

// Progress returns the bytes read so far and the file size.
func (in *fileInput) Progress() (done, total int64) {
	return in.done.Load(), in.size.Load()
}

// Close closes the file.
func (in *fileInput) Close(context.Context) error {
	if in.f == nil {
		return nil
	}
	err := in.f.Close()
	in.f = nil
	if err != nil {
		return fmt.Errorf("file input %s: close: %w", in.path, err)
	}
	return nil
}

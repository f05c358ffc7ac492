package httpconn

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// Fields of the http input.
const (
	inFieldAddress      = "address"
	inFieldPath         = "path"
	inFieldMethods      = "methods"
	inFieldFormat       = "format"
	inFieldMaxBodyBytes = "max_body_bytes"
	inFieldTimeout      = "timeout"
	inFieldQueueSize    = "queue_size"
	inFieldAuthToken    = "auth_token"
)

// Formats of the http input.
const (
	formatBody   = "body"
	formatLines  = "lines"
	formatNDJSON = "ndjson"
)

// Metadata columns the http input adds to every record (besides
// message.MetaSource and message.MetaTimestamp).
const (
	MetaHTTPPath       = message.MetaPrefix + "http_path"
	MetaHTTPMethod     = message.MetaPrefix + "http_method"
	MetaHTTPRemoteAddr = message.MetaPrefix + "http_remote_addr"
)

func inputSpec() component.Spec {
	return component.Spec{
		Name: "http",
		Summary: "HTTP server: each accepted request becomes one batch, answered 200 once the batch " +
			"is acknowledged by the output (500 on failure, 503 when the queue is full, 504 on timeout).",
		Fields: []component.Field{
			{Name: inFieldAddress, Type: component.TypeString, Default: "0.0.0.0:8000",
				Description: "host:port to listen on"},
			{Name: inFieldPath, Type: component.TypeString, Default: "/",
				Description: "the only URL path accepted (others get 404)"},
			{Name: inFieldMethods, Type: component.TypeList, Elem: component.TypeString, Default: []any{"POST"},
				Description: "accepted HTTP methods (others get 405)"},
			{Name: inFieldFormat, Type: component.TypeString, Default: formatBody,
				Options:     []string{formatBody, formatLines, formatNDJSON},
				Description: "body: the whole body is one record; lines: one record per non-empty line; ndjson: as lines, each must be JSON (else 400)"},
			{Name: inFieldMaxBodyBytes, Type: component.TypeInt, Default: int64(10 << 20),
				Description: "largest accepted request body in bytes (larger gets 413)", Advanced: true},
			{Name: inFieldTimeout, Type: component.TypeDuration, Default: 30 * time.Second,
				Description: "how long a request waits for its batch to be acknowledged before it is answered 504"},
			{Name: inFieldQueueSize, Type: component.TypeInt, Default: int64(64),
				Description: "requests waiting to be read; when full, requests get 503 with Retry-After (backpressure)", Advanced: true},
			{Name: inFieldAuthToken, Type: component.TypeString,
				Description: "when set, requests must carry `Authorization: Bearer <token>` (else 401)"},
		},
		Example: `input:
  type: http
  address: 0.0.0.0:8000
  path: /ingest
  format: ndjson
  auth_token: ${INGEST_TOKEN}
`,
	}
}

func init() {
	component.RegisterInput(inputSpec(), newHTTPInput)
}

// abortGrace is how long Close lets handlers answer once it gave up
// waiting for acknowledgements, before it cuts their connections.
const abortGrace = time.Second

// errShuttingDown is sent to a request that was still queued when the
// input closed; its sender is answered 503.
var errShuttingDown = errors.New("http input: shutting down")

// Request states: a queued request is taken by Read, or abandoned by its
// handler (timeout, sender gone) or by Close; whichever comes first wins.
const (
	stateQueued int32 = iota
	stateTaken
	stateAbandoned
)

// request is one accepted request waiting in the queue, then for its ack.
type request struct {
	batch *message.Batch
	state atomic.Int32
	// done receives the outcome once (buffered: the ack never blocks).
	done chan error
}

func (r *request) ack(_ context.Context, err error) error {
	select {
	case r.done <- err:
	default: // acknowledged twice, or rejected by Close: first wins
	}
	return nil
}

// httpInput is the http input.
//
// Lock order: mu only; it is never held while blocking.
type httpInput struct {
	address   string
	path      string
	methods   []string
	allow     string // Allow header for 405
	format    string
	maxBody   int64
	timeout   time.Duration
	authToken []byte // nil when auth is off
	log       *slog.Logger

	queue   chan *request
	closing chan struct{} // closed when Close starts: Read returns
	abort   chan struct{} // closed when Close gives up waiting for acks

	mu        sync.Mutex
	srv       *http.Server   // guarded by mu
	ln        net.Listener   // guarded by mu
	serveDone chan struct{}  // guarded by mu; closed when Serve returns
	serveErr  error          // set before serveDone is closed
	closed    bool           // guarded by mu: no more enqueues
	stopped   bool           // guarded by mu: no more tracked handlers
	handlers  sync.WaitGroup // Add under mu while !stopped
}

func newHTTPInput(conf *component.Config, res component.Resources) (component.Input, error) {
	in := &httpInput{
		address: conf.String(inFieldAddress),
		path:    conf.String(inFieldPath),
		format:  conf.String(inFieldFormat),
		maxBody: int64(conf.Int(inFieldMaxBodyBytes)),
		timeout: conf.Duration(inFieldTimeout),
		log:     res.Logger,
		closing: make(chan struct{}),
		abort:   make(chan struct{}),
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if in.address == "" {
		return nil, conf.Errorf(inFieldAddress, "must not be empty")
	}
	if !strings.HasPrefix(in.path, "/") {
		return nil, conf.Errorf(inFieldPath, "must start with '/', got %q", in.path)
	}
	for _, m := range conf.StringList(inFieldMethods) {
		m = strings.ToUpper(strings.TrimSpace(m))
		if m == "" || strings.ContainsAny(m, " \t/") {
			return nil, conf.Errorf(inFieldMethods, "invalid HTTP method %q", m)
		}
		in.methods = append(in.methods, m)
	}
	if len(in.methods) == 0 {
		return nil, conf.Errorf(inFieldMethods, "must list at least one method")
	}
	in.allow = strings.Join(in.methods, ", ")
	switch in.format {
	case formatBody, formatLines, formatNDJSON:
	default:
		return nil, conf.Errorf(inFieldFormat, "unknown format %q (want body, lines or ndjson)", in.format)
	}
	// Offsets of the __value__ column are int32.
	if in.maxBody <= 0 || in.maxBody > math.MaxInt32 {
		return nil, conf.Errorf(inFieldMaxBodyBytes, "must be between 1 and %d, got %d", math.MaxInt32, in.maxBody)
	}
	if in.timeout <= 0 {
		return nil, conf.Errorf(inFieldTimeout, "must be positive, got %s", in.timeout)
	}
	qs := conf.Int(inFieldQueueSize)
	if qs < 1 {
		return nil, conf.Errorf(inFieldQueueSize, "must be at least 1, got %d", qs)
	}
	in.queue = make(chan *request, qs)
	if tok := conf.String(inFieldAuthToken); tok != "" {
		in.authToken = []byte(tok)
	}
	return in, nil
}

// Connect starts the server. It is a no-op when the server already runs.
func (in *httpInput) Connect(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.closed {
		return fmt.Errorf("http input: connect: %w", net.ErrClosed)
	}
	if in.srv != nil {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", in.address)
	if err != nil {
		return fmt.Errorf("http input: listen on %s: %w", in.address, err)
	}
	in.ln = ln
	in.srv = &http.Server{
		Handler:           in,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(in.log.Handler(), slog.LevelWarn),
	}
	in.serveDone = make(chan struct{})
	srv, done := in.srv, in.serveDone
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			in.serveErr = err
		}
	}()
	in.log.Info("http input listening", "address", ln.Addr().String(), "path", in.path)
	return nil
}

// Addr returns the address the server listens on, or nil before Connect.
func (in *httpInput) Addr() net.Addr {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ln == nil {
		return nil
	}
	return in.ln.Addr()
}

// Read returns the next accepted request's batch. It blocks until a
// request arrives, ctx is done, or the input closes (ErrEndOfInput).
func (in *httpInput) Read(ctx context.Context) (*message.Batch, message.AckFunc, error) {
	in.mu.Lock()
	serveDone := in.serveDone
	in.mu.Unlock()
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-in.closing:
			return nil, nil, component.ErrEndOfInput
		case <-serveDone: // nil (blocks forever) before Connect
			if in.serveErr == nil { // stopped by Close
				return nil, nil, component.ErrEndOfInput
			}
			return nil, nil, fmt.Errorf("http input: server on %s stopped: %w", in.address, in.serveErr)
		case r := <-in.queue:
			if !r.state.CompareAndSwap(stateQueued, stateTaken) {
				continue // its sender was already answered
			}
			return r.batch, r.ack, nil
		}
	}
}

// Close stops accepting requests, answers queued requests 503, waits until
// ctx is done for the requests already read to be acknowledged (then
// answers them 503), and returns once the server and every handler have
// stopped.
func (in *httpInput) Close(ctx context.Context) error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	srv, serveDone := in.srv, in.serveDone
	in.mu.Unlock()
	close(in.closing)

	// No handler enqueues any more: reject what is left in the queue.
	for drained := false; !drained; {
		select {
		case r := <-in.queue:
			if r.state.CompareAndSwap(stateQueued, stateAbandoned) {
				r.done <- errShuttingDown
			}
		default:
			drained = true
		}
	}

	var err error
	if srv != nil {
		// Shutdown waits for handlers, which wait for their acks.
		if serr := srv.Shutdown(ctx); serr != nil {
			err = fmt.Errorf("http input: shutdown: requests still waiting for acknowledgement were answered 503: %w", serr)
			// Unblock the handlers and give their answers a moment to
			// reach the senders before the connections are cut.
			close(in.abort)
			grace, cancel := context.WithTimeout(context.Background(), abortGrace)
			if srv.Shutdown(grace) != nil {
				_ = srv.Close()
			}
			cancel()
		}
	}
	in.mu.Lock()
	in.stopped = true
	in.mu.Unlock()
	in.handlers.Wait()
	if serveDone != nil {
		<-serveDone
	}
	return err
}

// enter registers a running handler; it reports false once Close waits
// for handlers (the handler must then answer without blocking).
func (in *httpInput) enter() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.stopped {
		return false
	}
	in.handlers.Add(1)
	return true
}

// ServeHTTP checks the request, reads its body into a batch and hands it to
// accept.
func (in *httpInput) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !in.enter() {
		writeReply(w, reply{code: http.StatusServiceUnavailable, msg: "shutting down", retryAfter: true})
		return
	}
	defer in.handlers.Done()
	writeReply(w, in.handle(w, r))
}

func (in *httpInput) handle(w http.ResponseWriter, r *http.Request) reply {
	if r.URL.Path != in.path {
		return reply{code: http.StatusNotFound, msg: "not found"}
	}
	if !in.methodAllowed(r.Method) {
		w.Header().Set("Allow", in.allow)
		return reply{code: http.StatusMethodNotAllowed, msg: "method " + r.Method + " not allowed"}
	}
	if in.authToken != nil && !in.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="weir"`)
		return reply{code: http.StatusUnauthorized, msg: "missing or invalid bearer token"}
	}
	if r.ContentLength > in.maxBody {
		return reply{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body larger than %d bytes", in.maxBody)}
	}
	// Refuse before reading the body when the queue is already full; the
	// send in accept is what really decides.
	if len(in.queue) == cap(in.queue) {
		return reply{code: http.StatusServiceUnavailable, msg: "queue full", retryAfter: true}
	}
	body, err := readBody(w, r, in.maxBody)
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return reply{code: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("body larger than %d bytes", in.maxBody)}
		}
		return reply{code: http.StatusBadRequest, msg: "read body: " + err.Error()}
	}
	b, err := in.buildBatch(r, body)
	if err != nil {
		return reply{code: http.StatusBadRequest, msg: err.Error()}
	}
	if b.NumRows() == 0 {
		return reply{code: http.StatusOK}
	}
	return in.accept(r.Context(), b)
}

func (in *httpInput) methodAllowed(m string) bool {
	for _, a := range in.methods {
		if a == m {
			return true
		}
	}
	return false
}

func (in *httpInput) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[len(scheme):])), in.authToken) == 1
}

// accept hands one request's batch to the pipeline and returns the answer
// for its sender. It is the one place that decides when a sender may be
// told "ok": today once the batch is acknowledged by the output; with the
// write-ahead log it becomes "once the append is durable".
func (in *httpInput) accept(ctx context.Context, b *message.Batch) reply {
	req := &request{batch: b, done: make(chan error, 1)}
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return reply{code: http.StatusServiceUnavailable, msg: "shutting down", retryAfter: true}
	}
	select {
	case in.queue <- req:
	default:
		in.mu.Unlock()
		return reply{code: http.StatusServiceUnavailable, msg: "queue full", retryAfter: true}
	}
	in.mu.Unlock()

	timer := time.NewTimer(in.timeout)
	defer timer.Stop()
	select {
	case err := <-req.done:
		switch {
		case err == nil:
			return reply{code: http.StatusOK, records: b.NumRows()}
		case errors.Is(err, errShuttingDown):
			return reply{code: http.StatusServiceUnavailable, msg: "shutting down", retryAfter: true}
		default:
			return reply{code: http.StatusInternalServerError, msg: err.Error()}
		}
	case <-timer.C:
		req.state.CompareAndSwap(stateQueued, stateAbandoned)
		return reply{code: http.StatusGatewayTimeout, msg: fmt.Sprintf("not acknowledged within %s", in.timeout)}
	case <-ctx.Done(): // the sender went away; nobody reads the answer
		req.state.CompareAndSwap(stateQueued, stateAbandoned)
		return reply{code: http.StatusServiceUnavailable, msg: "request cancelled"}
	case <-in.abort:
		return reply{code: http.StatusServiceUnavailable, msg: "shutting down before acknowledgement", retryAfter: true}
	}
}

// readBody reads the whole body, at most max bytes.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, max)
	if r.ContentLength >= 0 {
		// net/http ends the body after exactly ContentLength bytes.
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	return io.ReadAll(body)
}

var inputSchema = arrow.NewSchema([]arrow.Field{
	{Name: message.ValueColumn, Type: arrow.BinaryTypes.Binary},
	{Name: message.MetaSource, Type: arrow.BinaryTypes.String},
	{Name: MetaHTTPPath, Type: arrow.BinaryTypes.String},
	{Name: MetaHTTPMethod, Type: arrow.BinaryTypes.String},
	{Name: MetaHTTPRemoteAddr, Type: arrow.BinaryTypes.String},
	{Name: message.MetaTimestamp, Type: arrow.PrimitiveTypes.Int64},
}, nil)

// buildBatch turns a body into a batch. The __value__ column uses body as
// its data buffer (lines are compacted in place), so the body is not copied.
func (in *httpInput) buildBatch(r *http.Request, body []byte) (*message.Batch, error) {
	var offsets []int32
	if in.format == formatBody {
		if len(body) > 0 {
			offsets = []int32{0, int32(len(body))}
		}
	} else {
		var err error
		if body, offsets, err = compactLines(body, in.format == formatNDJSON); err != nil {
			return nil, err
		}
	}
	if len(offsets) < 2 {
		return message.New(array.NewRecordBatch(inputSchema, emptyColumns(), 0)), nil
	}
	n := len(offsets) - 1
	values := array.NewBinaryData(array.NewData(arrow.BinaryTypes.Binary, n, []*memory.Buffer{
		nil,
		memory.NewBufferBytes(arrow.Int32Traits.CastToBytes(offsets)),
		memory.NewBufferBytes(body),
	}, nil, 0, 0))
	now := time.Now().UnixMilli()
	cols := []arrow.Array{
		values,
		repeatString("http", n),
		repeatString(r.URL.Path, n),
		repeatString(r.Method, n),
		repeatString(r.RemoteAddr, n),
		repeatInt64(now, n),
	}
	return message.New(array.NewRecordBatch(inputSchema, cols, int64(n))), nil
}

// compactLines moves the non-empty lines of body (without "\n" or "\r\n")
// to its front, back to back, and returns the compacted body and the
// offsets of the lines in it. With validJSON each line must be JSON.
func compactLines(body []byte, validJSON bool) ([]byte, []int32, error) {
	offsets := make([]int32, 1, bytes.Count(body, []byte{'\n'})+2)
	w := 0
	for lineNo, rest := 1, body; len(rest) > 0; lineNo++ {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if validJSON && !json.Valid(line) {
			return nil, nil, fmt.Errorf("line %d is not valid JSON", lineNo)
		}
		w += copy(body[w:], line) // w never passes the line's start
		offsets = append(offsets, int32(w))
	}
	return body[:w], offsets, nil
}

func repeatString(s string, n int) arrow.Array {
	b := array.NewStringBuilder(message.Alloc)
	defer b.Release()
	b.Reserve(n)
	b.ReserveData(n * len(s))
	for i := 0; i < n; i++ {
		b.Append(s)
	}
	return b.NewArray()
}

func repeatInt64(v int64, n int) arrow.Array {
	vals := make([]int64, n)
	for i := range vals {
		vals[i] = v
	}
	return array.NewInt64Data(array.NewData(arrow.PrimitiveTypes.Int64, n,
		[]*memory.Buffer{nil, memory.NewBufferBytes(arrow.Int64Traits.CastToBytes(vals))}, nil, 0, 0))
}

func emptyColumns() []arrow.Array {
	cols := make([]arrow.Array, len(inputSchema.Fields()))
	for i, f := range inputSchema.Fields() {
		cols[i] = array.MakeArrayOfNull(message.Alloc, f.Type, 0)
	}
	return cols
}

// reply is the answer to one request.
type reply struct {
	code       int
	msg        string // error text (non-2xx)
	records    int    // 2xx
	retryAfter bool   // add Retry-After: 1
}

// writeReply writes {"status":"ok","records":N} or
// {"status":"error","error":"..."} with the reply's status code.
func writeReply(w http.ResponseWriter, rep reply) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if rep.retryAfter {
		h.Set("Retry-After", "1")
	}
	buf := make([]byte, 0, 64+len(rep.msg))
	if rep.code >= 200 && rep.code < 300 {
		buf = append(buf, `{"status":"ok","records":`...)
		buf = strconv.AppendInt(buf, int64(rep.records), 10)
	} else {
		buf = append(buf, `{"status":"error","error":`...)
		buf = message.AppendJSONString(buf, rep.msg)
	}
	buf = append(buf, "}\n"...)
	w.WriteHeader(rep.code)
	_, _ = w.Write(buf)
}

package httpconn

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// Fields of the http output.
const (
	outFieldURL            = "url"
	outFieldMethod         = "method"
	outFieldHeaders        = "headers"
	outFieldFormat         = "format"
	outFieldTimeout        = "timeout"
	outFieldMaxRetries     = "max_retries"
	outFieldInitialBackoff = "initial_backoff"
	outFieldMaxBackoff     = "max_backoff"
)

// Formats of the http output (besides formatLines).
const (
	formatJSONArray = "json_array"
)

// bodyExcerptLen bounds how much of an error answer goes into an error.
const bodyExcerptLen = 512

func outputSpec() component.Spec {
	return component.Spec{
		Name: "http",
		Summary: "HTTP client: sends one request per batch and retries network errors, 429 and 5xx with " +
			"exponential backoff. At-least-once: a retry after a lost answer can duplicate a batch.",
		Delivery: component.DeliveryAtLeastOnce,
		Fields: []component.Field{
			{Name: outFieldURL, Type: component.TypeString, Required: true,
				Description: "URL to send each batch to (http or https)"},
			{Name: outFieldMethod, Type: component.TypeString, Default: "POST",
				Description: "HTTP method"},
			{Name: outFieldHeaders, Type: component.TypeMap, Elem: component.TypeString,
				Description: "headers added to every request (they override Content-Type)"},
			{Name: outFieldFormat, Type: component.TypeString, Default: formatNDJSON,
				Options:     []string{formatNDJSON, formatJSONArray, formatLines},
				Description: "ndjson/lines: each row's payload followed by a newline; json_array: [row,row,...] (a payload that is not JSON becomes a JSON string)"},
			{Name: outFieldTimeout, Type: component.TypeDuration, Default: 10 * time.Second,
				Description: "timeout of each request attempt"},
			{Name: outFieldMaxRetries, Type: component.TypeInt, Default: int64(5),
				Description: "retries of a batch inside the output on network errors, 429 and 5xx (0: none; the engine retries too)"},
			{Name: outFieldInitialBackoff, Type: component.TypeDuration, Default: 100 * time.Millisecond,
				Description: "backoff before the first retry (doubles each retry, full jitter)", Advanced: true},
			{Name: outFieldMaxBackoff, Type: component.TypeDuration, Default: 5 * time.Second,
				Description: "longest wait between retries, including a server's Retry-After", Advanced: true},
		},
		Example: `output:
  type: http
  url: https://collector.example.com/ingest
  format: json_array
  headers:
    Authorization: Bearer ${TOKEN}
`,
	}
}

func init() {
	component.RegisterOutput(outputSpec(), newHTTPOutput)
}

// StatusError is a non-2xx answer of the server the output sends to.
type StatusError struct {
	Method string
	URL    string
	Code   int
	Body   string // the start of the answer's body
}

func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: status %d %s", e.Method, e.URL, e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Retryable reports whether the request may succeed when sent again
// (429 and 5xx); other statuses are permanent.
func (e *StatusError) Retryable() bool {
	return e.Code == http.StatusTooManyRequests || e.Code >= 500
}

// httpOutput is the http output. Write may be called from several
// goroutines.
type httpOutput struct {
	url            string
	redacted       string // url without password, for errors and logs
	method         string
	header         http.Header
	host           string // a Host header, which must go in Request.Host
	format         string
	contentType    string
	timeout        time.Duration
	maxRetries     int
	initialBackoff time.Duration
	maxBackoff     time.Duration
	log            *slog.Logger

	// sleep waits d or until ctx is done; tests replace it.
	sleep func(ctx context.Context, d time.Duration) error

	mu        sync.Mutex
	client    *http.Client    // guarded by mu
	transport *http.Transport // guarded by mu

	bufs sync.Pool // *encodeBuf
}

type encodeBuf struct {
	enc message.RowEncoder
	buf []byte
}

func newHTTPOutput(conf *component.Config, res component.Resources) (component.Output, error) {
	o := &httpOutput{
		url:            conf.String(outFieldURL),
		method:         strings.ToUpper(strings.TrimSpace(conf.String(outFieldMethod))),
		header:         http.Header{},
		format:         conf.String(outFieldFormat),
		timeout:        conf.Duration(outFieldTimeout),
		maxRetries:     conf.Int(outFieldMaxRetries),
		initialBackoff: conf.Duration(outFieldInitialBackoff),
		maxBackoff:     conf.Duration(outFieldMaxBackoff),
		log:            res.Logger,
		sleep:          sleepCtx,
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(o.url)
	if err != nil {
		return nil, conf.Errorf(outFieldURL, "invalid URL: %v", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, conf.Errorf(outFieldURL, "must be an absolute http:// or https:// URL, got %q", u.Redacted())
	}
	o.redacted = u.Redacted()
	if o.method == "" || strings.ContainsAny(o.method, " \t/") {
		return nil, conf.Errorf(outFieldMethod, "invalid HTTP method %q", o.method)
	}
	switch o.format {
	case formatNDJSON:
		o.contentType = "application/x-ndjson"
	case formatLines:
		o.contentType = "text/plain; charset=utf-8"
	case formatJSONArray:
		o.contentType = "application/json"
	default:
		return nil, conf.Errorf(outFieldFormat, "unknown format %q (want ndjson, json_array or lines)", o.format)
	}
	o.header.Set("Content-Type", o.contentType)
	if conf.Has(outFieldHeaders) {
		for k, v := range conf.StringMap(outFieldHeaders) {
			if strings.EqualFold(k, "Host") {
				o.host = v
				continue
			}
			o.header.Set(k, v)
		}
	}
	if o.timeout <= 0 {
		return nil, conf.Errorf(outFieldTimeout, "must be positive, got %s", o.timeout)
	}
	if o.maxRetries < 0 {
		return nil, conf.Errorf(outFieldMaxRetries, "must not be negative, got %d", o.maxRetries)
	}
	if o.initialBackoff <= 0 {
		return nil, conf.Errorf(outFieldInitialBackoff, "must be positive, got %s", o.initialBackoff)
	}
	if o.maxBackoff < o.initialBackoff {
		return nil, conf.Errorf(outFieldMaxBackoff, "must not be below initial_backoff (%s), got %s", o.initialBackoff, o.maxBackoff)
	}
	o.bufs.New = func() any { return new(encodeBuf) }
	return o, nil
}

// Connect builds the client. It is a no-op when the client exists.
func (o *httpOutput) Connect(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.client != nil {
		return nil
	}
	o.transport = http.DefaultTransport.(*http.Transport).Clone()
	o.client = &http.Client{
		Transport: o.transport,
		// Follow a redirect only when it keeps the method (307, 308):
		// a 301/302/303 would turn the POST into a GET without the body.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if req.Method != via[0].Method {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	return nil
}

func (o *httpOutput) getClient() *http.Client {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.client
}

// Write sends the batch as one request and returns once it is answered
// 2xx. Network errors, 429 and 5xx are retried up to max_retries times;
// other statuses are returned at once as a *StatusError.
func (o *httpOutput) Write(ctx context.Context, b *message.Batch) error {
	if b.NumRows() == 0 {
		return nil
	}
	client := o.getClient()
	if client == nil {
		return fmt.Errorf("http output: %w", component.ErrNotConnected)
	}
	defer func() {
		// Close ran meanwhile: do not leave this write's connection idle.
		if o.getClient() != client {
			client.CloseIdleConnections()
		}
	}()
	eb := o.bufs.Get().(*encodeBuf)
	defer o.bufs.Put(eb)
	body, err := o.encode(eb, b)
	if err != nil {
		return fmt.Errorf("http output: encode batch: %w", err)
	}
	eb.buf = body[:0]

	for attempt := 0; ; attempt++ {
		retryAfter, err := o.send(ctx, client, body)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("http output: %w (last error: %v)", ctx.Err(), err)
		}
		if se, ok := errors.AsType[*StatusError](err); ok && !se.Retryable() {
			return fmt.Errorf("http output: permanent error: %w", err)
		}
		if attempt >= o.maxRetries {
			return fmt.Errorf("http output: giving up after %d attempts: %w", attempt+1, err)
		}
		wait := o.backoff(attempt)
		if retryAfter > 0 {
			wait = min(retryAfter, o.maxBackoff)
		}
		o.log.Warn("http output: retrying", "attempt", attempt+1, "wait", wait, "error", err)
		if serr := o.sleep(ctx, wait); serr != nil {
			return fmt.Errorf("http output: %w (last error: %v)", serr, err)
		}
	}
}

// send makes one attempt. It returns the server's Retry-After (0 when
// absent) with the error of a non-2xx answer.
func (o *httpOutput) send(ctx context.Context, client *http.Client, body []byte) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, o.method, o.url, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header = o.header.Clone()
	if o.host != "" {
		req.Host = o.host
	}
	resp, err := client.Do(req)
	if err != nil {
		// *url.Error names the method and URL (with the password redacted).
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		// Drain (bounded) so that the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return 0, nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, bodyExcerptLen))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()), &StatusError{
		Method: o.method,
		URL:    o.redacted,
		Code:   resp.StatusCode,
		Body:   cleanExcerpt(excerpt),
	}
}

// encode writes the request body of a batch into eb.buf.
func (o *httpOutput) encode(eb *encodeBuf, b *message.Batch) ([]byte, error) {
	buf := eb.buf[:0]
	if o.format == formatJSONArray {
		buf = append(buf, '[')
		err := eb.enc.Rows(b, func(row int, payload []byte) error {
			if row > 0 {
				buf = append(buf, ',')
			}
			if json.Valid(payload) {
				buf = append(buf, payload...)
			} else {
				buf = message.AppendJSONString(buf, string(payload))
			}
			return nil
		})
		return append(buf, ']'), err
	}
	err := eb.enc.Rows(b, func(_ int, payload []byte) error {
		buf = append(buf, payload...)
		buf = append(buf, '\n')
		return nil
	})
	return buf, err
}

// backoff returns the wait before retry attempt+1: a uniformly random
// duration in [0, min(max_backoff, initial_backoff·2^attempt)] ("full
// jitter").
func (o *httpOutput) backoff(attempt int) time.Duration {
	ceiling := o.maxBackoff
	if attempt < 62 {
		if d := o.initialBackoff << attempt; d > 0 && d>>attempt == o.initialBackoff && d < ceiling {
			ceiling = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// parseRetryAfter reads a Retry-After header (seconds or an HTTP date);
// it returns 0 when absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(24*time.Hour/time.Second) {
			secs = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// cleanExcerpt makes the start of an answer's body fit in one error line.
func cleanExcerpt(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	s = strings.Join(strings.Fields(s), " ")
	if len(b) == bodyExcerptLen {
		s += "…"
	}
	return s
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes idle connections; Write is not called afterwards.
func (o *httpOutput) Close(context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.transport != nil {
		o.transport.CloseIdleConnections()
	}
	o.client, o.transport = nil, nil
	return nil
}

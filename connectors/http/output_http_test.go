package httpconn

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// seen is what a test server received.
type seen struct {
	method string
	header http.Header
	body   string
}

// testServer answers the n-th request (from 0) with handle(n, w) and
// records every request.
type testServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newTestServer(t *testing.T, handle func(n int, w http.ResponseWriter)) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts.mu.Lock()
		n := len(ts.reqs)
		ts.reqs = append(ts.reqs, seen{method: r.Method, header: r.Header.Clone(), body: string(body)})
		ts.mu.Unlock()
		handle(n, w)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) requests() []seen {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]seen(nil), ts.reqs...)
}

func statusThenOK(code, failures int, header http.Header) func(int, http.ResponseWriter) {
	return func(n int, w http.ResponseWriter) {
		if n < failures {
			for k, v := range header {
				w.Header()[k] = v
			}
			w.WriteHeader(code)
			_, _ = io.WriteString(w, "try again later")
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

// startOutput builds and connects an http output; fast backoffs by default.
func startOutput(t *testing.T, url string, vals map[string]any) *httpOutput {
	t.Helper()
	all := map[string]any{
		outFieldURL:            url,
		outFieldInitialBackoff: time.Millisecond,
		outFieldMaxBackoff:     10 * time.Millisecond,
	}
	for k, v := range vals {
		all[k] = v
	}
	c, err := newHTTPOutput(testConfig(outputSpec(), "output", all), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	o := c.(*httpOutput)
	if err := o.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close(context.Background()) })
	return o
}

// recordSleeps makes the output's backoff waits return at once and
// records them.
func recordSleeps(o *httpOutput) *[]time.Duration {
	var waits []time.Duration
	o.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return &waits
}

func TestOutputRetriesThenSucceeds(t *testing.T) {
	ts := newTestServer(t, statusThenOK(http.StatusServiceUnavailable, 2, nil))
	o := startOutput(t, ts.URL, nil)
	if err := o.Write(context.Background(), message.FromStrings("a", "b")); err != nil {
		t.Fatalf("write: %v", err)
	}
	reqs := ts.requests()
	if len(reqs) != 3 {
		t.Fatalf("requests = %d, want 3", len(reqs))
	}
	for _, r := range reqs {
		if r.body != "a\nb\n" {
			t.Errorf("body = %q", r.body)
		}
	}
}

func TestOutputPermanentError(t *testing.T) {
	ts := newTestServer(t, func(_ int, w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, "field\n  x is invalid")
	})
	o := startOutput(t, ts.URL, nil)
	err := o.Write(context.Background(), message.FromStrings("a"))
	if err == nil {
		t.Fatal("write succeeded")
	}
	se, ok := errors.AsType[*StatusError](err)
	if !ok || se.Code != http.StatusBadRequest || se.Retryable() {
		t.Fatalf("err = %v, want a permanent *StatusError 400", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "400") || !strings.Contains(msg, "field x is invalid") {
		t.Errorf("err = %q, want the status and a body excerpt", msg)
	}
	if n := len(ts.requests()); n != 1 {
		t.Errorf("requests = %d, want 1", n)
	}
}

func TestOutputGivesUp(t *testing.T) {
	ts := newTestServer(t, statusThenOK(http.StatusInternalServerError, 100, nil))
	o := startOutput(t, ts.URL, map[string]any{outFieldMaxRetries: int64(2)})
	waits := recordSleeps(o)
	err := o.Write(context.Background(), message.FromStrings("a"))
	if se, ok := errors.AsType[*StatusError](err); !ok || se.Code != http.StatusInternalServerError {
		t.Fatalf("err = %v", err)
	}
	if n := len(ts.requests()); n != 3 || len(*waits) != 2 {
		t.Errorf("requests = %d, waits = %v; want 3 requests, 2 waits", n, *waits)
	}

	// max_retries 0: one attempt only.
	o = startOutput(t, ts.URL, map[string]any{outFieldMaxRetries: int64(0)})
	if err := o.Write(context.Background(), message.FromStrings("a")); err == nil {
		t.Fatal("write succeeded")
	}
	if n := len(ts.requests()); n != 4 {
		t.Errorf("requests = %d, want 4", n)
	}
}

func TestOutputRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		retryAfter string
		maxBackoff time.Duration
		want       time.Duration
	}{
		{"1", 5 * time.Second, time.Second},
		{"3600", 2 * time.Second, 2 * time.Second}, // bounded by max_backoff
	} {
		ts := newTestServer(t, statusThenOK(http.StatusTooManyRequests, 1, http.Header{"Retry-After": {tc.retryAfter}}))
		o := startOutput(t, ts.URL, map[string]any{outFieldMaxBackoff: tc.maxBackoff})
		waits := recordSleeps(o)
		if err := o.Write(context.Background(), message.FromStrings("a")); err != nil {
			t.Fatalf("write: %v", err)
		}
		if len(*waits) != 1 || (*waits)[0] != tc.want {
			t.Errorf("Retry-After %s: waits = %v, want [%s]", tc.retryAfter, *waits, tc.want)
		}
	}
}

func TestOutputNetworkError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	o := startOutput(t, "http://"+addr+"/", map[string]any{outFieldMaxRetries: int64(3)})
	waits := recordSleeps(o)
	err = o.Write(context.Background(), message.FromStrings("a"))
	if err == nil || !strings.Contains(err.Error(), "giving up after 4 attempts") {
		t.Fatalf("err = %v", err)
	}
	if len(*waits) != 3 {
		t.Errorf("waits = %v, want 3", *waits)
	}
}

func TestOutputCancelDuringBackoff(t *testing.T) {
	first := make(chan struct{})
	var once sync.Once
	ts := newTestServer(t, func(_ int, w http.ResponseWriter) {
		once.Do(func() { close(first) })
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	o := startOutput(t, ts.URL, map[string]any{outFieldMaxBackoff: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- o.Write(ctx, message.FromStrings("a")) }()
	<-first
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("write did not return after cancel")
	}
}

func TestOutputHeaders(t *testing.T) {
	ts := newTestServer(t, statusThenOK(0, 0, nil))
	o := startOutput(t, ts.URL+"/in", map[string]any{
		outFieldMethod:  "put",
		outFieldHeaders: map[string]any{"X-Api-Key": "k1", "authorization": "Bearer t"},
	})
	if err := o.Write(context.Background(), message.FromStrings("a")); err != nil {
		t.Fatal(err)
	}
	r := ts.requests()[0]
	if r.method != http.MethodPut {
		t.Errorf("method = %s", r.method)
	}
	for k, want := range map[string]string{
		"X-Api-Key":     "k1",
		"Authorization": "Bearer t",
		"Content-Type":  "application/x-ndjson",
	} {
		if got := r.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func TestOutputJSONArray(t *testing.T) {
	ts := newTestServer(t, statusThenOK(0, 0, nil))
	o := startOutput(t, ts.URL, map[string]any{outFieldFormat: formatJSONArray})

	// Rows without __value__: JSON objects of the non-meta columns.
	nb := array.NewInt64Builder(message.Alloc)
	nb.AppendValues([]int64{1, 2}, nil)
	sb := array.NewStringBuilder(message.Alloc)
	sb.AppendValues([]string{"a", "b"}, nil)
	mb := array.NewStringBuilder(message.Alloc)
	mb.AppendValues([]string{"m", "m"}, nil)
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String},
		{Name: message.MetaSource, Type: arrow.BinaryTypes.String},
	}, nil)
	rec := array.NewRecordBatch(schema, []arrow.Array{nb.NewArray(), sb.NewArray(), mb.NewArray()}, 2)
	if err := o.Write(context.Background(), message.New(rec)); err != nil {
		t.Fatal(err)
	}
	// __value__ rows: JSON as is, anything else as a JSON string.
	if err := o.Write(context.Background(), message.FromStrings(`{"a":1}`, "plain")); err != nil {
		t.Fatal(err)
	}
	// An empty batch sends nothing.
	if err := o.Write(context.Background(), message.FromStrings()); err != nil {
		t.Fatal(err)
	}

	reqs := ts.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests = %d, want 2", len(reqs))
	}
	for i, want := range []string{`[{"n":1,"s":"a"},{"n":2,"s":"b"}]`, `[{"a":1},"plain"]`} {
		if reqs[i].body != want {
			t.Errorf("body %d = %s, want %s", i, reqs[i].body, want)
		}
		if !json.Valid([]byte(reqs[i].body)) {
			t.Errorf("body %d is not JSON", i)
		}
		if ct := reqs[i].header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type = %q", ct)
		}
	}
}

// The output writes into the input: each batch is acknowledged through
// the HTTP answer.
func TestOutputToInput(t *testing.T) {
	in, base := startInput(t, map[string]any{inFieldFormat: formatNDJSON, inFieldPath: "/in"})
	o := startOutput(t, base+"/in", nil)

	var got string
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b, ack, err := in.Read(ctx)
		if err == nil {
			got = strings.Join(values(b), "|")
			err = ack(ctx, nil)
		}
		done <- err
	}()
	if err := o.Write(context.Background(), message.FromStrings(`{"a":1}`, `{"a":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got != `{"a":1}|{"a":2}` {
		t.Errorf("input read %q", got)
	}
}

func TestOutputConfigErrors(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"url":             {outFieldURL: "ftp://x/"},
		"max_retries":     {outFieldURL: "http://x/", outFieldMaxRetries: int64(-1)},
		"format":          {outFieldURL: "http://x/", outFieldFormat: "xml"},
		"max_backoff":     {outFieldURL: "http://x/", outFieldMaxBackoff: time.Millisecond},
		"initial_backoff": {outFieldURL: "http://x/", outFieldInitialBackoff: time.Duration(0)},
	} {
		_, err := newHTTPOutput(testConfig(outputSpec(), "output", vals), component.Resources{})
		if err == nil || !strings.Contains(err.Error(), "output."+name) {
			t.Errorf("%s: err = %v, want an error naming the field", name, err)
		}
	}
}

func TestBackoff(t *testing.T) {
	o := &httpOutput{initialBackoff: 100 * time.Millisecond, maxBackoff: 5 * time.Second}
	for attempt := 0; attempt < 100; attempt++ {
		ceiling := o.maxBackoff
		if attempt < 6 {
			ceiling = min(ceiling, o.initialBackoff<<attempt)
		}
		for range 20 {
			if d := o.backoff(attempt); d < 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %s, want within [0, %s]", attempt, d, ceiling)
			}
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"abc":                           0,
		"-1":                            0,
		"2":                             2 * time.Second,
		"Wed, 01 Jan 2025 00:00:30 GMT": 30 * time.Second,
		"Tue, 31 Dec 2024 00:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", v, got, want)
		}
	}
}

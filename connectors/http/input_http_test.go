package httpconn

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// startInput builds and connects an http input on 127.0.0.1:0; it is
// closed when the test ends.
func startInput(t *testing.T, vals map[string]any) (*httpInput, string) {
	t.Helper()
	all := map[string]any{inFieldAddress: "127.0.0.1:0"}
	for k, v := range vals {
		all[k] = v
	}
	c, err := newHTTPInput(testConfig(inputSpec(), "input", all), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	in := c.(*httpInput)
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := in.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return in, "http://" + in.Addr().String()
}

type response struct {
	code   int
	body   string
	header http.Header
	err    error
}

func (r response) String() string {
	if r.err != nil {
		return "error " + r.err.Error()
	}
	return http.StatusText(r.code) + " " + r.body
}

func do(client *http.Client, method, url string, body io.Reader, header http.Header) response {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return response{err: err}
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: string(b), header: resp.Header, err: err}
}

// doAsync sends a request in a goroutine; the test receives from the
// channel (every test that calls it waits for the answer).
func doAsync(client *http.Client, method, url, body string, header http.Header) <-chan response {
	ch := make(chan response, 1)
	go func() { ch <- do(client, method, url, strings.NewReader(body), header) }()
	return ch
}

func post(client *http.Client, url, body string) response {
	return do(client, http.MethodPost, url, strings.NewReader(body), nil)
}

func await(t *testing.T, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
		return response{}
	}
}

func readBatch(t *testing.T, in *httpInput) (*message.Batch, message.AckFunc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, ack, err := in.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b, ack
}

func values(b *message.Batch) []string {
	v := b.Values()
	out := make([]string, v.Len())
	for i := range out {
		out[i] = strings.Clone(v.String(i))
	}
	return out
}

func stringCol(t *testing.T, b *message.Batch, name string) string {
	t.Helper()
	c := b.Column(name)
	if c == nil {
		t.Fatalf("no column %s", name)
	}
	return message.AsBinary(c).String(0)
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantCode(t *testing.T, r response, code int) {
	t.Helper()
	if r.err != nil || r.code != code {
		t.Fatalf("got %v, want %d", r, code)
	}
}

func TestInputAckOK(t *testing.T) {
	in, base := startInput(t, map[string]any{inFieldPath: "/ingest"})
	client := newTestClient(t)
	ch := doAsync(client, http.MethodPost, base+"/ingest", "hello world", nil)

	b, ack := readBatch(t, in)
	if got := values(b); len(got) != 1 || got[0] != "hello world" {
		t.Fatalf("values = %q", got)
	}
	if p := stringCol(t, b, MetaHTTPPath); p != "/ingest" {
		t.Errorf("%s = %q", MetaHTTPPath, p)
	}
	if m := stringCol(t, b, MetaHTTPMethod); m != http.MethodPost {
		t.Errorf("%s = %q", MetaHTTPMethod, m)
	}
	if b.Column(message.MetaTimestamp) == nil {
		t.Errorf("no %s column", message.MetaTimestamp)
	}
	select {
	case r := <-ch:
		t.Fatalf("answered before ack: %v", r)
	default:
	}
	if err := ack(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	r := await(t, ch)
	wantCode(t, r, http.StatusOK)
	var got struct {
		Status  string
		Records int
	}
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.Status != "ok" || got.Records != 1 {
		t.Errorf("body = %q (%v)", r.body, err)
	}
}

func TestInputAckError(t *testing.T) {
	in, base := startInput(t, nil)
	ch := doAsync(newTestClient(t), http.MethodPost, base+"/", "x", nil)
	_, ack := readBatch(t, in)
	_ = ack(context.Background(), errors.New("kafka is down"))
	r := await(t, ch)
	wantCode(t, r, http.StatusInternalServerError)
	if !strings.Contains(r.body, "kafka is down") {
		t.Errorf("body = %q, want the ack error", r.body)
	}
	// A second ack is ignored.
	_ = ack(context.Background(), nil)
}

func TestInputQueueFull(t *testing.T) {
	in, base := startInput(t, map[string]any{inFieldQueueSize: int64(1)})
	client := newTestClient(t)
	first := doAsync(client, http.MethodPost, base+"/", "first", nil)
	waitFor(t, "first request queued", func() bool { return len(in.queue) == 1 })

	r := post(client, base+"/", "second")
	wantCode(t, r, http.StatusServiceUnavailable)
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After = %q, want 1", ra)
	}

	b, ack := readBatch(t, in)
	if got := values(b); got[0] != "first" {
		t.Fatalf("values = %q", got)
	}
	_ = ack(context.Background(), nil)
	wantCode(t, await(t, first), http.StatusOK)
}

func TestInputRouting(t *testing.T) {
	_, base := startInput(t, map[string]any{inFieldPath: "/in", inFieldMethods: []any{"post", "PUT"}})
	client := newTestClient(t)

	r := do(client, http.MethodGet, base+"/in", nil, nil)
	wantCode(t, r, http.StatusMethodNotAllowed)
	if allow := r.header.Get("Allow"); allow != "POST, PUT" {
		t.Errorf("Allow = %q", allow)
	}
	wantCode(t, post(client, base+"/other", "x"), http.StatusNotFound)
	wantCode(t, post(client, base+"/in/", "x"), http.StatusNotFound)
}

func TestInputAuth(t *testing.T) {
	in, base := startInput(t, map[string]any{inFieldAuthToken: "s3cret"})
	client := newTestClient(t)

	r := post(client, base+"/", "x")
	wantCode(t, r, http.StatusUnauthorized)
	if r.header.Get("WWW-Authenticate") == "" {
		t.Error("no WWW-Authenticate header")
	}
	wrong := http.Header{"Authorization": {"Bearer s3cre"}}
	wantCode(t, do(client, http.MethodPost, base+"/", strings.NewReader("x"), wrong), http.StatusUnauthorized)
	basic := http.Header{"Authorization": {"Basic s3cret"}}
	wantCode(t, do(client, http.MethodPost, base+"/", strings.NewReader("x"), basic), http.StatusUnauthorized)

	ch := doAsync(client, http.MethodPost, base+"/", "x", http.Header{"Authorization": {"bearer s3cret"}})
	_, ack := readBatch(t, in)
	_ = ack(context.Background(), nil)
	wantCode(t, await(t, ch), http.StatusOK)
}

// unsized hides a reader's length, so the request is sent chunked.
type unsized struct{ r io.Reader }

func (u unsized) Read(p []byte) (int, error) { return u.r.Read(p) }

func TestInputBodyTooLarge(t *testing.T) {
	in, base := startInput(t, map[string]any{inFieldMaxBodyBytes: int64(16)})
	client := newTestClient(t)
	big := strings.Repeat("x", 17)

	wantCode(t, post(client, base+"/", big), http.StatusRequestEntityTooLarge)
	wantCode(t, do(client, http.MethodPost, base+"/", unsized{strings.NewReader(big)}, nil), http.StatusRequestEntityTooLarge)

	// Exactly the limit is accepted, sized or chunked.
	for _, body := range []io.Reader{strings.NewReader(big[:16]), unsized{strings.NewReader(big[:16])}} {
		ch := make(chan response, 1)
		go func() { ch <- do(client, http.MethodPost, base+"/", body, nil) }()
		b, ack := readBatch(t, in)
		if got := values(b); got[0] != big[:16] {
			t.Fatalf("values = %q", got)
		}
		_ = ack(context.Background(), nil)
		wantCode(t, await(t, ch), http.StatusOK)
	}
}

func TestInputLines(t *testing.T) {
	in, base := startInput(t, map[string]any{inFieldFormat: formatLines})
	client := newTestClient(t)
	ch := doAsync(client, http.MethodPost, base+"/", "a\n\nbb\r\n  \nccc", nil)
	b, ack := readBatch(t, in)
	if got := strings.Join(values(b), "|"); got != "a|bb|ccc" {
		t.Fatalf("values = %q", got)
	}
	if b.NumRows() != 3 || b.Column(MetaHTTPPath).Len() != 3 {
		t.Fatalf("rows = %d", b.NumRows())
	}
	_ = ack(context.Background(), nil)
	r := await(t, ch)
	wantCode(t, r, http.StatusOK)
	if !strings.Contains(r.body, `"records":3`) {
		t.Errorf("body = %q", r.body)
	}

	// An empty body has no records: answered at once, nothing to read.
	r = post(client, base+"/", "\n\n")
	wantCode(t, r, http.StatusOK)
	if !strings.Contains(r.body, `"records":0`) || len(in.queue) != 0 {
		t.Errorf("body = %q, queued %d", r.body, len(in.queue))
	}
}

func TestInputNDJSON(t *testing.T) {
	in, base := startInput(t, map[string]any{inFieldFormat: formatNDJSON})
	client := newTestClient(t)

	r := post(client, base+"/", "{\"a\":1}\n\nnot json\n")
	wantCode(t, r, http.StatusBadRequest)
	if !strings.Contains(r.body, "line 3") {
		t.Errorf("body = %q, want the bad line number", r.body)
	}

	ch := doAsync(client, http.MethodPost, base+"/", "{\"a\":1}\n[2]\n", nil)
	b, ack := readBatch(t, in)
	if got := strings.Join(values(b), "|"); got != `{"a":1}|[2]` {
		t.Fatalf("values = %q", got)
	}
	_ = ack(context.Background(), nil)
	wantCode(t, await(t, ch), http.StatusOK)
}

func TestInputTimeout(t *testing.T) {
	in, base := startInput(t, map[string]any{inFieldTimeout: 50 * time.Millisecond})
	client := newTestClient(t)

	// Never read: 504, and the request is not handed out later.
	wantCode(t, post(client, base+"/", "late"), http.StatusGatewayTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if b, _, err := in.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read = %v, %v; want the abandoned request skipped", b, err)
	}

	// Read but never acknowledged: 504; a late ack is harmless.
	ch := doAsync(client, http.MethodPost, base+"/", "x", nil)
	_, ack := readBatch(t, in)
	wantCode(t, await(t, ch), http.StatusGatewayTimeout)
	if err := ack(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
}

func TestInputReadContext(t *testing.T) {
	in, _ := startInput(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := in.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("read = %v, want context.Canceled", err)
	}
}

// Close answers queued requests 503 at once, waits for the read ones until
// its ctx is done, then answers them 503 too.
func TestInputCloseWhilePending(t *testing.T) {
	c, err := newHTTPInput(testConfig(inputSpec(), "input", map[string]any{inFieldAddress: "127.0.0.1:0"}), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	in := c.(*httpInput)
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	base := "http://" + in.Addr().String()
	client := newTestClient(t)

	read := doAsync(client, http.MethodPost, base+"/", "read", nil)
	_, ack := readBatch(t, in)
	queued := doAsync(client, http.MethodPost, base+"/", "queued", nil)
	waitFor(t, "second request queued", func() bool { return len(in.queue) == 1 })

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := in.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close = %v, want deadline exceeded (a request was never acknowledged)", err)
	}
	wantCode(t, await(t, queued), http.StatusServiceUnavailable)
	wantCode(t, await(t, read), http.StatusServiceUnavailable)
	if err := ack(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := in.Read(context.Background()); !errors.Is(err, component.ErrEndOfInput) {
		t.Errorf("read after close = %v, want ErrEndOfInput", err)
	}
	if err := in.Close(context.Background()); err != nil {
		t.Errorf("second close = %v", err)
	}
	if err := in.Connect(context.Background()); err == nil {
		t.Error("connect after close succeeded")
	}
}

// Close waits for a read request's ack, which still answers 200.
func TestInputCloseWaitsForAck(t *testing.T) {
	c, err := newHTTPInput(testConfig(inputSpec(), "input", map[string]any{inFieldAddress: "127.0.0.1:0"}), component.Resources{})
	if err != nil {
		t.Fatal(err)
	}
	in := c.(*httpInput)
	if err := in.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	client := newTestClient(t)
	ch := doAsync(client, http.MethodPost, "http://"+in.Addr().String()+"/", "x", nil)
	_, ack := readBatch(t, in)

	closed := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		closed <- in.Close(ctx)
	}()
	waitFor(t, "close to start", func() bool {
		in.mu.Lock()
		defer in.mu.Unlock()
		return in.closed
	})
	_ = ack(context.Background(), nil)
	wantCode(t, await(t, ch), http.StatusOK)
	if err := <-closed; err != nil {
		t.Fatalf("close = %v", err)
	}
}

func TestInputConfigErrors(t *testing.T) {
	for name, vals := range map[string]map[string]any{
		"queue_size":     {inFieldQueueSize: int64(0)},
		"methods":        {inFieldMethods: []any{}},
		"path":           {inFieldPath: "ingest"},
		"format":         {inFieldFormat: "csv"},
		"max_body_bytes": {inFieldMaxBodyBytes: int64(0)},
		"timeout":        {inFieldTimeout: time.Duration(0)},
	} {
		_, err := newHTTPInput(testConfig(inputSpec(), "input", vals), component.Resources{})
		if err == nil || !strings.Contains(err.Error(), "input."+name) {
			t.Errorf("%s: err = %v, want an error naming the field", name, err)
		}
	}
}

func TestCompactLines(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"\n\n", ""},
		{"a", "a"},
		{"a\n", "a"},
		{"a\r\nb\r\n", "a|b"},
		{"\na\n\n\nb\n", "a|b"},
	} {
		body, offs, err := compactLines([]byte(tc.in), false)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i := 1; i < len(offs); i++ {
			got = append(got, string(body[offs[i-1]:offs[i]]))
		}
		if g := strings.Join(got, "|"); g != tc.want {
			t.Errorf("compactLines(%q) = %q, want %q", tc.in, g, tc.want)
		}
	}
}

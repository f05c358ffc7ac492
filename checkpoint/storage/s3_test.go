package storage_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/checkpoint/storage/storagetest"
	"github.com/weir-stream/weir/config"
)

// fastRetry keeps retry tests short.
var fastRetry = storage.RetryPolicy{MaxAttempts: 4, BaseDelay: time.Millisecond, ThrottleBaseDelay: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}

func TestS3Conformance(t *testing.T) {
	env := storagetest.S3FromEnv(t)
	storagetest.Run(t, func(t *testing.T) storage.Storage { return env.NewS3(t) })
}

// fakeS3 is an HTTP server that answers S3 requests with respond, counting
// them.
type fakeS3 struct {
	*httptest.Server
	requests atomic.Int64
}

func newFakeS3(t *testing.T, respond func(n int64, w http.ResponseWriter, r *http.Request)) *fakeS3 {
	f := &fakeS3{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.requests.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		respond(n, w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>fake `+code+`</Message><RequestId>r1</RequestId></Error>`)
}

func newS3(t *testing.T, endpoint string, opts ...storage.S3Option) *storage.S3 {
	t.Helper()
	s, err := storage.NewS3(context.Background(), config.S3Config{
		Bucket: "bkt", Region: "us-east-1", Prefix: "pre", Endpoint: endpoint,
		ForcePathStyle: true, AccessKeyID: "key", SecretAccessKey: "secret",
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func hostPort(f *fakeS3) string { return strings.TrimPrefix(f.URL, "http://") }

func TestS3RetriesSlowDown(t *testing.T) {
	f := newFakeS3(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/bkt/pre/a/b" {
			t.Errorf("request %s %s, want PUT /bkt/pre/a/b", r.Method, r.URL.Path)
		}
		if n <= 2 {
			s3Error(w, http.StatusServiceUnavailable, "SlowDown")
			return
		}
		w.Header().Set("ETag", `"abc"`)
	})
	s := newS3(t, hostPort(f), storage.WithRetryPolicy(storage.RetryPolicy{MaxAttempts: 8, BaseDelay: time.Millisecond, ThrottleBaseDelay: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}))
	// A reader that cannot seek: the body must be spooled to be sent again.
	if err := s.Put(context.Background(), "a/b", io.MultiReader(strings.NewReader("hello")), 5); err != nil {
		t.Fatalf("Put after two SlowDowns: %v", err)
	}
	if got := f.requests.Load(); got != 3 {
		t.Fatalf("%d requests, want 3 (two SlowDown, one success)", got)
	}
}

func TestS3GivesUpAfterMaxAttempts(t *testing.T) {
	f := newFakeS3(t, func(_ int64, w http.ResponseWriter, _ *http.Request) {
		s3Error(w, http.StatusServiceUnavailable, "SlowDown")
	})
	s := newS3(t, hostPort(f), storage.WithRetryPolicy(fastRetry))
	err := s.Put(context.Background(), "x", strings.NewReader("x"), 1)
	if !storage.IsTransient(err) || !strings.Contains(err.Error(), "SlowDown") || !strings.Contains(err.Error(), "s3://bkt/pre/x") {
		t.Fatalf("Put against a throttling store = %v, want a transient error naming SlowDown and the key", err)
	}
	if got := f.requests.Load(); got != 4 {
		t.Fatalf("%d requests, want MaxAttempts = 4", got)
	}
}

func TestS3PermanentErrorsAreNotRetried(t *testing.T) {
	for _, c := range []struct {
		status   int
		code     string
		notFound bool
		mention  string
	}{
		{http.StatusForbidden, "AccessDenied", false, "access refused"},
		{http.StatusForbidden, "InvalidAccessKeyId", false, "check the credentials"},
		{http.StatusNotFound, "NoSuchBucket", false, `bucket "bkt" does not exist`},
		{http.StatusNotFound, "NoSuchKey", true, "object not found"},
		{http.StatusBadRequest, "InvalidArgument", false, "InvalidArgument"},
	} {
		t.Run(c.code, func(t *testing.T) {
			f := newFakeS3(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { s3Error(w, c.status, c.code) })
			s := newS3(t, hostPort(f), storage.WithRetryPolicy(fastRetry))
			_, err := s.Get(context.Background(), "obj")
			if err == nil || storage.IsTransient(err) || storage.IsNotFound(err) != c.notFound || !strings.Contains(err.Error(), c.mention) {
				t.Fatalf("Get = %v; want permanent, not-found=%v, mentioning %q", err, c.notFound, c.mention)
			}
			if got := f.requests.Load(); got != 1 {
				t.Fatalf("%d requests, want 1 (no retry)", got)
			}
		})
	}
}

func TestS3ServerErrorIsTransient(t *testing.T) {
	f := newFakeS3(t, func(n int64, w http.ResponseWriter, _ *http.Request) {
		s3Error(w, http.StatusInternalServerError, "InternalError")
	})
	s := newS3(t, hostPort(f), storage.WithRetryPolicy(fastRetry))
	if _, err := s.Stat(context.Background(), "obj"); !storage.IsTransient(err) {
		t.Fatalf("Stat against a failing store = %v, want transient", err)
	}
	if got := f.requests.Load(); got != 4 {
		t.Fatalf("%d requests, want 4", got)
	}
}

func TestS3NeverAnswersFailsAtDeadline(t *testing.T) {
	release := make(chan struct{})
	f := newFakeS3(t, func(_ int64, _ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	s := newS3(t, hostPort(f))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Put(ctx, "x", bytes.NewReader([]byte("data")), 4)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Put took %v against a store that never answers, want about the 300ms deadline", took)
	}
	if !storage.IsTransient(err) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "deadline exceeded before") {
		t.Fatalf("Put = %v, want a transient deadline error", err)
	}
}

func TestS3ResponseHeaderTimeoutIsRetried(t *testing.T) {
	release := make(chan struct{})
	f := newFakeS3(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select { // the first attempt hangs
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.Header().Set("ETag", `"abc"`)
	})
	t.Cleanup(func() { close(release) })
	s := newS3(t, hostPort(f), storage.WithRetryPolicy(fastRetry), storage.WithTimeouts(time.Second, 200*time.Millisecond))
	if err := s.Put(context.Background(), "x", strings.NewReader("x"), 1); err != nil {
		t.Fatalf("Put with a first attempt that hangs: %v", err)
	}
	if got := f.requests.Load(); got != 2 {
		t.Fatalf("%d requests, want 2", got)
	}
}

func TestS3UnreachableEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens there now: connections are refused
	s := newS3(t, addr, storage.WithRetryPolicy(fastRetry))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = s.Put(ctx, "x", strings.NewReader("x"), 1)
	if !storage.IsTransient(err) || !strings.Contains(err.Error(), "cannot reach http://"+addr) {
		t.Fatalf("Put to %s = %v, want a transient 'cannot reach' error", addr, err)
	}
	if _, err := s.List(ctx, ""); !storage.IsTransient(err) {
		t.Fatalf("List to %s = %v, want transient", addr, err)
	}
}

func TestNewS3Config(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		cfg     config.S3Config
		want    string // String(), or "" when NewS3 must fail
		errPart string
	}{
		{config.S3Config{Bucket: "b", Prefix: "/prod/checkpoints/", Endpoint: "127.0.0.1:9000"}, "s3://b/prod/checkpoints", ""},
		{config.S3Config{Bucket: "b", Endpoint: "minio.local:9000", UseSSL: true}, "s3://b/", ""},
		{config.S3Config{Bucket: "b", Endpoint: "http://10.0.0.1:9000"}, "s3://b/", ""},
		{config.S3Config{Bucket: "b", Region: "eu-west-1"}, "s3://b/", ""},
		{config.S3Config{Bucket: ""}, "", "bucket is required"},
		{config.S3Config{Bucket: "b", Prefix: "a/../b"}, "", "prefix"},
		{config.S3Config{Bucket: "b", Endpoint: "ftp://x"}, "", "endpoint"},
	} {
		c.cfg.AccessKeyID, c.cfg.SecretAccessKey = "k", "s"
		s, err := storage.NewS3(ctx, c.cfg)
		if c.want == "" {
			if err == nil || !strings.Contains(err.Error(), c.errPart) {
				t.Errorf("NewS3(%+v) = %v, want an error about %s", c.cfg, err, c.errPart)
			}
			continue
		}
		if err != nil {
			t.Errorf("NewS3(%+v): %v", c.cfg, err)
			continue
		}
		if s.String() != c.want {
			t.Errorf("NewS3(%+v).String() = %q, want %q", c.cfg, s.String(), c.want)
		}
		_ = s.Close()
	}
}

func TestS3EndpointScheme(t *testing.T) {
	// UseSSL=false reaches a plain-http server given as host:port; with
	// UseSSL=true the same address is spoken to in TLS and fails.
	f := newFakeS3(t, func(_ int64, w http.ResponseWriter, _ *http.Request) { w.Header().Set("ETag", `"e"`) })
	s := newS3(t, hostPort(f))
	if err := s.Put(context.Background(), "x", strings.NewReader("x"), 1); err != nil {
		t.Fatalf("plain http: %v", err)
	}
	tls, err := storage.NewS3(context.Background(), config.S3Config{Bucket: "bkt", Endpoint: hostPort(f), UseSSL: true,
		ForcePathStyle: true, AccessKeyID: "k", SecretAccessKey: "s"}, storage.WithRetryPolicy(storage.RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		t.Fatal(err)
	}
	defer tls.Close()
	if err := tls.Put(context.Background(), "x", strings.NewReader("x"), 1); err == nil || !strings.Contains(err.Error(), "https://") {
		t.Fatalf("https to a plain server = %v, want an error naming https://", err)
	}
}

func TestS3WrongCredentials(t *testing.T) {
	env := storagetest.S3FromEnv(t)
	env.NewS3(t) // makes sure the bucket exists
	cfg := env.Config(storagetest.UniquePrefix(t))
	cfg.SecretAccessKey = "not-the-secret"
	s, err := storage.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Put(context.Background(), "x", strings.NewReader("x"), 1)
	if err == nil || storage.IsTransient(err) || !strings.Contains(err.Error(), "access refused") {
		t.Fatalf("Put with a wrong secret = %v, want a permanent 'access refused' error", err)
	}
}

// TestS3Outage stops a real S3 server (a private MinIO): Puts fail within
// their deadline with a transient error; once it is back, they succeed and
// the objects written before are still there.
func TestS3Outage(t *testing.T) {
	m := storagetest.StartMinIO(t)
	s := m.Env.NewS3(t, storage.WithRetryPolicy(storage.RetryPolicy{MaxAttempts: 4, BaseDelay: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}),
		storage.WithTimeouts(time.Second, 5*time.Second))
	ctx := context.Background()
	if err := s.Put(ctx, "before", strings.NewReader("kept"), 4); err != nil {
		t.Fatal(err)
	}

	dflt := m.Env.NewS3(t)

	m.Stop(t)
	for _, deadline := range []time.Duration{500 * time.Millisecond, 20 * time.Second} {
		ctx, cancel := context.WithTimeout(ctx, deadline)
		start := time.Now()
		err := s.Put(ctx, "during", strings.NewReader("lost"), 4)
		took := time.Since(start)
		cancel()
		if !storage.IsTransient(err) {
			t.Fatalf("Put while S3 is down (deadline %v) = %v, want a transient error", deadline, err)
		}
		if took > deadline+2*time.Second {
			t.Fatalf("Put while S3 is down took %v, more than its %v deadline", took, deadline)
		}
		t.Logf("deadline %v: failed after %v: %v", deadline, took, err)
	}
	// With the default policy (8 attempts, up to 5s apart) the caller's
	// deadline is what bounds the Put.
	ctx2, cancel := context.WithTimeout(ctx, time.Second)
	start := time.Now()
	err := dflt.Put(ctx2, "during", strings.NewReader("lost"), 4)
	took := time.Since(start)
	cancel()
	if !storage.IsTransient(err) || took > 3*time.Second {
		t.Fatalf("Put with the default retry policy while S3 is down = %v after %v, want a transient error at the 1s deadline", err, took)
	}
	t.Logf("default policy, deadline 1s: failed after %v: %v", took, err)

	m.Start(t)
	if err := s.Put(ctx, "after", strings.NewReader("back"), 4); err != nil {
		t.Fatalf("Put once S3 is back: %v", err)
	}
	rc, err := s.Get(ctx, "before")
	if err != nil {
		t.Fatalf("Get of an object written before the outage: %v", err)
	}
	b, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || string(b) != "kept" {
		t.Fatalf("object written before the outage = %q, %v", b, err)
	}
	if _, err := s.Stat(ctx, "during"); !storage.IsNotFound(err) {
		t.Fatalf("Stat of the Put that failed during the outage = %v, want not found", err)
	}
}

package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/weir-stream/weir/config"
)

// MaxPutSize is the largest object one S3 PUT can store (5 GiB). Larger Puts
// fail permanently: checkpoint files are split well below it.
const MaxPutSize int64 = 5 << 30

// spoolMemLimit is how much of a Put without a seekable reader is buffered in
// memory; beyond it the body is spooled to a temp file.
const spoolMemLimit = 8 << 20

// RetryPolicy is how an S3 request is retried after a transient failure
// (503 SlowDown and other throttling, 5xx, timeouts, refused or reset
// connections): up to MaxAttempts attempts in all, waiting a random time in
// [0, min(MaxBackoff, base·2^(n-1))) before retry n ("full jitter"), where
// base is ThrottleBaseDelay after a throttling answer and BaseDelay after any
// other. Permanent failures (access denied, missing bucket, bad request) are
// not retried. The caller's ctx bounds the whole operation, retries included.
type RetryPolicy struct {
	MaxAttempts       int           // default 8
	BaseDelay         time.Duration // default 100ms
	ThrottleBaseDelay time.Duration // default 1s
	MaxBackoff        time.Duration // default 5s
}

// EnsureDefaults fills zero fields with the defaults and returns p.
func (p RetryPolicy) EnsureDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 100 * time.Millisecond
	}
	if p.ThrottleBaseDelay <= 0 {
		p.ThrottleBaseDelay = time.Second
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 5 * time.Second
	}
	return p
}

// s3Options are set by S3Option functions.
type s3Options struct {
	retry                 RetryPolicy
	connectTimeout        time.Duration
	responseHeaderTimeout time.Duration
	spoolDir              string
}

// S3Option tunes NewS3.
type S3Option func(*s3Options)

// WithRetryPolicy sets how requests are retried (zero fields keep their
// defaults; see RetryPolicy).
func WithRetryPolicy(p RetryPolicy) S3Option {
	return func(o *s3Options) { o.retry = p }
}

// WithTimeouts bounds each attempt: connect is the TCP (and TLS) connect
// timeout (default 5s), responseHeader how long to wait for the answer once
// the request is sent (default 60s). An attempt that times out is retried;
// zero keeps a default.
func WithTimeouts(connect, responseHeader time.Duration) S3Option {
	return func(o *s3Options) {
		if connect > 0 {
			o.connectTimeout = connect
		}
		if responseHeader > 0 {
			o.responseHeaderTimeout = responseHeader
		}
	}
}

// WithSpoolDir sets where a Put whose reader cannot seek (or whose size is
// unknown) is spooled before upload when it exceeds 8 MiB (default: the
// system temp dir). S3 needs the length before sending and a rewindable body
// to retry.
func WithSpoolDir(dir string) S3Option {
	return func(o *s3Options) { o.spoolDir = dir }
}

// S3 stores objects in an S3 bucket under a key prefix: name "a/b" is the
// key PREFIX/a/b. Every object is written by one PutObject, which S3 makes
// visible atomically; there are no temp objects.
type S3 struct {
	client    *s3.Client
	transport *http.Transport
	bucket    string
	prefix    string // "" or ends with "/"
	endpoint  string // for messages: the URL, or "AWS S3 (region)"
	opts      s3Options
}

var _ Storage = (*S3)(nil)
var _ BatchDeleter = (*S3)(nil)

// NewS3 returns an S3 store for cfg (the state.s3_config section; the config
// loader has applied its defaults). An Endpoint without a scheme gets
// https:// when UseSSL, else http://; one with a scheme is used as is; an
// empty Endpoint means AWS. ForcePathStyle is used as given (the loader sets
// it when Endpoint is set; MinIO and IP endpoints need it). With
// AccessKeyID set the static keys are used, else the AWS default credential
// chain (AWS_ACCESS_KEY_ID and friends, shared config files, web identity,
// instance metadata). NewS3 does not contact the store: see EnsureBucket.
func NewS3(ctx context.Context, cfg config.S3Config, opts ...S3Option) (*S3, error) {
	o := s3Options{connectTimeout: 5 * time.Second, responseHeaderTimeout: 60 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	o.retry = o.retry.EnsureDefaults()
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("storage: s3: bucket is required")
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		if err := ValidateName(prefix); err != nil {
			return nil, fmt.Errorf("storage: s3: prefix: %w", err)
		}
		prefix += "/"
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	endpoint := ""
	if cfg.Endpoint != "" {
		endpoint = cfg.Endpoint
		if !strings.Contains(endpoint, "://") {
			if cfg.UseSSL {
				endpoint = "https://" + endpoint
			} else {
				endpoint = "http://" + endpoint
			}
		}
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("storage: s3: endpoint %q is not host:port or an http(s) URL", cfg.Endpoint)
		}
	}

	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: o.connectTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   o.connectTimeout,
		ResponseHeaderTimeout: o.responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
	}
	httpClient := &http.Client{
		Transport: transport,
		// S3 answers a wrong region with a redirect that must not be
		// followed with the same signature.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	rp := o.retry
	loadOpts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithRegion(region),
		awsconfig.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = rp.MaxAttempts
				so.MaxBackoff = rp.MaxBackoff
				so.Backoff = fullJitter(rp)
				// No client-wide retry budget: each call retries on its own,
				// bounded by MaxAttempts and its ctx. (A shared budget would
				// turn a long outage into failures without retries that last
				// until a request succeeds.)
				so.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.AccessKeyID != "" {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("storage: s3: load AWS config: %w", err)
	}
	// Keep the TLS settings the SDK derived from the environment (a custom
	// CA bundle: AWS_CA_BUNDLE or ca_bundle in the shared config), but send
	// through our own client, whose timeouts we set and whose idle
	// connections Close can close.
	if bc, ok := awsCfg.HTTPClient.(*awshttp.BuildableClient); ok {
		if tc := bc.GetTransport().TLSClientConfig; tc != nil {
			transport.TLSClientConfig = tc.Clone()
		}
	}
	awsCfg.HTTPClient = httpClient
	client := s3.NewFromConfig(awsCfg, func(so *s3.Options) {
		if endpoint != "" {
			so.BaseEndpoint = aws.String(endpoint)
		}
		so.UsePathStyle = cfg.ForcePathStyle
	})
	desc := endpoint
	if desc == "" {
		desc = "AWS S3 (" + region + ")"
	}
	return &S3{client: client, transport: transport, bucket: cfg.Bucket, prefix: prefix, endpoint: desc, opts: o}, nil
}

// fullJitter is RetryPolicy's backoff.
func fullJitter(p RetryPolicy) retry.BackoffDelayer {
	throttles := retry.IsErrorThrottles(retry.DefaultThrottles)
	return retry.BackoffDelayerFunc(func(attempt int, err error) (time.Duration, error) {
		base := p.BaseDelay
		if throttles.IsErrorThrottle(err) == aws.TrueTernary {
			base = p.ThrottleBaseDelay
		}
		ceiling := float64(base) * math.Pow(2, float64(max(attempt-1, 0)))
		ceiling = min(ceiling, float64(p.MaxBackoff))
		return time.Duration(rand.Float64() * ceiling), nil
	})
}

// String returns "s3://bucket/prefix".
func (s *S3) String() string { return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/") }

// Close closes idle connections.
func (s *S3) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}

func (s *S3) key(name string) string { return s.prefix + name }

func (s *S3) location(name string) string {
	if name == "" {
		return s.String()
	}
	return "s3://" + s.bucket + "/" + s.key(name)
}

// fail wraps err from operation op on name as an *Error: not found, or
// transient vs permanent, with a hint for the common causes.
func (s *S3) fail(op, name string, err error) error {
	transient, cause := s.classify(err)
	return &Error{Op: op, Location: s.location(name), Transient: transient, Err: cause}
}

var (
	sdkRetryables = retry.IsErrorRetryables(retry.DefaultRetryables)
	sdkThrottles  = retry.IsErrorThrottles(retry.DefaultThrottles)
)

func (s *S3) classify(err error) (transient bool, cause error) {
	if errors.Is(err, ErrInvalidName) || errors.Is(err, ErrNotFound) {
		return false, err
	}
	if errors.Is(err, context.Canceled) {
		return false, err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true, fmt.Errorf("deadline exceeded before %s answered (slow, overloaded or unreachable): %w", s.endpoint, err)
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return false, ErrNotFound
		case "NoSuchBucket":
			return false, fmt.Errorf("bucket %q does not exist at %s: %w", s.bucket, s.endpoint, err)
		case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
			"InvalidToken", "TokenRefreshRequired", "AllAccessDisabled", "AccountProblem":
			return false, fmt.Errorf("access refused by %s (check the credentials and bucket policy): %w", s.endpoint, err)
		}
	}
	var respErr interface{ HTTPStatusCode() int }
	if errors.As(err, &respErr) {
		code := respErr.HTTPStatusCode()
		if code == http.StatusNotFound && apiErr == nil {
			return false, ErrNotFound
		}
		if code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout {
			return true, err
		}
	}
	if sdkThrottles.IsErrorThrottle(err) == aws.TrueTernary || sdkRetryables.IsErrorRetryable(err) == aws.TrueTernary {
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return true, fmt.Errorf("cannot reach %s: %w", s.endpoint, err)
		}
		return true, err
	}
	// A request that could not be sent or whose answer was cut short by the
	// network is worth another try even when the SDK would not retry it.
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true, fmt.Errorf("talking to %s: %w", s.endpoint, err)
	}
	return false, err
}

// EnsureBucket creates the bucket if it does not exist (for tests and
// development; production buckets are made by their owners).
func (s *S3) EnsureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.bucket)})
	if err == nil {
		return nil
	}
	var nf *types.NotFound
	var apiErr smithy.APIError
	if !errors.As(err, &nf) && !(errors.As(err, &apiErr) && (apiErr.ErrorCode() == "NoSuchBucket" || apiErr.ErrorCode() == "NotFound")) {
		return s.fail("check bucket", "", err)
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}
	if r := s.client.Options().Region; r != "" && r != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	if _, err := s.client.CreateBucket(ctx, in); err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			return nil
		}
		return s.fail("create bucket", "", err)
	}
	return nil
}

// Put uploads the object with one PutObject. A reader that is an io.Seeker
// of known size (an *os.File, a *bytes.Reader) is sent as is, from its
// current offset; any other is first buffered (in memory up to 8 MiB, else
// in a temp file, see WithSpoolDir), because S3 needs the length up front and
// a retry sends the body again.
func (s *S3) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := ValidateName(name); err != nil {
		return s.fail("put", name, err)
	}
	if err := ctx.Err(); err != nil {
		return s.fail("put", name, err)
	}
	body, n, cleanup, err := s.body(ctx, r, size)
	if err != nil {
		return &Error{Op: "put", Location: s.location(name), Transient: localTransient(err), Err: fmt.Errorf("read object: %w", err)}
	}
	defer cleanup()
	if n > MaxPutSize {
		return s.fail("put", name, fmt.Errorf("object of %d bytes is larger than one PUT allows (%d)", n, MaxPutSize))
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(s.key(name)),
		Body:          body,
		ContentLength: aws.Int64(n),
		ContentType:   aws.String("application/octet-stream"),
	})
	if err != nil {
		return s.fail("put", name, err)
	}
	return nil
}

// body returns a rewindable body holding r's size bytes, its length, and a
// function that releases what it used.
func (s *S3) body(ctx context.Context, r io.Reader, size int64) (io.ReadSeeker, int64, func(), error) {
	if rs, ok := r.(io.ReadSeeker); ok && size >= 0 {
		if cur, err := rs.Seek(0, io.SeekCurrent); err == nil {
			end, err := rs.Seek(0, io.SeekEnd)
			if err != nil {
				return nil, 0, func() {}, err
			}
			if _, err := rs.Seek(cur, io.SeekStart); err != nil {
				return nil, 0, func() {}, err
			}
			if end-cur != size {
				return nil, 0, func() {}, fmt.Errorf("reader holds %d bytes, not the %d announced", end-cur, size)
			}
			return rs, size, func() {}, nil
		}
		// Not really seekable (a pipe): spool it.
	}
	sp := &spool{dir: s.opts.spoolDir, limit: spoolMemLimit}
	n, err := copyExact(sp, &ctxReader{ctx: ctx, r: r}, size)
	if err != nil {
		sp.close()
		return nil, 0, func() {}, err
	}
	body, err := sp.reader()
	if err != nil {
		sp.close()
		return nil, 0, func() {}, err
	}
	return body, n, sp.close, nil
}

// spool buffers written bytes in memory up to limit, then in a temp file.
type spool struct {
	dir   string
	limit int
	buf   []byte
	f     *os.File
}

func (s *spool) Write(p []byte) (int, error) {
	if s.f == nil && len(s.buf)+len(p) <= s.limit {
		s.buf = append(s.buf, p...)
		return len(p), nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "weir-s3-spool-*")
		if err != nil {
			return 0, fmt.Errorf("spool to temp file: %w", err)
		}
		s.f = f
		if _, err := f.Write(s.buf); err != nil {
			return 0, fmt.Errorf("spool to temp file: %w", err)
		}
		s.buf = nil
	}
	return s.f.Write(p)
}

func (s *spool) reader() (io.ReadSeeker, error) {
	if s.f == nil {
		return bytes.NewReader(s.buf), nil
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.f, nil
}

func (s *spool) close() {
	s.buf = nil
	if s.f != nil {
		_ = s.f.Close()
		_ = os.Remove(s.f.Name())
	}
}

// Get starts a GetObject and returns its body; errors while reading it are
// *Errors too.
func (s *S3) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ValidateName(name); err != nil {
		return nil, s.fail("get", name, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(name))})
	if err != nil {
		return nil, s.fail("get", name, err)
	}
	return &s3Body{s: s, name: name, rc: out.Body}, nil
}

type s3Body struct {
	s    *S3
	name string
	rc   io.ReadCloser
}

func (b *s3Body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = b.s.fail("get", b.name, err)
	}
	return n, err
}

func (b *s3Body) Close() error { return b.rc.Close() }

// Stat is a HeadObject.
func (s *S3) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	if err := ValidateName(name); err != nil {
		return ObjectInfo{}, s.fail("stat", name, err)
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(name))})
	if err != nil {
		return ObjectInfo{}, s.fail("stat", name, err)
	}
	return ObjectInfo{Name: name, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

// List pages through ListObjectsV2.
func (s *S3) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, s.fail("list", prefix, err)
	}
	var out []ObjectInfo
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(s.key(prefix)),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.fail("list", prefix, err)
		}
		for _, obj := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(obj.Key), s.prefix)
			out = append(out, ObjectInfo{Name: name, Size: aws.ToInt64(obj.Size), ModTime: aws.ToTime(obj.LastModified)})
		}
	}
	// S3 lists in UTF-8 byte order already; sort in case a compatible store
	// does not.
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete is a DeleteObject (which S3 answers with success for a missing key).
func (s *S3) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return s.fail("delete", name, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key(name))})
	if err != nil {
		var nf *types.NoSuchKey
		if errors.As(err, &nf) {
			return nil
		}
		return s.fail("delete", name, err)
	}
	return nil
}

// DeleteMany deletes with DeleteObjects, 1000 keys per request.
func (s *S3) DeleteMany(ctx context.Context, names []string) error {
	for _, n := range names {
		if err := ValidateName(n); err != nil {
			return s.fail("delete", n, err)
		}
	}
	for batch := range slices.Chunk(names, 1000) {
		ids := make([]types.ObjectIdentifier, len(batch))
		for i, n := range batch {
			ids[i] = types.ObjectIdentifier{Key: aws.String(s.key(n))}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(s.bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			return s.fail("delete", batch[0], err)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) == "NoSuchKey" {
				continue
			}
			name := strings.TrimPrefix(aws.ToString(e.Key), s.prefix)
			apiErr := &smithy.GenericAPIError{Code: aws.ToString(e.Code), Message: aws.ToString(e.Message)}
			return s.fail("delete", name, apiErr)
		}
	}
	return nil
}

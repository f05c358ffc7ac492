package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/config"
)

// S3Env is the S3 server the tests use, from the environment that
// scripts/minio.sh exports (make test and scripts/test.sh set it up).
type S3Env struct {
	Endpoint  string // host:port, plain http
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string
}

// skipHint says how to run the S3 tests.
const skipHint = "no S3 server: WEIR_S3_ENDPOINT is unset. Run `make test` (or scripts/test.sh), or " +
	"`scripts/minio.sh go test ./checkpoint/...`, which start MinIO on a loopback port and export " +
	"WEIR_S3_ENDPOINT, WEIR_S3_ACCESS_KEY, WEIR_S3_SECRET_KEY and WEIR_S3_BUCKET"

// S3FromEnv returns the S3 server from the environment, or skips the test
// when there is none.
func S3FromEnv(t testing.TB) S3Env {
	t.Helper()
	e := S3Env{
		Endpoint:  os.Getenv("WEIR_S3_ENDPOINT"),
		AccessKey: os.Getenv("WEIR_S3_ACCESS_KEY"),
		SecretKey: os.Getenv("WEIR_S3_SECRET_KEY"),
		Bucket:    os.Getenv("WEIR_S3_BUCKET"),
		Region:    os.Getenv("WEIR_S3_REGION"),
	}
	if e.Endpoint == "" {
		t.Skip(skipHint)
	}
	if e.Bucket == "" {
		e.Bucket = "weir-test"
	}
	if e.Region == "" {
		e.Region = "us-east-1"
	}
	return e
}

// Config returns the s3_config for this server with the given key prefix.
func (e S3Env) Config(prefix string) config.S3Config {
	return config.S3Config{
		Bucket:          e.Bucket,
		Region:          e.Region,
		Prefix:          prefix,
		Endpoint:        e.Endpoint,
		UseSSL:          false,
		ForcePathStyle:  true,
		AccessKeyID:     e.AccessKey,
		SecretAccessKey: e.SecretKey,
	}
}

// UniquePrefix returns a key prefix no other test uses: "test/<test
// name>-<random>".
func UniquePrefix(t testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 100 {
		name = name[len(name)-100:]
	}
	return "test/" + name + "-" + hex.EncodeToString(b[:])
}

// NewS3 returns an S3 storage on this server under a unique prefix, with the
// bucket created. At the end of the test it deletes what is left under the
// prefix and closes the storage.
func (e S3Env) NewS3(t testing.TB, opts ...storage.S3Option) *storage.S3 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := storage.NewS3(ctx, e.Config(UniquePrefix(t)), opts...)
	if err != nil {
		t.Fatalf("NewS3: %v", err)
	}
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("EnsureBucket: %v", err)
	}
	t.Cleanup(func() {
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		infos, err := s.List(ctx, "")
		if err != nil {
			t.Logf("cleanup of %s: %v", s, err)
			return
		}
		names := make([]string, len(infos))
		for i, o := range infos {
			names[i] = o.Name
		}
		if err := storage.DeleteMany(ctx, s, names); err != nil {
			t.Logf("cleanup of %s: %v", s, err)
		}
	})
	return s
}

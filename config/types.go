// Package config loads weir's YAML pipeline files: ${VAR} and ${VAR:default}
// substitution from the environment, strict decoding (unknown keys, wrong
// types, missing required fields and unknown component types are errors that
// name the file, line, key path and what was expected), validation of every
// component's fields against its registered spec, and defaults.
package config

import (
	"time"

	"github.com/weir-stream/weir/component"
)

// Root is a whole config file.
type Root struct {
	// File is the path the config was loaded from.
	File        string
	Logging     Logging
	HealthCheck HealthCheck
	State       State
	// ShutdownTimeout bounds how long SIGINT/SIGTERM waits for in-flight
	// batches to drain (top-level key shutdown_timeout, default 30s).
	ShutdownTimeout time.Duration
	Streams         []Stream
	// Warnings are non-fatal findings (weir lint prints them).
	Warnings []string
}

// Logging is the top-level logging section.
type Logging struct {
	Level    string // debug | info | warn | error (default info)
	Format   string // plain | json (default plain)
	FilePath string // optional; logs go to stderr when empty
}

// HealthCheck is the top-level health_check section.
type HealthCheck struct {
	Enabled bool   // default true
	Address string // default 0.0.0.0:8080
}

// State is the top-level state section (the guide's keys).
type State struct {
	Enabled     bool
	BackendType string // Memory | Hybrid | S3 | Pebble (default Memory)
	StateDir    string // default ./weir-state
	// PipelineID names this pipeline's directory under the checkpoint root;
	// default: the config file's base name without extension.
	PipelineID                 string
	CheckpointIntervalMs       int64 // default 60000
	CheckpointTimeoutMs        int64 // default 600000
	MinPauseBetweenMs          int64 // default 0
	TolerableFailedCheckpoints int   // default 3
	RetainedCheckpoints        int   // default 3
	ExactlyOnce                bool
	MaxKeyGroups               int // default 128
	// FullCheckpointEvery forces a full (non-incremental) memory snapshot
	// every N checkpoints (default 10).
	FullCheckpointEvery int
	// TransactionLogSync is the sync mode of the transaction log of inputs
	// that cannot replay: per_entry | group_commit (default) | periodic.
	TransactionLogSync string
	// TransactionLogSyncMs is the fsync period of the periodic mode.
	TransactionLogSyncMs int64
	S3                   *S3Config // s3_config
	Line                 int       // line of the state key, for errors
}

// S3Config is state.s3_config.
type S3Config struct {
	Bucket          string
	Region          string // default us-east-1
	Prefix          string
	Endpoint        string // custom endpoint (MinIO); empty = AWS
	UseSSL          bool   // default true
	ForcePathStyle  bool   // default: true when Endpoint is set
	AccessKeyID     string // empty = AWS default credential chain
	SecretAccessKey string
	SessionToken    string
}

// Stream is one entry of streams.
type Stream struct {
	// Name labels the stream in logs and metrics (default "stream-<index>").
	Name        string
	Index       int
	Input       *component.Config
	Pipeline    Pipeline
	Output      *component.Config
	ErrorOutput *component.Config // nil when absent
	// Buffer is ArkFlow's optional stream-level buffer (windows); nil when
	// absent. It is mapped onto a processor appended to the pipeline.
	Buffer *component.Config
	Line   int
}

// Pipeline is a stream's pipeline section.
type Pipeline struct {
	ThreadNum  int // default 1
	Processors []*component.Config
}

package config

import "github.com/weir-stream/weir/component"

// Component slot types. A field of one of these types holds a component of
// that kind: a mapping with `type: NAME` and the fields of NAME's spec flat
// beside it. They extend component.FieldType for the config's own tables
// (a stream's input, output, processors and buffer).
const (
	SlotInput     component.FieldType = "input"
	SlotProcessor component.FieldType = "processor"
	SlotOutput    component.FieldType = "output"
)

// SlotKind returns the component kind a slot type holds.
func SlotKind(t component.FieldType) (component.Kind, bool) {
	switch t {
	case SlotInput:
		return component.KindInput, true
	case SlotProcessor:
		return component.KindProcessor, true
	case SlotOutput:
		return component.KindOutput, true
	}
	return "", false
}

// Top-level keys.
const (
	keyLogging         = "logging"
	keyHealthCheck     = "health_check"
	keyShutdownTimeout = "shutdown_timeout"
	keyState           = "state"
	keyStreams         = "streams"
)

// logging keys.
const (
	keyLevel    = "level"
	keyFormat   = "format"
	keyFilePath = "file_path"
)

// health_check keys.
const (
	keyEnabled = "enabled"
	keyAddress = "address"
)

// state keys.
const (
	keyBackendType         = "backend_type"
	keyStateDir            = "state_dir"
	keyPipelineID          = "pipeline_id"
	keyCheckpointInterval  = "checkpoint_interval_ms"
	keyCheckpointTimeout   = "checkpoint_timeout_ms"
	keyMinPause            = "min_pause_between_checkpoints_ms"
	keyTolerableFailed     = "tolerable_failed_checkpoints"
	keyRetainedCheckpoints = "retained_checkpoints"
	keyExactlyOnce         = "exactly_once"
	keyMaxKeyGroups        = "max_key_groups"
	keyFullCheckpointEvery = "full_checkpoint_every"
	keyTxnLogSync          = "transaction_log_sync"
	keyTxnLogSyncInterval  = "transaction_log_sync_interval_ms"
	keyS3Config            = "s3_config"
	keyBucket              = "bucket"
	keyRegion              = "region"
	keyPrefix              = "prefix"
	keyEndpoint            = "endpoint"
	keyUseSSL              = "use_ssl"
	keyForcePathStyle      = "force_path_style"
	keyAccessKeyID         = "access_key_id"
	keySecretAccessKey     = "secret_access_key"
	keySessionToken        = "session_token"
)

// maxKeyGroupsLimit is the largest state.max_key_groups.
const maxKeyGroupsLimit int64 = 32768

// stream keys.
const (
	keyName        = "name"
	keyInput       = "input"
	keyPipeline    = "pipeline"
	keyThreadNum   = "thread_num"
	keyProcessors  = "processors"
	keyOutput      = "output"
	keyErrorOutput = "error_output"
	keyBuffer      = "buffer"
)

// State backend types (state.backend_type).
const (
	BackendMemory = "Memory"
	BackendHybrid = "Hybrid"
	BackendS3     = "S3"
	BackendPebble = "Pebble"
)

// materialize is the Default of an object field that exists (with its
// fields' defaults) even when absent from the file.
var materialize = map[string]any{}

// RootFields describes the top-level keys of a config file. The validator
// checks files against it, and `weir schema` and docs/components.md are
// generated from it.
func RootFields() []component.Field {
	return []component.Field{
		{
			Name: keyLogging, Type: component.TypeObject, Default: materialize,
			Description: "Logging of the weir process.",
			Fields: []component.Field{
				{Name: keyLevel, Type: component.TypeString, Default: "info", Options: []string{"debug", "info", "warn", "error"},
					Description: "Lowest level logged."},
				{Name: keyFormat, Type: component.TypeString, Default: "plain", Options: []string{"plain", "json"},
					Description: "Log line format: human-readable text or one JSON object per line."},
				{Name: keyFilePath, Type: component.TypeString,
					Description: "File to append logs to; logs go to stderr when empty."},
			},
		},
		{
			Name: keyHealthCheck, Type: component.TypeObject, Default: materialize,
			Description: "HTTP server for health checks and metrics.",
			Fields: []component.Field{
				{Name: keyEnabled, Type: component.TypeBool, Default: true,
					Description: "Serve health and metrics endpoints over HTTP."},
				{Name: keyAddress, Type: component.TypeString, Default: "0.0.0.0:8080",
					Description: "Listen address of the health and metrics server."},
			},
		},
		{
			Name: keyShutdownTimeout, Type: component.TypeDuration, Default: "30s",
			Description: "How long SIGINT/SIGTERM waits for in-flight batches to drain before giving up.",
		},
		{
			Name: keyState, Type: component.TypeObject, Default: materialize,
			Description: "Keyed state, checkpoints and exactly-once delivery.",
			Fields:      stateFields(),
		},
		{
			Name: keyStreams, Type: component.TypeList, Required: true,
			Description: "The pipelines this process runs: each reads an input, runs processors and writes an output.",
			Fields:      streamFields(),
		},
	}
}

func stateFields() []component.Field {
	return []component.Field{
		{Name: keyEnabled, Type: component.TypeBool, Default: false,
			Description: "Keep keyed state and take checkpoints."},
		{Name: keyBackendType, Type: component.TypeString, Default: BackendMemory,
			Options: []string{BackendMemory, BackendHybrid, BackendS3, BackendPebble},
			Description: "Where working state lives and where checkpoints go: Memory (memory, local checkpoints), " +
				"Hybrid (memory, checkpoints on S3), S3 (Pebble on local disk, checkpoints on S3), Pebble (Pebble, local checkpoints)."},
		{Name: keyStateDir, Type: component.TypeString, Default: "./weir-state",
			Description: "Local directory for checkpoints (Memory, Pebble) and working files (Pebble, S3)."},
		{Name: keyPipelineID, Type: component.TypeString,
			Description: "Names this pipeline's directory under the checkpoint root; default: the config file's base name without extension."},
		{Name: keyCheckpointInterval, Type: component.TypeInt, Default: 60000,
			Description: "Milliseconds between the starts of two checkpoints."},
		{Name: keyCheckpointTimeout, Type: component.TypeInt, Default: 600000,
			Description: "Milliseconds a checkpoint may take before it is abandoned."},
		{Name: keyMinPause, Type: component.TypeInt, Default: 0,
			Description: "Minimum milliseconds between the end of a checkpoint and the start of the next."},
		{Name: keyTolerableFailed, Type: component.TypeInt, Default: 3,
			Description: "Consecutive failed checkpoints tolerated before the pipeline fails."},
		{Name: keyRetainedCheckpoints, Type: component.TypeInt, Default: 3,
			Description: "Completed checkpoints kept; older ones (and files only they reference) are deleted."},
		{Name: keyExactlyOnce, Type: component.TypeBool, Default: false,
			Description: "Deliver each record exactly once end to end: replayable sources, state and two-phase-commit outputs in one checkpoint."},
		{Name: keyMaxKeyGroups, Type: component.TypeInt, Default: 128,
			Description: "Number of key groups (1..32768): the most workers keyed state can be spread over. Fixed for the life of the state."},
		{Name: keyFullCheckpointEvery, Type: component.TypeInt, Default: 10, Advanced: true,
			Description: "Take a full (non-incremental) memory snapshot every N checkpoints, so the chain of deltas stays short."},
		{Name: keyTxnLogSync, Type: component.TypeString, Default: "group_commit", Options: []string{"per_entry", "group_commit", "periodic"},
			Description: "When the transaction log of inputs that cannot replay (http, stdin) fsyncs: every entry, shared by concurrent appends (acknowledged once durable), or every transaction_log_sync_interval_ms (acknowledged once written)."},
		{Name: keyTxnLogSyncInterval, Type: component.TypeInt, Default: 50, Advanced: true,
			Description: "fsync period of the transaction log with transaction_log_sync: periodic."},
		{Name: keyS3Config, Type: component.TypeObject,
			Description: "Checkpoint storage on S3 (backend_type S3 or Hybrid).",
			Fields: []component.Field{
				{Name: keyBucket, Type: component.TypeString,
					Description: "Bucket for checkpoints; required when backend_type is S3 or Hybrid."},
				{Name: keyRegion, Type: component.TypeString, Default: "us-east-1",
					Description: "AWS region."},
				{Name: keyPrefix, Type: component.TypeString,
					Description: "Key prefix under which pipelines' checkpoints are stored."},
				{Name: keyEndpoint, Type: component.TypeString,
					Description: "Custom S3 endpoint (e.g. MinIO); empty means AWS."},
				{Name: keyUseSSL, Type: component.TypeBool, Default: true,
					Description: "Use HTTPS to reach the endpoint."},
				{Name: keyForcePathStyle, Type: component.TypeBool,
					Description: "Address buckets by path rather than by host name; default: true when endpoint is set."},
				{Name: keyAccessKeyID, Type: component.TypeString,
					Description: "Access key; empty means the AWS default credential chain."},
				{Name: keySecretAccessKey, Type: component.TypeString,
					Description: "Secret key paired with access_key_id."},
				{Name: keySessionToken, Type: component.TypeString, Advanced: true,
					Description: "Session token for temporary credentials."},
			},
		},
	}
}

func streamFields() []component.Field {
	return []component.Field{
		{Name: keyName, Type: component.TypeString,
			Description: "Labels the stream in logs and metrics; default stream-<index>. Unique within the file."},
		{Name: keyInput, Type: SlotInput, Required: true,
			Description: "Where records come from."},
		{Name: keyPipeline, Type: component.TypeObject, Default: materialize,
			Description: "Processing between input and output.",
			Fields: []component.Field{
				{Name: keyThreadNum, Type: component.TypeInt, Default: 1,
					Description: "Workers running the processors in parallel (at least 1)."},
				{Name: keyProcessors, Type: component.TypeList, Elem: SlotProcessor, Default: []any{},
					Description: "Processors applied in order to every batch."},
			},
		},
		{Name: keyOutput, Type: SlotOutput, Required: true,
			Description: "Where processed records go."},
		{Name: keyErrorOutput, Type: SlotOutput,
			Description: "Where records that fail processing go."},
		{Name: keyBuffer, Type: SlotProcessor,
			Description: "Stream-level buffer (ArkFlow's windows): a processor spec, run after the pipeline's processors."},
	}
}

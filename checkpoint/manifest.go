// Package checkpoint takes and restores the consistent cuts of running
// streams: it triggers checkpoint barriers, writes the state snapshots that
// reach it with them as incremental files, writes the manifest last, keeps
// retained_checkpoints of them, and on start restores the newest one whose
// checksums verify.
//
// Layout under the storage root (a local directory or an S3 prefix):
//
//	<pipeline>/<stream>/manifests/chk-00000000000000000042.json  written last; names every file
//	<pipeline>/<stream>/shared/<sha256>.full|.delta               immutable, shared by checkpoints
//
// Files are named by the SHA-256 of their content, so a file that several
// retained checkpoints reference is stored once, and a file is deleted only
// when no retained manifest references it. Each key group's state is a chain
// of files applied in order: one full file, then deltas (keys changed and
// deleted since the previous checkpoint). A new full file starts the chain
// again every FullEvery checkpoints, or when the deltas outgrow
// MaxDeltaRatio of the full file.
//
// Invariants:
//   - A checkpoint exists only once its manifest is stored; the manifest is
//     the last object a checkpoint writes, and carries its own checksum and
//     the checksum of every file it names.
//   - At most one checkpoint is in flight; a checkpoint that times out or
//     fails leaves no manifest, and its files are collected later.
//   - Snapshots are confirmed to the state backends (which makes them the base
//     of later deltas) only after the manifest is stored.
package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FormatVersion is the version of manifests and of the layout.
const FormatVersion = 1

// ErrCorrupt reports a manifest or file whose checksum or format is wrong.
var ErrCorrupt = errors.New("corrupt checkpoint")

// Manifest describes one complete checkpoint.
type Manifest struct {
	FormatVersion int       `json:"format_version"`
	Pipeline      string    `json:"pipeline"`
	Stream        string    `json:"stream"`
	ID            uint64    `json:"id"`
	CreatedAt     time.Time `json:"created_at"`
	DurationMs    int64     `json:"duration_ms"`
	MaxKeyGroups  int       `json:"max_key_groups"`
	// Backend is the working-state backend kind that wrote the files.
	Backend string `json:"backend"`
	// Position is the source position at the barrier (opaque to weir).
	Position  []byte          `json:"position,omitempty"`
	Operators []OperatorState `json:"operators"`
	// Sinks holds what each output needs to finish its pending commit after
	// a crash (two-phase commit), by output label.
	Sinks map[string][]byte `json:"sinks,omitempty"`
	// FullBytes is the size of every file the checkpoint references,
	// IncrementalBytes of the files it wrote.
	FullBytes        int64 `json:"full_bytes"`
	IncrementalBytes int64 `json:"incremental_bytes"`
	// Checksum is the SHA-256 of the manifest encoded with Checksum empty.
	Checksum string `json:"checksum"`
}

// OperatorState is the state of one stateful processor, by key group.
type OperatorState struct {
	Name      string          `json:"name"`
	KeyGroups []KeyGroupState `json:"key_groups"`
}

// KeyGroupState is the chain of files of one key group, in apply order.
type KeyGroupState struct {
	KeyGroup int       `json:"kg"`
	Files    []FileRef `json:"files"`
}

// FileRef names one state file.
type FileRef struct {
	Name   string `json:"name"` // relative to the stream root: shared/<sha256>.<kind>
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Kind   string `json:"kind"` // full | delta
}

// Files returns every file the manifest references.
func (m *Manifest) Files() []FileRef {
	var out []FileRef
	for _, op := range m.Operators {
		for _, kg := range op.KeyGroups {
			out = append(out, kg.Files...)
		}
	}
	return out
}

// Operator returns the named operator's state, or nil.
func (m *Manifest) Operator(name string) *OperatorState {
	for i := range m.Operators {
		if m.Operators[i].Name == name {
			return &m.Operators[i]
		}
	}
	return nil
}

// Encode returns the manifest as JSON with its checksum filled in.
func (m *Manifest) Encode() ([]byte, error) {
	m.Checksum = ""
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	m.Checksum = hex.EncodeToString(sum[:])
	return json.MarshalIndent(m, "", "  ")
}

// DecodeManifest parses and verifies a manifest.
func DecodeManifest(data []byte) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if m.FormatVersion != FormatVersion {
		return nil, fmt.Errorf("%w: manifest format version %d, this weir reads %d", ErrCorrupt, m.FormatVersion, FormatVersion)
	}
	want := m.Checksum
	m.Checksum = ""
	body, err := json.Marshal(&m)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, fmt.Errorf("%w: manifest checksum %s does not match its content (%s)", ErrCorrupt, want, got)
	}
	m.Checksum = want
	return &m, nil
}

const manifestPrefix = "manifests/chk-"

// ManifestName returns the name of checkpoint id's manifest.
func ManifestName(id uint64) string { return fmt.Sprintf("%s%020d.json", manifestPrefix, id) }

// parseManifestName returns the id of a manifest name, or false.
func parseManifestName(name string) (uint64, bool) {
	i := strings.LastIndex(name, manifestPrefix)
	if i < 0 || !strings.HasSuffix(name, ".json") {
		return 0, false
	}
	id, err := strconv.ParseUint(strings.TrimSuffix(name[i+len(manifestPrefix):], ".json"), 10, 64)
	return id, err == nil
}

// fileName returns the shared name of a state file.
func fileName(sum []byte, kind string) string {
	return "shared/" + hex.EncodeToString(sum) + "." + kind
}

//go:build tools

// Package benthos pins Redpanda Connect's open core, Benthos, for the
// benchmark suite; bench/cmd/runbench builds its CLI from this module.
package benthos

import _ "github.com/redpanda-data/benthos/v4/cmd/benthos"

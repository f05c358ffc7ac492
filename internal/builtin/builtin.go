// Package builtin registers every component that ships with weir. Import it
// for its side effects.
package builtin

import (
	_ "github.com/weir-stream/weir/connectors/drop"
	_ "github.com/weir-stream/weir/connectors/file"
	_ "github.com/weir-stream/weir/connectors/generate"
	_ "github.com/weir-stream/weir/connectors/http"
	_ "github.com/weir-stream/weir/connectors/kafka"
	_ "github.com/weir-stream/weir/connectors/stdio"
	_ "github.com/weir-stream/weir/processors"
)

// Command benthos-kafka is the Benthos v4.27.0 CLI
// (github.com/benthosdev/benthos/v4, the last release that bundled the
// kafka_franz input and output) with only the components the benchmark's
// Kafka configs use: the pure processors and caches (mapping, unarchive,
// for_each, cache, catch, memory cache), kafka (kafka_franz) and io. It is
// the same CLI as cmd/benthos (service.RunCLI is cli.Run), built without
// the other connectors: cmd/benthos imports them all, which takes about
// 7 minutes to build on two cores and does not link with Go ≥ 1.23
// (parquet-go's linkname to runtime.aeskeysched).
//
//	cd bench/benthos-kafka && go build -o ../../bin/benthos-kafka .
//	../../bin/benthos-kafka -c configs/kafka_pass.yaml
package main

import (
	"context"

	"github.com/benthosdev/benthos/v4/public/service"

	_ "github.com/benthosdev/benthos/v4/public/components/io"
	_ "github.com/benthosdev/benthos/v4/public/components/kafka"
	_ "github.com/benthosdev/benthos/v4/public/components/pure"
)

func main() {
	service.RunCLI(context.Background())
}

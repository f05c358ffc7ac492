// Command weir runs stream pipelines described in YAML.
package main

import (
	"os"

	"github.com/weir-stream/weir/internal/cli"
	_ "github.com/weir-stream/weir/internal/builtin"
)

func main() { os.Exit(cli.Run()) }

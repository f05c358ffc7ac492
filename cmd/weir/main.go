// Command weir runs stream pipelines described in YAML.
package main

import (
	"os"

	_ "github.com/weir-stream/weir/internal/builtin"
	"github.com/weir-stream/weir/internal/cli"
)

func main() { os.Exit(cli.Run()) }

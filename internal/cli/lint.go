package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weir-stream/weir/config"
)

func newLintCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lint CONFIG...",
		Short: "Check config files without running them",
		Long: `Check config files: ${VAR} substitution, YAML syntax, unknown keys, types,
required fields, component types and their fields, and values that contradict
each other. Every problem is printed with its file, line and key path.

Prints "CONFIG: ok" (and any warnings) for each valid file. Exit status: 0
when every file is valid, 2 otherwise.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			var bad []string
			for _, path := range args {
				root, err := config.Load(path)
				if err != nil {
					bad = append(bad, path)
					// Errors name the file on every line; so do Load's I/O errors.
					fmt.Fprintln(out, err)
					continue
				}
				fmt.Fprintf(out, "%s: ok\n", path)
				for _, w := range root.Warnings {
					fmt.Fprintf(out, "warning: %s\n", w)
				}
			}
			if len(bad) > 0 {
				return withCode(ExitConfig, fmt.Errorf("lint: invalid config: %s", strings.Join(bad, ", ")))
			}
			return nil
		},
	}
}

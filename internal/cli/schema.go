package cli

import (
	"github.com/spf13/cobra"

	"github.com/weir-stream/weir/internal/docgen"
)

func newSchemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of config files",
		Long: `Print the JSON Schema (draft 2020-12) of a config file, generated from the
top-level keys and every registered component: each input, processor and
output slot is a oneOf over the components of its kind. Editors use it for
completion and checks (the schema sees the file before ${VAR} substitution,
so a field holding ${VAR} may be flagged; weir lint is authoritative).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return docgen.WriteSchema(cmd.OutOrStdout())
		},
	}
}

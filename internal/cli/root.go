// Package cli implements the weir command line: run, lint, components,
// schema, checkpoints and version.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1 // the pipeline failed while running
	ExitConfig  = 2 // the config is invalid; nothing was started
)

// exitError carries an exit code through cobra.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// Main runs the CLI with args (without the program name) and returns the
// process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "weir:", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return ExitFailure
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "weir",
		Short:         "weir runs YAML stream pipelines with durable state and exactly-once delivery",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(
		newRunCmd(),
		newLintCmd(),
		newComponentsCmd(),
		newSchemaCmd(),
		newVersionCmd(),
		newCheckpointsCmd(),
	)
	return root
}

// Run is Main with the process's arguments and streams.
func Run() int { return Main(os.Args[1:], os.Stdout, os.Stderr) }

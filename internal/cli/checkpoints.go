package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weir-stream/weir/checkpoint"
	"github.com/weir-stream/weir/config"
)

func newCheckpointsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checkpoints",
		Short: "List, inspect and delete the checkpoints of a config's streams",
	}
	var stream string
	cmd.PersistentFlags().StringVar(&stream, "stream", "", "only this stream (default: every stream)")
	cmd.AddCommand(&cobra.Command{
		Use:   "list CONFIG",
		Short: "List checkpoints: id, time, duration, sizes, and whether they verify",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withCoordinators(cmd.Context(), args[0], stream, func(name string, c *checkpoint.Coordinator) error {
				return listCheckpoints(cmd.Context(), cmd.OutOrStdout(), name, c)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "inspect CONFIG ID",
		Short: "Show one checkpoint: source position, state per operator, files",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil {
				return withCode(ExitConfig, fmt.Errorf("checkpoint id %q: %w", args[1], err))
			}
			return withCoordinators(cmd.Context(), args[0], stream, func(name string, c *checkpoint.Coordinator) error {
				return inspectCheckpoint(cmd.Context(), cmd.OutOrStdout(), name, c, id)
			})
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "delete CONFIG ID",
		Short: "Delete a checkpoint and the files no other checkpoint references",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseUint(args[1], 10, 64)
			if err != nil {
				return withCode(ExitConfig, fmt.Errorf("checkpoint id %q: %w", args[1], err))
			}
			return withCoordinators(cmd.Context(), args[0], stream, func(name string, c *checkpoint.Coordinator) error {
				if err := c.Delete(cmd.Context(), id); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: deleted checkpoint %d\n", name, id)
				return nil
			})
		},
	})
	return cmd
}

// withCoordinators calls fn with a coordinator (for storage access only)
// of every stream of the config.
func withCoordinators(ctx context.Context, path, only string, fn func(string, *checkpoint.Coordinator) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	root, err := config.Load(path)
	if err != nil {
		return withCode(ExitConfig, err)
	}
	store, err := checkpointStore(ctx, root.State)
	if err != nil {
		return err
	}
	defer store.Close()
	s := &stateSetup{cfg: root.State}
	found := false
	for i, sc := range root.Streams {
		name := sc.Name
		if name == "" {
			name = fmt.Sprintf("stream-%d", i)
		}
		if only != "" && only != name {
			continue
		}
		found = true
		c, err := checkpoint.New(s.coordinatorConfig(name), store, nil, nil, nil, checkpoint.Hooks{})
		if err != nil {
			return err
		}
		if err := fn(name, c); err != nil {
			return err
		}
	}
	if !found {
		return withCode(ExitConfig, fmt.Errorf("no stream named %q in %s", only, path))
	}
	return nil
}

func listCheckpoints(ctx context.Context, w io.Writer, stream string, c *checkpoint.Coordinator) error {
	good, bad, err := c.List(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "STREAM\tID\tCREATED\tDURATION\tFULL BYTES\tINCREMENTAL BYTES\tSTATUS\n")
	for _, m := range good {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\tok\n", stream, m.ID, m.CreatedAt.Format(time.RFC3339),
			(time.Duration(m.DurationMs) * time.Millisecond).String(), m.FullBytes, m.IncrementalBytes)
	}
	for id, err := range bad {
		fmt.Fprintf(tw, "%s\t%d\t-\t-\t-\t-\tcorrupt: %v\n", stream, id, err)
	}
	if len(good)+len(bad) == 0 {
		fmt.Fprintf(tw, "%s\t(none in %s)\n", stream, c.Root())
	}
	return tw.Flush()
}

func inspectCheckpoint(ctx context.Context, w io.Writer, stream string, c *checkpoint.Coordinator, id uint64) error {
	good, bad, err := c.List(ctx)
	if err != nil {
		return err
	}
	if err, ok := bad[id]; ok {
		return fmt.Errorf("%s: checkpoint %d does not verify: %w", stream, id, err)
	}
	for _, m := range good {
		if m.ID != id {
			continue
		}
		type opSummary struct {
			Name      string `json:"name"`
			KeyGroups int    `json:"key_groups"`
			Files     int    `json:"files"`
			Bytes     int64  `json:"bytes"`
		}
		out := struct {
			Stream           string          `json:"stream"`
			ID               uint64          `json:"id"`
			Created          time.Time       `json:"created"`
			DurationMs       int64           `json:"duration_ms"`
			FullBytes        int64           `json:"full_bytes"`
			IncrementalBytes int64           `json:"incremental_bytes"`
			Position         json.RawMessage `json:"source_position,omitempty"`
			PositionHex      string          `json:"source_position_hex,omitempty"`
			Operators        []opSummary     `json:"operators"`
			Sinks            []string        `json:"pending_sink_commits,omitempty"`
		}{Stream: stream, ID: m.ID, Created: m.CreatedAt, DurationMs: m.DurationMs, FullBytes: m.FullBytes, IncrementalBytes: m.IncrementalBytes}
		if json.Valid(m.Position) {
			out.Position = m.Position
		} else if m.Position != nil {
			out.PositionHex = fmt.Sprintf("%x", m.Position)
		}
		for _, op := range m.Operators {
			s := opSummary{Name: op.Name, KeyGroups: len(op.KeyGroups)}
			for _, kg := range op.KeyGroups {
				s.Files += len(kg.Files)
				for _, f := range kg.Files {
					s.Bytes += f.Size
				}
			}
			out.Operators = append(out.Operators, s)
		}
		for name := range m.Sinks {
			out.Sinks = append(out.Sinks, name)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	return fmt.Errorf("%s: no checkpoint %d", stream, id)
}

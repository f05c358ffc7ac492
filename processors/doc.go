// Package processors holds weir's built-in processors, one file per
// processor (processor_<name>.go), each registered from its init function.
//
// Stateless processors: json_to_arrow, arrow_to_json, mapping, filter,
// split, batch. Expressions (mapping, filter) are expr-lang programs run by
// internal/rowexpr.
//
// Invariants:
//   - A processor never modifies its input batch: it returns new batches,
//     sharing unchanged columns (or the input itself when nothing changes).
//   - Rows that fail (invalid JSON, an expression error) do not fail the
//     batch: they are returned, with their original columns and a
//     __meta_error column, in an error batch after the good rows (the
//     engine sends it to error_output). A returned error fails the whole
//     batch and is kept for problems of the batch itself (a missing column).
//   - Metadata columns (__meta_*) travel with their rows through every
//     processor.
//   - Work is per batch: no Go value or allocation per row on the hot paths
//     (split, json_to_arrow, arrow_to_json); expressions allocate at most
//     the boxing of the values they read.
//   - Shared helpers (row gathering, error batches) live in util.go.
package processors

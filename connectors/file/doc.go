// Package file provides the file input (a bounded, replayable reader of
// line-oriented and CSV files) and the file output.
//
// Input invariants:
//   - The position of a batch (Batch.Pos) is the byte offset in the file just
//     after the batch's last line, as 8 bytes big endian. Seek(pos) resumes
//     at that offset, so the next record is exactly the one after the batch.
//   - lines: one record per line, without "\n" or "\r\n"; empty lines are
//     empty records. ndjson: the same, but blank lines are skipped (parsing
//     is left to the json_to_arrow processor). A last line without a newline
//     is a record.
//   - csv: one string column per header field (c0, c1, … without a header);
//     a row with fewer fields has nulls in the missing columns, a row with
//     more fields is an error. With a header and a position, the header is
//     read first, then the input seeks.
//   - A batch holds at most batch_size records and ends early once it holds
//     maxBatchBytes of payload (a longer line still forms one record).
//
// # Output, at-least-once (exactly_once: false)
//
// Write appends each record and a newline to the target file. A process
// killed in the middle of a write leaves a torn last line; Connect cuts it
// off when it appends, because that record was not acknowledged and is
// written again.
//
// # Output, exactly-once (exactly_once: true)
//
// The output implements component.Committer. The target file is only ever
// changed by Commit (and by Recover's clean-up), so a reader of the target
// never sees a record of an epoch whose checkpoint has not completed. Its
// files live in a hidden staging directory next to the target,
// <dir>/.<base>.weir-staging:
//
//	open-<k>        a part being written in the current epoch
//	part-<N>-<i>    part i of epoch N, pre-committed (fsynced, renamed)
//	aborted-<N>     epoch N was aborted (written before its parts are deleted)
//	journal         the commit journal: the last commits' epoch, target size
//	                before the commit, and whether it finished (JSON, replaced
//	                atomically: temp file, fsync, rename, fsync directory)
//
// The protocol:
//   - Write appends the batch's lines to the current part (open-<k>, created
//     on the first Write of an epoch).
//   - PreCommit(N) fsyncs the epoch's parts, renames them to part-<N>-<i>,
//     fsyncs the staging directory, and adds epoch N to the pending epochs.
//     The handle is JSON: the target path and every pending epoch (each with
//     its part names, in order) — all epochs pre-committed and neither
//     committed nor aborted yet, N included. Because the handle is
//     cumulative, committing it also commits an earlier epoch whose Commit
//     never ran (its notification lost in a crash, or reordered).
//   - Commit(N, handle) commits the handle's epochs in order, each as
//     described below, under a lock (Commit runs in another goroutine than
//     Write and PreCommit, which it does not block).
//   - Abort(N) writes aborted-<N>, then deletes epoch N's parts and forgets
//     the epoch. Its records must be replayed: the engine restarts from an
//     earlier checkpoint. A later handle that still lists N skips it.
//   - Recover(N, handle), before Connect: epochs after N that the journal
//     records (checkpoints that completed and were committed, but recovery
//     fell back to the older checkpoint N) are rolled back: the target is
//     truncated to the size before the first of them, because the replay
//     writes their records again (a reader may have seen them). An
//     unfinished commit of an epoch not in the handle is rolled back the
//     same way. Then the handle is committed as by Commit, and every other
//     file of the staging directory (open and pre-committed parts of epochs
//     that never completed, abort markers) is deleted. Recover(0, nil) — no
//     checkpoint — rolls back an unfinished commit, forgets the journal and,
//     with append: false, truncates the target.
//
// Commit of one epoch E, with what a crash after each step leaves:
//
//  1. If the journal has E finished, or a later epoch (commits run in epoch
//     order), only delete E's leftover parts. If aborted-<E> exists, skip E.
//  2. Unless the journal's last entry is an unfinished commit of E (a retry,
//     whose recorded size S is kept), record S = the target's size in a new
//     unfinished entry for E and store the journal. Crash: the target is
//     untouched; the retry appends from S.
//  3. Truncate the target to S, append E's parts in order, fsync the target.
//     Crash: the target holds part of E after S; the retry truncates it back
//     to S and appends again, so nothing is written twice (a reader that
//     read past S reads the same bytes again).
//  4. Mark E finished in the journal, with the size after. Crash: the retry
//     sees E finished and only deletes its parts.
//  5. Delete E's parts. Crash: the next Commit or Recover deletes them.
//
// The journal remembers the last 64 commits: enough to roll back to any
// retained checkpoint. A failed PreCommit discards its epoch, as Abort does.
//
// The target must be written by this output only (the journal's sizes
// refer to it), and be a regular file.
package file

package file

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
)

// The commit protocol of the exactly-once file output (see the package
// doc): staged parts, the commit journal, commit, abort and the clean-up of
// recovery. The output calls a stager's methods with its commitMu held.

const (
	journalName    = "journal"
	journalVersion = 1
	// journalKeep is how many commits the journal remembers: enough to roll
	// back to any retained checkpoint.
	journalKeep = 64
)

// stagingDir is the staging directory of target.
func stagingDir(target string) string {
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".weir-staging")
}

func partName(epoch uint64, i int) string {
	return "part-" + strconv.FormatUint(epoch, 10) + "-" + strconv.Itoa(i)
}

func abortMarker(epoch uint64) string {
	return "aborted-" + strconv.FormatUint(epoch, 10)
}

// commitHandle is what PreCommit returns and Commit and Recover take.
type commitHandle struct {
	Target string        `json:"target"`
	Epochs []stagedEpoch `json:"epochs"`
}

// stagedEpoch is one pre-committed epoch: its part files, in order.
type stagedEpoch struct {
	ID    uint64   `json:"id"`
	Parts []string `json:"parts"`
}

func parseHandle(h []byte) (*commitHandle, error) {
	var ch commitHandle
	if err := json.Unmarshal(h, &ch); err != nil {
		return nil, fmt.Errorf("bad commit handle: %w", err)
	}
	if ch.Target == "" {
		return nil, errors.New("bad commit handle: no target")
	}
	for _, e := range ch.Epochs {
		for _, p := range e.Parts {
			if p == "" || filepath.Base(p) != p || p == journalName {
				return nil, fmt.Errorf("bad commit handle: part name %q", p)
			}
		}
	}
	return &ch, nil
}

// journal records the last commits to the target.
type journal struct {
	Version int            `json:"version"`
	Commits []journalEntry `json:"commits"` // by increasing epoch
}

type journalEntry struct {
	Epoch      uint64 `json:"epoch"`
	SizeBefore int64  `json:"size_before"`
	SizeAfter  int64  `json:"size_after,omitempty"`
	Done       bool   `json:"done"`
}

// last returns the last entry, or nil.
func (j *journal) last() *journalEntry {
	if len(j.Commits) == 0 {
		return nil
	}
	return &j.Commits[len(j.Commits)-1]
}

// committed reports whether epoch is committed: the journal has it
// finished, or a later epoch finished (commits run in epoch order).
func (j *journal) committed(epoch uint64) bool {
	for i := len(j.Commits) - 1; i >= 0; i-- {
		if c := j.Commits[i]; c.Done && c.Epoch >= epoch {
			return true
		}
	}
	return false
}

// stager runs the commit protocol for one target file.
type stager struct {
	target string
	dir    string // staging directory
	log    *slog.Logger
	// hook, for tests, is called after each step of a commit; an error
	// stops the commit there, as a crash would.
	hook func(step string, epoch uint64) error
}

func newStager(target string, log *slog.Logger) *stager {
	return &stager{target: target, dir: stagingDir(target), log: log}
}

func (s *stager) path(name string) string { return filepath.Join(s.dir, name) }

func (s *stager) step(name string, epoch uint64) error {
	if s.hook == nil {
		return nil
	}
	return s.hook(name, epoch)
}

// loadJournal reads the journal; a missing one is empty.
func (s *stager) loadJournal() (*journal, error) {
	data, err := os.ReadFile(s.path(journalName))
	if errors.Is(err, fs.ErrNotExist) {
		return &journal{Version: journalVersion}, nil
	}
	if err != nil {
		return nil, err
	}
	var j journal
	if err := json.Unmarshal(data, &j); err != nil {
		return nil, fmt.Errorf("%s: %w", s.path(journalName), err)
	}
	if j.Version != journalVersion {
		return nil, fmt.Errorf("%s: unknown version %d", s.path(journalName), j.Version)
	}
	return &j, nil
}

// storeJournal replaces the journal atomically and durably.
func (s *stager) storeJournal(j *journal) error {
	if n := len(j.Commits); n > journalKeep {
		j.Commits = append(j.Commits[:0], j.Commits[n-journalKeep:]...)
	}
	data, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return writeFileAtomic(s.dir, journalName, data)
}

// writeFileAtomic replaces dir/name with data: temp file, fsync, rename,
// fsync dir.
func writeFileAtomic(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// syncDir fsyncs a directory so that names created, renamed or removed in
// it are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// statTarget returns the size of the target and whether it exists; it
// fails when the target is not a regular file.
func (s *stager) statTarget() (size int64, exists bool, err error) {
	st, err := os.Stat(s.target)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if !st.Mode().IsRegular() {
		return 0, false, fmt.Errorf("%s is not a regular file (exactly_once needs one)", s.target)
	}
	return st.Size(), true, nil
}

// commit commits the epochs of h in order (see the package doc).
func (s *stager) commit(h *commitHandle) error {
	if len(h.Epochs) == 0 {
		return nil
	}
	j, err := s.loadJournal()
	if err != nil {
		return err
	}
	for _, e := range h.Epochs {
		if err := s.commitEpoch(j, e); err != nil {
			return fmt.Errorf("epoch %d: %w", e.ID, err)
		}
	}
	return nil
}

func (s *stager) commitEpoch(j *journal, e stagedEpoch) error {
	// 1. Committed already, or aborted?
	if j.committed(e.ID) {
		return s.removeParts(e)
	}
	if _, err := os.Stat(s.path(abortMarker(e.ID))); err == nil {
		s.log.Warn("file output: skipping the commit of an aborted epoch; its records are lost unless the stream restarted from an earlier checkpoint",
			"path", s.target, "epoch", e.ID)
		return nil
	}
	// 2. Record the target's size before the commit.
	last := j.last()
	if last != nil && !last.Done && last.Epoch != e.ID {
		return fmt.Errorf("the commit of epoch %d is unfinished (recovery rolls it back)", last.Epoch)
	}
	if last == nil || last.Done {
		size, _, err := s.statTarget()
		if err != nil {
			return err
		}
		j.Commits = append(j.Commits, journalEntry{Epoch: e.ID, SizeBefore: size})
		if err := s.storeJournal(j); err != nil {
			return err
		}
		last = j.last()
	}
	if err := s.step("intent", e.ID); err != nil {
		return err
	}
	// 3. Append the parts after the recorded size.
	size, err := s.appendParts(e, last.SizeBefore)
	if err != nil {
		return err
	}
	if err := s.step("appended", e.ID); err != nil {
		return err
	}
	// 4. Finished.
	last = j.last() // storeJournal may have moved the entries
	last.Done, last.SizeAfter = true, size
	if err := s.storeJournal(j); err != nil {
		return err
	}
	if err := s.step("done", e.ID); err != nil {
		return err
	}
	// 5. The parts are not needed any more.
	return s.removeParts(e)
}

// appendParts writes e's parts into the target from offset from on,
// fsyncs it, and returns the target's new size.
func (s *stager) appendParts(e stagedEpoch, from int64) (int64, error) {
	_, exists, err := s.statTarget()
	if err != nil {
		return 0, err
	}
	f, err := os.OpenFile(s.target, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(from); err != nil {
		return 0, fmt.Errorf("truncate %s to %d: %w", s.target, from, err)
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return 0, err
	}
	size := from
	for _, name := range e.Parts {
		n, err := copyFile(f, s.path(name))
		size += n
		if err != nil {
			return 0, fmt.Errorf("append %s: %w", name, err)
		}
		if err := s.step("part", e.ID); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("fsync %s: %w", s.target, err)
	}
	if !exists {
		if err := syncDir(filepath.Dir(s.target)); err != nil {
			return 0, err
		}
	}
	return size, f.Close()
}

// copyFile appends the file at src to w (copy_file_range where possible).
func copyFile(w *os.File, src string) (int64, error) {
	r, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("staged part %s is missing: %w", src, err)
	}
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return io.Copy(w, r)
}

// removeParts deletes e's parts that are left.
func (s *stager) removeParts(e stagedEpoch) error {
	for _, name := range e.Parts {
		if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// abort durably marks epoch e aborted, then deletes its parts.
func (s *stager) abort(e stagedEpoch) error {
	if err := writeFileAtomic(s.dir, abortMarker(e.ID), nil); err != nil {
		return err
	}
	return s.removeParts(e)
}

// rollBack undoes the journal's commits of epochs after epoch, and an
// unfinished commit of an epoch that keep does not list: it truncates
// the target to the size before the first of them.
func (s *stager) rollBack(j *journal, epoch uint64, keep map[uint64]bool) (changed bool, err error) {
	cut := len(j.Commits)
	for cut > 0 {
		c := j.Commits[cut-1]
		if c.Epoch > epoch || (!c.Done && !keep[c.Epoch]) {
			cut--
			continue
		}
		break
	}
	if cut == len(j.Commits) {
		return false, nil
	}
	undone := j.Commits[cut:]
	size := undone[0].SizeBefore
	done := 0
	for _, c := range undone {
		if c.Done {
			done++
		}
	}
	if done > 0 {
		s.log.Warn("file output: rolling back commits of epochs after the restored checkpoint (recovery fell back to an older checkpoint); their records will be written again",
			"path", s.target, "restored", epoch, "first", undone[0].Epoch, "last", undone[len(undone)-1].Epoch, "size", size)
	}
	if err := truncateFile(s.target, size); err != nil {
		return false, err
	}
	j.Commits = j.Commits[:cut]
	return true, nil
}

// truncateFile truncates path to size and fsyncs it; a missing file is
// created when size is 0.
func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("truncate %s to %d: %w", path, size, err)
	}
	return nil
}

// clean deletes every file of the staging directory but the journal.
func (s *stager) clean() error {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == journalName {
			continue
		}
		if err := os.RemoveAll(s.path(e.Name())); err != nil {
			return err
		}
	}
	return nil
}

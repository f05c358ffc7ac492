package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/weir-stream/weir/component"
	"github.com/weir-stream/weir/message"
)

// Tests of the exactly-once file output. A "crash" is simulated by
// abandoning an instance (closing it, which commits nothing) and starting a
// new one with Recover, as a restarted process does.

var bg = context.Background()

func newEO(t *testing.T, path string, vals ...any) *fileOutput {
	t.Helper()
	m := map[string]any{"path": path, "exactly_once": true}
	for i := 0; i+1 < len(vals); i += 2 {
		m[vals[i].(string)] = vals[i+1]
	}
	out := newOutput(t, m)
	t.Cleanup(func() { out.Close(bg) })
	return out
}

// start recovers and connects, as the engine does when a stream starts.
func start(t *testing.T, o *fileOutput, id uint64, handle []byte) {
	t.Helper()
	if err := o.Recover(bg, id, handle); err != nil {
		t.Fatal(err)
	}
	if err := o.Connect(bg); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, o *fileOutput, lines ...string) {
	t.Helper()
	if err := o.Write(bg, message.FromStrings(lines...)); err != nil {
		t.Fatal(err)
	}
}

func preCommit(t *testing.T, o *fileOutput, id uint64) []byte {
	t.Helper()
	h, err := o.PreCommit(bg, id)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func commit(t *testing.T, o *fileOutput, id uint64, h []byte) {
	t.Helper()
	if err := o.Commit(bg, id, h); err != nil {
		t.Fatal(err)
	}
}

// content returns the target's content ("" when it does not exist).
func content(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(data)
}

// staged lists the staging directory.
func staged(t *testing.T, p string) []string {
	t.Helper()
	ents, err := os.ReadDir(stagingDir(p))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func expectOnlyJournal(t *testing.T, p string) {
	t.Helper()
	if names := staged(t, p); len(names) > 1 || (len(names) == 1 && names[0] != journalName) {
		t.Fatalf("staging directory holds %v", names)
	}
}

func TestExactlyOnceCommitMakesVisible(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "out.txt")
	o := newEO(t, p)
	if !o.ExactlyOnce() {
		t.Fatal("ExactlyOnce() is false")
	}
	start(t, o, 0, nil)
	write(t, o, "a", "b")
	if got := content(t, p); got != "" {
		t.Fatalf("visible before pre-commit: %q", got)
	}
	h1 := preCommit(t, o, 1)
	write(t, o, "c")
	if got := content(t, p); got != "" {
		t.Fatalf("visible before commit: %q", got)
	}
	commit(t, o, 1, h1)
	if got := content(t, p); got != "a\nb\n" {
		t.Fatalf("after commit 1: %q", got)
	}
	h2 := preCommit(t, o, 2)
	h3 := preCommit(t, o, 3) // an epoch without records
	commit(t, o, 2, h2)
	commit(t, o, 3, h3)
	if got := content(t, p); got != "a\nb\nc\n" {
		t.Fatalf("after commit 2: %q", got)
	}
	expectOnlyJournal(t, p)
	if err := o.Close(bg); err != nil {
		t.Fatal(err)
	}
}

func TestExactlyOnceRecoverAfterPreCommit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	a := newEO(t, p)
	start(t, a, 0, nil)
	write(t, a, "1", "2")
	h1 := preCommit(t, a, 1)
	write(t, a, "3") // epoch 2, never pre-committed
	a.Close(bg)      // crash: checkpoint 1 completed, Commit never ran

	b := newEO(t, p)
	start(t, b, 1, h1)
	if got := content(t, p); got != "1\n2\n" {
		t.Fatalf("after recovery: %q", got)
	}
	expectOnlyJournal(t, p) // epoch 2's open part is gone
	// A second crash and recovery from the same checkpoint changes nothing.
	b.Close(bg)
	c := newEO(t, p)
	start(t, c, 1, h1)
	write(t, c, "3")
	commit(t, c, 2, preCommit(t, c, 2))
	if got := content(t, p); got != "1\n2\n3\n" {
		t.Fatalf("after the next epoch: %q", got)
	}
}

func TestExactlyOnceCommitIsIdempotent(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	o := newEO(t, p)
	start(t, o, 0, nil)
	write(t, o, "x")
	h1 := preCommit(t, o, 1)
	write(t, o, "y")
	h2 := preCommit(t, o, 2)
	commit(t, o, 2, h2) // commits epoch 1 too: the handle is cumulative
	commit(t, o, 1, h1) // late
	commit(t, o, 2, h2) // again
	if got := content(t, p); got != "x\ny\n" {
		t.Fatalf("got %q", got)
	}
	o.Close(bg)
	n := newEO(t, p)
	start(t, n, 2, h2)
	if got := content(t, p); got != "x\ny\n" {
		t.Fatalf("after recovery: %q", got)
	}
}

// TestExactlyOnceCumulativeHandle: checkpoints 1 and 2 complete, the
// process dies before either Commit ran; recovery from 2 commits both, in
// order.
func TestExactlyOnceCumulativeHandle(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	a := newEO(t, p)
	start(t, a, 0, nil)
	write(t, a, "first")
	preCommit(t, a, 1)
	write(t, a, "second")
	h2 := preCommit(t, a, 2)
	a.Close(bg)
	b := newEO(t, p)
	start(t, b, 2, h2)
	if got := content(t, p); got != "first\nsecond\n" {
		t.Fatalf("got %q", got)
	}
}

// TestExactlyOnceCrashMidCommit stops a commit after each of its steps (as
// a crash would), then finishes it either by a retried Commit in the same
// process or by Recover in a new one: the records appear exactly once.
func TestExactlyOnceCrashMidCommit(t *testing.T) {
	crash := errors.New("crash")
	for _, step := range []string{"intent", "part", "appended", "done"} {
		for _, resume := range []string{"retry", "recover"} {
			t.Run(step+"/"+resume, func(t *testing.T) {
				p := filepath.Join(t.TempDir(), "out.txt")
				if err := os.WriteFile(p, []byte("before\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				a := newEO(t, p)
				start(t, a, 0, nil)
				write(t, a, "e1")
				commit(t, a, 1, preCommit(t, a, 1))
				// Epoch 2 in two parts: a reconnect starts a new part.
				write(t, a, "e2a", "e2b")
				if err := a.Connect(bg); err != nil {
					t.Fatal(err)
				}
				write(t, a, "e2c")
				h2 := preCommit(t, a, 2)

				crashed := false
				a.stage.hook = func(s string, epoch uint64) error {
					if s == step && epoch == 2 && !crashed {
						crashed = true
						if s == "intent" {
							// A torn append of an earlier attempt.
							f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
							f.WriteString("e2a\ne2")
							f.Close()
						}
						return crash
					}
					return nil
				}
				if err := a.Commit(bg, 2, h2); !errors.Is(err, crash) {
					t.Fatalf("commit: %v", err)
				}
				if resume == "retry" {
					commit(t, a, 2, h2)
				} else {
					a.Close(bg)
					b := newEO(t, p)
					start(t, b, 2, h2)
				}
				want := "before\ne1\ne2a\ne2b\ne2c\n"
				if got := content(t, p); got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
				if resume == "recover" {
					expectOnlyJournal(t, p)
				}
			})
		}
	}
}

func TestExactlyOnceAbort(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	o := newEO(t, p)
	start(t, o, 0, nil)
	write(t, o, "aborted")
	preCommit(t, o, 1)
	write(t, o, "kept")
	h2 := preCommit(t, o, 2) // lists epoch 1 too
	if err := o.Abort(bg, 1); err != nil {
		t.Fatal(err)
	}
	if err := o.Abort(bg, 7); err != nil { // unknown epoch: nothing to do
		t.Fatal(err)
	}
	if names := staged(t, p); slices.Contains(names, partName(1, 0)) || !slices.Contains(names, abortMarker(1)) {
		t.Fatalf("staging directory after abort: %v", names)
	}
	write(t, o, "three")
	h3 := preCommit(t, o, 3)
	if strings.Contains(string(h3), partName(1, 0)) {
		t.Fatalf("handle 3 lists the aborted epoch: %s", h3)
	}
	commit(t, o, 2, h2) // skips the aborted epoch 1
	commit(t, o, 3, h3)
	if got := content(t, p); got != "kept\nthree\n" {
		t.Fatalf("got %q", got)
	}
	o.Close(bg)
	// Recovery from a handle listing the aborted epoch works too.
	n := newEO(t, p)
	start(t, n, 2, h2)
	if got := content(t, p); got != "kept\n" { // epoch 3 is rolled back: recovery restored checkpoint 2
		t.Fatalf("after recovery: %q", got)
	}
	expectOnlyJournal(t, p)
}

// TestExactlyOnceRecoverRollsBackLaterEpochs: epochs 1..3 were committed,
// but recovery falls back to checkpoint 1 (the newer manifests are
// corrupt): the replay writes epochs 2 and 3 again, so they are removed.
func TestExactlyOnceRecoverRollsBackLaterEpochs(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	a := newEO(t, p)
	start(t, a, 0, nil)
	var h1 []byte
	for id := uint64(1); id <= 3; id++ {
		write(t, a, fmt.Sprint(id))
		h := preCommit(t, a, id)
		if id == 1 {
			h1 = h
		}
		commit(t, a, id, h)
	}
	write(t, a, "4")
	preCommit(t, a, 4) // never completes
	a.Close(bg)
	b := newEO(t, p)
	start(t, b, 1, h1)
	if got := content(t, p); got != "1\n" {
		t.Fatalf("got %q", got)
	}
	expectOnlyJournal(t, p)
	write(t, b, "2'")
	commit(t, b, 2, preCommit(t, b, 2)) // epoch 2 again, not skipped as committed
	if got := content(t, p); got != "1\n2'\n" {
		t.Fatalf("got %q", got)
	}
}

func TestExactlyOnceStartWithoutCheckpoint(t *testing.T) {
	for _, appendMode := range []bool{true, false} {
		p := filepath.Join(t.TempDir(), "out.txt")
		os.WriteFile(p, []byte("old\n"), 0o644)
		a := newEO(t, p, "append", appendMode)
		start(t, a, 0, nil)
		write(t, a, "new")
		h := preCommit(t, a, 1)
		// An unfinished commit, then a restart without a checkpoint (the
		// state was deleted): the torn commit is rolled back.
		a.stage.hook = func(s string, _ uint64) error {
			if s == "part" {
				return errors.New("crash")
			}
			return nil
		}
		a.Commit(bg, 1, h)
		a.Close(bg)
		b := newEO(t, p, "append", appendMode)
		start(t, b, 0, nil)
		want := map[bool]string{true: "old\n", false: ""}[appendMode]
		if got := content(t, p); got != want {
			t.Fatalf("append %v: got %q, want %q", appendMode, got, want)
		}
		write(t, b, "new")
		commit(t, b, 1, preCommit(t, b, 1))
		if got := content(t, p); got != want+"new\n" {
			t.Fatalf("append %v: got %q", appendMode, got)
		}
	}
}

// TestExactlyOnceTornStagedWrite: what a failed Write left in the part
// after its last whole batch is cut off at the pre-commit.
func TestExactlyOnceTornStagedWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	o := newEO(t, p)
	start(t, o, 0, nil)
	write(t, o, "whole")
	f, err := os.OpenFile(filepath.Join(stagingDir(p), "open-0"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("torn")
	f.Close()
	commit(t, o, 1, preCommit(t, o, 1))
	if got := content(t, p); got != "whole\n" {
		t.Fatalf("got %q", got)
	}
}

func TestExactlyOnceErrors(t *testing.T) {
	_, err := newFileOutput(testConfig(fileOutputSpec(), map[string]any{"path": "/dev/stdout", "exactly_once": true}), component.Resources{})
	var fe *component.FieldError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "regular file") {
		t.Fatalf("/dev/stdout: %v", err)
	}
	// The target is a directory.
	p := t.TempDir()
	o := newEO(t, p)
	if err := o.Recover(bg, 0, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory target: %v", err)
	}
	q := filepath.Join(t.TempDir(), "out.txt")
	o = newEO(t, q)
	if err := o.Write(bg, message.FromStrings("a")); !errors.Is(err, component.ErrNotConnected) {
		t.Fatalf("write before connect: %v", err)
	}
	if err := o.Commit(bg, 1, []byte(`{"target":"x","epochs":[{"id":1,"parts":["../../etc/passwd"]}]}`)); err == nil {
		t.Fatal("a handle naming a file outside the staging directory was accepted")
	}
	// The at-least-once output ignores the commit calls.
	al := newOutput(t, map[string]any{"path": q})
	if h, err := al.PreCommit(bg, 1); al.ExactlyOnce() || h != nil || err != nil {
		t.Fatalf("at-least-once PreCommit: %q %v", h, err)
	}
}

// TestExactlyOnceConcurrentCommitAndWrite writes, pre-commits and commits
// the way the engine does (Commit from another goroutine while Write goes
// on), with a reader polling the target: the reader only ever sees whole
// pre-committed epochs, in order, and the end result holds every record once.
func TestExactlyOnceConcurrentCommitAndWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	o := newEO(t, p)
	start(t, o, 0, nil)
	const epochs, perEpoch = 40, 25
	var want strings.Builder
	for i := 0; i < epochs*perEpoch; i++ {
		fmt.Fprintf(&want, "record-%d\n", i)
	}
	var preCommitted atomic.Int64 // bytes of the records pre-committed so far

	type pending struct {
		id uint64
		h  []byte
	}
	handles := make(chan pending, 4)
	var wg sync.WaitGroup
	wg.Go(func() { // the sink goroutine
		defer close(handles)
		size := 0
		for e := 0; e < epochs; e++ {
			for i := 0; i < perEpoch; i++ {
				line := fmt.Sprintf("record-%d", e*perEpoch+i)
				if err := o.Write(bg, message.FromStrings(line)); err != nil {
					t.Error(err)
					return
				}
				size += len(line) + 1
			}
			h, err := o.PreCommit(bg, uint64(e+1))
			if err != nil {
				t.Error(err)
				return
			}
			preCommitted.Store(int64(size))
			handles <- pending{uint64(e + 1), h}
		}
	})
	wg.Go(func() { // the checkpoint coordinator's notifications
		for pc := range handles {
			if err := o.Commit(bg, pc.id, pc.h); err != nil {
				t.Error(err)
			}
		}
	})
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() { // a reader of the target
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			data, err := os.ReadFile(p)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Error(err)
				return
			}
			limit := preCommitted.Load() // after the read: it only grows
			if int64(len(data)) > limit || !strings.HasPrefix(want.String(), string(data)) {
				t.Errorf("reader saw %d bytes, %d pre-committed; prefix ok: %v", len(data), limit, strings.HasPrefix(want.String(), string(data)))
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-readerDone
	if got := content(t, p); got != want.String() {
		t.Fatalf("final content differs: %d bytes, want %d", len(got), want.Len())
	}
	expectOnlyJournal(t, p)
}

func TestExactlyOnceJournalIsBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "out.txt")
	o := newEO(t, p)
	start(t, o, 0, nil)
	var want strings.Builder
	var old []byte
	for id := uint64(1); id <= journalKeep+10; id++ {
		write(t, o, fmt.Sprint(id))
		fmt.Fprintf(&want, "%d\n", id)
		h := preCommit(t, o, id)
		if id == 3 {
			old = h
		}
		commit(t, o, id, h)
	}
	j, err := o.stage.loadJournal()
	if err != nil {
		t.Fatal(err)
	}
	if len(j.Commits) != journalKeep || j.Commits[0].Epoch != 11 {
		t.Fatalf("journal holds %d commits from epoch %d", len(j.Commits), j.Commits[0].Epoch)
	}
	commit(t, o, 3, old) // forgotten by the journal, but older than a commit it has
	if got := content(t, p); got != want.String() {
		t.Fatalf("got %q", got)
	}
}

// TestExactlyOnceHandleOfAnotherPath: the config's path changed between
// the checkpoint and the restart; the restored epoch still goes to the
// file it was written for.
func TestExactlyOnceHandleOfAnotherPath(t *testing.T) {
	dir := t.TempDir()
	oldPath, newPath := filepath.Join(dir, "old.txt"), filepath.Join(dir, "new.txt")
	a := newEO(t, oldPath)
	start(t, a, 0, nil)
	write(t, a, "for old")
	h := preCommit(t, a, 1)
	a.Close(bg)
	b := newEO(t, newPath)
	start(t, b, 1, h)
	write(t, b, "for new")
	commit(t, b, 2, preCommit(t, b, 2))
	if got := content(t, oldPath); got != "for old\n" {
		t.Fatalf("old: %q", got)
	}
	if got := content(t, newPath); got != "for new\n" {
		t.Fatalf("new: %q", got)
	}
}

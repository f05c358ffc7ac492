package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// Local stores objects as files under a directory: name "a/b/c" is the file
// DIR/a/b/c. A Put writes DIR/a/b/.tmp-XXXX, fsyncs it, renames it to c and
// fsyncs DIR/a/b (and every directory it had to create, in its parent), so a
// crash leaves either the old file, the new one, or a stray temp file that
// List ignores and CleanTemp removes. Delete removes the directories it
// leaves empty (except DIR).
type Local struct {
	dir  string // absolute, cleaned
	dirs *dirSyncer
}

var _ Storage = (*Local)(nil)

// NewLocal returns a Local rooted at dir, creating dir (and its parents) if
// needed. A relative dir is made absolute against the working directory now.
// It does not remove temp files left by a crash: see CleanTemp.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, fmt.Errorf("storage: local: empty directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: local %s: %w", dir, err)
	}
	l := &Local{dir: abs, dirs: newDirSyncer()}
	if err := mkdirAllSynced(abs); err != nil {
		return nil, l.fail("open", "", err)
	}
	return l, nil
}

// Dir returns the absolute root directory.
func (l *Local) Dir() string { return l.dir }

// String returns "file:///abs/dir".
func (l *Local) String() string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(l.dir)}).String()
}

// Close does nothing: a Local holds no resources between calls.
func (l *Local) Close() error { return nil }

func (l *Local) path(name string) string { return filepath.Join(l.dir, filepath.FromSlash(name)) }

func (l *Local) location(name string) string {
	if name == "" {
		return l.String()
	}
	return strings.TrimSuffix(l.String(), "/") + "/" + name
}

// fail wraps err as an *Error, deciding whether it is transient.
func (l *Local) fail(op, name string, err error) error {
	return &Error{Op: op, Location: l.location(name), Transient: localTransient(err), Err: err}
}

// localTransient: a local operation may succeed later when the system was
// short of something (space, quota, descriptors, time) rather than refusing.
func localTransient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EAGAIN, syscall.EINTR,
		syscall.EBUSY, syscall.EMFILE, syscall.ENFILE, syscall.ETIMEDOUT} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// Put writes the object through a temp file in its directory; see Local.
func (l *Local) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := ValidateName(name); err != nil {
		return l.fail("put", name, err)
	}
	if err := ctx.Err(); err != nil {
		return l.fail("put", name, err)
	}
	if err := l.put(ctx, name, r, size); err != nil {
		return l.fail("put", name, err)
	}
	return nil
}

func (l *Local) put(ctx context.Context, name string, r io.Reader, size int64) error {
	target := l.path(name)
	dir := filepath.Dir(target)
	var tmp *os.File
	// A concurrent Delete may remove the (then empty) directory between
	// creating it and creating the temp file in it: create it again.
	for attempt := 0; ; attempt++ {
		err := mkdirAllSynced(dir)
		if err == nil {
			tmp, err = os.CreateTemp(dir, tempPrefix+"*")
		}
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || attempt >= 10 {
			return err
		}
	}
	ok := false
	defer func() {
		if !ok {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err := copyExact(tmp, &ctxReader{ctx: ctx, r: r}, size); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	ok = true
	return l.dirs.syncAfter(dir)
}

// Get opens the file; see Storage.Get.
func (l *Local) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ValidateName(name); err != nil {
		return nil, l.fail("get", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, l.fail("get", name, err)
	}
	f, err := os.Open(l.path(name))
	if err != nil {
		return nil, l.fail("get", name, notFound(err))
	}
	if fi, err := f.Stat(); err != nil || fi.IsDir() {
		_ = f.Close()
		if err == nil {
			err = ErrNotFound // a directory of other names is no object
		}
		return nil, l.fail("get", name, err)
	}
	return f, nil
}

// Stat returns the file's size and modification time.
func (l *Local) Stat(ctx context.Context, name string) (ObjectInfo, error) {
	if err := ValidateName(name); err != nil {
		return ObjectInfo{}, l.fail("stat", name, err)
	}
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, l.fail("stat", name, err)
	}
	fi, err := os.Stat(l.path(name))
	if err != nil {
		return ObjectInfo{}, l.fail("stat", name, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return ObjectInfo{}, l.fail("stat", name, ErrNotFound)
	}
	return ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// List walks the directory that holds every name with the prefix, skipping
// temp files.
func (l *Local) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, l.fail("list", prefix, err)
	}
	// Every match lives under the directory named by prefix up to its last
	// slash.
	base := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		base = prefix[:i]
	}
	root := l.dir
	if base != "" {
		root = l.path(base)
	}
	var out []ObjectInfo
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// Gone since listed (a concurrent Delete), or the prefix runs
			// through a file: no object there.
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, err := filepath.Rel(l.dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			// Prune directories that cannot hold a match.
			if p != root && !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(name, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		out = append(out, ObjectInfo{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, l.fail("list", prefix, err)
	}
	// WalkDir visits in lexical order of each directory's entries, which is
	// not the order of full names ("a/b" < "a-c" but "a" < "a-c" ...).
	slices.SortFunc(out, func(a, b ObjectInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Delete removes the file and then every directory it leaves empty, up to
// (not including) the root.
func (l *Local) Delete(ctx context.Context, name string) error {
	if err := ValidateName(name); err != nil {
		return l.fail("delete", name, err)
	}
	if err := ctx.Err(); err != nil {
		return l.fail("delete", name, err)
	}
	p := l.path(name)
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return nil // a directory of other names; no object of this name
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return l.fail("delete", name, err)
	}
	dir := filepath.Dir(p)
	for dir != l.dir && strings.HasPrefix(dir, l.dir) {
		if os.Remove(dir) != nil {
			break // not empty (or gone): stop climbing
		}
		dir = filepath.Dir(dir)
	}
	if err := syncDir(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return l.fail("delete", name, err)
	}
	return nil
}

// CleanTemp removes temp files (".tmp-*") left under the root by Puts that
// never finished — a crash or a kill — and last modified more than olderThan
// ago, and returns how many it removed. A Put in flight in another process
// keeps its temp file fresh, so olderThan should exceed the longest Put; 0
// removes every temp file, which is safe only when nothing else writes to
// the root (e.g. at the start of the single process that owns it).
func (l *Local) CleanTemp(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if olderThan > 0 && fi.ModTime().After(cutoff) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed++
		return nil
	})
	if err != nil {
		return removed, l.fail("clean temp files", "", err)
	}
	return removed, nil
}

// notFound maps "no such file" (and "a path element is a file") to
// ErrNotFound, keeping the OS error's text.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("%w (%v)", ErrNotFound, err)
	}
	return err
}

// mkdirAllSynced creates dir and its missing parents, fsyncing the parent of
// each directory it creates so that the new entries survive a crash.
func mkdirAllSynced(dir string) error {
	fi, err := os.Stat(dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is a file, not a directory (an object name cannot also be a directory of other names)", dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAllSynced(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// syncDir fsyncs a directory, making renames and creations in it durable.
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

// copyExact copies r to w. With size >= 0, r must hold exactly size bytes.
func copyExact(w io.Writer, r io.Reader, size int64) (int64, error) {
	if size < 0 {
		return io.Copy(w, r)
	}
	n, err := io.CopyN(w, r, size)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return n, fmt.Errorf("reader ended after %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		}
		return n, err
	}
	var one [1]byte
	if m, err := io.ReadFull(r, one[:]); m > 0 {
		return n, fmt.Errorf("reader holds more than the %d bytes announced", size)
	} else if err != nil && !errors.Is(err, io.EOF) {
		return n, err
	}
	return n, nil
}

// ctxReader fails reads once ctx ends, so a long copy stops promptly.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

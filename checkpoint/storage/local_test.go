package storage_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weir-stream/weir/checkpoint/storage"
	"github.com/weir-stream/weir/checkpoint/storage/storagetest"
)

func newLocal(t *testing.T) *storage.Local {
	t.Helper()
	l, err := storage.NewLocal(filepath.Join(t.TempDir(), "root"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		l := newLocal(t)
		// Whatever a test did, it leaves no temp file behind.
		t.Cleanup(func() {
			if temps := tempFiles(t, l.Dir()); len(temps) > 0 {
				t.Errorf("temp files left: %q", temps)
			}
		})
		return l
	})
}

// tempFiles lists the temp files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLocalLayoutAndString(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	if got, want := l.String(), "file://"+l.Dir(); got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	if err := l.Put(ctx, "p/manifests/chk-1.json", strings.NewReader("{}"), 2); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(l.Dir(), "p", "manifests", "chk-1.json"))
	if err != nil || string(b) != "{}" {
		t.Fatalf("file on disk = %q, %v", b, err)
	}
	_, err = l.Get(ctx, "p/missing")
	if want := "storage: get file://" + l.Dir() + "/p/missing: object not found"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Get error = %v, want it to start with %q", err, want)
	}
}

func TestLocalRelativeDir(t *testing.T) {
	t.Chdir(t.TempDir())
	l, err := storage.NewLocal("weir-state/sub")
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(l.Dir()) {
		t.Fatalf("Dir() = %q, want an absolute path", l.Dir())
	}
	if fi, err := os.Stat("weir-state/sub"); err != nil || !fi.IsDir() {
		t.Fatalf("NewLocal did not create the directory: %v", err)
	}
	if _, err := storage.NewLocal(""); err == nil {
		t.Fatal("NewLocal(\"\") succeeded")
	}
}

func TestLocalTempFilesHiddenAndCleaned(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	if err := l.Put(ctx, "a/b", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	// Temp files as a crash during Put leaves them: one old, one fresh.
	old := filepath.Join(l.Dir(), "a", ".tmp-123456")
	fresh := filepath.Join(l.Dir(), ".tmp-654321")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	infos, err := l.List(ctx, "")
	if err != nil || len(infos) != 1 || infos[0].Name != "a/b" {
		t.Fatalf("List = %+v, %v; want only a/b", infos, err)
	}
	n, err := l.CleanTemp(ctx, time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("CleanTemp(1h) = %d, %v; want 1 removed", n, err)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("old temp file still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temp file removed: %v", err)
	}
	if n, err := l.CleanTemp(ctx, 0); err != nil || n != 1 {
		t.Fatalf("CleanTemp(0) = %d, %v; want 1 removed", n, err)
	}
	if temps := tempFiles(t, l.Dir()); len(temps) != 0 {
		t.Fatalf("temp files left: %q", temps)
	}
	if got, err := l.Get(ctx, "a/b"); err != nil {
		t.Fatalf("object lost by CleanTemp: %v", err)
	} else {
		_ = got.Close()
	}
}

func TestLocalDeletePrunesEmptyDirs(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	for _, n := range []string{"p/private/chk-1/a", "p/private/chk-1/sub/b", "p/private/chk-2/a"} {
		if err := l.Put(ctx, n, strings.NewReader("x"), 1); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"p/private/chk-1/a", "p/private/chk-1/sub/b"} {
		if err := l.Delete(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), "p", "private", "chk-1")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("empty checkpoint dir not removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(l.Dir(), "p", "private", "chk-2", "a")); err != nil {
		t.Fatalf("other object gone: %v", err)
	}
	if err := l.Delete(ctx, "p/private/chk-2/a"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(l.Dir())
	if err != nil || len(entries) != 0 {
		t.Fatalf("root after deleting everything = %v, %v; want empty (and still there)", entries, err)
	}
}

func TestLocalNameIsFileAndDir(t *testing.T) {
	ctx := context.Background()
	l := newLocal(t)
	if err := l.Put(ctx, "a", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	err := l.Put(ctx, "a/b", strings.NewReader("y"), 1)
	if err == nil || storage.IsTransient(err) || !strings.Contains(err.Error(), "cannot also be a directory") {
		t.Fatalf("Put(a/b) with a file a = %v, want a permanent error that explains", err)
	}
}

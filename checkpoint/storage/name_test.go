package storage

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateName(t *testing.T) {
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"pipeline/manifests/chk-00000000000000000042.json", true},
		{"shared/0123abcd.sst", true},
		{".hidden/x", true},
		{"a/...", true},
		{"..a", true},
		{"x.tmp-y", true},
		{strings.Repeat("s", MaxSegmentLen), true},
		{"", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{".", false},
		{"a/./b", false},
		{"..", false},
		{"../a", false},
		{"a/../b", false},
		{".tmp-1", false},
		{"a/.tmp-", false},
		{"a\\b", false},
		{"a\tb", false},
		{"a\x7f", false},
		{"\xc3", false},
		{strings.Repeat("s", MaxSegmentLen+1), false},
		{strings.Repeat("abcd/", MaxNameLen/5) + "xyz", false},
	} {
		err := ValidateName(c.name)
		if (err == nil) != c.ok {
			t.Errorf("ValidateName(%q) = %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Errorf("ValidateName(%q) = %v, does not wrap ErrInvalidName", c.name, err)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, c := range []struct {
		prefix string
		ok     bool
	}{
		{"", true},
		{"a", true},
		{"a/", true},
		{"a/b/chk-", true},
		{".", false},
		{"a/.", false},
		{".t", true},
		{".tmp", true},
		{"a/.tmp", true},
		{".tmp-", false},
		{"a/.tmp-x", false},
		{"/", false},
		{"/a", false},
		{"a//", false},
		{"..", false},
		{"../", false},
		{"a/../", false},
		{"a/..", false},
		{"./a", false},
	} {
		err := validatePrefix(c.prefix)
		if (err == nil) != c.ok {
			t.Errorf("validatePrefix(%q) = %v, want ok=%v", c.prefix, err, c.ok)
		}
	}
}

func TestErrorClassification(t *testing.T) {
	cause := errors.New("disk on fire")
	e := &Error{Op: "put", Location: "file:///x/y", Transient: true, Err: cause}
	if !IsTransient(e) || !errors.Is(e, cause) || IsNotFound(e) {
		t.Fatalf("transient error: IsTransient=%v Is(cause)=%v IsNotFound=%v", IsTransient(e), errors.Is(e, cause), IsNotFound(e))
	}
	if got, want := e.Error(), "storage: put file:///x/y: disk on fire"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	p := &Error{Op: "get", Location: "s3://b/k", Err: ErrNotFound}
	if IsTransient(p) || !IsNotFound(p) {
		t.Fatalf("not found error: IsTransient=%v IsNotFound=%v", IsTransient(p), IsNotFound(p))
	}
}

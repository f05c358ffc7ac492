package storage

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits on names. S3 keys are at most 1024 bytes including the store's
// prefix, and most filesystems allow 255 bytes per path element.
const (
	MaxNameLen    = 512
	MaxSegmentLen = 255
)

// tempPrefix starts the name of a Local temp file. No name segment may start
// with it, so temp files never collide with objects and List can skip them.
const tempPrefix = ".tmp-"

// ValidateName checks that name is a portable object name: a relative path
// of one or more segments separated by single slashes, each segment
// non-empty, not "." or "..", not starting with ".tmp-" (reserved for temp
// files), without backslashes or control characters, valid UTF-8, at most
// MaxSegmentLen bytes per segment and MaxNameLen bytes in all. A name must
// not also be a directory of another name ("a" and "a/b"): a local directory
// cannot hold both. The error wraps ErrInvalidName.
func ValidateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", ErrInvalidName)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("%w: %q is %d bytes long, more than %d", ErrInvalidName, name, len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidName, name)
	}
	if strings.HasPrefix(name, "/") {
		return fmt.Errorf("%w: %q is absolute; names are relative to the storage root", ErrInvalidName, name)
	}
	for seg := range strings.SplitSeq(name, "/") {
		if err := validateSegment(name, seg); err != nil {
			return err
		}
	}
	return nil
}

// validatePrefix checks a List prefix: "" (everything), or a name prefix
// whose segments follow ValidateName's rules; it may end in a slash or in a
// partial segment ("manifests/chk-"), which must not be "." either (S3
// servers such as MinIO reject it).
func validatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxNameLen {
		return fmt.Errorf("%w: prefix %q is %d bytes long, more than %d", ErrInvalidName, prefix, len(prefix), MaxNameLen)
	}
	if !utf8.ValidString(prefix) {
		return fmt.Errorf("%w: prefix %q is not valid UTF-8", ErrInvalidName, prefix)
	}
	if strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("%w: prefix %q is absolute; names are relative to the storage root", ErrInvalidName, prefix)
	}
	for seg := range strings.SplitSeq(strings.TrimSuffix(prefix, "/"), "/") {
		if err := validateSegment(prefix, seg); err != nil {
			return err
		}
	}
	return nil
}

func validateSegment(name, seg string) error {
	switch {
	case seg == "":
		return fmt.Errorf("%w: %q has an empty path segment (leading, trailing or double slash)", ErrInvalidName, name)
	case seg == "." || seg == "..":
		return fmt.Errorf("%w: %q has a %q segment", ErrInvalidName, name, seg)
	case strings.HasPrefix(seg, tempPrefix):
		return fmt.Errorf("%w: %q has a segment starting with %q, which is reserved for temp files", ErrInvalidName, name, tempPrefix)
	case len(seg) > MaxSegmentLen:
		return fmt.Errorf("%w: %q has a segment of %d bytes, more than %d", ErrInvalidName, name, len(seg), MaxSegmentLen)
	}
	return checkChars(name, seg)
}

func checkChars(name, seg string) error {
	for _, c := range seg {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return fmt.Errorf("%w: %q contains %q (control characters and backslashes are not allowed)", ErrInvalidName, name, c)
		}
	}
	return nil
}

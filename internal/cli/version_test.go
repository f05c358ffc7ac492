package cli

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestVersionString(t *testing.T) {
	info := &debug.BuildInfo{
		Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	if got, want := versionString(info), "weir v1.2.3 (0123456789ab-dirty, "+runtime.Version()+")"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := versionString(&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}), "weir devel (unknown commit, "+runtime.Version()+")"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}

	Version, Commit = "v9.9.9", "feedbee"
	defer func() { Version, Commit = "", "" }()
	if got, want := versionString(info), "weir v9.9.9 (feedbee, "+runtime.Version()+")"; got != want {
		t.Errorf("ldflags: got %q, want %q", got, want)
	}

	code, out, _ := run("version")
	if code != ExitOK || !regexp.MustCompile(`^weir v9\.9\.9 \(feedbee, go[^)]*\)\n$`).MatchString(out) {
		t.Errorf("weir version: exit %d, %q", code, out)
	}
}

package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version and Commit override what the build info says, e.g.
//
//	go build -ldflags "-X github.com/weir-stream/weir/internal/cli.Version=v1.2.0 -X github.com/weir-stream/weir/internal/cli.Commit=abc1234" ./cmd/weir
var (
	Version string
	Commit  string
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print weir's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			info, _ := debug.ReadBuildInfo()
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionString(info))
			return err
		},
	}
}

// versionString is "weir VERSION (COMMIT, GOVERSION)": the package vars
// when set by -ldflags, else the module version and VCS revision that go
// build stamped into the binary.
func versionString(info *debug.BuildInfo) string {
	version, commit, dirty := Version, Commit, false
	if info != nil {
		if version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			version = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				if commit == "" {
					commit = s.Value
					if len(commit) > 12 {
						commit = commit[:12]
					}
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && Commit == "" && commit != "" {
			commit += "-dirty"
		}
	}
	if version == "" {
		version = "devel"
	}
	if commit == "" {
		commit = "unknown commit"
	}
	return fmt.Sprintf("weir %s (%s, %s)", version, commit, runtime.Version())
}

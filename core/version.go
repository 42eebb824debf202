package core

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version, Commit and Date describe the build. Release builds set them with
// -ldflags "-X github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core.Version=1.2.3 ...";
// other builds fall back to what the Go toolchain recorded.
var (
	Version = ""
	Commit  = ""
	Date    = ""
)

// BuildInfo returns one line with the version, commit, build date and Go version.
func BuildInfo() string {
	commit, date := Commit, Date
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			switch {
			case s.Key == "vcs.revision" && commit == "":
				commit = s.Value
			case s.Key == "vcs.time" && date == "":
				date = s.Value
			}
		}
	}
	return fmt.Sprintf("chatgpt_reverse_proxy %s (commit %s, built %s, %s %s/%s)",
		VersionString(), orUnknown(commit, "unknown"), orUnknown(date, "unknown"), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// VersionString returns the bare version, "dev" for an unversioned build.
func VersionString() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

func orUnknown(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// Package buildinfo completes github.com/prometheus/common/version, which `btda --version`,
// the start log line and btda_build_info print. scripts/build sets every field through
// -ldflags -X; a plain `go build`, `go install` or `go run` sets none, and this package then
// fills the empty ones from the VERSION file and from what the Go toolchain embeds in the
// binary (the VCS revision, commit time and modified flag of a build from a git checkout,
// the module version of `go install …@version`). Import it for its side effect.
package buildinfo

import (
	"regexp"
	"runtime/debug"
	"time"

	"github.com/prometheus/common/version"

	"github.com/btda/btda"
)

func init() {
	bi, _ := debug.ReadBuildInfo()
	got := complete(info{
		Version:   version.Version,
		Revision:  version.Revision,
		Branch:    version.Branch,
		BuildUser: version.BuildUser,
		BuildDate: version.BuildDate,
	}, bi, btda.Version())
	version.Version, version.Revision, version.Branch = got.Version, got.Revision, got.Branch
	version.BuildUser, version.BuildDate = got.BuildUser, got.BuildDate
}

// info is the part of prometheus/common/version that the linker may set.
type info struct {
	Version, Revision, Branch, BuildUser, BuildDate string
}

// dateLayout is the build date format of promu and scripts/build.
const dateLayout = "20060102-15:04:05"

// pseudoRevRE matches the commit of a module pseudo-version (v0.0.0-20260102150405-0123456789ab).
var pseudoRevRE = regexp.MustCompile(`[.-](\d{14})-([0-9a-f]{12})(\+incompatible)?$`)

// complete returns have with its empty fields filled from bi (nil when the binary carries
// no build information) and release (the VERSION file). Fields set by the linker are kept.
// Branch and BuildUser are not in the build information and stay as they are.
func complete(have info, bi *debug.BuildInfo, release string) info {
	if have.Version == "" {
		have.Version = release
	}
	if bi == nil {
		return have
	}
	settings := make(map[string]string, len(bi.Settings))
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if have.Revision == "" {
		switch rev := settings["vcs.revision"]; {
		case rev != "":
			if settings["vcs.modified"] == "true" {
				rev += "-dirty" // as git describe --dirty and scripts/build say it
			}
			have.Revision = rev
		case pseudoRevRE.MatchString(bi.Main.Version):
			// go install …@<commit or branch>: the pseudo-version names the commit.
			have.Revision = pseudoRevRE.FindStringSubmatch(bi.Main.Version)[2]
		case bi.Main.Version != "" && bi.Main.Version != "(devel)":
			// go install …@v1.2.3: the tag names the commit.
			have.Revision = bi.Main.Version
		}
	}
	if have.BuildDate == "" {
		// The commit time: the build's own time is not recorded, and this one at least
		// dates the source.
		if t, err := time.Parse(time.RFC3339, settings["vcs.time"]); err == nil {
			have.BuildDate = t.UTC().Format(dateLayout)
		} else if m := pseudoRevRE.FindStringSubmatch(bi.Main.Version); m != nil {
			if t, err := time.Parse("20060102150405", m[1]); err == nil {
				have.BuildDate = t.Format(dateLayout)
			}
		}
	}
	return have
}

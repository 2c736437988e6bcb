package buildinfo

import (
	"runtime/debug"
	"testing"

	"github.com/prometheus/common/version"

	"github.com/btda/btda"
)

func TestComplete(t *testing.T) {
	const rev = "0123456789abcdef0123456789abcdef01234567"
	vcs := func(modified string) *debug.BuildInfo {
		return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: rev},
			{Key: "vcs.time", Value: "2026-11-24T02:20:28Z"},
			{Key: "vcs.modified", Value: modified},
		}}
	}
	module := func(v string) *debug.BuildInfo { return &debug.BuildInfo{Main: debug.Module{Version: v}} }
	linked := info{Version: "9.9.9", Revision: "abc", Branch: "main", BuildUser: "u@h", BuildDate: "20260101-00:00:00"}
	for _, tt := range []struct {
		name string
		have info
		bi   *debug.BuildInfo
		want info
	}{
		{"scripts/build: linker values kept", linked, vcs("true"), linked},
		{"go build from a clean checkout", info{}, vcs("false"),
			info{Version: "0.1.0", Revision: rev, BuildDate: "20261124-02:20:28"}},
		{"go build from a modified checkout", info{}, vcs("true"),
			info{Version: "0.1.0", Revision: rev + "-dirty", BuildDate: "20261124-02:20:28"}},
		{"go install @commit (pseudo-version)", info{}, module("v0.0.0-20261124022028-0123456789ab"),
			info{Version: "0.1.0", Revision: "0123456789ab", BuildDate: "20261124-02:20:28"}},
		{"go install @branch after a tag (pseudo-version)", info{}, module("v0.1.1-0.20261124022028-0123456789ab+incompatible"),
			info{Version: "0.1.0", Revision: "0123456789ab", BuildDate: "20261124-02:20:28"}},
		{"go install @tag", info{}, module("v0.1.0"), info{Version: "0.1.0", Revision: "v0.1.0"}},
		{"no VCS information (go run, go test)", info{}, module("(devel)"), info{Version: "0.1.0"}},
		{"no build information at all", info{}, nil, info{Version: "0.1.0"}},
		{"bad vcs.time ignored", info{}, &debug.BuildInfo{Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: "yesterday"}}},
			info{Version: "0.1.0", Revision: rev}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := complete(tt.have, tt.bi, "0.1.0"); got != tt.want {
				t.Errorf("complete = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestInit: importing the package fills at least the version from VERSION (a test binary
// has no VCS stamp, so the revision is checked on real builds in cmd/btda's TestVersion).
func TestInit(t *testing.T) {
	if version.Version != btda.Version() || version.Version == "" {
		t.Errorf("version.Version = %q, want the VERSION file's %q", version.Version, btda.Version())
	}
}

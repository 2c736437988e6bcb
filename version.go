// Package btda holds btda's release version. The VERSION file next to this one is the only
// place it is written: scripts/build passes it to the linker, and a plain `go build` or
// `go install` reads it through this package (internal/buildinfo).
package btda

import (
	_ "embed"
	"strings"
)

//go:embed VERSION
var version string

// Version is the release version in the VERSION file (e.g. "0.1.0").
func Version() string { return strings.TrimSpace(version) }

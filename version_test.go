package btda

import (
	"regexp"
	"testing"
)

// TestVersionFile: VERSION holds one semantic version (tags are v + it), nothing else.
func TestVersionFile(t *testing.T) {
	if v := Version(); !regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(v) {
		t.Errorf("VERSION = %q, want MAJOR.MINOR.PATCH[-PRERELEASE]", v)
	}
}

// Package version holds the build's version, stamped at link time:
//
//	go build -ldflags "-X github.com/kubectl-dev/kubectl-dev/pkg/version.Version=v0.1.0 \
//	  -X github.com/kubectl-dev/kubectl-dev/pkg/version.Commit=$(git rev-parse HEAD) \
//	  -X github.com/kubectl-dev/kubectl-dev/pkg/version.Date=$(date -u +%FT%TZ)"
//
// The plugins and the devagent share it, so that a plugin can tell whether the
// agent it talks to is of its own version.
package version

import "fmt"

var (
	// Version is the semantic version of the release, "v0.0.0-dev" in a plain build.
	Version = "v0.0.0-dev"
	// Commit is the git commit the binary was built from.
	Commit = "unknown"
	// Date is the build date in RFC 3339.
	Date = "unknown"
)

// String returns the version line printed by --version.
func String() string {
	return fmt.Sprintf("%s (commit %s, built %s)", Version, Commit, Date)
}

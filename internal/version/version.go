// Package version holds the build's version, set at link time with
// -ldflags "-X github.com/zkgate/zkgate/internal/version.Version=v1.2.3".
package version

import "runtime"

// Version is the zkgate release; "dev" for builds without -ldflags.
var Version = "dev"

// String returns the version line printed by `zkgate version`.
func String() string {
	return "zkgate " + Version + " (" + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
}

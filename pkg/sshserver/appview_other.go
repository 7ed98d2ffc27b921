//go:build !linux

package sshserver

// AppLauncher needs Linux (/proc, chroot, openat2); elsewhere it is the
// agent's own shell, so that the packages that import this one build.
type AppLauncher struct {
	LocalLauncher
}

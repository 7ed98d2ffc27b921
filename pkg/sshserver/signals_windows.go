//go:build windows

package sshserver

import "syscall"

// signals are the RFC 4254 signal names a client may send (the agent runs
// on Linux; this keeps the package building everywhere).
var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "TERM": syscall.SIGTERM,
}

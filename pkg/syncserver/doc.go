// Package syncserver is the agent side of devsync: it serves the sessions
// that kubectl devsync opens on the agent's SSH "devsync" subsystem and
// applies their batches inside the app's root filesystem (through
// pkg/rootfs): listings, content hashes, writes on parallel writers, new
// directories staged and published whole, lanes (extra channels carrying
// file content), and actions on the app (restart, signal, exec).
//
// Only the agent (pkg/agent) uses it. It speaks pkg/syncproto and never
// imports the laptop side (pkg/filesync); the round-trip tests in its
// external test package do, to run the real client against the real
// server. It is Linux only (openat2); this file builds everywhere so that
// the package exists on every platform.
//
// See docs/devsync.md for the data flow and the wire format.
package syncserver

// Package filesync is the engine of "kubectl devsync": a versioned,
// length-framed protocol (protocol.go), the agent side that applies batches
// inside the app's root filesystem (Serve, through pkg/rootfs), the client
// side (Client), the initial-sync planner (Diff), ignore rules (Ignorer),
// a debounced recursive watcher (Watcher) and the orchestration of the two
// (Syncer). It has no command-line code: pkg/cmd/devsync wires it to cobra
// flags and to the SSH channel of the agent.
//
// See docs/devsync.md for the data flow and the wire format.
package filesync

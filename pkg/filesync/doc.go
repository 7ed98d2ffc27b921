// Package filesync is the laptop side of "kubectl devsync": it scans the
// local tree (ScanLocal) under ignore rules (Ignorer), plans what the
// destination lacks (Diff), watches for changes (Watcher), talks to the
// agent over a devsync session (Client, with its lanes) and orchestrates
// the whole (Syncer, which mirrors into any Remote; *Client is the real
// one). It also has the progress bar and the summaries the command prints.
//
// Only kubectl devsync (pkg/cmd/devsync) uses it. It speaks pkg/syncproto
// and never imports the agent side (pkg/syncserver, pkg/rootfs); it builds
// and is tested on every OS the plugin runs on, without an agent. It has no
// command-line code: pkg/cmd/devsync wires it to flags and to the SSH
// channel of the agent.
//
// See docs/devsync.md for the data flow and the wire format.
package filesync

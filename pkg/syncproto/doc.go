// Package syncproto is the wire protocol of devsync, shared by both ends of
// a session: kubectl devsync on the laptop (pkg/filesync) and the agent in
// the pod (pkg/syncserver). It holds the frame reader and writer, the
// message types and their strict binary encoding, the protocol version and
// limits, path validation, the zstd compressor and decompressor of file
// chunks, and the helpers that describe a file as an Entry.
//
// It imports neither side: the laptop and the agent depend on it, never on
// each other. See docs/devsync.md for the data flow and the wire format.
package syncproto

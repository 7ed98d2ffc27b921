package syncproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// Wire format
//
// Every message is one frame:
//
//	uint32 big-endian length n (of what follows: 1 + len(payload)), 1 <= n <= MaxFrameSize
//	byte   message type
//	bytes  payload (n-1 bytes)
//
// Payloads of control messages are a compact binary encoding: unsigned and
// signed varints, and strings as a uvarint length followed by raw bytes (so
// file names that are not UTF-8 survive). Data frames carry a raw chunk of a
// file, or the chunk compressed with zstd when both sides agreed on it.
// Decoders are strict: a payload with trailing bytes, a string longer than
// its limit or a varint overflow is refused.

const (
	// ProtocolVersion is the version this package speaks (min = max = 1).
	ProtocolVersion = 1
	// MinProtocolVersion is the oldest version this package accepts.
	MinProtocolVersion = 1
	// MaxFrameSize bounds a frame (type byte + payload).
	MaxFrameSize = 1 << 20
	// ChunkSize is the amount of file content sent per data frame, before
	// compression.
	ChunkSize = 256 << 10
	// MaxPathLen bounds a path (PATH_MAX).
	MaxPathLen = 4096
	// maxNameLen bounds one path component (NAME_MAX).
	maxNameLen = 255
	// MaxHashPaths bounds the paths of one hash request.
	MaxHashPaths = 1024

	// FeatureZstd: data chunks may be zstd-compressed.
	FeatureZstd = "zstd"
	// FeatureLanes: file content may travel on lanes, extra channels of
	// the same SSH connection that the session's LaneToken attaches (see
	// pkg/syncserver/lanes.go).
	FeatureLanes = "lanes"
	// MaxLanes bounds the lanes of one session.
	MaxLanes = 8
	// FeatureZstdStream: the client may turn what it sends on the session's
	// channel into one zstd stream (a Stream message, then compressed
	// frames to the end; see StreamWindow).
	FeatureZstdStream = "zstd-stream"
	// FeatureProgress: while a batch is open the agent reports the file
	// content it has received so far (Received), so that the client's
	// progress follows the link rather than what SSH's windows accept.
	FeatureProgress = "progress"
	// FeatureCaches: before a batch's Result the agent may send a Caches
	// message (the stale caches it removed, the racy replacements it could
	// not cover).
	FeatureCaches = "caches"
	// MaxCachesReport bounds each list of a Caches message; more are
	// counted in Omitted.
	MaxCachesReport = 64
)

// MsgType is the type byte of a frame.
type MsgType byte

// Message types. The client (kubectl devsync) sends Hello, Stream, List, Hash,
// Begin, Op, LanedOp, Data, DataZstd, FileEnd, Commit and Action, and on a
// lane LaneHello, LaneData and LaneDataZstd; the agent sends Welcome,
// LaneToken, Error, ListEntries, ListEnd, HashResult, HashEnd, Received,
// Caches, Result and ActionResult, and on a lane LaneWelcome.
const (
	MsgHello        MsgType = 1
	MsgWelcome      MsgType = 2
	MsgError        MsgType = 3
	MsgLaneToken    MsgType = 4
	MsgLaneHello    MsgType = 5
	MsgLaneWelcome  MsgType = 6
	MsgStream       MsgType = 7
	MsgList         MsgType = 10
	MsgListEntries  MsgType = 11
	MsgListEnd      MsgType = 12
	MsgHash         MsgType = 13
	MsgHashResult   MsgType = 14
	MsgHashEnd      MsgType = 15
	MsgBegin        MsgType = 20
	MsgOp           MsgType = 21
	MsgData         MsgType = 22
	MsgDataZstd     MsgType = 23
	MsgFileEnd      MsgType = 24
	MsgCommit       MsgType = 25
	MsgResult       MsgType = 26
	MsgLanedOp      MsgType = 27
	MsgReceived     MsgType = 28
	MsgCaches       MsgType = 29
	MsgAction       MsgType = 30
	MsgActionResult MsgType = 31
	MsgLaneData     MsgType = 32
	MsgLaneDataZstd MsgType = 33
)

var msgNames = map[MsgType]string{
	MsgHello: "hello", MsgWelcome: "welcome", MsgError: "error", MsgList: "list",
	MsgListEntries: "list-entries", MsgListEnd: "list-end", MsgHash: "hash",
	MsgHashResult: "hash-result", MsgHashEnd: "hash-end", MsgBegin: "begin", MsgOp: "op",
	MsgData: "data", MsgDataZstd: "data-zstd", MsgFileEnd: "file-end", MsgCommit: "commit",
	MsgResult: "result", MsgAction: "action", MsgActionResult: "action-result",
	MsgLaneToken: "lane-token", MsgLaneHello: "lane-hello", MsgLaneWelcome: "lane-welcome",
	MsgLanedOp: "laned-op", MsgLaneData: "lane-data", MsgLaneDataZstd: "lane-data-zstd",
	MsgStream: "stream", MsgReceived: "received", MsgCaches: "caches",
}

func (t MsgType) String() string {
	if n, ok := msgNames[t]; ok {
		return n
	}
	return fmt.Sprintf("unknown(%d)", byte(t))
}

// Known reports whether t is a message type of this protocol version.
func (t MsgType) Known() bool { _, ok := msgNames[t]; return ok }

// ProtocolError is a violation of the protocol by the peer. The agent sends
// it back as an Error message and ends the session.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "devsync protocol: " + e.Msg }

// Errorf returns a *ProtocolError.
func Errorf(format string, args ...any) error {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...)}
}

// FrameReader reads frames into a reused buffer.
type FrameReader struct {
	r   *bufio.Reader
	buf []byte
	z   *zstd.Decoder // after Decompress
}

// NewFrameReader reads frames from r through a 64 KiB buffer.
func NewFrameReader(r io.Reader) *FrameReader {
	return &FrameReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next frame; the payload is valid until the next call.
// A frame that is empty, larger than MaxFrameSize or of an unknown type is
// a *ProtocolError; the end of r inside a frame is io.ErrUnexpectedEOF, at
// a frame boundary io.EOF.
func (fr *FrameReader) Next() (MsgType, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(fr.r, hdr[:4]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:4])
	if n == 0 {
		return 0, nil, Errorf("empty frame")
	}
	if n > MaxFrameSize {
		return 0, nil, Errorf("frame of %d bytes exceeds the limit of %d bytes", n, MaxFrameSize)
	}
	if _, err := io.ReadFull(fr.r, hdr[4:5]); err != nil {
		return 0, nil, unexpectedEOF(err)
	}
	t := MsgType(hdr[4])
	if !t.Known() {
		return t, nil, Errorf("unknown message type %d", byte(t))
	}
	if cap(fr.buf) < int(n-1) {
		fr.buf = make([]byte, n-1, max(int(n-1), 64<<10))
	}
	fr.buf = fr.buf[:n-1]
	if _, err := io.ReadFull(fr.r, fr.buf); err != nil {
		return t, nil, unexpectedEOF(err)
	}
	return t, fr.buf, nil
}

// Decompress makes every later frame come out of one zstd stream: the peer
// sent a Stream message. The decompressor's window is bounded by
// 2*StreamWindow, whatever the stream's header claims; Close releases it.
func (fr *FrameReader) Decompress() error {
	if fr.z != nil {
		return Errorf("a second stream message")
	}
	z, err := zstd.NewReader(fr.r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(2*StreamWindow), zstd.WithDecoderMaxMemory(MaxFrameSize+2*StreamWindow))
	if err != nil {
		return err
	}
	fr.z = z
	fr.r = bufio.NewReaderSize(&streamReader{z}, 64<<10)
	return nil
}

// streamReader turns the decompressor's errors into protocol errors.
type streamReader struct{ z *zstd.Decoder }

func (s *streamReader) Read(p []byte) (int, error) {
	n, err := s.z.Read(p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		// The sender never ends its zstd frame: it closes the channel
		// after its last flushed block. Whether that was at a frame of
		// this protocol's boundary, Next tells.
		return n, io.EOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		var pe *ProtocolError
		if !errors.As(err, &pe) && isZstdError(err) {
			return n, Errorf("bad compressed stream: %v", err)
		}
	}
	return n, err
}

// isZstdError tells the decompressor's own errors (bad data) from the
// errors of the reader below it (a broken connection).
func isZstdError(err error) bool {
	return strings.HasPrefix(err.Error(), "zstd") || errors.Is(err, zstd.ErrMagicMismatch) ||
		errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) ||
		errors.Is(err, zstd.ErrBlockTooSmall) || errors.Is(err, zstd.ErrReservedBlockType) ||
		errors.Is(err, zstd.ErrCompressedSizeTooBig) || errors.Is(err, zstd.ErrUnknownDictionary) ||
		errors.Is(err, zstd.ErrFrameSizeExceeded) || errors.Is(err, zstd.ErrCRCMismatch)
}

// Close releases the decompressor, if any.
func (fr *FrameReader) Close() {
	if fr.z != nil {
		fr.z.Close()
	}
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// FrameWriter writes frames through a buffer; flush sends them.
type FrameWriter struct {
	w   *bufio.Writer
	enc wbuf
	n   int64 // bytes written, for statistics (Written)
	// z compresses what the buffer sends, after Compress.
	z *zstd.Encoder
	// wire counts the bytes that reach the underlying writer.
	wire *countingWriter
}

// NewFrameWriter writes frames to w through a 64 KiB buffer.
func NewFrameWriter(w io.Writer) *FrameWriter {
	cw := &countingWriter{w: w}
	return &FrameWriter{w: bufio.NewWriterSize(cw, 64<<10), wire: cw}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// WriteRaw writes one frame of type t with payload as it is (data frames).
func (fw *FrameWriter) WriteRaw(t MsgType, payload []byte) error {
	if len(payload)+1 > MaxFrameSize {
		return fmt.Errorf("devsync protocol: %s message of %d bytes exceeds the frame limit", t, len(payload))
	}
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(len(payload)+1))
	hdr[4] = byte(t)
	if _, err := fw.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := fw.w.Write(payload)
	fw.n += int64(len(payload)) + 5
	return err
}

// WriteParts writes one frame whose payload is a followed by b.
func (fw *FrameWriter) WriteParts(t MsgType, a, b []byte) error {
	n := len(a) + len(b)
	if n+1 > MaxFrameSize {
		return fmt.Errorf("devsync protocol: %s message of %d bytes exceeds the frame limit", t, n)
	}
	var hdr [5]byte
	binary.BigEndian.PutUint32(hdr[:4], uint32(n+1))
	hdr[4] = byte(t)
	if _, err := fw.w.Write(hdr[:]); err != nil {
		return err
	}
	if _, err := fw.w.Write(a); err != nil {
		return err
	}
	_, err := fw.w.Write(b)
	fw.n += int64(n) + 5
	return err
}

// Write encodes m and writes it as one frame.
func (fw *FrameWriter) Write(m Message) error {
	fw.enc = fw.enc[:0]
	m.encode(&fw.enc)
	return fw.WriteRaw(m.MsgType(), fw.enc)
}

// Flush sends the buffered frames.
func (fw *FrameWriter) Flush() error {
	if err := fw.w.Flush(); err != nil {
		return err
	}
	if fw.z != nil {
		return fw.z.Flush()
	}
	return nil
}

// Written is the number of bytes of the frames written so far (buffered
// or sent), for statistics.
func (fw *FrameWriter) Written() int64 { return fw.n }

// Wire is the number of bytes sent on the underlying writer (after
// compression, once Compress was called).
func (fw *FrameWriter) Wire() int64 { return fw.wire.n }

// StreamWindow is the zstd window of a compressed stream: what the
// compressor may refer back to, and what the agent's decompressor holds.
// A source tree's files repeat their licence headers, imports and idioms
// across files, which per-chunk compression cannot see: the 10,000 Go
// source files of the benchmark are 60.6 MB as a tar stream, 13.3 MB as
// one zstd stream and far more as 10,000 compressed files.
const StreamWindow = 4 << 20

// Compress sends a Stream message, then makes every later frame part of
// one zstd stream at level (zstd.SpeedDefault for a network link). The
// peer must have offered FeatureZstdStream. Close releases the compressor.
func (fw *FrameWriter) Compress(level zstd.EncoderLevel) error {
	if fw.z != nil {
		return nil
	}
	if err := fw.Write(&Stream{}); err != nil {
		return err
	}
	if err := fw.w.Flush(); err != nil {
		return err
	}
	// Entropy coding of literals even where no match is found: text
	// without repeats (base64, minified data) still shrinks by its
	// alphabet (a quarter for base64), which klauspost/compress skips by
	// default at this level; it costs no measurable time (36 MiB of
	// base64 in 0.2 s either way).
	z, err := zstd.NewWriter(fw.wire, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(StreamWindow),
		zstd.WithLowerEncoderMem(true), zstd.WithAllLitEntropyCompression(true))
	if err != nil {
		return err
	}
	fw.z = z
	fw.w.Reset(z)
	return nil
}

// Compressed reports whether Compress was called.
func (fw *FrameWriter) Compressed() bool { return fw.z != nil }

// Close releases the compressor (nothing else: the caller owns the
// underlying writer). It does not flush.
func (fw *FrameWriter) Close() {
	if fw.z != nil {
		// Reset to a discarding writer so that Close writes no end frame
		// into a channel that may be closed or busy.
		fw.z.Reset(io.Discard)
		_ = fw.z.Close()
	}
}

// Message is a control message: one of the message structs of this
// package (the set is closed).
type Message interface {
	// MsgType is the frame type the message travels as.
	MsgType() MsgType
	encode(*wbuf)
	decode(*rbuf)
}

// Decode decodes payload into m. It is strict: a malformed varint, a
// string or a list beyond its limit, or trailing bytes are a
// *ProtocolError.
func Decode(m Message, payload []byte) error {
	d := rbuf{b: payload}
	m.decode(&d)
	if d.err == nil && len(d.b) != 0 {
		d.err = Errorf("%s message has %d trailing bytes", m.MsgType(), len(d.b))
	}
	return d.err
}

// wbuf / rbuf: the compact encoding.
type wbuf []byte

func (w *wbuf) u(v uint64) { *w = binary.AppendUvarint(*w, v) }
func (w *wbuf) i(v int64)  { *w = binary.AppendVarint(*w, v) }
func (w *wbuf) s(v string) { w.u(uint64(len(v))); *w = append(*w, v...) }
func (w *wbuf) ss(v []string) {
	w.u(uint64(len(v)))
	for _, s := range v {
		w.s(s)
	}
}

type rbuf struct {
	b   []byte
	err error
}

func (r *rbuf) fail(format string, args ...any) {
	if r.err == nil {
		r.err = Errorf(format, args...)
	}
}

func (r *rbuf) u() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("malformed unsigned integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *rbuf) i() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("malformed integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// s reads a string of at most limit bytes.
func (r *rbuf) s(limit int) string {
	n := r.u()
	if r.err != nil {
		return ""
	}
	if n > uint64(limit) || n > uint64(len(r.b)) {
		r.fail("string of %d bytes exceeds its limit (%d) or the frame", n, limit)
		return ""
	}
	v := string(r.b[:n])
	r.b = r.b[n:]
	return v
}

func (r *rbuf) ss(limitN, limitEach int) []string {
	n := r.u()
	if r.err != nil {
		return nil
	}
	if n > uint64(limitN) {
		r.fail("list of %d items exceeds its limit (%d)", n, limitN)
		return nil
	}
	out := make([]string, 0, n)
	for range n {
		out = append(out, r.s(limitEach))
	}
	return out
}

// Hello opens a session (client -> agent).
type Hello struct {
	MinVersion, MaxVersion int
	Features               []string
	// Dest is the destination directory as the app sees it (absolute);
	// empty means the app process's working directory.
	Dest string
	// CreateDest creates Dest (owned by the app's user) when missing.
	CreateDest bool
	// Client names the client, for the agent's log.
	Client string
}

func (*Hello) MsgType() MsgType { return MsgHello }
func (m *Hello) encode(w *wbuf) {
	w.u(uint64(m.MinVersion))
	w.u(uint64(m.MaxVersion))
	w.ss(m.Features)
	w.s(m.Dest)
	w.u(b2u(m.CreateDest))
	w.s(m.Client)
}
func (m *Hello) decode(r *rbuf) {
	m.MinVersion, m.MaxVersion = int(r.u()), int(r.u())
	m.Features = r.ss(16, 64)
	m.Dest = r.s(MaxPathLen)
	m.CreateDest = r.u() != 0
	m.Client = r.s(256)
}

// Welcome answers Hello (agent -> client).
type Welcome struct {
	Version  int
	Features []string
	// Dest is the destination directory resolved by the agent.
	Dest string
	// UID and GID own the files the agent writes (the app's user).
	UID, GID int
	// PID is the app process the agent writes for.
	PID   int
	Agent string
}

func (*Welcome) MsgType() MsgType { return MsgWelcome }
func (m *Welcome) encode(w *wbuf) {
	w.u(uint64(m.Version))
	w.ss(m.Features)
	w.s(m.Dest)
	w.i(int64(m.UID))
	w.i(int64(m.GID))
	w.i(int64(m.PID))
	w.s(m.Agent)
}
func (m *Welcome) decode(r *rbuf) {
	m.Version = int(r.u())
	m.Features = r.ss(16, 64)
	m.Dest = r.s(MaxPathLen)
	m.UID, m.GID, m.PID = int(r.i()), int(r.i()), int(r.i())
	m.Agent = r.s(256)
}

// ErrorMsg is a fatal error: the sender ends the session after it.
type ErrorMsg struct{ Message string }

func (*ErrorMsg) MsgType() MsgType { return MsgError }
func (m *ErrorMsg) encode(w *wbuf) { w.s(m.Message) }
func (m *ErrorMsg) decode(r *rbuf) { m.Message = r.s(64 << 10) }

// ListReq asks for a listing of Path (relative to Dest; "" for all).
type ListReq struct{ Path string }

func (*ListReq) MsgType() MsgType { return MsgList }
func (m *ListReq) encode(w *wbuf) { w.s(m.Path) }
func (m *ListReq) decode(r *rbuf) { m.Path = r.s(MaxPathLen) }

// EntryType is the kind of a file in a listing.
type EntryType byte

const (
	TypeFile    EntryType = 'f'
	TypeDir     EntryType = 'd'
	TypeSymlink EntryType = 'l'
	TypeOther   EntryType = 'o' // FIFO, socket, device: never synced
)

func (t EntryType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "directory"
	case TypeSymlink:
		return "symlink"
	}
	return "special file"
}

// Entry describes one file of a tree, relative to its root.
type Entry struct {
	Path   string
	Type   EntryType
	Mode   uint32 // permission bits (07777)
	Size   int64
	MTime  int64  // modification time, Unix nanoseconds
	Target string // symlink target
	// Local identity (not on the wire), for rename detection.
	Dev, Ino uint64
}

// ListEntries carries a part of a listing (agent -> client).
type ListEntries struct{ Entries []Entry }

// MaxListEntries bounds the entries of one ListEntries message.
const MaxListEntries = 4096

func (*ListEntries) MsgType() MsgType { return MsgListEntries }
func (m *ListEntries) encode(w *wbuf) {
	w.u(uint64(len(m.Entries)))
	for _, e := range m.Entries {
		w.s(e.Path)
		w.u(uint64(e.Type))
		w.u(uint64(e.Mode))
		w.i(e.Size)
		w.i(e.MTime)
		w.s(e.Target)
	}
}
func (m *ListEntries) decode(r *rbuf) {
	n := r.u()
	if n > MaxListEntries {
		r.fail("listing of %d entries in one frame", n)
		return
	}
	m.Entries = make([]Entry, 0, n)
	for range n {
		e := Entry{Path: r.s(MaxPathLen), Type: EntryType(r.u()), Mode: uint32(r.u()), Size: r.i(), MTime: r.i(), Target: r.s(MaxPathLen)}
		m.Entries = append(m.Entries, e)
	}
}

// ListEnd ends a listing; Error is set when the walk failed.
type ListEnd struct {
	Count int
	Error string
}

func (*ListEnd) MsgType() MsgType { return MsgListEnd }
func (m *ListEnd) encode(w *wbuf) { w.u(uint64(m.Count)); w.s(m.Error) }
func (m *ListEnd) decode(r *rbuf) { m.Count = int(r.u()); m.Error = r.s(64 << 10) }

// HashReq asks for the SHA-256 of files (at most 1024 per request).
type HashReq struct{ Paths []string }

func (*HashReq) MsgType() MsgType { return MsgHash }
func (m *HashReq) encode(w *wbuf) { w.ss(m.Paths) }
func (m *HashReq) decode(r *rbuf) { m.Paths = r.ss(MaxHashPaths, MaxPathLen) }

// HashResult answers one path of a HashReq; HashEnd follows the last.
type HashResult struct {
	Path  string
	Sum   [32]byte
	Error string
}

func (*HashResult) MsgType() MsgType { return MsgHashResult }
func (m *HashResult) encode(w *wbuf) {
	w.s(m.Path)
	w.s(string(m.Sum[:]))
	w.s(m.Error)
}
func (m *HashResult) decode(r *rbuf) {
	m.Path = r.s(MaxPathLen)
	s := r.s(32)
	if r.err == nil && len(s) != 32 {
		r.fail("hash of %d bytes", len(s))
	}
	copy(m.Sum[:], s)
	m.Error = r.s(64 << 10)
}

// HashEnd follows the last HashResult of a HashReq (agent -> client).
type HashEnd struct{}

func (*HashEnd) MsgType() MsgType { return MsgHashEnd }
func (*HashEnd) encode(*wbuf)     {}
func (*HashEnd) decode(*rbuf)     {}

// Begin starts a batch of operations.
type Begin struct {
	ID    uint64
	Count int
}

func (*Begin) MsgType() MsgType { return MsgBegin }
func (m *Begin) encode(w *wbuf) { w.u(m.ID); w.u(uint64(m.Count)) }
func (m *Begin) decode(r *rbuf) { m.ID = r.u(); m.Count = int(r.u()) }

// OpKind is an operation of a batch.
type OpKind byte

const (
	OpWrite   OpKind = 'w' // Data/DataZstd frames and a FileEnd follow
	OpMkdir   OpKind = 'm'
	OpDelete  OpKind = 'd' // recursive, never follows symlinks
	OpRename  OpKind = 'r'
	OpSymlink OpKind = 'l'
	OpChmod   OpKind = 'c'
	OpChtimes OpKind = 't'
)

func (k OpKind) String() string {
	switch k {
	case OpWrite:
		return "write"
	case OpMkdir:
		return "mkdir"
	case OpDelete:
		return "delete"
	case OpRename:
		return "rename"
	case OpSymlink:
		return "symlink"
	case OpChmod:
		return "chmod"
	case OpChtimes:
		return "chtimes"
	}
	return fmt.Sprintf("op(%d)", byte(k))
}

// Op is one operation of a batch. Paths are relative to the destination.
type Op struct {
	Kind   OpKind
	Path   string
	To     string // rename: new path
	Target string // symlink: link target
	Mode   uint32 // write, mkdir, chmod: permission bits
	MTime  int64  // write, chtimes: Unix nanoseconds (0: leave)
	Size   int64  // write: expected size (informational)

	// Open, for a write, returns the content; nil opens Path under the
	// local directory of ApplyOptions. Not sent.
	Open func() (io.ReadCloser, error)
}

func (*Op) MsgType() MsgType { return MsgOp }
func (m *Op) encode(w *wbuf) {
	w.u(uint64(m.Kind))
	w.s(m.Path)
	w.s(m.To)
	w.s(m.Target)
	w.u(uint64(m.Mode))
	w.i(m.MTime)
	w.i(m.Size)
}
func (m *Op) decode(r *rbuf) {
	m.Kind = OpKind(r.u())
	m.Path = r.s(MaxPathLen)
	m.To = r.s(MaxPathLen)
	m.Target = r.s(MaxPathLen)
	m.Mode = uint32(r.u())
	m.MTime = r.i()
	m.Size = r.i()
}

// Validate checks an operation received by the agent: its paths
// (ValidatePath), mode bits, kind and size.
func (m *Op) Validate() error {
	if err := ValidatePath(m.Path); err != nil {
		return err
	}
	if m.Mode&^0o7777 != 0 {
		return Errorf("%s %q: invalid mode %o", m.Kind, m.Path, m.Mode)
	}
	switch m.Kind {
	case OpWrite, OpMkdir, OpDelete, OpChmod, OpChtimes:
	case OpRename:
		if err := ValidatePath(m.To); err != nil {
			return err
		}
	case OpSymlink:
		if m.Target == "" || strings.IndexByte(m.Target, 0) >= 0 {
			return Errorf("symlink %q: empty target or NUL byte in the target", m.Path)
		}
	default:
		return Errorf("unknown operation %d for %q", byte(m.Kind), m.Path)
	}
	if m.Size < 0 {
		return Errorf("%s %q: negative size", m.Kind, m.Path)
	}
	return nil
}

// LaneToken follows Welcome when both sides have FeatureLanes: Token
// attaches up to Max lanes to this session (agent -> client).
type LaneToken struct {
	Token string
	Max   int
}

func (*LaneToken) MsgType() MsgType { return MsgLaneToken }
func (m *LaneToken) encode(w *wbuf) { w.s(m.Token); w.u(uint64(m.Max)) }
func (m *LaneToken) decode(r *rbuf) { m.Token = r.s(64); m.Max = int(r.u()) }

// LaneHello is the first message on a lane (client -> agent); the agent
// answers LaneWelcome, or Error for an unknown token.
type LaneHello struct{ Token string }

func (*LaneHello) MsgType() MsgType { return MsgLaneHello }
func (m *LaneHello) encode(w *wbuf) { w.s(m.Token) }
func (m *LaneHello) decode(r *rbuf) { m.Token = r.s(64) }

// Stream says that every later byte the client sends on this channel is
// part of one zstd stream (FeatureZstdStream).
type Stream struct{}

func (*Stream) MsgType() MsgType { return MsgStream }
func (*Stream) encode(*wbuf)     {}
func (*Stream) decode(*rbuf)     {}

// LaneWelcome accepts a lane (agent -> client, on the lane).
type LaneWelcome struct{}

func (*LaneWelcome) MsgType() MsgType { return MsgLaneWelcome }
func (*LaneWelcome) encode(*wbuf)     {}
func (*LaneWelcome) decode(*rbuf)     {}

// LanedOp is a write whose content travels on the session's lanes as
// LaneData frames tagged with Seq (strictly increasing within a session);
// FileEnd follows it on the session's own channel.
type LanedOp struct {
	Seq uint64
	Op  Op
}

func (*LanedOp) MsgType() MsgType { return MsgLanedOp }
func (m *LanedOp) encode(w *wbuf) { w.u(m.Seq); m.Op.encode(w) }
func (m *LanedOp) decode(r *rbuf) { m.Seq = r.u(); m.Op.decode(r) }

// AppendLaneDataHeader appends the header of a LaneData (or LaneDataZstd)
// frame to b: the laned write's Seq and the chunk's offset in the file.
// The chunk follows it in the frame.
func AppendLaneDataHeader(b []byte, seq uint64, off int64) []byte {
	b = binary.AppendUvarint(b, seq)
	return binary.AppendUvarint(b, uint64(off))
}

// ParseLaneData splits a LaneData payload into its header and its data
// (a sub-slice of payload).
func ParseLaneData(payload []byte) (seq uint64, off int64, data []byte, err error) {
	seq, n := binary.Uvarint(payload)
	if n <= 0 {
		return 0, 0, nil, Errorf("malformed lane data header")
	}
	o, m := binary.Uvarint(payload[n:])
	if m <= 0 || o > 1<<50 {
		return 0, 0, nil, Errorf("malformed lane data offset")
	}
	return seq, int64(o), payload[n+m:], nil
}

// FileEnd ends the content of a write. Abort, when set, discards the file
// (the client could not read it); Size is the number of bytes sent.
type FileEnd struct {
	Size  int64
	Abort string
}

func (*FileEnd) MsgType() MsgType { return MsgFileEnd }
func (m *FileEnd) encode(w *wbuf) { w.i(m.Size); w.s(m.Abort) }
func (m *FileEnd) decode(r *rbuf) { m.Size = r.i(); m.Abort = r.s(64 << 10) }

// Commit ends a batch; the agent answers with Result.
type Commit struct{ ID uint64 }

func (*Commit) MsgType() MsgType { return MsgCommit }
func (m *Commit) encode(w *wbuf) { w.u(m.ID) }
func (m *Commit) decode(r *rbuf) { m.ID = r.u() }

// Received reports, while batch ID is open, how many bytes of file content
// (decoded: inline data frames and lane data) of the batch the agent has
// received so far (agent -> client, FeatureProgress). The agent sends it
// at most every few tenths of a second and only when the count grew; every
// Received of a batch precedes its Result.
type Received struct {
	ID    uint64
	Bytes int64
}

func (*Received) MsgType() MsgType { return MsgReceived }
func (m *Received) encode(w *wbuf) { w.u(m.ID); w.u(uint64(m.Bytes)) }
func (m *Received) decode(r *rbuf) {
	m.ID = r.u()
	n := r.u()
	if n > math.MaxInt64 {
		r.fail("received count %d out of range", n)
		return
	}
	m.Bytes = int64(n)
}

// Caches reports, before the Result of batch ID (agent -> client,
// FeatureCaches), what the agent did so that the app never runs a cache of
// a file the batch changed: Removed are the caches derived from files the
// batch replaced, deleted or renamed that it removed; Racy are files the
// batch replaced by a file of the same size and mtime second whose caches
// it does not know (a cache keyed by size and whole-second mtime may still
// take the old content for theirs). Paths are absolute in the app's root;
// each list holds at most MaxCachesReport, Omitted counts the others.
type Caches struct {
	ID            uint64
	Removed, Racy []string
	Omitted       int
}

func (*Caches) MsgType() MsgType { return MsgCaches }
func (m *Caches) encode(w *wbuf) {
	w.u(m.ID)
	w.ss(m.Removed)
	w.ss(m.Racy)
	w.u(uint64(m.Omitted))
}
func (m *Caches) decode(r *rbuf) {
	m.ID = r.u()
	m.Removed = r.ss(MaxCachesReport, MaxPathLen)
	m.Racy = r.ss(MaxCachesReport, MaxPathLen)
	n := r.u()
	if n > math.MaxInt32 {
		r.fail("caches: %d omitted", n)
		return
	}
	m.Omitted = int(n)
}

// ItemError reports a failed operation of a batch.
type ItemError struct {
	Index   int // position in the batch
	Op      OpKind
	Path    string
	Code    string // errno name when known, e.g. "EROFS", "EACCES"
	Message string
}

func (e ItemError) Error() string { return fmt.Sprintf("%s %s: %s", e.Op, e.Path, e.Message) }

// Result answers Commit.
type Result struct {
	ID      uint64
	Applied int
	Bytes   int64
	Errors  []ItemError
}

// MaxResultErrors bounds the errors listed in one Result; more are
// counted, not listed.
const MaxResultErrors = 256

func (*Result) MsgType() MsgType { return MsgResult }
func (m *Result) encode(w *wbuf) {
	w.u(m.ID)
	w.u(uint64(m.Applied))
	w.i(m.Bytes)
	w.u(uint64(len(m.Errors)))
	for _, e := range m.Errors {
		w.u(uint64(e.Index))
		w.u(uint64(e.Op))
		w.s(e.Path)
		w.s(e.Code)
		w.s(e.Message)
	}
}
func (m *Result) decode(r *rbuf) {
	m.ID = r.u()
	m.Applied = int(r.u())
	m.Bytes = r.i()
	n := r.u()
	if n > MaxResultErrors {
		r.fail("result with %d errors", n)
		return
	}
	for range n {
		m.Errors = append(m.Errors, ItemError{Index: int(r.u()), Op: OpKind(r.u()), Path: r.s(MaxPathLen), Code: r.s(32), Message: r.s(4096)})
	}
}

// Action asks the agent to act on the app after a batch: "restart" (through
// the supervisor), "signal" (Args[0] names the signal, e.g. "HUP") or "exec"
// (Args is the command, run in the app's view).
type Action struct {
	Kind string
	Args []string
}

func (*Action) MsgType() MsgType { return MsgAction }
func (m *Action) encode(w *wbuf) { w.s(m.Kind); w.ss(m.Args) }
func (m *Action) decode(r *rbuf) { m.Kind = r.s(32); m.Args = r.ss(256, 64<<10) }

// ActionResult answers Action.
type ActionResult struct {
	Error  string
	Output string
}

func (*ActionResult) MsgType() MsgType { return MsgActionResult }
func (m *ActionResult) encode(w *wbuf) { w.s(m.Error); w.s(m.Output) }
func (m *ActionResult) decode(r *rbuf) { m.Error = r.s(64 << 10); m.Output = r.s(512 << 10) }

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// ValidatePath checks a path sent by the client: relative, clean, no ".."
// component, no NUL byte, not empty, within PATH_MAX and NAME_MAX.
func ValidatePath(p string) error {
	switch {
	case p == "" || p == ".":
		return Errorf("empty path")
	case len(p) > MaxPathLen:
		return Errorf("path of %d bytes exceeds %d", len(p), MaxPathLen)
	case strings.IndexByte(p, 0) >= 0:
		return Errorf("path %q contains a NUL byte", p)
	case strings.HasPrefix(p, "/"):
		return Errorf("absolute path %q refused", p)
	case path.Clean(p) != p:
		return Errorf("path %q is not clean", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return Errorf("path %q climbs out with \"..\"", p)
		}
		if len(c) > maxNameLen {
			return Errorf("path %q has a component longer than %d bytes", p, maxNameLen)
		}
	}
	return nil
}

// ValidateDest checks the destination of a Hello: absolute and clean.
func ValidateDest(d string) error {
	switch {
	case d == "":
		return nil
	case len(d) > MaxPathLen, strings.IndexByte(d, 0) >= 0:
		return Errorf("destination %q is too long or contains a NUL byte", d)
	case !strings.HasPrefix(d, "/"):
		return Errorf("destination %q must be an absolute path in the app container", d)
	}
	return nil
}

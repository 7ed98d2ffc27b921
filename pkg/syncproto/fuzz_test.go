package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"
)

// newMessage returns an empty message of type t, nil for the data frames
// and unknown types.
func newMessage(t MsgType) Message {
	switch t {
	case MsgHello:
		return &Hello{}
	case MsgWelcome:
		return &Welcome{}
	case MsgError:
		return &ErrorMsg{}
	case MsgLaneToken:
		return &LaneToken{}
	case MsgLaneHello:
		return &LaneHello{}
	case MsgLaneWelcome:
		return &LaneWelcome{}
	case MsgStream:
		return &Stream{}
	case MsgList:
		return &ListReq{}
	case MsgListEntries:
		return &ListEntries{}
	case MsgListEnd:
		return &ListEnd{}
	case MsgHash:
		return &HashReq{}
	case MsgHashResult:
		return &HashResult{}
	case MsgHashEnd:
		return &HashEnd{}
	case MsgBegin:
		return &Begin{}
	case MsgOp:
		return &Op{}
	case MsgFileEnd:
		return &FileEnd{}
	case MsgCommit:
		return &Commit{}
	case MsgResult:
		return &Result{}
	case MsgLanedOp:
		return &LanedOp{}
	case MsgAction:
		return &Action{}
	case MsgActionResult:
		return &ActionResult{}
	case MsgReceived:
		return &Received{}
	case MsgCaches:
		return &Caches{}
	}
	return nil
}

// sampleMessages is one valid message of every control type.
func sampleMessages() []Message {
	return []Message{
		&Hello{MinVersion: 1, MaxVersion: 1, Features: []string{FeatureZstd, FeatureLanes}, Dest: "/app", CreateDest: true, Client: "kubectl-devsync"},
		&Welcome{Version: 1, Features: []string{FeatureZstd}, Dest: "/app", UID: 1000, GID: -1, PID: 42, Agent: "devagent"},
		&ErrorMsg{Message: "devsync protocol: bad"},
		&LaneToken{Token: "0123456789abcdef0123456789abcdef", Max: MaxLanes},
		&LaneHello{Token: "0123456789abcdef0123456789abcdef"},
		&LaneWelcome{},
		&Stream{},
		&ListReq{Path: "sub/dir"},
		&ListEntries{Entries: []Entry{{Path: "a", Type: TypeDir, Mode: 0o755, MTime: 1}, {Path: "a/f", Type: TypeFile, Mode: 0o644, Size: 12, MTime: -5}, {Path: "ln", Type: TypeSymlink, Mode: 0o777, Target: "a/f"}}},
		&ListEnd{Count: 3, Error: "EACCES"},
		&HashReq{Paths: []string{"a/f", "b"}},
		&HashResult{Path: "a/f", Sum: [32]byte{1, 2, 3}},
		&HashEnd{},
		&Begin{ID: 7, Count: 2},
		&Op{Kind: OpWrite, Path: "a/f", Mode: 0o644, MTime: 1_700_000_000_000_000_000, Size: 12},
		&Op{Kind: OpRename, Path: "a", To: "b"},
		&FileEnd{Size: 12, Abort: ""},
		&Commit{ID: 7},
		&Result{ID: 7, Applied: 1, Bytes: 12, Errors: []ItemError{{Index: 1, Op: OpRename, Path: "a", Code: "EACCES", Message: "permission denied"}}},
		&LanedOp{Seq: 3, Op: Op{Kind: OpWrite, Path: "big", Mode: 0o600, Size: 1 << 30}},
		&Action{Kind: "signal", Args: []string{"HUP"}},
		&ActionResult{Error: "", Output: "sent SIGHUP"},
		&Received{ID: 7, Bytes: 3 << 20},
		&Caches{ID: 7, Removed: []string{"/app/pkg/__pycache__/m.cpython-311.pyc", "/app/pkg/m.pyc"}, Racy: []string{"/app/lib/x.rb"}, Omitted: 3},
	}
}

func payloadOf(m Message) []byte {
	var w wbuf
	m.encode(&w)
	return w
}

func frameOf(t MsgType, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(payload)+1))
	return append(append(b, byte(t)), payload...)
}

// FuzzFrameReader: any byte stream yields frames within the limits, of
// known types, or an error; never a panic or an oversized allocation.
func FuzzFrameReader(f *testing.F) {
	var stream []byte
	for _, m := range sampleMessages() {
		fr := frameOf(m.MsgType(), payloadOf(m))
		f.Add(fr)
		f.Add(fr[:len(fr)-1]) // truncated
		stream = append(stream, fr...)
	}
	f.Add(stream)
	f.Add(frameOf(MsgData, []byte("chunk")))
	f.Add(append(frameOf(MsgLaneData, AppendLaneDataHeader(nil, 1, 0)), "x"...))
	f.Add([]byte{0, 0, 0, 0})                   // empty frame
	f.Add([]byte{0x7f, 0, 0, 0, byte(MsgOp)})   // oversized
	f.Add([]byte{0, 0x10, 0, 1, byte(MsgData)}) // just over MaxFrameSize
	f.Add([]byte{0, 0, 0, 1, 99})               // unknown type
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data))
		for {
			typ, payload, err := fr.Next()
			if err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("error %v (%T)", err, err)
				}
				return
			}
			if !typ.Known() || len(payload)+1 > MaxFrameSize {
				t.Fatalf("frame %s of %d bytes", typ, len(payload))
			}
			if m := newMessage(typ); m != nil {
				Decode(m, payload)
			}
		}
	})
}

// FuzzDecode: every decoder refuses what it cannot read with a
// *ProtocolError, and what it accepts survives an encoding round trip.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMessages() {
		p := payloadOf(m)
		f.Add(byte(m.MsgType()), p)
		if len(p) > 0 {
			f.Add(byte(m.MsgType()), p[:len(p)-1])                 // truncated
			f.Add(byte(m.MsgType()), append(p[:len(p):len(p)], 0)) // trailing byte
		}
	}
	// Strings and lists beyond their limits, varint overflow.
	f.Add(byte(MsgList), binary.AppendUvarint(nil, MaxPathLen+1))
	f.Add(byte(MsgHash), binary.AppendUvarint(nil, MaxHashPaths+1))
	f.Add(byte(MsgListEntries), binary.AppendUvarint(nil, MaxListEntries+1))
	f.Add(byte(MsgResult), []byte{1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(byte(MsgBegin), bytes.Repeat([]byte{0xff}, 11))
	f.Add(byte(MsgReceived), binary.AppendUvarint([]byte{7}, 1<<63)) // beyond int64
	f.Add(byte(MsgReceived), []byte{7})                              // no count
	f.Add(byte(MsgCaches), binary.AppendUvarint([]byte{7}, MaxCachesReport+1))
	f.Add(byte(MsgCaches), binary.AppendUvarint([]byte{7, 0, 0}, 1<<40)) // omitted beyond int32
	f.Fuzz(func(t *testing.T, typ byte, payload []byte) {
		m := newMessage(MsgType(typ))
		if m == nil {
			return
		}
		if err := Decode(m, payload); err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T), want a *ProtocolError", err, err)
			}
			return
		}
		again := newMessage(MsgType(typ))
		if err := Decode(again, payloadOf(m)); err != nil {
			t.Fatalf("%s: re-encoding of an accepted message refused: %v", MsgType(typ), err)
		}
		if !reflect.DeepEqual(m, again) {
			t.Fatalf("%s: round trip changed the message:\n%#v\n%#v", MsgType(typ), m, again)
		}
		if op, ok := m.(*Op); ok {
			op.Validate() // must not panic
		}
	})
}

// FuzzParseLaneData: the lane data header of any payload.
func FuzzParseLaneData(f *testing.F) {
	f.Add(append(AppendLaneDataHeader(nil, 1, 0), "data"...))
	f.Add(AppendLaneDataHeader(nil, 1<<40, 1<<50))
	f.Add(AppendLaneDataHeader(nil, 1, 1<<50+1))
	f.Add([]byte{0x80})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		seq, off, data, err := ParseLaneData(payload)
		if err != nil {
			return
		}
		if off < 0 || off > 1<<50 || len(data) > len(payload) {
			t.Fatalf("seq %d off %d, %d bytes of data from %d", seq, off, len(data), len(payload))
		}
		if got := append(AppendLaneDataHeader(nil, seq, off), data...); len(got) > len(payload) {
			t.Fatalf("header re-encoded longer than it came")
		}
	})
}

// FuzzDecompress: a compressed chunk from the network never expands beyond
// ChunkSize.
func FuzzDecompress(f *testing.F) {
	c, err := NewCompressor()
	if err != nil {
		f.Fatal(err)
	}
	text := bytes.Repeat([]byte("package main // compressible\n"), 200)
	z, ok := c.Compress(text)
	if !ok {
		f.Fatal("sample did not compress")
	}
	f.Add(append([]byte(nil), z...))
	big, _ := c.Compress(make([]byte, ChunkSize))
	f.Add(append([]byte(nil), big...))
	c.Close()
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd}) // a zstd magic and nothing else
	f.Add([]byte("not zstd"))
	var d Decompressor
	defer d.Close()
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, err := d.Decompress(payload)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v (%T)", err, err)
			}
			return
		}
		if len(out) > ChunkSize {
			t.Fatalf("%d bytes out", len(out))
		}
	})
}

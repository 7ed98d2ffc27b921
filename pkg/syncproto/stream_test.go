package syncproto

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestStreamFlushDelivers: after Compress, each Flush makes every frame
// written so far readable by the peer at once, before any later byte, as
// a request that waits for its reply needs.
func TestStreamFlushDelivers(t *testing.T) {
	pr, pw := io.Pipe()
	fw := NewFrameWriter(pw)
	defer fw.Close()
	fr := NewFrameReader(pr)
	defer fr.Close()
	errc := make(chan error, 1)
	go func() {
		if err := fw.Write(&Hello{MinVersion: 1, MaxVersion: 1}); err != nil {
			errc <- err
			return
		}
		if err := fw.Compress(zstd.SpeedDefault); err != nil {
			errc <- err
			return
		}
		errc <- nil
	}()
	mustNext := func(want MsgType) []byte {
		t.Helper()
		typ, payload, err := fr.Next()
		if err != nil || typ != want {
			t.Fatalf("Next = %s, %v; want %s", typ, err, want)
		}
		return append([]byte(nil), payload...)
	}
	mustNext(MsgHello)
	mustNext(MsgStream)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := fr.Decompress(); err != nil {
		t.Fatal(err)
	}
	src := []byte(strings.Repeat("package main\n\nimport \"fmt\"\n", 2000))
	for round := range 3 {
		go func() {
			for i := range 5 {
				if err := fw.WriteRaw(MsgData, src); err != nil {
					errc <- err
					return
				}
				if err := fw.Write(&Commit{ID: uint64(round*10 + i)}); err != nil {
					errc <- err
					return
				}
			}
			errc <- fw.Flush()
		}()
		// Read everything of this round while the writer waits: nothing
		// more comes until the reader has it.
		for i := range 5 {
			if got := mustNext(MsgData); !bytes.Equal(got, src) {
				t.Fatalf("round %d: data %d differs", round, i)
			}
			var c Commit
			if err := Decode(&c, mustNext(MsgCommit)); err != nil || c.ID != uint64(round*10+i) {
				t.Fatalf("round %d: commit %+v, %v", round, c, err)
			}
		}
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if fw.Wire()*5 > fw.Written() {
		t.Errorf("%d bytes of frames took %d on the wire: not compressed", fw.Written(), fw.Wire())
	}
	pw.Close()
	if _, _, err := fr.Next(); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("after the writer closed: %v", err)
	}
}

// TestStreamRefusesBadData: garbage after a stream message is a protocol
// error, and so is a window larger than the agent allows.
func TestStreamRefusesBadData(t *testing.T) {
	for name, data := range map[string][]byte{
		"garbage": []byte("this is not zstd at all, not even close......"),
		"window":  bigWindowStream(t),
	} {
		t.Run(name, func(t *testing.T) {
			fr := NewFrameReader(bytes.NewReader(data))
			defer fr.Close()
			if err := fr.Decompress(); err != nil {
				t.Fatal(err)
			}
			_, _, err := fr.Next()
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Next = %v, want a protocol error", err)
			}
		})
	}
}

func bigWindowStream(t *testing.T) []byte {
	var b bytes.Buffer
	z, err := zstd.NewWriter(&b, zstd.WithWindowSize(64<<20), zstd.WithEncoderConcurrency(1))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(z, strings.Repeat("x", 100))
	z.Close()
	return b.Bytes()
}

// FuzzStream: any bytes after a stream message make frames or an error,
// never a panic or unbounded memory.
func FuzzStream(f *testing.F) {
	var b bytes.Buffer
	fw := NewFrameWriter(&b)
	_ = fw.Compress(zstd.SpeedFastest)
	for _, m := range sampleMessages() {
		_ = fw.Write(m)
	}
	_ = fw.WriteRaw(MsgData, []byte(strings.Repeat("abc", 1000)))
	_ = fw.Flush()
	fw.Close()
	f.Add(b.Bytes()[6:]) // past the Stream frame
	f.Add([]byte{})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data))
		defer fr.Close()
		if err := fr.Decompress(); err != nil {
			t.Fatal(err)
		}
		for range 1000 {
			typ, payload, err := fr.Next()
			if err != nil {
				return
			}
			if m := newMessage(typ); m != nil {
				_ = Decode(m, payload)
			}
		}
	})
}

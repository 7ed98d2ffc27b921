package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
)

// TestMessagesRoundTrip: every sample message goes through a FrameWriter
// and a FrameReader and decodes to itself.
func TestMessagesRoundTrip(t *testing.T) {
	var b bytes.Buffer
	fw := NewFrameWriter(&b)
	msgs := sampleMessages()
	for _, m := range msgs {
		if err := fw.Write(m); err != nil {
			t.Fatalf("write %s: %v", m.MsgType(), err)
		}
	}
	if err := fw.Flush(); err != nil {
		t.Fatal(err)
	}
	fr := NewFrameReader(&b)
	for _, want := range msgs {
		typ, payload, err := fr.Next()
		if err != nil || typ != want.MsgType() {
			t.Fatalf("frame %s, %v; want %s", typ, err, want.MsgType())
		}
		got := newMessage(typ)
		if err := Decode(got, payload); err != nil {
			t.Fatalf("decode %s: %v", typ, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %#v, want %#v", typ, got, want)
		}
	}
}

// TestReceivedStrict: the received message refuses a count beyond int64,
// a missing count and trailing bytes.
func TestReceivedStrict(t *testing.T) {
	ok := payloadOf(&Received{ID: 1, Bytes: 1<<63 - 1})
	var m Received
	if err := Decode(&m, ok); err != nil || m.Bytes != 1<<63-1 || m.ID != 1 {
		t.Fatalf("largest count: %+v, %v", m, err)
	}
	for name, p := range map[string][]byte{
		"beyond int64": binary.AppendUvarint([]byte{1}, 1<<63),
		"no count":     {1},
		"empty":        {},
		"trailing":     append(ok[:len(ok):len(ok)], 0),
	} {
		var pe *ProtocolError
		if err := Decode(&Received{}, p); !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a protocol error", name, err)
		}
	}
	if MsgReceived.String() != "received" || !MsgReceived.Known() {
		t.Errorf("message type 28 is %q", MsgReceived)
	}
}

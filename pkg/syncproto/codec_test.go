package syncproto

import (
	"bytes"
	"crypto/rand"
	"testing"
)

// TestCompressorBacksOff: after compressMisses chunks in a row that do not
// compress, chunks are sent as they are without an attempt, except every
// compressProbe-th; once a probe compresses, every chunk is tried again.
func TestCompressorBacksOff(t *testing.T) {
	c, err := NewCompressor()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	random := make([]byte, 4096)
	text := bytes.Repeat([]byte("package main // compressible\n"), 150)
	for i := range compressMisses {
		rand.Read(random)
		if _, z := c.Compress(random); z {
			t.Fatalf("random chunk %d compressed", i)
		}
	}
	// Backing off: compressible chunks go out as they are until the probe.
	for i := 1; i < compressProbe; i++ {
		if out, z := c.Compress(text); z || !bytes.Equal(out, text) {
			t.Fatalf("chunk %d after %d misses was compressed (or changed)", i, compressMisses)
		}
	}
	if out, z := c.Compress(text); !z || len(out) >= len(text) {
		t.Fatalf("the probe did not compress (%d bytes of %d)", len(out), len(text))
	}
	if _, z := c.Compress(text); !z {
		t.Fatal("after a probe compressed, the next chunk was not tried")
	}
	// And a compressible stream is never interrupted.
	d, _ := NewCompressor()
	defer d.Close()
	for i := range 100 {
		if _, z := d.Compress(text); !z {
			t.Fatalf("compressible chunk %d not compressed", i)
		}
	}
}

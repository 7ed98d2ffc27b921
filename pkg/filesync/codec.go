package filesync

import (
	"sync"

	"github.com/klauspost/compress/zstd"
)

// compressor compresses file chunks with zstd (fastest level, one chunk per
// frame) when both sides agreed on FeatureZstd.
type compressor struct {
	enc *zstd.Encoder
	buf []byte
	// misses counts the chunks in a row that did not compress; from
	// compressMisses on, only every compressProbe-th chunk is tried.
	misses, skipped int
}

// Data that does not compress (random, already compressed, and base64
// text, which zstd's fastest level stores as it is) still costs the
// attempt: 9% of the client's CPU in a sync of 10,000 base64 files, with
// no byte saved. After compressMisses such chunks in a row the compressor
// only probes every compressProbe-th chunk, and tries every chunk again
// once one compresses.
const (
	compressMisses = 8
	compressProbe  = 32
)

func newCompressor() (*compressor, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(ChunkSize))
	if err != nil {
		return nil, err
	}
	return &compressor{enc: enc}, nil
}

// compress returns data compressed, and true, when that saves at least a
// sixteenth; otherwise data itself and false. The result is valid until the
// next call.
func (c *compressor) compress(data []byte) ([]byte, bool) {
	if len(data) < 512 {
		return data, false
	}
	if c.misses >= compressMisses {
		if c.skipped++; c.skipped < compressProbe {
			return data, false
		}
		c.skipped = 0
	}
	c.buf = c.enc.EncodeAll(data, c.buf[:0])
	if len(c.buf) < len(data)-len(data)/16 {
		c.misses = 0
		return c.buf, true
	}
	c.misses++
	return data, false
}

func (c *compressor) close() { c.enc.Close() }

// decompressor expands the chunks a client compressed; it refuses a chunk
// that expands beyond ChunkSize.
type decompressor struct {
	dec *zstd.Decoder
	buf []byte
}

// decompress returns the chunk; it is valid until the next call.
func (d *decompressor) decompress(payload []byte) ([]byte, error) {
	if d.dec == nil {
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(ChunkSize), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		d.dec = dec
	}
	out, err := d.dec.DecodeAll(payload, d.buf[:0])
	if err != nil {
		return nil, protoErrf("bad compressed chunk: %v", err)
	}
	if len(out) > ChunkSize {
		return nil, protoErrf("compressed chunk expands beyond %d bytes", ChunkSize)
	}
	d.buf = out
	return out, nil
}

func (d *decompressor) close() {
	if d.dec != nil {
		d.dec.Close()
	}
}

// chunkPool holds ChunkSize buffers for chunks handed between goroutines
// (to the lanes on the client, to the writers on the agent).
var chunkPool = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

package syncproto

import (
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compressor compresses file chunks with zstd (fastest level, one chunk per
// frame) when both sides agreed on FeatureZstd.
type Compressor struct {
	enc *zstd.Encoder
	buf []byte
	// misses counts the chunks in a row that did not compress; from
	// compressMisses on, only every compressProbe-th chunk is tried.
	misses, skipped int
}

// Data that does not compress (random or already compressed bytes) still
// costs the attempt (9% of the client's CPU in a sync of 10,000 files of
// base64 text, when literals were not entropy-coded and so nothing was
// saved). After compressMisses such chunks in a row the Compressor
// only probes every compressProbe-th chunk, and tries every chunk again
// once one compresses.
const (
	compressMisses = 8
	compressProbe  = 32
)

// NewCompressor returns a Compressor; Close releases it.
func NewCompressor() (*Compressor, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(ChunkSize),
		zstd.WithAllLitEntropyCompression(true)) // see FrameWriter.Compress
	if err != nil {
		return nil, err
	}
	return &Compressor{enc: enc}, nil
}

// Compress returns data compressed, and true, when that saves at least a
// sixteenth; otherwise data itself and false. The result is valid until the
// next call.
func (c *Compressor) Compress(data []byte) ([]byte, bool) {
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

// Close releases the encoder.
func (c *Compressor) Close() { c.enc.Close() }

// Decompressor expands the chunks a client compressed; it refuses a chunk
// that expands beyond ChunkSize.
type Decompressor struct {
	dec *zstd.Decoder
	buf []byte
}

// Decompress returns the chunk; it is valid until the next call.
func (d *Decompressor) Decompress(payload []byte) ([]byte, error) {
	if d.dec == nil {
		dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(ChunkSize), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, err
		}
		d.dec = dec
	}
	out, err := d.dec.DecodeAll(payload, d.buf[:0])
	if err != nil {
		return nil, Errorf("bad compressed chunk: %v", err)
	}
	if len(out) > ChunkSize {
		return nil, Errorf("compressed chunk expands beyond %d bytes", ChunkSize)
	}
	d.buf = out
	return out, nil
}

// Close releases the decoder.
func (d *Decompressor) Close() {
	if d.dec != nil {
		d.dec.Close()
	}
}

// chunkPool holds ChunkSize buffers for chunks handed between goroutines
// (to the lanes on the client, to the writers on the agent).
var chunkPool = sync.Pool{New: func() any { b := make([]byte, ChunkSize); return &b }}

// GetChunk returns a buffer of ChunkSize bytes from a shared pool.
func GetChunk() *[]byte { return chunkPool.Get().(*[]byte) }

// PutChunk returns a buffer of GetChunk to the pool.
func PutChunk(b *[]byte) { chunkPool.Put(b) }

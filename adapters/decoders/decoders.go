// Package decoders adds the brotli (br) and zstd content codings to the usage
// meter (core/usage), whose built-in gzip and deflate come from the standard
// library, which has neither of these two. Clients ask for them (curl
// --compressed, Python's httpx with brotli or zstandard installed, browsers),
// vendors' CDNs answer with them, and the meter must read such answers for the
// access log to carry their usage, so every build uses this package. It
// lives outside core so that core imports the standard library only.
package decoders

import (
	"io"

	"github.com/andybalholm/brotli"
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/usage"
	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow bounds the memory a zstd frame may make the decoder take
// (RFC 8878 section 3.1.1.1.2 lets a frame ask for up to 3.75 TB; browsers
// and curl accept 8 MB windows, the size RFC 9659 fixes for HTTP).
const maxZstdWindow = 8 << 20

// All returns the decoders for usage.Options.Decoders.
func All() map[string]usage.Decoder {
	return map[string]usage.Decoder{"br": Brotli, "zstd": Zstd}
}

// Brotli decodes the br content coding (RFC 7932).
func Brotli(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil }

// Zstd decodes the zstd content coding (RFC 8878), single-threaded and with
// the window HTTP allows, so that a hostile frame cannot take more memory.
func Zstd(r io.Reader) (io.Reader, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	return closingReader{d}, nil
}

// closingReader releases the zstd decoder's goroutine-free buffers once the
// stream ends.
type closingReader struct{ d *zstd.Decoder }

func (c closingReader) Read(p []byte) (int, error) {
	n, err := c.d.Read(p)
	if err != nil {
		c.d.Close()
	}
	return n, err
}

package core

import (
	"github.com/chatgpt-reverse-proxy/chatgpt_reverse_proxy/core/usage"
)

// Observer is told about every proxied request: Started when the proxy takes
// it (its route known), Finished with its Exchange once it is answered, in
// the same place the access log is written. The Prometheus adapter
// (adapters/metrics) implements it. Implementations must be safe for
// concurrent use and must not keep x after Finished returns.
type Observer interface {
	Started(route string)
	Finished(x *Exchange)
}

// WithObserver makes o see every request.
func WithObserver(o Observer) Option { return func(opts *options) { opts.observer = o } }

// WithDecoders adds content codings the usage meter can decode (br and zstd
// from adapters/decoders) to its built-in gzip and deflate.
func WithDecoders(d map[string]usage.Decoder) Option {
	return func(opts *options) { opts.decoders = d }
}

// Package thrift holds the Thrift IDL of the services logagent ships to,
// and serves as a relay (Scribe with fb303's monitoring calls, Flume).
//
// The Go code generated from it (internal/thriftgen) decodes the calls
// relay inputs serve, and serves as the peer in the outputs' tests; the
// outputs themselves encode with the apache/thrift protocol API directly,
// without copying bodies into generated structs. The generator is Debian's thrift-compiler 0.17.0, which
// matches github.com/apache/thrift v0.17.0 pinned in go.mod.
package thrift

//go:generate rm -rf ../internal/thriftgen
//go:generate mkdir -p ../internal/thriftgen
//go:generate thrift --gen go:package_prefix=github.com/logagent/logagent/internal/thriftgen/,skip_remote -out ../internal/thriftgen scribe.thrift
//go:generate thrift --gen go:package_prefix=github.com/logagent/logagent/internal/thriftgen/,skip_remote -out ../internal/thriftgen flume.thrift
//go:generate thrift --gen go:package_prefix=github.com/logagent/logagent/internal/thriftgen/,skip_remote -out ../internal/thriftgen kestrel.thrift
//go:generate thrift --gen go:package_prefix=github.com/logagent/logagent/internal/thriftgen/,skip_remote -out ../internal/thriftgen fb303.thrift
//go:generate gofmt -w ../internal/thriftgen

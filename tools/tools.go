//go:build tools

// Package tools pins the build tools of logagent in a module of their own,
// so that their dependencies stay out of the agent's go.mod. Build them with
// the Go toolchain (only the module proxy is needed):
//
//	cd tools && go build -o ../bin/nfpm github.com/goreleaser/nfpm/v2/cmd/nfpm
//	cd tools && go build -o ../bin/benchstat golang.org/x/perf/cmd/benchstat
//	cd tools && go build -o ../bin/staticcheck honnef.co/go/tools/cmd/staticcheck
package tools

import (
	_ "github.com/goreleaser/nfpm/v2/cmd/nfpm"
	_ "golang.org/x/perf/cmd/benchstat"
	_ "honnef.co/go/tools/cmd/staticcheck"
)

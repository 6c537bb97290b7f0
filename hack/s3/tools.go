//go:build tools

// Package tools records the versitygw command this module builds, so that
// `go mod tidy` keeps its dependencies in go.mod and go.sum.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"

// Package layering holds no code: its test checks the import rules of the package map in
// docs/design.md with `go list`, so a change that breaks a layer fails `make test`
// instead of waiting for a reader to notice.
package layering

// Package examples embeds the example site trees, so `cau serve --dev` has a sample
// hierarchy with no file to point at.
package examples

import "embed"

// FS holds four-level.yaml, three-level.yaml and gia-lai.yaml.
//
//go:embed *.yaml
var FS embed.FS

// DevTree is the tree `cau serve --dev` uses when no sites file is configured.
const DevTree = "four-level.yaml"

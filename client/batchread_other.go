//go:build !(linux && (amd64 || arm64))

package client

import "github.com/cau-project/cau/internal/udpbuf"

// batchNet reads each datagram with a system call of its own here: batched reads
// (batchread_linux.go) are for 64-bit Linux.
type batchNet struct{ udpbuf.Net }
